"""The chaos run's comparison of Invoice Responses (SPEC §12.3) between the fault-free and the
faulty run: the same (invoice, status) pairs, in causal order."""

from __future__ import annotations

from typing import ClassVar

from chaos.outcome import RunOutcome, response_checks, summarise


def _run(label: str, responses: dict[str, list[str]]) -> RunOutcome:
    return RunOutcome(label, responses=responses)


def test_identical_responses_pass() -> None:
    told = {"i1": ["AB", "UQ", "AP", "PD"], "i2": ["RE"]}
    same, order = response_checks(None, _run("b", told), _run("f", dict(told)))  # type: ignore[arg-type]
    assert same.ok and same.detail == "5 (invoice, status) pairs identical"
    assert order.ok and not order.blocking


def test_a_missing_or_extra_status_fails_and_names_it() -> None:
    base = _run("b", {"i1": ["AB", "AP", "PD"]})
    faulty = _run("f", {"i1": ["AB", "UQ", "AP"]})
    [same, _] = response_checks(None, base, faulty)  # type: ignore[arg-type]
    assert not same.ok and same.blocking
    assert (
        "i1 UQ: only in the faulty run" in same.detail and "i1 PD: only in the fault-free run" in same.detail
    )


def test_out_of_order_is_reported() -> None:
    faulty = _run("f", {"i1": ["UQ", "AB", "AP"], "i2": ["AB", "PD", "AP"]})
    [_, order] = response_checks(None, faulty, faulty)  # type: ignore[arg-type]
    assert not order.ok and "i1: UQ → AB → AP" in order.detail and "i2" in order.detail


class _Workload:
    expected: ClassVar[dict[str, None]] = {"i1": None}


def test_summarise_reads_the_responses_of_the_workloads_invoices_in_order() -> None:
    def told(inv: str, status: str) -> tuple[str, dict[str, object]]:
        return (
            "out.invoice-responses",
            {"event_type": "invoice_response.issued", "data": {"invoice_id": inv, "status": status}},
        )

    seen = [told("i1", "AB"), told("other", "AB"), told("i1", "UQ")]
    out = summarise("b", _Workload(), seen)  # type: ignore[arg-type]
    assert out.responses == {"i1": ["AB", "UQ"]}
