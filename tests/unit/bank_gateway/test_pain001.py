"""The outgoing pain.001.001.09 file (SPEC §12.4): valid against the official schema, exact
NbOfTxs/CtrlSum, one PmtInf per debtor account and currency, deterministic ids, bank details only here."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from lxml import etree
from schwifty import IBAN

from services.bank_gateway.domain import pain001
from services.bank_gateway.domain.accounts import Account, AccountBook, is_sandbox_closed, sandbox_iban
from services.bank_gateway.domain.ids import end_to_end_id, rail_event_id, uetr
from services.bank_gateway.domain.pain001 import FiledPayout

NS = {"p": pain001.NS}
AT = datetime(2026, 11, 30, 9, 15, 0, tzinfo=UTC)


def payout(
    pid: str,
    amount: str,
    *,
    funding: str = "va-eur",
    currency: str = "EUR",
    token: str | None = None,
    invoices: tuple[str, ...] = ("INV-1",),
) -> FiledPayout:
    return FiledPayout(
        pid,
        "payee-" + pid,
        token or f"acct-tok-{pid}",
        funding,
        currency,
        Decimal(amount),
        invoices,
        end_to_end_id(pid),
        uetr(pid),
    )


BOOK = AccountBook(debtors={}, vault={}, sandbox=True)


def render(payouts: list[FiledPayout], book: AccountBook = BOOK) -> bytes:
    plan = pain001.plan_file("CONCORD-20261130-00000001", AT, payouts)
    return pain001.render(plan, book.debtor, lambda p: book.creditor(p.account_ref, p.payee_id))


def test_every_file_validates_against_the_official_schema(pain001_schema: etree.XMLSchema) -> None:
    payouts = [
        payout("po-1", "100.00", invoices=("INV-1", "INV-2")),
        payout("po-2", "0.01"),
        payout("po-3", "2500.50", funding="va-usd", currency="USD"),
        payout("po-4", "12", funding="va-jpy", currency="JPY"),
        payout("po-5", "99.99", invoices=tuple(f"INV-{i:04d}" for i in range(60))),  # long remittance
    ]
    doc = etree.fromstring(render(payouts))
    pain001_schema.assertValid(doc)


def test_group_header_counts_and_sums_are_exact() -> None:
    payouts = [payout("a", "0.10"), payout("b", "0.20"), payout("c", "1000000.70", funding="va-2")]
    doc = etree.fromstring(render(payouts))
    assert doc.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:NbOfTxs", namespaces=NS) == "3"
    assert doc.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:CtrlSum", namespaces=NS) == "1000001.00"
    sums = {
        pmt.findtext("p:DbtrAcct/p:Ccy", namespaces=NS) + pmt.findtext("p:PmtInfId", namespaces=NS): (
            pmt.findtext("p:NbOfTxs", namespaces=NS),
            pmt.findtext("p:CtrlSum", namespaces=NS),
        )
        for pmt in doc.iterfind("p:CstmrCdtTrfInitn/p:PmtInf", NS)
    }
    assert sorted(sums.values()) == [("1", "1000000.70"), ("2", "0.30")]


def test_one_payment_information_per_debtor_account_and_currency() -> None:
    payouts = [
        payout("a", "1.00", funding="va-1", currency="EUR"),
        payout("b", "2.00", funding="va-1", currency="EUR"),
        payout("c", "3.00", funding="va-1", currency="USD"),
        payout("d", "4.00", funding="va-2", currency="EUR"),
    ]
    plan = pain001.plan_file("M", AT, payouts)
    assert [(g.funding_account_id, g.currency, [p.payout_id for p in g.payouts]) for g in plan.groups] == [
        ("va-1", "EUR", ["a", "b"]),
        ("va-1", "USD", ["c"]),
        ("va-2", "EUR", ["d"]),
    ]


def test_each_transaction_carries_the_payout_amount_ids_and_invoices() -> None:
    p = payout("po-9", "123.45", invoices=("INV-7", "CN-2"))
    doc = etree.fromstring(render([p]))
    tx = doc.find("p:CstmrCdtTrfInitn/p:PmtInf/p:CdtTrfTxInf", NS)
    assert tx is not None
    assert tx.findtext("p:PmtId/p:EndToEndId", namespaces=NS) == end_to_end_id("po-9")
    assert tx.findtext("p:PmtId/p:UETR", namespaces=NS) == uetr("po-9")
    amt = tx.find("p:Amt/p:InstdAmt", NS)
    assert amt is not None and (amt.text, amt.get("Ccy")) == ("123.45", "EUR")
    assert "INV-7" in (tx.findtext("p:RmtInf/p:Ustrd", namespaces=NS) or "")
    assert "CN-2" in (tx.findtext("p:RmtInf/p:Ustrd", namespaces=NS) or "")


def test_ids_are_deterministic_short_enough_and_distinct() -> None:
    assert end_to_end_id("po-1") == end_to_end_id("po-1") and len(end_to_end_id("po-1")) <= 35
    assert end_to_end_id("po-1") != end_to_end_id("po-2")
    assert uetr("po-1") == uetr("po-1") != uetr("po-2")
    assert uetr("po-1")[14] == "4" and uetr("po-1")[19] in "89ab"
    assert rail_event_id("M1", "E1") == rail_event_id("M1", "E1") != rail_event_id("M2", "E1")


def test_the_same_recorded_file_renders_the_same_bytes() -> None:
    payouts = [payout("a", "1.00"), payout("b", "2.00")]
    assert render(payouts) == render(list(reversed(payouts)))


def test_sandbox_accounts_are_valid_deterministic_test_ibans() -> None:
    iban = sandbox_iban("creditor:acct-tok-x")
    assert IBAN(iban).validate() and iban == sandbox_iban("creditor:acct-tok-x")
    failing = BOOK.creditor("acct-tok-payee-fail-1", "payee")
    assert failing is not None and IBAN(failing.iban).validate() and is_sandbox_closed(failing.iban)
    ok = BOOK.creditor("acct-tok-payee-1", "payee")
    assert ok is not None and not is_sandbox_closed(ok.iban)


def test_without_sandbox_only_the_vault_and_bank_file_resolve() -> None:
    vault = {"tok-1": Account("FR1420041010050500013M02606", "Exemple SARL", "PSSTFRPPXXX")}
    book = AccountBook(debtors={}, vault=vault, sandbox=False)
    assert book.creditor("tok-1", "p") is not None
    assert book.creditor("acct-tok-unknown", "p") is None
    assert book.creditor(None, "p") is None
    assert book.debtor("va-eur") is None
    with pytest.raises(pain001.UnresolvedAccount, match="funding account va-eur"):
        render([payout("a", "1.00", token="tok-1")], book)


def test_bank_details_never_print() -> None:
    acct = Account("FR1420041010050500013M02606", "Exemple SARL")
    assert "FR14" not in repr(acct) and "Exemple" not in repr(acct)
