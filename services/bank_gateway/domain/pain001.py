"""The outgoing file: one pain.001.001.09 CustomerCreditTransferInitiation per cut-off (SPEC §12.4).

`plan_file` groups the payouts recorded for one file (one PmtInf per debtor account and currency,
one CdtTrfTxInf per payout); `render` turns a plan plus the accounts resolved at that moment into
the document's bytes. Both are pure and deterministic: a file re-written after a crash between
writing it and recording that it was written has the very same bytes (same MsgId, same name).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from lxml import etree

from services.bank_gateway.domain.accounts import Account

NS = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"
INITIATING_PARTY = "Concord"
REMITTANCE_MAX = 140  # Max140Text


@dataclass(frozen=True)
class FiledPayout:
    """A payout as the gateway's database keeps it: no bank details, only the account token."""

    payout_id: str
    payee_id: str
    account_ref: str | None
    funding_account_id: str
    currency: str
    amount: Decimal
    invoice_ids: tuple[str, ...]
    end_to_end_id: str
    uetr: str


@dataclass(frozen=True)
class PaymentGroup:
    pmt_inf_id: str
    funding_account_id: str
    currency: str
    payouts: tuple[FiledPayout, ...]

    @property
    def ctrl_sum(self) -> Decimal:
        return sum((p.amount for p in self.payouts), Decimal(0))


@dataclass(frozen=True)
class FilePlan:
    msg_id: str
    created_at: datetime
    execution_date: date
    groups: tuple[PaymentGroup, ...]

    @property
    def nb_of_txs(self) -> int:
        return sum(len(g.payouts) for g in self.groups)

    @property
    def ctrl_sum(self) -> Decimal:
        return sum((g.ctrl_sum for g in self.groups), Decimal(0))

    @property
    def file_name(self) -> str:
        return f"{self.msg_id}.pain.001.001.09.xml"


def pmt_inf_id(msg_id: str, index: int) -> str:
    return f"{msg_id}-{index}"


def plan_file(msg_id: str, created_at: datetime, payouts: Sequence[FiledPayout]) -> FilePlan:
    """Group by (funding account, currency), in a stable order, payouts by payout id."""
    by_group: dict[tuple[str, str], list[FiledPayout]] = {}
    for p in sorted(payouts, key=lambda p: p.payout_id):
        by_group.setdefault((p.funding_account_id, p.currency), []).append(p)
    groups = tuple(
        PaymentGroup(pmt_inf_id(msg_id, i), account, currency, tuple(items))
        for i, ((account, currency), items) in enumerate(sorted(by_group.items()), start=1)
    )
    return FilePlan(msg_id, created_at, created_at.date(), groups)


def remittance(p: FiledPayout) -> str:
    text = "Concord payout; invoices " + ", ".join(p.invoice_ids)
    return text if len(text) <= REMITTANCE_MAX else text[: REMITTANCE_MAX - 1] + "…"


def amount_text(amount: Decimal) -> str:
    return format(amount, "f")


class UnresolvedAccount(Exception):
    """An account the book cannot resolve at write time; the file is not written."""


def _sub(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    el = etree.SubElement(parent, f"{{{NS}}}{tag}", attrs)
    if text is not None:
        el.text = text
    return el


def _agent(parent: etree._Element, tag: str, account: Account) -> None:
    fin = _sub(_sub(parent, tag), "FinInstnId")
    if account.bic:
        _sub(fin, "BICFI", account.bic)
    else:
        _sub(_sub(fin, "Othr"), "Id", "NOTPROVIDED")


def _account(parent: etree._Element, tag: str, account: Account, currency: str | None = None) -> None:
    acct = _sub(parent, tag)
    _sub(_sub(acct, "Id"), "IBAN", account.iban)
    if currency:
        _sub(acct, "Ccy", currency)


def render(
    plan: FilePlan,
    debtor: Callable[[str], Account | None],
    creditor: Callable[[FiledPayout], Account | None],
) -> bytes:
    """The document's bytes. Raises UnresolvedAccount naming the payout or funding account, never
    the details."""
    root = etree.Element(f"{{{NS}}}Document", nsmap={None: NS})
    cti = _sub(root, "CstmrCdtTrfInitn")
    hdr = _sub(cti, "GrpHdr")
    _sub(hdr, "MsgId", plan.msg_id)
    _sub(hdr, "CreDtTm", plan.created_at.strftime("%Y-%m-%dT%H:%M:%S"))
    _sub(hdr, "NbOfTxs", str(plan.nb_of_txs))
    _sub(hdr, "CtrlSum", amount_text(plan.ctrl_sum))
    _sub(_sub(hdr, "InitgPty"), "Nm", INITIATING_PARTY)
    for group in plan.groups:
        dbtr = debtor(group.funding_account_id)
        if dbtr is None:
            raise UnresolvedAccount(f"funding account {group.funding_account_id} has no bank account")
        pmt = _sub(cti, "PmtInf")
        _sub(pmt, "PmtInfId", group.pmt_inf_id)
        _sub(pmt, "PmtMtd", "TRF")
        _sub(pmt, "NbOfTxs", str(len(group.payouts)))
        _sub(pmt, "CtrlSum", amount_text(group.ctrl_sum))
        _sub(_sub(pmt, "ReqdExctnDt"), "Dt", plan.execution_date.isoformat())
        _sub(_sub(pmt, "Dbtr"), "Nm", dbtr.name)
        _account(pmt, "DbtrAcct", dbtr, group.currency)
        _agent(pmt, "DbtrAgt", dbtr)
        _sub(pmt, "ChrgBr", "SLEV")
        for p in group.payouts:
            cdtr = creditor(p)
            if cdtr is None:
                raise UnresolvedAccount(f"payout {p.payout_id}: its account token does not resolve")
            tx = _sub(pmt, "CdtTrfTxInf")
            pmt_id = _sub(tx, "PmtId")
            _sub(pmt_id, "InstrId", p.end_to_end_id)
            _sub(pmt_id, "EndToEndId", p.end_to_end_id)
            _sub(pmt_id, "UETR", p.uetr)
            _sub(_sub(tx, "Amt"), "InstdAmt", amount_text(p.amount), Ccy=p.currency)
            if cdtr.bic:
                _agent(tx, "CdtrAgt", cdtr)
            _sub(_sub(tx, "Cdtr"), "Nm", cdtr.name[:140])
            _account(tx, "CdtrAcct", cdtr)
            _sub(_sub(tx, "RmtInf"), "Ustrd", remittance(p))
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))
