"""`concord bank answer`: the local sandbox bank answers each pain.001 once, through files."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from lxml import etree

from services.bank_gateway.cutoff import write_atomically
from services.bank_gateway.domain import pain001, reports
from services.bank_gateway.domain.accounts import AccountBook
from services.bank_gateway.domain.ids import end_to_end_id, uetr
from shared.settings import Settings
from tools.cli.bank import answer_outbox

XSD = Path(__file__).resolve().parents[2] / "fixtures" / "iso20022" / "xsd"


def test_answers_every_outbox_file_with_a_status_report_and_a_booking(tmp_path: Path) -> None:
    book = AccountBook({}, {}, sandbox=True)
    payouts = [
        pain001.FiledPayout(
            pid, "payee", token, "va-1", "EUR", Decimal("10.00"), ("INV-1",), end_to_end_id(pid), uetr(pid)
        )
        for pid, token in (("po-ok", "acct-tok-ok"), ("po-bad", "acct-tok-p-fail-1"))
    ]
    plan = pain001.plan_file("MSG-1", datetime(2026, 11, 30, tzinfo=UTC), payouts)
    data = pain001.render(plan, book.debtor, lambda p: book.creditor(p.account_ref, p.payee_id))
    settings = Settings(
        bank_outbox=str(tmp_path / "bank" / "outbox"), bank_inbox=str(tmp_path / "bank" / "inbox")
    )
    write_atomically(Path(settings.bank_outbox), plan.file_name, data)

    [answered] = answer_outbox(settings)
    assert (answered.msg_id, answered.accepted, answered.rejected) == ("MSG-1", 1, 1)
    assert answer_outbox(settings) == []  # the file went to sent/: answered once
    assert (tmp_path / "bank" / "sent" / plan.file_name).exists()

    inbox = Path(settings.bank_inbox)
    status = (inbox / "MSG-1.pain.002.xml").read_bytes()
    booking = (inbox / "MSG-1.camt.054.xml").read_bytes()
    etree.XMLSchema(etree.parse(str(XSD / "pain.002.001.10.xsd"))).assertValid(etree.fromstring(status))
    etree.XMLSchema(etree.parse(str(XSD / "camt.054.001.08.xsd"))).assertValid(etree.fromstring(booking))
    report = reports.parse(status, 1 << 20)
    assert isinstance(report, reports.StatusReport)
    assert {(ln.end_to_end_id, ln.status) for ln in report.lines} == {
        (end_to_end_id("po-ok"), "ACCP"),
        (end_to_end_id("po-bad"), "RJCT"),
    }
    notification = reports.parse(booking, 1 << 20)
    assert isinstance(notification, reports.Notification)
    assert [(t.end_to_end_id, t.amount) for t in notification.txs] == [
        (end_to_end_id("po-ok"), Decimal("10.00"))
    ]
