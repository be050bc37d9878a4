"""Reading the bank's answers (SPEC §12.4): pain.002 .03/.10 and camt.054 .04/.08, decided whole."""

from __future__ import annotations

from decimal import Decimal

import pytest
from lxml import etree

from services.bank_gateway.domain import reports
from services.bank_gateway.domain.apply import KnownPayout, RailOutcome, decide
from services.bank_gateway.domain.ids import end_to_end_id, uetr
from services.bank_gateway.domain.reports import BadReport, Refusal
from testkit import bank
from tests.unit.bank_gateway.conftest import example

MAX = 1024 * 1024
FILE = "CONCORD-20261130-00000001"


def known(
    pid: str, amount: str, pmt: str = f"{FILE}-1", currency: str = "EUR", file: str = FILE
) -> KnownPayout:
    return KnownPayout(pid, end_to_end_id(pid), uetr(pid), Decimal(amount), currency, file, pmt)


PAYOUTS = [
    known("po-a", "100.00"),
    known("po-b", "50.00"),
    known("po-c", "7.00", pmt=f"{FILE}-2", currency="USD"),
]


def test_the_real_pain002_v03_example_parses() -> None:
    report = reports.parse(example("pain_002_v3_accepted.xml"), MAX)
    assert isinstance(report, reports.StatusReport)
    assert (report.msg_id, report.original_msg_id) == ("1036XXX", "10280093XXXX")
    (line,) = report.lines
    assert (line.level, line.status, line.end_to_end_id, line.pmt_inf_id) == (
        "transaction",
        "ACCP",
        "GSDGFKfLURaHb",
        "3B-CCY",
    )
    assert line.reason is not None and line.reason.code == "NARR"
    # For a file we never sent, the whole report is refused.
    assert decide(report, PAYOUTS).refusals[0][0] is Refusal.UNKNOWN_ORIGINAL


def test_the_real_camt054_v04_example_parses() -> None:
    raw = example("200519_camt.054-Debit_P_CH2909000000250094239_1110092692_0_2019042401501580.xml")
    report = reports.parse(raw, MAX)
    assert isinstance(report, reports.Notification)
    (tx,) = report.txs
    assert (tx.end_to_end_id, tx.amount, tx.currency, tx.credit_debit, tx.booked, tx.booking_date) == (
        "20190424001255000100006",
        Decimal("913.00"),
        "CHF",
        "DBIT",
        True,
        "2019-04-25",
    )
    assert decide(report, PAYOUTS).refusals[0][0] is Refusal.UNKNOWN_PAYOUT


@pytest.mark.parametrize("version", ["10", "03"])
def test_transaction_rejection_fails_that_payout_with_the_iso_reason(
    version: str, pain002_schema: etree.XMLSchema
) -> None:
    raw = bank.pain002(
        "STS-1",
        FILE,
        group_status="PART",
        payments=[
            bank.PmtStatus(
                f"{FILE}-1",
                txs=[
                    bank.TxStatus(
                        end_to_end_id("po-a"), "RJCT", "AC04", "Closed account number", uetr("po-a")
                    ),
                    bank.TxStatus(end_to_end_id("po-b"), "ACSP", uetr=uetr("po-b")),
                ],
            )
        ],
        version=version,
    )
    if version == "10":
        pain002_schema.assertValid(etree.fromstring(raw))
    d = decide(reports.parse(raw, MAX), PAYOUTS)
    assert d.accepted
    by = {ln.payout_id: ln for ln in d.lines}
    assert (by["po-a"].outcome, by["po-a"].code, by["po-a"].message) == (
        RailOutcome.FAILED,
        "AC04",
        "Closed account number",
    )
    assert by["po-b"].outcome is RailOutcome.RECORDED  # partial acceptance: the accepted one is only recorded
    assert "po-c" not in by  # PART at group level says nothing about a payout it does not name


def test_payment_level_rejection_fails_every_payout_of_that_payment() -> None:
    raw = bank.pain002(
        "STS-2", FILE, payments=[bank.PmtStatus(f"{FILE}-1", "RJCT", "AM04", "Insufficient funds")]
    )
    d = decide(reports.parse(raw, MAX), PAYOUTS)
    assert sorted((ln.payout_id, ln.outcome, ln.code) for ln in d.lines) == [
        ("po-a", RailOutcome.FAILED, "AM04"),
        ("po-b", RailOutcome.FAILED, "AM04"),
    ]
    assert len({ln.rail_event_id for ln in d.lines}) == 2  # one event each


def test_group_level_rejection_fails_every_payout_of_the_file() -> None:
    raw = bank.pain002(
        "STS-3", FILE, group_status="RJCT", group_reason="FF01", group_text="Invalid file format"
    )
    d = decide(reports.parse(raw, MAX), PAYOUTS)
    assert sorted(ln.payout_id for ln in d.lines if ln.outcome is RailOutcome.FAILED) == [
        "po-a",
        "po-b",
        "po-c",
    ]
    assert {ln.code for ln in d.lines} == {"FF01"}


def test_rejection_without_a_reason_code_is_narr() -> None:
    raw = bank.pain002(
        "STS-4",
        FILE,
        payments=[bank.PmtStatus(f"{FILE}-2", txs=[bank.TxStatus(end_to_end_id("po-c"), "RJCT")])],
    )
    (line,) = decide(reports.parse(raw, MAX), PAYOUTS).lines
    assert (line.outcome, line.code) == (RailOutcome.FAILED, "NARR")


