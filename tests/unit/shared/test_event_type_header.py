"""The `concord-event-type` header on internal topics: a consumer acknowledges a type of the topic's
that it does not handle without decoding the record and without an inbox row; every other record
takes the full path, and a record whose header disagrees with its envelope is deadlettered."""

from __future__ import annotations

import dataclasses
import importlib

from shared.consumer import BatchProcessor, RawRecord, Router
from shared.contracts.outbound import DeadletterReason
from shared.contracts.registry import TOPIC_EVENT_TYPES
from shared.envelope import EVENT_TYPE_HEADER, decode_envelope
from shared.settings import Settings
from shared.topics import BY_NAME, IN_RECEIPTS, INTAKE_DOCUMENTS, INTERNAL_TOPICS, OUT_EXCEPTIONS, Topic
from shared.unit_of_work import UnitOfWork
from testkit import documents as doc
from testkit.records import record
from testkit.samples import intake as samples

SERVICES = ("intake", "matching", "compliance_gate", "payout_release", "ledger", "bank_gateway")


def _router(service: str) -> Router:
    router: Router = importlib.import_module(f"services.{service}.handlers").router
    return router


PAYOUT_RELEASE = BatchProcessor(_router("payout_release"), Settings(service="payout_release"))
LEDGER = BatchProcessor(_router("ledger"), Settings(service="ledger"))


def _receipt_accepted() -> RawRecord:
    return samples.receipt()


def _with_header(rec: RawRecord, *values: bytes) -> RawRecord:
    return dataclasses.replace(rec, headers=(*rec.headers, *((EVENT_TYPE_HEADER, v) for v in values)))


def test_a_type_the_service_does_not_handle_is_skipped_undecoded() -> None:
    rec = _with_header(_receipt_accepted(), b"receipt.accepted")
    parsed = PAYOUT_RELEASE.parse(rec)
    assert parsed.skipped == "receipt.accepted"
    assert parsed.envelope is None and parsed.fingerprint is None and parsed.poison is None


def test_even_an_unreadable_value_is_skipped_when_its_header_names_a_foreign_type() -> None:
    # Not decoded at all: the services that handle receipt.accepted decode it and deadletter it.
    rec = _with_header(dataclasses.replace(_receipt_accepted(), value=b"{not json"), b"receipt.accepted")
    assert PAYOUT_RELEASE.parse(rec).skipped == "receipt.accepted"
    dead = LEDGER.parse(rec)
    assert dead.skipped is None and dead.reason is DeadletterReason.INVALID_ENVELOPE


def test_records_without_the_header_take_the_full_path_and_are_ignored_as_before() -> None:
    parsed = PAYOUT_RELEASE.parse(_receipt_accepted())
    assert parsed.skipped is None and parsed.poison is None
    assert parsed.envelope is not None and parsed.fingerprint is not None and parsed.route is None


def test_an_undecodable_header_still_deadletters() -> None:
    rec = _with_header(_receipt_accepted(), b"receipt.\xffaccepted")
    parsed = PAYOUT_RELEASE.parse(rec)
    assert parsed.skipped is None and parsed.reason is DeadletterReason.UNDECODABLE_HEADER


def test_a_service_that_handles_the_type_reads_it_in_full() -> None:
    parsed = LEDGER.parse(_with_header(_receipt_accepted(), b"receipt.accepted"))
    assert parsed.skipped is None and parsed.poison is None and parsed.data is not None


def test_a_header_that_disagrees_with_the_envelope_is_deadlettered_by_the_service_that_decodes_it() -> None:
    # The ledger handles purchase_order.amendment_pending, so it decodes the record: the envelope
    # says receipt.accepted, which payout_release would have skipped as the header's type.
    hidden = _with_header(_receipt_accepted(), b"purchase_order.amendment_pending")
    dead = LEDGER.parse(hidden)
    assert dead.reason is DeadletterReason.EVENT_TYPE_HEADER_MISMATCH
    assert dead.poison == (
        "concord-event-type header 'purchase_order.amendment_pending' is not the envelope's "
        "event_type 'receipt.accepted'"
    )
    # A header naming a type payout_release handles makes it decode the record, and refuse it.
    mislabelled = _with_header(_receipt_accepted(), b"invoice.accepted")
    assert PAYOUT_RELEASE.parse(mislabelled).reason is DeadletterReason.EVENT_TYPE_HEADER_MISMATCH


def test_a_header_naming_no_type_of_the_topic_takes_the_full_path_and_is_deadlettered() -> None:
    for hint in (b"invoice.approved_to_pay", b"no.such_type", b""):
        parsed = PAYOUT_RELEASE.parse(_with_header(_receipt_accepted(), hint))
        assert parsed.skipped is None
        assert parsed.reason is DeadletterReason.EVENT_TYPE_HEADER_MISMATCH, hint


def test_two_event_type_headers_take_the_full_path() -> None:
    same = PAYOUT_RELEASE.parse(_with_header(_receipt_accepted(), b"receipt.accepted", b"receipt.accepted"))
    assert same.skipped is None and same.poison is None and same.envelope is not None
    differ = PAYOUT_RELEASE.parse(
        _with_header(_receipt_accepted(), b"receipt.accepted", b"purchase_order.amendment_pending")
    )
    assert differ.reason is DeadletterReason.EVENT_TYPE_HEADER_MISMATCH


def test_the_header_means_nothing_on_an_inbound_topic() -> None:
    intake = BatchProcessor(_router("intake"), Settings(service="intake"))
    receipt = doc.receipt(
        "R-1", "PO-1", [doc.receipt_line("1", "1", "2")], received_at="2026-11-21T10:00:00Z"
    )
    rec = record(IN_RECEIPTS, "receipt.recorded", receipt, key="PO-1")
    for hint in (b"receipt.recorded", b"receipt.reversed", b"anything"):
        parsed = intake.parse(_with_header(rec, hint))
        assert parsed.skipped is None and parsed.poison is None and parsed.data is not None


def test_a_replayed_record_is_never_skipped() -> None:
    rec = dataclasses.replace(_with_header(_receipt_accepted(), b"receipt.accepted"), replay_id="rp-1")
    parsed = PAYOUT_RELEASE.parse(rec)
    assert parsed.skipped is None and parsed.envelope is not None


def test_concords_units_of_work_set_the_header_on_internal_topics_only() -> None:
    uow = UnitOfWork(None, Settings(), "matching", trace_headers={"traceparent": "00-x"})  # type: ignore[arg-type]
    accepted = decode_envelope(_receipt_accepted().value)
    uow.emit(INTAKE_DOCUMENTS, "PO-1", "receipt.accepted", accepted.data)
    uow.emit(OUT_EXCEPTIONS, "INV-1", "hold.released", {"hold_id": "h"})
    internal, public = uow.outbox
    assert internal.headers == {"traceparent": "00-x", EVENT_TYPE_HEADER: "receipt.accepted"}
    assert public.headers == {"traceparent": "00-x"}
    assert uow.trace_headers == {"traceparent": "00-x"}  # shared by a batch's items: not changed


def test_every_type_of_an_internal_topic_is_decoded_by_some_service_that_reads_it() -> None:
    """So a record whose header hides its real type is always decoded, and deadlettered, by someone."""
    routers = [_router(s) for s in SERVICES]
    for name in INTERNAL_TOPICS:
        topic: Topic = BY_NAME[name]
        readers = [r for r in routers if topic in r.topics]
        unhandled = {t for t in TOPIC_EVENT_TYPES[name] if not any(t in r.routes for r in readers)}
        assert unhandled == set(), name
