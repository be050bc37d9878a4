"""How a batch's records become runs of one handler (shared.consumer `_runs`).

A record whose route declares `order_keys` may be handled before earlier records that share none
of its keys; one without them keeps its place. Whatever the plan, two records that share a key,
or of which one has no keys, are handled in the order they arrived: the handlers see what they
would have seen one by one (the ledger's batch tests check the journal itself)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from shared.consumer import RawRecord, Route, _Parsed, _runs


async def _never(*_: Any) -> None:
    raise AssertionError("not called")


def _handler(name: str) -> Any:
    async def handler(*_: Any) -> None:
        raise AssertionError("not called")

    handler.__name__ = name
    return handler


HANDLERS = {name: _handler(name) for name in "ABC"}


def parsed(n: int, handler: str, keys: tuple[str, ...] | None, *, batchable: bool = True) -> _Parsed:
    """Record `n` for `handler`; `keys` None: its route declares none (it keeps its place)."""
    route = Route(
        SimpleNamespace,  # type: ignore[arg-type]
        _never,
        batch=HANDLERS[handler] if batchable else None,
        order_keys=None if keys is None else (lambda data: data.keys),
    )
    record = RawRecord(topic="t", partition=0, offset=n, key=None, value=b"", headers=())
    envelope = SimpleNamespace(event_type=f"type.{handler}", event_id=f"E{n}")
    return _Parsed(record, envelope=envelope, route=route, data=SimpleNamespace(keys=keys))  # type: ignore[arg-type]


def order(runs: list[list[_Parsed]]) -> list[int]:
    return [p.record.offset for run in runs for p in run]


def test_interleaved_independent_flows_become_one_run_per_handler() -> None:
    """A PO, a receipt and an invoice of each of 50 flows, interleaved as they arrive: three
    runs, where keeping the records' order made 150."""
    records = [parsed(3 * f + i, "ABC"[i], (f"po:{f}",)) for f in range(50) for i in range(3)]
    runs = _runs(records)
    assert [len(run) for run in runs] == [50, 50, 50]
    assert [{p.envelope.event_type for p in run} for run in runs] == [{"type.A"}, {"type.B"}, {"type.C"}]  # type: ignore[union-attr]


def test_a_record_waits_for_the_records_of_its_keys() -> None:
    """The second flow's receipt comes before its PO: it stays behind it (a run of its own),
    while the first flow's documents are grouped."""
    records = [
        parsed(0, "A", ("po:1",)),
        parsed(1, "B", ("po:2",)),  # flow 2's receipt, before its PO
        parsed(2, "B", ("po:1",)),
        parsed(3, "A", ("po:2",)),  # flow 2's PO
        parsed(4, "B", ("po:2",)),  # flow 2's second receipt: after its PO
    ]
    assert [[p.record.offset for p in run] for run in _runs(records)] == [[0], [1, 2], [3], [4]]


def test_a_record_without_keys_is_a_barrier() -> None:
    records = [
        parsed(0, "A", ("po:1",)),
        parsed(1, "B", None),  # say, a funding record: nothing moves past it
        parsed(2, "A", ("po:2",)),
        parsed(3, "C", ("po:3",), batchable=False),  # handled alone, in its place
        parsed(4, "A", ("po:4",)),
    ]
    assert [[p.record.offset for p in run] for run in _runs(records)] == [[0], [1], [2], [3], [4]]


def test_records_without_keys_keep_consecutive_runs_as_before() -> None:
    records = [parsed(n, h, None) for n, h in enumerate("AABBA")]
    assert [[p.record.offset for p in run] for run in _runs(records)] == [[0, 1], [2, 3], [4]]


record_specs = st.lists(
    st.tuples(
        st.sampled_from("ABC"),
        st.none() | st.frozensets(st.sampled_from(["k1", "k2", "k3", "k4"]), min_size=1, max_size=2),
        st.booleans(),
    ),
    max_size=40,
)


@given(record_specs)
def test_every_plan_keeps_the_order_of_records_that_depend_on_each_other(specs: list[Any]) -> None:
    records = [
        parsed(n, handler, None if keys is None else tuple(sorted(keys)), batchable=batchable or keys is None)
        for n, (handler, keys, batchable) in enumerate(specs)
    ]
    runs = _runs(records)
    handled = order(runs)
    assert sorted(handled) == list(range(len(records)))  # each record once
    at = {n: i for i, n in enumerate(handled)}
    for run in runs:
        assert [p.record.offset for p in run] == sorted(p.record.offset for p in run)
        if len(run) > 1:
            assert all(p.route is not None and p.route.batch is run[0].route.batch for p in run)  # type: ignore[union-attr]
            assert run[0].route is not None and run[0].route.batch is not None
    for i, a in enumerate(records):
        for j in range(i + 1, len(records)):
            b = records[j]
            ka, kb = a.data.keys, b.data.keys  # type: ignore[union-attr]
            a_free = ka is not None and a.route is not None and a.route.batch is not None
            b_free = kb is not None and b.route is not None and b.route.batch is not None
            if not (a_free and b_free) or set(ka) & set(kb):
                assert at[i] < at[j], (i, j, [[p.record.offset for p in run] for run in runs])
