"""Reading what the bank sends back (SPEC §12.4): pain.002 (.001.03, .001.10), camt.054 (.001.04, .001.08).

Element names differ between versions (`<Sts>BOOK</Sts>` in .04, `<Sts><Cd>BOOK</Cd></Sts>` in .08;
`OrgnlUETR` only from .10); every lookup here matches by local name under the document's own
namespace, and every version-specific shape is read in one helper. The parser refuses DTDs,
entities and the network, and a file over the size cap is never parsed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum

from lxml import etree


class ReportKind(StrEnum):
    PAIN_002 = "pain.002"
    CAMT_054 = "camt.054"


SUPPORTED = {
    "urn:iso:std:iso:20022:tech:xsd:pain.002.001.03": ReportKind.PAIN_002,
    "urn:iso:std:iso:20022:tech:xsd:pain.002.001.10": ReportKind.PAIN_002,
    "urn:iso:std:iso:20022:tech:xsd:camt.054.001.04": ReportKind.CAMT_054,
    "urn:iso:std:iso:20022:tech:xsd:camt.054.001.08": ReportKind.CAMT_054,
}


class Refusal(StrEnum):
    """Why a whole file goes to rejected/ (the reason file's first line)."""

    OVERSIZE = "oversize"
    MALFORMED = "malformed_xml"
    DTD = "dtd_or_entity"
    UNSUPPORTED = "unsupported_message"
    INCOMPLETE = "incomplete_message"
    DUPLICATE_FILE = "duplicate_file"
    DUPLICATE_MESSAGE = "duplicate_message_id"
    UNKNOWN_PAYOUT = "unknown_payout"
    UNKNOWN_ORIGINAL = "unknown_original_message"
    AMOUNT_MISMATCH = "amount_mismatch"


class BadReport(Exception):
    def __init__(self, code: Refusal, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Reason:
    code: str  # ISO external status reason code (AC01, AM04, …) or NARR
    text: str | None


@dataclass(frozen=True)
class StatusLine:
    """One status in a pain.002: of the original message, one payment information, or one transaction."""

    level: str  # "group" | "payment" | "transaction"
    status: str  # RJCT, ACCP, ACSP, PART, …
    reason: Reason | None
    pmt_inf_id: str | None = None
    end_to_end_id: str | None = None
    uetr: str | None = None


@dataclass(frozen=True)
class StatusReport:
    msg_id: str
    original_msg_id: str
    lines: tuple[StatusLine, ...]


@dataclass(frozen=True)
class BookedTx:
    """One transaction of a booked camt.054 entry (one per TxDtls when the entry is batch-booked)."""

    ref: str  # the entry's reference + the detail's position: unique within the message
    end_to_end_id: str | None
    uetr: str | None
    amount: Decimal
    currency: str
    credit_debit: str  # CRDT | DBIT
    booked: bool
    booking_date: str | None
    return_reason: Reason | None


@dataclass(frozen=True)
class Notification:
    msg_id: str
    txs: tuple[BookedTx, ...]


Report = StatusReport | Notification


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False
    )


def parse(raw: bytes, max_bytes: int) -> Report:
    """The report in `raw`, or BadReport naming what is wrong with the file as a whole."""
    if len(raw) > max_bytes:
        raise BadReport(Refusal.OVERSIZE, f"{len(raw)} bytes, over the {max_bytes}-byte cap")
    try:
        tree = etree.fromstring(raw, _parser()).getroottree()
    except etree.XMLSyntaxError as exc:
        raise BadReport(Refusal.MALFORMED, str(exc)) from None
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise BadReport(Refusal.DTD, "a document type declaration is not accepted (DTDs, entities)")
    root = tree.getroot()
    ns = etree.QName(root).namespace or ""
    kind = SUPPORTED.get(ns)
    if kind is None or etree.QName(root).localname != "Document":
        raise BadReport(
            Refusal.UNSUPPORTED,
            f"not a pain.002 (.001.03/.10) or camt.054 (.001.04/.08): {ns or 'no namespace'}",
        )
    return _status_report(root, ns) if kind is ReportKind.PAIN_002 else _notification(root, ns)


class _X:
    """Lookups by path of local names in one namespace."""

    def __init__(self, ns: str) -> None:
        self.ns = ns

    def _path(self, path: str) -> str:
        return "/".join(f"{{{self.ns}}}{p}" for p in path.split("/"))

    def all(self, el: etree._Element, path: str) -> list[etree._Element]:
        return list(el.iterfind(self._path(path)))

    def one(self, el: etree._Element, path: str) -> etree._Element | None:
        return el.find(self._path(path))

    def text(self, el: etree._Element, path: str) -> str | None:
        found = self.one(el, path)
        if found is None or found.text is None:
            return None
        return found.text.strip() or None

    def need(self, el: etree._Element, path: str) -> str:
        value = self.text(el, path)
        if value is None:
            raise BadReport(Refusal.INCOMPLETE, f"{etree.QName(el).localname}/{path} is missing")
        return value


def _reason(x: _X, el: etree._Element) -> Reason | None:
    info = x.one(el, "StsRsnInf")
    if info is None:
        return None
    code = x.text(info, "Rsn/Cd") or x.text(info, "Rsn/Prtry") or "NARR"
    texts = [t.text.strip() for t in x.all(info, "AddtlInf") if t.text and t.text.strip()]
    return Reason(code, " ".join(texts) or None)


def _status_report(root: etree._Element, ns: str) -> StatusReport:
    x = _X(ns)
    body = x.one(root, "CstmrPmtStsRpt")
    if body is None:
        raise BadReport(Refusal.INCOMPLETE, "CstmrPmtStsRpt is missing")
    msg_id = x.need(body, "GrpHdr/MsgId")
    grp = x.one(body, "OrgnlGrpInfAndSts")
    if grp is None:
        raise BadReport(Refusal.INCOMPLETE, "OrgnlGrpInfAndSts is missing")
    original = x.need(grp, "OrgnlMsgId")
    lines: list[StatusLine] = []
    if (gs := x.text(grp, "GrpSts")) is not None:
        lines.append(StatusLine("group", gs, _reason(x, grp)))
    for pmt in x.all(body, "OrgnlPmtInfAndSts"):
        pmt_id = x.need(pmt, "OrgnlPmtInfId")
        if (ps := x.text(pmt, "PmtInfSts")) is not None:
            lines.append(StatusLine("payment", ps, _reason(x, pmt), pmt_inf_id=pmt_id))
        for tx in x.all(pmt, "TxInfAndSts"):
            ts = x.text(tx, "TxSts")
            e2e = x.text(tx, "OrgnlEndToEndId")
            uetr = x.text(tx, "OrgnlUETR")
            if ts is None or (e2e is None and uetr is None):
                raise BadReport(Refusal.INCOMPLETE, "TxInfAndSts without TxSts or OrgnlEndToEndId/OrgnlUETR")
            lines.append(StatusLine("transaction", ts, _reason(x, tx), pmt_id, e2e, uetr))
    return StatusReport(msg_id, original, tuple(lines))


def _status_code(x: _X, el: etree._Element) -> str | None:
    """`<Sts>BOOK</Sts>` (.04) or `<Sts><Cd>BOOK</Cd></Sts>` (.08)."""
    return x.text(el, "Sts/Cd") or x.text(el, "Sts")


def _amount(x: _X, el: etree._Element, path: str) -> tuple[Decimal, str] | None:
    found = x.one(el, path)
    if found is None or not found.text:
        return None
    try:
        amount = Decimal(found.text.strip())
    except InvalidOperation:
        raise BadReport(Refusal.INCOMPLETE, f"{path} is not an amount") from None
    currency = found.get("Ccy")
    if not currency:
        raise BadReport(Refusal.INCOMPLETE, f"{path} has no currency")
    return amount, currency


def _booking_date(x: _X, entry: etree._Element) -> str | None:
    value = x.text(entry, "BookgDt/Dt") or x.text(entry, "BookgDt/DtTm")
    return value[:10] if value else None


def _return_reason(x: _X, tx: etree._Element) -> Reason | None:
    info = x.one(tx, "RtrInf")
    if info is None:
        return None
    code = x.text(info, "Rsn/Cd") or x.text(info, "Rsn/Prtry") or "NARR"
    texts = [t.text.strip() for t in x.all(info, "AddtlInf") if t.text and t.text.strip()]
    return Reason(code, " ".join(texts) or None)


def _notification(root: etree._Element, ns: str) -> Notification:
    x = _X(ns)
    body = x.one(root, "BkToCstmrDbtCdtNtfctn")
    if body is None:
        raise BadReport(Refusal.INCOMPLETE, "BkToCstmrDbtCdtNtfctn is missing")
    msg_id = x.need(body, "GrpHdr/MsgId")
    txs: list[BookedTx] = []
    for n, ntfctn in enumerate(x.all(body, "Ntfctn"), start=1):
        for e, entry in enumerate(x.all(ntfctn, "Ntry"), start=1):
            entry_ref = x.text(entry, "NtryRef") or x.text(entry, "AcctSvcrRef") or f"{n}.{e}"
            status = _status_code(x, entry)
            entry_amount = _amount(x, entry, "Amt")
            entry_cd = x.need(entry, "CdtDbtInd")
            details = [d for dtls in x.all(entry, "NtryDtls") for d in x.all(dtls, "TxDtls")]
            if not details:
                raise BadReport(
                    Refusal.INCOMPLETE, f"entry {entry_ref} has no transaction details (EndToEndId)"
                )
            for d, tx in enumerate(details, start=1):
                amount = _amount(x, tx, "Amt") or _amount(x, tx, "AmtDtls/TxAmt/Amt")
                if amount is None:
                    if len(details) > 1 or entry_amount is None:
                        raise BadReport(Refusal.INCOMPLETE, f"entry {entry_ref} detail {d} has no amount")
                    amount = entry_amount
                txs.append(
                    BookedTx(
                        ref=f"{entry_ref}/{d}",
                        end_to_end_id=x.text(tx, "Refs/EndToEndId"),
                        uetr=x.text(tx, "Refs/UETR"),
                        amount=amount[0],
                        currency=amount[1],
                        credit_debit=x.text(tx, "CdtDbtInd") or entry_cd,
                        booked=status == "BOOK",
                        booking_date=_booking_date(x, entry),
                        return_reason=_return_reason(x, tx),
                    )
                )
    return Notification(msg_id, tuple(txs))


def end_to_end_ids(report: Report) -> Sequence[str]:
    if isinstance(report, StatusReport):
        return [ln.end_to_end_id for ln in report.lines if ln.end_to_end_id]
    return [t.end_to_end_id for t in report.txs if t.end_to_end_id]
