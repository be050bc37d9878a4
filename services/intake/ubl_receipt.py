"""A UBL 2.1 ReceiptAdvice → the `receipt.recorded` it stands for (SPEC §12.2).

As for orders (ubl_order.py), the translation is the JSON receipt upstream would have sent, and
every JSON field remembers the XML path it came from. Only accepted goods count: a line's
quantity is its ReceivedQuantity less its RejectedQuantity, and a line whose goods were all
rejected adds nothing (it is left out; a receipt of nothing accepted is refused). Pure.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any
from xml.etree.ElementTree import Element

from services.intake.ubl import NS, UblReader, parse_xml
from services.intake.ubl_order import Translation, as_json, validated
from shared.contracts import inbound as i

RECEIPT_ROOTS = {
    "{urn:oasis:names:specification:ubl:schema:xsd:ReceiptAdvice-2}ReceiptAdvice": "receipt_advice"
}
_LINE_ORDER = "cac:OrderLineReference/cac:OrderReference/cbc:ID"
_ITEM_REFS = (
    "cac:Item/cac:SellersItemIdentification/cbc:ID",
    "cac:Item/cac:StandardItemIdentification/cbc:ID",
    "cac:Item/cac:BuyersItemIdentification/cbc:ID",
)


def parse_receipt_advice(data: i.ReceiptRecordedUbl) -> Translation:
    root, reasons = parse_xml(data.document, RECEIPT_ROOTS, "ReceiptAdvice")
    if root is None:
        return Translation(None, tuple(reasons))
    return _ReceiptReader(root).run(data)


class _ReceiptReader(UblReader):
    def __init__(self, root: Element) -> None:
        super().__init__(root)
        self.origins: dict[str, str] = {}

    def received_at(self) -> datetime | None:
        """IssueDate (+ IssueTime); a time without an offset is read as UTC."""
        day = self.iso_date(self.root, "cbc:IssueDate")
        raw = self.text(self.root, "cbc:IssueTime", required=False)
        self.origins["received_at"] = self.path("cbc:IssueDate")
        at = time(0, 0)
        if raw is not None:
            try:
                at = time.fromisoformat(raw.replace("Z", "+00:00"))
            except ValueError:
                self.fail("invalid_field", "cbc:IssueTime", "must be hh:mm:ss, optionally with an offset")
        if day is None:
            return None
        moment = datetime.combine(day, at)
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)

    def po_number(self, lines: list[Element]) -> str | None:
        """The header OrderReference, else the one order every line's reference names."""
        header = self.text(self.root, "cac:OrderReference/cbc:ID", required=False)
        if header is not None:
            self.origins["po_number"] = self.path("cac:OrderReference/cbc:ID")
            return header
        named = [self.text(el, _LINE_ORDER, required=False) for el in lines]
        found = {n for n in named if n is not None}
        if len(found) == 1 and None not in named:
            self.origins["po_number"] = self.path(f"cac:ReceiptLine[0]/{_LINE_ORDER}")
            return found.pop()
        why = (
            f"the lines name several orders: {', '.join(sorted(found))}"
            if len(found) > 1
            else "no cac:OrderReference, and not every line names its order"
        )
        self.fail("missing_po_reference", "cac:OrderReference/cbc:ID", why)
        return None

    def quantity(self, line: Element) -> Decimal | None:
        received = self.decimal(line, "cbc:ReceivedQuantity")
        rejected = self.decimal(line, "cbc:RejectedQuantity", required=False) or Decimal(0)
        if received is None:
            return None
        if rejected < 0 or rejected > received:
            self.fail(
                "invalid_field",
                "cbc:RejectedQuantity",
                f"{rejected} is not between 0 and {received} received",
            )
            return None
        return received - rejected

    def line(self, index: int, el: Element) -> dict[str, Any] | None:
        """The line as JSON, or None when nothing of it was accepted."""
        name = f"lines[{index}]"
        self.where = f"cac:ReceiptLine[{index}]/"
        self.origins[name] = self.path("cbc:ID")
        self.origins[f"{name}.receipt_line_id"] = self.path("cbc:ID")
        self.origins[f"{name}.po_line_id"] = self.path("cac:OrderLineReference/cbc:LineID")
        self.origins[f"{name}.quantity"] = self.path("cbc:ReceivedQuantity")
        po_line_id = self.text(el, "cac:OrderLineReference/cbc:LineID", required=False)
        if po_line_id is None:
            self.fail(
                "missing_po_line_ref",
                "cac:OrderLineReference/cbc:LineID",
                "a receipt line must name the order line it receives",
            )
        line = {
            "receipt_line_id": self.text(el, "cbc:ID"),
            "po_line_id": po_line_id,
            "item_ref": next((v for p in _ITEM_REFS if (v := self.text(el, p, required=False))), None),
            "quantity": self.quantity(el),
        }
        self.where = ""
        return None if line["quantity"] == 0 else line

    def run(self, data: i.ReceiptRecordedUbl) -> Translation:
        root = self.root
        elements = root.findall("cac:ReceiptLine", NS)
        self.origins["lines"] = self.path("cac:ReceiptLine")
        if not elements:
            self.fail(
                "missing_lines", "cac:ReceiptLine", "a receipt advice needs at least one cac:ReceiptLine"
            )
        self.origins["receipt_id"] = self.path("cbc:ID")
        receipt_id = self.text(root, "cbc:ID")
        po_number = self.po_number(elements)
        received_at = self.received_at()
        read = [self.line(n, el) for n, el in enumerate(elements)]
        lines = [ln for ln in read if ln is not None]
        if elements and not lines and not self.reasons:
            self.fail(
                "nothing_accepted",
                "cac:ReceiptLine",
                "every line's goods were rejected: nothing was received",
            )
        receipt = {
            "receipt_id": receipt_id,
            "po_number": po_number,
            "kind": data.kind,
            "received_at": received_at,
            "recorded_by": data.recorded_by,
            "lines": lines,
        }
        # a left-out line shifts the indexes: each kept line keeps its own element's path
        kept = [n for n, ln in enumerate(read) if ln is not None]
        for new, old in enumerate(kept):
            for suffix in ("", ".receipt_line_id", ".po_line_id", ".quantity"):
                self.origins[f"lines[{new}]{suffix}"] = self.origins[f"lines[{old}]{suffix}"]
        return validated(i.ReceiptRecorded, as_json(receipt), self.origins, self.reasons)
