"""A bank's answers, as files (SPEC §12.4): pain.002 status reports and camt.054 notifications.

The tests, `concord bank answer` (the local sandbox bank), the demo and the chaos run write their
bank files with these builders. Versions: pain.002.001.10 (default) or .001.03, camt.054.001.08
(default) or .001.04 — the shapes differ where the versions do (`<Sts><Cd>BOOK</Cd></Sts>` from
.08, `<Sts>BOOK</Sts>` in .04; `OrgnlUETR` and `UETR` only in the newer ones).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from lxml import etree

PAIN002 = "urn:iso:std:iso:20022:tech:xsd:pain.002.001.{v}"
CAMT054 = "urn:iso:std:iso:20022:tech:xsd:camt.054.001.{v}"
PAIN001 = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"


@dataclass(frozen=True)
class TxStatus:
    end_to_end_id: str
    status: str  # ACCP, ACSP, RJCT, …
    reason: str | None = None
    text: str | None = None
    uetr: str | None = None


@dataclass(frozen=True)
class PmtStatus:
    pmt_inf_id: str
    status: str | None = None
    reason: str | None = None
    text: str | None = None
    txs: Sequence[TxStatus] = ()


@dataclass(frozen=True)
class Detail:
    end_to_end_id: str
    amount: str
    currency: str
    uetr: str | None = None
    return_reason: str | None = None
    return_text: str | None = None


@dataclass(frozen=True)
class Entry:
    amount: str
    currency: str
    credit_debit: str  # DBIT | CRDT
    details: Sequence[Detail]
    status: str = "BOOK"
    booking_date: str = field(default_factory=lambda: date.today().isoformat())
    ref: str | None = None


class _W:
    def __init__(self, ns: str) -> None:
        self.ns = ns

    def root(self, body: str) -> tuple[etree._Element, etree._Element]:
        root = etree.Element(f"{{{self.ns}}}Document", nsmap={None: self.ns})
        return root, self.sub(root, body)

    def sub(self, parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
        el = etree.SubElement(parent, f"{{{self.ns}}}{tag}", attrs)
        if text is not None:
            el.text = text
        return el

    def reason(
        self, parent: etree._Element, code: str | None, text: str | None, tag: str = "StsRsnInf"
    ) -> None:
        if code is None and text is None:
            return
        info = self.sub(parent, tag)
        if code is not None:
            self.sub(self.sub(info, "Rsn"), "Cd", code)
        if text is not None:
            self.sub(info, "AddtlInf", text[:105])


def _bytes(root: etree._Element) -> bytes:
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True))


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")


def pain002(
    msg_id: str,
    original_msg_id: str,
    *,
    group_status: str | None = None,
    group_reason: str | None = None,
    group_text: str | None = None,
    payments: Sequence[PmtStatus] = (),
    version: str = "10",
) -> bytes:
    w = _W(PAIN002.format(v=version))
    root, body = w.root("CstmrPmtStsRpt")
    hdr = w.sub(body, "GrpHdr")
    w.sub(hdr, "MsgId", msg_id)
    w.sub(hdr, "CreDtTm", _now())
    grp = w.sub(body, "OrgnlGrpInfAndSts")
    w.sub(grp, "OrgnlMsgId", original_msg_id)
    w.sub(grp, "OrgnlMsgNmId", "pain.001.001.09")
    if group_status:
        w.sub(grp, "GrpSts", group_status)
    w.reason(grp, group_reason, group_text)
    for pmt in payments:
        p = w.sub(body, "OrgnlPmtInfAndSts")
        w.sub(p, "OrgnlPmtInfId", pmt.pmt_inf_id)
        if pmt.status:
            w.sub(p, "PmtInfSts", pmt.status)
        w.reason(p, pmt.reason, pmt.text)
        for tx in pmt.txs:
            t = w.sub(p, "TxInfAndSts")
            w.sub(t, "OrgnlEndToEndId", tx.end_to_end_id)
            if tx.uetr and version != "03":
                w.sub(t, "OrgnlUETR", tx.uetr)
            w.sub(t, "TxSts", tx.status)
            w.reason(t, tx.reason, tx.text)
    return _bytes(root)


def camt054(
    msg_id: str, entries: Sequence[Entry], *, iban: str = "DE89370400440532013000", version: str = "08"
) -> bytes:
    w = _W(CAMT054.format(v=version))
    root, body = w.root("BkToCstmrDbtCdtNtfctn")
    hdr = w.sub(body, "GrpHdr")
    w.sub(hdr, "MsgId", msg_id)
    w.sub(hdr, "CreDtTm", _now())
    n = w.sub(body, "Ntfctn")
    w.sub(n, "Id", msg_id + "-1")
    w.sub(w.sub(w.sub(n, "Acct"), "Id"), "IBAN", iban)
    for i, e in enumerate(entries, start=1):
        ntry = w.sub(n, "Ntry")
        w.sub(ntry, "NtryRef", e.ref or f"E{i}")
        w.sub(ntry, "Amt", e.amount, Ccy=e.currency)
        w.sub(ntry, "CdtDbtInd", e.credit_debit)
        if version == "04":
            w.sub(ntry, "Sts", e.status)
        else:
            w.sub(w.sub(ntry, "Sts"), "Cd", e.status)
        w.sub(w.sub(ntry, "BookgDt"), "Dt", e.booking_date)
        domn = w.sub(w.sub(ntry, "BkTxCd"), "Domn")
        w.sub(domn, "Cd", "PMNT")
        fmly = w.sub(domn, "Fmly")
        returned = e.credit_debit == "CRDT"
        w.sub(fmly, "Cd", "RCDT" if returned else "ICDT")
        w.sub(fmly, "SubFmlyCd", "RRTN" if returned else "ESCT")
        dtls = w.sub(ntry, "NtryDtls")
        for d in e.details:
            tx = w.sub(dtls, "TxDtls")
            refs = w.sub(tx, "Refs")
            w.sub(refs, "EndToEndId", d.end_to_end_id)
            if d.uetr and version != "04":
                w.sub(refs, "UETR", d.uetr)
            w.sub(tx, "Amt", d.amount, Ccy=d.currency)
            w.sub(tx, "CdtDbtInd", e.credit_debit)
            if d.return_reason or d.return_text:
                w.reason(tx, d.return_reason, d.return_text, tag="RtrInf")
    return _bytes(root)


# --- the local sandbox bank -----------------------------------------------------------------


@dataclass(frozen=True)
class Instructed:
    """One transaction of a pain.001, as the bank reads it."""

    pmt_inf_id: str
    end_to_end_id: str
    uetr: str | None
    amount: str
    currency: str
    creditor_iban: str


def read_pain001(raw: bytes) -> tuple[str, list[Instructed]]:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.fromstring(raw, parser)
    ns = {"p": PAIN001}
    msg_id = root.findtext("p:CstmrCdtTrfInitn/p:GrpHdr/p:MsgId", namespaces=ns) or ""
    out: list[Instructed] = []
    for pmt in root.iterfind("p:CstmrCdtTrfInitn/p:PmtInf", ns):
        pmt_id = pmt.findtext("p:PmtInfId", namespaces=ns) or ""
        for tx in pmt.iterfind("p:CdtTrfTxInf", ns):
            amt = tx.find("p:Amt/p:InstdAmt", ns)
            assert amt is not None and amt.text
            out.append(
                Instructed(
                    pmt_id,
                    tx.findtext("p:PmtId/p:EndToEndId", namespaces=ns) or "",
                    tx.findtext("p:PmtId/p:UETR", namespaces=ns),
                    amt.text,
                    amt.get("Ccy", ""),
                    tx.findtext("p:CdtrAcct/p:Id/p:IBAN", namespaces=ns) or "",
                )
            )
    return msg_id, out


def answer(
    raw_pain001: bytes,
    rejects: Callable[[Instructed], bool],
    *,
    booking_date: str | None = None,
    reject_code: str = "AC01",
    reject_text: str = "Account identifier incorrect (sandbox bank: closed account)",
) -> tuple[str, bytes, bytes | None]:
    """The local bank's answer to one pain.001: a pain.002 (ACCP, or RJCT `reject_code` where `rejects`)
    and a camt.054 booking every accepted transaction, batch-booked per payment information.
    Returns (the original MsgId, the pain.002, the camt.054 or None when nothing was booked)."""
    msg_id, txs = read_pain001(raw_pain001)
    by_pmt: dict[str, list[Instructed]] = {}
    for t in txs:
        by_pmt.setdefault(t.pmt_inf_id, []).append(t)
    statuses = [
        PmtStatus(
            pmt_id,
            txs=[
                TxStatus(t.end_to_end_id, "RJCT", reject_code, reject_text, t.uetr)
                if rejects(t)
                else TxStatus(t.end_to_end_id, "ACCP", uetr=t.uetr)
                for t in items
            ],
        )
        for pmt_id, items in by_pmt.items()
    ]
    report = pain002(f"STS-{msg_id}"[:35], msg_id, group_status=None, payments=statuses)
    entries = []
    for pmt_id, items in by_pmt.items():
        booked = [t for t in items if not rejects(t)]
        if not booked:
            continue
        total = sum((Decimal(t.amount) for t in booked), Decimal(0))
        entries.append(
            Entry(
                format(total, "f"),
                booked[0].currency,
                "DBIT",
                [Detail(t.end_to_end_id, t.amount, t.currency, t.uetr) for t in booked],
                booking_date=booking_date or date.today().isoformat(),
                ref=pmt_id[-35:],
            )
        )
    notification = camt054(f"NTF-{msg_id}"[:35], entries) if entries else None
    return msg_id, report, notification


def payout_released(
    payout_id: str,
    *,
    amount: str = "100.00",
    currency: str = "EUR",
    payee_id: str = "payee-1",
    account_ref: str | None = "acct-tok-payee-1",
    funding_account_id: str = "va-eur-1",
    invoices: Sequence[tuple[str, str]] | None = None,
    released_at: str = "2026-11-30T09:00:00Z",
) -> dict[str, object]:
    """payout_release's `payout.released` (SPEC §4), as the gateway consumes it."""
    data: dict[str, object] = {
        "payout_id": payout_id,
        "idempotency_key": payout_id,
        "run_id": "run-1",
        "payee_id": payee_id,
        "legal_entity": "acme-eu",
        "funding_account_id": funding_account_id,
        "currency": currency,
        "amount": amount,
        "invoices": [{"invoice_id": i, "amount": a} for i, a in (invoices or [(f"INV-{payout_id}", amount)])],
        "released_at": released_at,
    }
    if account_ref is not None:
        data["payout_account_ref"] = account_ref
    return data
