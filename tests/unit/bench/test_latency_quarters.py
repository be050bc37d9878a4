"""The benchmark splits each latency phase into quarters by send time, so a transient left by the
phase before (first quarter slow) can be told from a load the pipeline cannot carry (each quarter
slower than the last)."""

from bench.__main__ import _latency
from bench.pipeline import Observed


def test_a_slow_start_shows_in_the_first_quarter_only() -> None:
    observed = Observed()
    ids = [f"inv-{i}" for i in range(40)]
    for i, invoice in enumerate(ids):
        observed.submitted_at[invoice] = 100.0 + i * 0.1
        # the first ten sent wait 2 s, the others 0.2 s
        observed.approved_at[invoice] = observed.submitted_at[invoice] + (2.0 if i < 10 else 0.2)
    phase = _latency(observed, ids, 10.0, 40)
    quarters = phase["submitted_to_approved_ms_by_quarter"]
    assert [q["n"] for q in quarters] == [10, 10, 10, 10]
    assert quarters[0]["p99"] == 2000.0
    assert all(q["p99"] == 200.0 for q in quarters[1:])
    # the whole phase's p99 is the slow start's
    assert phase["submitted_to_approved_ms"]["p99"] == 2000.0


def test_flows_never_approved_are_left_out_of_the_quarters() -> None:
    observed = Observed()
    ids = [f"inv-{i}" for i in range(8)]
    for i, invoice in enumerate(ids):
        observed.submitted_at[invoice] = float(i)
        if i % 2 == 0:
            observed.approved_at[invoice] = float(i) + 0.5
    quarters = _latency(observed, ids, 1.0, 8)["submitted_to_approved_ms_by_quarter"]
    assert sum(q["n"] for q in quarters) == 4