def test_a_status_for_an_unknown_payout_refuses_the_whole_file() -> None:
    raw = bank.pain002(
        "STS-5",
        FILE,
        payments=[
            bank.PmtStatus(
                f"{FILE}-1",
                txs=[
                    bank.TxStatus(end_to_end_id("po-a"), "RJCT", "AC01"),
                    bank.TxStatus("NOT-OURS", "RJCT", "AC01"),
                ],
            )
        ],
    )
    d = decide(reports.parse(raw, MAX), PAYOUTS)
    assert not d.accepted and d.refusals[0][0] is Refusal.UNKNOWN_PAYOUT and "NOT-OURS" in d.refusals[0][1]


@pytest.mark.parametrize("version", ["08", "04"])
def test_batch_booked_debit_settles_each_payout_with_booked_amount_and_date(
    version: str, camt054_schema: etree.XMLSchema
) -> None:
    raw = bank.camt054(
        "NTF-1",
        [
            bank.Entry(
                "150.00",
                "EUR",
                "DBIT",
                [
                    bank.Detail(end_to_end_id("po-a"), "100.00", "EUR", uetr("po-a")),
                    bank.Detail(end_to_end_id("po-b"), "50.00", "EUR"),
                ],
                booking_date="2026-12-01",
            )
        ],
        version=version,
    )
    if version == "08":
        camt054_schema.assertValid(etree.fromstring(raw))
    d = decide(reports.parse(raw, MAX), PAYOUTS)
    assert sorted((ln.payout_id, ln.outcome, ln.amount, ln.date) for ln in d.lines) == [
        ("po-a", RailOutcome.SETTLED, Decimal("100.00"), "2026-12-01"),
        ("po-b", RailOutcome.SETTLED, Decimal("50.00"), "2026-12-01"),
    ]


def test_booked_credit_with_return_information_returns_the_payout(camt054_schema: etree.XMLSchema) -> None:
    raw = bank.camt054(
        "NTF-2",
        [
            bank.Entry(
                "7.00",
                "USD",
                "CRDT",
                [
                    bank.Detail(
                        end_to_end_id("po-c"),
                        "7.00",
                        "USD",
                        return_reason="AC06",
                        return_text="Blocked account",
                    )
                ],
            )
        ],
    )
    camt054_schema.assertValid(etree.fromstring(raw))
    (line,) = decide(reports.parse(raw, MAX), PAYOUTS).lines
    assert (line.outcome, line.code, line.message, line.amount) == (
        RailOutcome.RETURNED,
        "AC06",
        "Blocked account",
        Decimal("7.00"),
    )


def test_an_amount_that_differs_from_the_payout_refuses_the_whole_file() -> None:
    raw = bank.camt054(
        "NTF-3",
        [
            bank.Entry("100.00", "EUR", "DBIT", [bank.Detail(end_to_end_id("po-a"), "100.00", "EUR")]),
            bank.Entry("49.99", "EUR", "DBIT", [bank.Detail(end_to_end_id("po-b"), "49.99", "EUR")]),
        ],
    )
    d = decide(reports.parse(raw, MAX), PAYOUTS)
    assert not d.accepted and not d.lines
    assert d.refusals == [
        (Refusal.AMOUNT_MISMATCH, "entry E2/1: 49.99 EUR booked for payout po-b of 50.00 EUR")
    ]


def test_pending_entries_are_recorded_not_published() -> None:
    raw = bank.camt054(
        "NTF-4",
        [
            bank.Entry(
                "100.00", "EUR", "DBIT", [bank.Detail(end_to_end_id("po-a"), "100.00", "EUR")], status="PDNG"
            )
        ],
    )
    (line,) = decide(reports.parse(raw, MAX), PAYOUTS).lines
    assert line.outcome is RailOutcome.RECORDED


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10">
<CstmrPmtStsRpt><GrpHdr><MsgId>&lol3;</MsgId></GrpHdr></CstmrPmtStsRpt></Document>"""
XXE = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10">
<CstmrPmtStsRpt><GrpHdr><MsgId>&xxe;</MsgId></GrpHdr></CstmrPmtStsRpt></Document>"""


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (b"<Document><unclosed>", Refusal.MALFORMED),
        (b"", Refusal.MALFORMED),
        (BILLION_LAUGHS, Refusal.DTD),
        (XXE, Refusal.DTD),
        (b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"/>', Refusal.UNSUPPORTED),
        (
            b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.002.001.10"><CstmrPmtStsRpt/></Document>',
            Refusal.INCOMPLETE,
        ),
        (b"<x>" + b"a" * 2000 + b"</x>", Refusal.OVERSIZE),
    ],
    ids=["malformed", "empty", "billion-laughs", "xxe", "pain001-not-a-report", "incomplete", "oversize"],
)
def test_bad_files_are_refused_with_a_specific_reason(raw: bytes, code: Refusal) -> None:
    with pytest.raises(BadReport) as caught:
        reports.parse(raw, 1000)
    assert caught.value.code is code


def test_a_half_written_report_is_malformed_never_partly_applied() -> None:
    raw = bank.pain002("STS-6", FILE, group_status="RJCT", group_reason="FF01")
    with pytest.raises(BadReport) as caught:
        reports.parse(raw[: len(raw) // 2], MAX)
    assert caught.value.code is Refusal.MALFORMED
