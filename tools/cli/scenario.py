"""The demo scenario: a small, realistic month of PO-based spend, as upstream systems would publish it.

Every id carries a run tag, so the demo can run again on the same stack without tripping
duplicate detection on the previous run's documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from shared.topics import IN_FUNDING, IN_INVOICES, IN_PAYEES, IN_PURCHASE_ORDERS, IN_RECEIPTS, Topic


@dataclass(frozen=True)
class Publication:
    topic: Topic
    key: str
    event_type: str
    data: dict[str, Any]


@dataclass(frozen=True)
class Scenario:
    tag: str
    today: date
    setup: list[Publication]  # payees, funding, POs, receipts, invoices
    expected_approved: set[str]  # invoice ids that match straight away
    expected_held: dict[str, str]  # invoice id → hold reason
    expected_rejected: dict[str, str]  # invoice id → rejection code
    override_invoice: str  # the held invoice an approver overrides with evidence
    blocked_invoice: str  # approved, but its payee is not compliant

    def invoice_ids(self) -> set[str]:
        return self.expected_approved | set(self.expected_held) | set(self.expected_rejected)


def _ts(d: date, hour: int = 9) -> str:
    return datetime(d.year, d.month, d.day, hour, tzinfo=UTC).isoformat().replace("+00:00", "Z")


def build(tag: str, today: date) -> Scenario:
    t = tag
    eur_entity, usd_entity = "acme-eu", "acme-us"
    de, us, fr = f"payee-de-{t}", f"payee-us-{t}", f"payee-fr-{t}"
    screened = _ts(today - timedelta(days=40))
    pubs: list[Publication] = [
        Publication(
            IN_PAYEES,
            de,
            "payee.profile_updated",
            {
                "payee_id": de,
                "profile_version": 1,
                "entity_type": "business",
                "country": "DE",
                "kyb": {"status": "verified", "beneficial_owners_verified": True},
                "aml": {"status": "clear", "screened_at": screened},
                "tax_form": {
                    "type": "W-8BEN-E",
                    "status": "valid",
                    "signed_at": str(today - timedelta(days=200)),
                },
                "vat": {"number": "DE811907980", "status": "valid", "checked_at": screened},
                "payout_account_ref": f"tok_{de}",
            },
        ),
        Publication(
            IN_PAYEES,
            us,
            "payee.profile_updated",
            {
                "payee_id": us,
                "profile_version": 1,
                "entity_type": "individual",
                "country": "US",
                "kyc": {"status": "verified", "verified_at": screened},
                "aml": {"status": "clear", "screened_at": screened},
                "tax_form": {"type": "W-9", "status": "valid", "signed_at": str(today - timedelta(days=90))},
                "payout_account_ref": f"tok_{us}",
            },
        ),
        Publication(
            IN_PAYEES,
            fr,
            "payee.profile_updated",
            {
                "payee_id": fr,
                "profile_version": 1,
                "entity_type": "individual",
                "country": "FR",
                "kyc": {"status": "verified", "verified_at": screened},
                "aml": {"status": "clear", "screened_at": screened},
                "payout_account_ref": f"tok_{fr}",
            },
        ),
        Publication(
            IN_FUNDING,
            f"va-eur-{t}",
            "funding.received",
            {
                "funding_id": f"fund-eur-{t}",
                "account_id": f"va-eur-{t}",
                "legal_entity": eur_entity,
                "currency": "EUR",
                "amount": "100000.00",
                "received_at": _ts(today, 7),
            },
        ),
        Publication(
            IN_FUNDING,
            f"va-usd-{t}",
            "funding.received",
            {
                "funding_id": f"fund-usd-{t}",
                "account_id": f"va-usd-{t}",
                "legal_entity": usd_entity,
                "currency": "USD",
                "amount": "50000.00",
                "received_at": _ts(today, 7),
            },
        ),
    ]

    def po(
        number: str,
        payee: str,
        entity: str,
        currency: str,
        bu: str,
        lines: list[tuple[str, str, str, str, str]],
        match_mode: str | None = None,
    ) -> Publication:
        data: dict[str, Any] = {
            "po_number": number,
            "version": 1,
            "legal_entity": entity,
            "business_unit": bu,
            "payee_id": payee,
            "currency": currency,
            "payment_terms": "NET30",
            "effective_from": str(today - timedelta(days=30)),
            "effective_to": str(today + timedelta(days=335)),
            "created_by": "buyer@example.com",
            "approved_by": "procurement.lead@example.com",
            "approved_at": _ts(today - timedelta(days=29)),
            "lines": [
                {
                    "line_id": lid,
                    "item_ref": item,
                    "category": cat,
                    "quantity": qty,
                    "unit_price": price,
                    "unit_of_measure": "EA",
                }
                for lid, item, cat, qty, price in lines
            ],
        }
        if match_mode:
            data["match_mode"] = match_mode
        return Publication(IN_PURCHASE_ORDERS, number, "purchase_order.issued", data)

    def receipt(rid: str, po_number: str, kind: str, lines: list[tuple[str, str]]) -> Publication:
        return Publication(
            IN_RECEIPTS,
            po_number,
            "receipt.recorded",
            {
                "receipt_id": rid,
                "po_number": po_number,
                "kind": kind,
                "received_at": _ts(today - timedelta(days=2)),
                "recorded_by": "warehouse@example.com",
                "lines": [
                    {"receipt_line_id": f"{rid}-{i}", "po_line_id": pl, "quantity": q}
                    for i, (pl, q) in enumerate(lines, 1)
                ],
            },
        )

    def invoice(
        iid: str,
        number: str,
        payee: str,
        entity: str,
        currency: str,
        po_number: str,
        lines: list[tuple[str, str, str, str]],
        tax: str,
    ) -> Publication:
        total = sum((_dec(amount) for *_, amount in lines), start=_dec("0")) + _dec(tax)
        return Publication(
            IN_INVOICES,
            payee,
            "invoice.submitted",
            {
                "invoice_id": iid,
                "supplier_invoice_number": number,
                "payee_id": payee,
                "legal_entity": entity,
                "document_type": "invoice",
                "issue_date": str(today),
                "currency": currency,
                "po_number": po_number,
                "lines": [
                    {"line_id": str(i), "po_line_id": pl, "quantity": q, "unit_price": p, "line_amount": a}
                    for i, (pl, q, p, a) in enumerate(lines, 1)
                ],
                "tax_total": tax,
                "total_amount": str(total),
            },
        )

    po_a, po_b, po_c, po_d, po_e = (f"PO-{n}-{t}" for n in ("A100", "B200", "C300", "D400", "E500"))
    pubs += [
        po(
            po_a,
            de,
            eur_entity,
            "EUR",
            "it",
            [("1", "LAPTOP-14", "hardware", "10", "950.00"), ("2", "DOCK-USB-C", "hardware", "10", "45.50")],
        ),
        po(po_b, us, usd_entity, "USD", "consulting", [("1", "CONSULT-HR", "services", "40", "120.00")]),
        po(po_c, de, eur_entity, "EUR", "it", [("1", "MONITOR-27", "hardware", "5", "1000.00")]),
        po(po_d, fr, eur_entity, "EUR", "marketing", [("1", "DESIGN-SPRINT", "services", "1", "2500.00")]),
        po(po_e, de, eur_entity, "EUR", "it", [("1", "CABLE-HDMI", "hardware", "20", "30.00")]),
        receipt(f"GRN-A-{t}", po_a, "goods_receipt", [("1", "10"), ("2", "10")]),
        receipt(f"SC-B-{t}", po_b, "service_completion", [("1", "40")]),
        receipt(f"GRN-C-{t}", po_c, "goods_receipt", [("1", "5")]),
        receipt(f"SC-D-{t}", po_d, "service_completion", [("1", "1")]),
        receipt(f"GRN-E-{t}", po_e, "goods_receipt", [("1", "12")]),
    ]
    inv = {k: f"inv-{k}-{t}" for k in ("a", "b", "c", "d", "e", "dup", "bad")}
    pubs += [
        invoice(
            inv["a"],
            f"DE-0042-{t}",
            de,
            eur_entity,
            "EUR",
            po_a,
            [("1", "10", "950.00", "9500.00"), ("2", "10", "45.50", "455.00")],
            "1891.45",
        ),
        invoice(
            inv["b"], f"US-{t}-0007", us, usd_entity, "USD", po_b, [("1", "40", "120.00", "4800.00")], "0.00"
        ),
        invoice(
            inv["c"],
            f"DE-{t}-0043",
            de,
            eur_entity,
            "EUR",
            po_c,
            [("1", "5", "1010.00", "5050.00")],
            "959.50",
        ),
        invoice(
            inv["d"],
            f"FR-{t}-0001",
            fr,
            eur_entity,
            "EUR",
            po_d,
            [("1", "1", "2500.00", "2500.00")],
            "500.00",
        ),
        invoice(
            inv["e"], f"DE-{t}-0044", de, eur_entity, "EUR", po_e, [("1", "20", "30.00", "600.00")], "114.00"
        ),
        # The same supplier invoice again, typed differently upstream: a duplicate, never paid twice.
        invoice(
            inv["dup"],
            f"de 42 {t}",
            de,
            eur_entity,
            "EUR",
            po_a,
            [("1", "10", "950.00", "9500.00"), ("2", "10", "45.50", "455.00")],
            "1891.45",
        ),
    ]
    bad = invoice(
        inv["bad"], f"DE-{t}-0045", de, eur_entity, "EUR", po_a, [("1", "2", "950.00", "1990.00")], "0.00"
    )
    pubs.append(bad)
    return Scenario(
        tag=t,
        today=today,
        setup=pubs,
        expected_approved={inv["a"], inv["b"], inv["d"]},
        expected_held={inv["c"]: "price_mismatch", inv["e"]: "qty_over_received"},
        expected_rejected={inv["dup"]: "duplicate_invoice", inv["bad"]: "line_amount_mismatch"},
        override_invoice=inv["c"],
        blocked_invoice=inv["d"],
    )


def _dec(text: str) -> Any:
    from decimal import Decimal

    return Decimal(text)
