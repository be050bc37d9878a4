"""The drains' "are all these flows done yet?" (bench.pipeline.until_all): the answer all() gives,
without asking again about the flows already found done."""

from __future__ import annotations

from collections import Counter

from bench.pipeline import until_all


def test_answers_as_all_does_while_flows_finish_out_of_order() -> None:
    ids = [f"inv-{n}" for n in range(6)]
    finished: set[str] = set()
    check = until_all(ids, finished.__contains__)
    for n in (2, 0, 5, 1, 4):  # out of order: done ahead of an earlier unfinished one counts later
        finished.add(f"inv-{n}")
        assert check() is False
        assert check() == all(i in finished for i in ids)
    finished.add("inv-3")
    assert check() is True
    assert check() is True


def test_a_flow_found_done_is_not_asked_about_again() -> None:
    ids = [f"inv-{n}" for n in range(1000)]
    asked: Counter[str] = Counter()
    finished: set[str] = set()

    def done(invoice_id: str) -> bool:
        asked[invoice_id] += 1
        return invoice_id in finished

    check = until_all(ids, done)
    for n in range(1000):
        finished.add(f"inv-{n}")
        check()  # a drain asks after every arrival here; ten times a second in the bench
    assert check() is True
    # all() from the start each time asks ~n²/2 = 500,500 times; here each id is asked at most
    # twice (once while still pending, once found done).
    assert max(asked.values()) <= 2
    assert sum(asked.values()) <= 2 * len(ids)


def test_no_flows_is_done_at_once() -> None:
    assert until_all([], lambda _: False)() is True
