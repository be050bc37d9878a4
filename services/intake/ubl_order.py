"""A UBL 2.1 Order (Peppol BIS Ordering 3) → the `purchase_order.issued` it stands for (SPEC §12.2).

The translation is the JSON PO upstream would have sent: from there the document takes the JSON
path (the same model, text rules and §5 rules). Every JSON field remembers the XML path it came
from (`Translation.origins`), so a reason found later — by the model, the text rules or the §5
rules — names the element of the document (`document:cac:OrderLine[0]/cac:LineItem/cbc:Quantity`),
not a field the sender never wrote. Pure: no I/O, no async.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from xml.etree.ElementTree import Element

from pydantic import BaseModel, ValidationError

from services.intake.domain import (
    Charge,
    PoLineTerms,
    PoTerms,
    Reason,
    po_terms_reasons,
    sod_reasons_for_issue,
)
from services.intake.domain.charges import DEFAULT_CHARGE_CODES, document_charge
from services.intake.ubl import NS, UblReader, parse_xml, per_unit
from shared.contracts import inbound as i

ORDER_ROOTS = {"{urn:oasis:names:specification:ubl:schema:xsd:Order-2}Order": "order"}
_ITEM_REFS = (
    "cac:Item/cac:SellersItemIdentification/cbc:ID",
    "cac:Item/cac:StandardItemIdentification/cbc:ID",
    "cac:Item/cbc:Name",
)
DEFAULT_ORDER_VALIDITY_DAYS = 365
T = TypeVar("T")


@dataclass(frozen=True)
class Translation:
    """What a UBL document stands for as a JSON inbound model (None: rejected with `reasons`)."""

    model: BaseModel | None
    reasons: tuple[Reason, ...]
    origins: Mapping[str, str] = field(default_factory=dict)

    def locate(self, reasons: Sequence[Reason]) -> list[Reason]:
        """The reasons with every JSON field replaced by the XML path it was read from."""
        return [Reason(r.code, self.origin(r.field), r.message) for r in reasons]

    def origin(self, name: str | None) -> str | None:
        if name is None:
            return None
        # the most specific field known: lines[0].quantity, else lines[0], else lines
        probe, shorter = name, ""
        while probe != shorter:
            if probe in self.origins:
                return self.origins[probe]
            probe, shorter = re.sub(r"(\.[^.\[]+|\[\d+\])$", "", probe), probe
        return name  # a field of the envelope (created_by, approved_by…), not of the document


def validated(
    model: type[BaseModel], data: dict[str, Any], origins: dict[str, str], reasons: list[Reason]
) -> Translation:
    """`data` as the JSON model; a field the model refuses is a reason at its XML path."""
    if reasons:
        return Translation(None, tuple(reasons), origins)
    try:
        return Translation(model.model_validate(data), (), origins)
    except ValidationError as exc:
        found = Translation(None, (), origins)
        return Translation(None, tuple(found.locate(_pydantic_reasons(exc))), origins)


def _pydantic_reasons(exc: ValidationError) -> list[Reason]:
    out = []
    for err in exc.errors():
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"]).lstrip(".")
        code = "missing_field" if err["type"] == "missing" else "invalid_field"
        out.append(Reason(code, loc, err["msg"]))
    return out


def parse_order(
    data: i.PurchaseOrderSubmittedUbl,
    charge_codes: Mapping[str, str] = DEFAULT_CHARGE_CODES,
    validity_days: int = DEFAULT_ORDER_VALIDITY_DAYS,
) -> Translation:
    root, reasons = parse_xml(data.document, ORDER_ROOTS, "Order")
    if root is None:
        return Translation(None, tuple(reasons))
    return _OrderReader(root, charge_codes, validity_days).run(data)


class _OrderReader(UblReader):
    def __init__(self, root: Element, charge_codes: Mapping[str, str], validity_days: int) -> None:
        super().__init__(root)
        self.charge_codes = charge_codes
        self.validity_days = validity_days
        self.origins: dict[str, str] = {}

    def take(self, name: str, path: str, value: T) -> T:
        """Remember where JSON field `name` comes from (relative to the line being read)."""
        self.origins[name] = self.path(path)
        return value

    def currency(self) -> str | None:
        """cbc:DocumentCurrencyCode, else the one currencyID every amount carries (SPEC §12.2)."""
        code = self.text(self.root, "cbc:DocumentCurrencyCode", required=False)
        if code is not None:
            return self.take("currency", "cbc:DocumentCurrencyCode", code)
        found = sorted({c.strip() for el in self.root.iter() if (c := el.get("currencyID")) and c.strip()})
        if len(found) == 1:
            return self.take("currency", "cbc:DocumentCurrencyCode", found[0])
        message = (
            f"no cbc:DocumentCurrencyCode and the amounts carry several currencies: {', '.join(found)}"
            if found
            else "no cbc:DocumentCurrencyCode and no amount carries a currencyID"
        )
        self.fail(
            "missing_currency" if not found else "mixed_currencies", "cbc:DocumentCurrencyCode", message
        )
        return None

    def amount_currency(self, el: Element | None, path: str, currency: str | None) -> None:
        """An amount in another currency than the order's cannot be a price of this PO."""
        node = el.find(path, NS) if el is not None else None
        given = (node.get("currencyID") or "").strip() if node is not None else ""
        if currency is not None and given and given != currency:
            self.fail(
                "currency_mismatch", f"{path}/@currencyID", f"{given} is not the order currency {currency}"
            )

    def unit_price(self, item: Element, currency: str | None) -> Decimal | None:
        if item.find("cac:Price/cbc:PriceAmount", NS) is None:
            self.fail("missing_price", "cac:Price/cbc:PriceAmount", "an order line needs a price")
            return None
        price = self.decimal(item, "cac:Price/cbc:PriceAmount")
        self.amount_currency(item, "cac:Price/cbc:PriceAmount", currency)
        base = self.decimal(item, "cac:Price/cbc:BaseQuantity", required=False)
        if base is not None and base <= 0:
            self.fail("invalid_field", "cac:Price/cbc:BaseQuantity", "must be > 0")
            return None
        if price is None or base is None or base == 1:
            return price
        return per_unit(price, base)

    def line(self, index: int, order_line: Element, currency: str | None, category: str) -> dict[str, Any]:
        name = f"lines[{index}]"
        self.where = f"cac:OrderLine[{index}]/"
        self.origins[name] = self.path("cac:LineItem")
        item = order_line.find("cac:LineItem", NS)
        if item is None:
            self.fail("missing_field", "cac:LineItem", "an order line needs a cac:LineItem")
            self.where = ""
            return {}
        self.where += "cac:LineItem/"
        quantity_el = item.find("cbc:Quantity", NS)
        item_ref = next(
            (
                self.take(f"{name}.item_ref", p, v)
                for p in _ITEM_REFS
                if (v := self.text(item, p, required=False))
            ),
            None,
        )
        if item_ref is not None and self.origins[f"{name}.item_ref"].endswith("cac:Item/cbc:Name"):
            # A name stands in for an item id: an id carries no whitespace (SPEC §15), so each run
            # of it becomes one "-" ("Brown sauce" → "Brown-sauce"); other characters are checked.
            item_ref = "-".join(item_ref.split())
        if item_ref is None:
            self.fail("missing_field", _ITEM_REFS[0], "the item has no seller's or standard id and no name")
        line = {
            "line_id": self.take(f"{name}.line_id", "cbc:ID", self.text(item, "cbc:ID")),
            "item_ref": item_ref,
            "description": self.take(
                f"{name}.description",
                "cac:Item/cbc:Name",
                self.text(item, "cac:Item/cbc:Name", required=False),
            ),
            "category": category,
            "quantity": self.take(f"{name}.quantity", "cbc:Quantity", self.decimal(item, "cbc:Quantity")),
            "unit_of_measure": self.take(
                f"{name}.unit_of_measure",
                "cbc:Quantity/@unitCode",
                (quantity_el.get("unitCode") or "").strip() or None if quantity_el is not None else None,
            ),
            "unit_price": self.take(
                f"{name}.unit_price", "cac:Price/cbc:PriceAmount", self.unit_price(item, currency)
            ),
        }
        self.where = ""
        return line

    def charges(self, currency: str | None) -> list[dict[str, Any]]:
        """Document-level charges → the PO's allowed charges (SPEC §12.1). An allowance on an
        order is a discount the invoice will carry as its own allowance: it allows nothing."""
        out: list[dict[str, Any]] = []
        for index, el in enumerate(self.root.findall("cac:AllowanceCharge", NS)):
            self.where = f"cac:AllowanceCharge[{index}]/"
            is_charge, amount = self.indicator(el), self.decimal(el, "cbc:Amount")
            self.amount_currency(el, "cbc:Amount", currency)
            code = self.text(el, "cbc:AllowanceChargeReasonCode", required=False)
            if is_charge and amount is not None:
                self.take(f"charges[{len(out)}].amount", "cbc:Amount", None)
                out.append(
                    {"type": document_charge(True, amount, code, self.charge_codes).type, "amount": amount}
                )
            self.where = ""
        return out

    def effective_to(self, issue: Any) -> Any:
        end = self.iso_date(self.root, "cac:ValidityPeriod/cbc:EndDate", required=False)
        if end is not None:
            return self.take("effective_to", "cac:ValidityPeriod/cbc:EndDate", end)
        self.origins["effective_to"] = self.path("cbc:IssueDate")
        return issue + timedelta(days=self.validity_days) if issue is not None else None

    def run(self, data: i.PurchaseOrderSubmittedUbl) -> Translation:
        root = self.root
        issue = self.take("effective_from", "cbc:IssueDate", self.iso_date(root, "cbc:IssueDate"))
        currency = self.currency()
        contract_id = self.take(
            "sow_ref", "cac:Contract/cbc:ID", self.text(root, "cac:Contract/cbc:ID", required=False)
        )
        order_lines = root.findall("cac:OrderLine", NS)
        self.origins["lines"] = self.path("cac:OrderLine")
        if not order_lines:
            self.fail("missing_lines", "cac:OrderLine", "an order needs at least one cac:OrderLine")
        po: dict[str, Any] = {
            "po_number": self.take("po_number", "cbc:ID", self.text(root, "cbc:ID")),
            "version": 1,
            "legal_entity": self.take(
                "legal_entity",
                "cac:BuyerCustomerParty/cac:Party/cbc:EndpointID",
                self.party_id("BuyerCustomerParty"),
            ),
            "payee_id": self.take(
                "payee_id",
                "cac:SellerSupplierParty/cac:Party/cbc:EndpointID",
                self.party_id("SellerSupplierParty"),
            ),
            "currency": currency,
            "payment_terms": self.take(
                "payment_terms",
                "cac:PaymentTerms/cbc:Note",
                self.text(root, "cac:PaymentTerms/cbc:Note", required=False),
            ),
            "effective_from": issue,
            "effective_to": self.effective_to(issue),
            "sow_ref": {"id": contract_id, "version": 1} if contract_id else None,
            "lines": [self.line(n, el, currency, data.category) for n, el in enumerate(order_lines)],
            "charges": self.charges(currency),
            "business_unit": data.business_unit,
            "created_by": data.created_by,
            "approved_by": data.approved_by,
            "approved_at": data.approved_at,
            "match_mode": data.match_mode,
        }
        for name in ("sow_ref.id", "sow_ref.version"):
            self.origins[name] = self.origins["sow_ref"]
        if self.reasons:
            # Rejected already: the §5 rules still say what else is wrong, on what could be read.
            found = Translation(None, (), self.origins).locate(_rules_on_what_was_read(po))
            known = {(r.code, r.field) for r in self.reasons}
            self.reasons += [r for r in found if (r.code, r.field) not in known]
        return validated(i.PurchaseOrderIssued, as_json(po), self.origins, self.reasons)


def _rules_on_what_was_read(po: dict[str, Any]) -> list[Reason]:
    """SPEC §5's rules for a PO, on a translation that is already rejected: a value that could
    not be read stands in as one that breaks no rule, so only real findings are added."""
    reasons = sod_reasons_for_issue(po["created_by"], po["approved_by"])
    start, end = po["effective_from"], po["effective_to"]
    if start is None or end is None or po["currency"] is None:
        return reasons
    lines = tuple(
        PoLineTerms(
            ln.get("line_id") or f"#{n}",
            ln["quantity"] if ln.get("quantity") is not None else Decimal(1),
            ln["unit_price"] if ln.get("unit_price") is not None else Decimal(0),
        )
        for n, ln in enumerate(po["lines"])
    )
    charges = tuple(Charge(c["type"], c["amount"]) for c in po["charges"])
    terms = PoTerms(po["po_number"] or "", 1, po["currency"], start, end, po["created_by"], lines, charges)
    return reasons + po_terms_reasons(terms)


def as_json(value: Any) -> Any:
    """The translation as JSON values (what upstream would have sent), Nones left out."""
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [as_json(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value
