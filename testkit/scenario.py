"""The demo scenario: a small, realistic month of PO-based spend, as upstream systems would publish it.

Every id carries a run tag, so the demo can run again on the same stack without tripping
duplicate detection on the previous run's documents.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from shared.topics import IN_FUNDING, IN_INVOICES, IN_PAYEES, IN_PURCHASE_ORDERS, IN_RECEIPTS, Topic
from testkit import documents as doc
from testkit.documents import ts


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
    # SPEC §13.5: a `corporate` invoice on 2/10 NET30 issued 8 days ago: inside its window, past
    # its last run before window end − lead days, so the run pays it less the 2 % discount.
    discount_invoice: str = ""
    # SPEC §13.2: a `corporate` invoice on NET30 issued today (not_due) that treasury expedites.
    expedite_invoice: str = ""
    # SPEC §13.3: a payee changes its payout account (held until confirmed and cooled off)
    account_change: Publication | None = None
    # SPEC §12.2: this PO arrives as a Peppol Order and its receipt as a UBL ReceiptAdvice
    peppol_po: str = ""
    peppol_invoice: str = ""

    def invoice_ids(self) -> set[str]:
        on_terms = {i for i in (self.discount_invoice, self.expedite_invoice) if i}
        return self.expected_approved | set(self.expected_held) | set(self.expected_rejected) | on_terms


def build(tag: str, today: date) -> Scenario:
    t = tag
    eur_entity, usd_entity = "acme-eu", "acme-us"
    de, us, fr = f"payee-de-{t}", f"payee-us-{t}", f"payee-fr-{t}"
    screened = ts(today - timedelta(days=40))
    pubs: list[Publication] = [
        Publication(
            IN_PAYEES,
            de,
            "payee.profile_updated",
            doc.payee_profile(
                de,
                country="DE",
                screened_at=screened,
                tax=doc.tax_form("W-8BEN-E", str(today - timedelta(days=200))),
                vat_number="DE811907980",
                payout_account_ref=f"acct-tok-{de}",
            ),
        ),
        Publication(
            IN_PAYEES,
            us,
            "payee.profile_updated",
            doc.payee_profile(
                us,
                country="US",
                entity_type="individual",
                screened_at=screened,
                tax=doc.tax_form("W-9", str(today - timedelta(days=90))),
                payout_account_ref=f"acct-tok-{us}",
            ),
        ),
        Publication(
            IN_PAYEES,
            fr,
            "payee.profile_updated",
            doc.payee_profile(
                fr,
                country="FR",
                entity_type="individual",
                screened_at=screened,
                payout_account_ref=f"acct-tok-{fr}",
            ),
        ),
    ]
    for currency, entity, amount in (("EUR", eur_entity, "100000.00"), ("USD", usd_entity, "50000.00")):
        account = f"va-{currency.lower()}-{t}"
        pubs.append(
            Publication(
                IN_FUNDING,
                account,
                "funding.received",
                doc.funding(
                    f"fund-{currency.lower()}-{t}",
                    account_id=account,
                    legal_entity=entity,
                    currency=currency,
                    amount=amount,
                    received_at=ts(today, 7),
                ),
            )
        )

    def po(
        number: str,
        payee: str,
        entity: str,
        currency: str,
        bu: str,
        lines: list[tuple[str, str, str, str, str]],
        match_mode: str | None = None,
        terms: str = "NET30",
    ) -> Publication:
        data = doc.purchase_order(
            number,
            payee_id=payee,
            legal_entity=entity,
            currency=currency,
            business_unit=bu,
            payment_terms=terms,
            effective_from=str(today - timedelta(days=30)),
            effective_to=str(today + timedelta(days=335)),
            created_by="buyer@example.com",
            approved_by="procurement.lead@example.com",
            approved_at=ts(today - timedelta(days=29)),
            lines=[doc.po_line(lid, item, cat, qty, price, "EA") for lid, item, cat, qty, price in lines],
            match_mode=match_mode,
        )
        return Publication(IN_PURCHASE_ORDERS, number, "purchase_order.issued", data)

    def receipt(rid: str, po_number: str, kind: str, lines: list[tuple[str, str]]) -> Publication:
        data = doc.receipt(
            rid,
            po_number,
            [doc.receipt_line(f"{rid}-{i}", pl, q) for i, (pl, q) in enumerate(lines, 1)],
            kind=kind,
            received_at=ts(today - timedelta(days=2)),
            recorded_by="warehouse@example.com",
        )
        return Publication(IN_RECEIPTS, po_number, "receipt.recorded", data)

    def invoice(
        iid: str,
        number: str,
        payee: str,
        entity: str,
        currency: str,
        po_number: str,
        lines: list[tuple[str, str, str, str]],
        tax: str,
        issued: date | None = None,
    ) -> Publication:
        data = doc.invoice(
            iid,
            number=number,
            payee_id=payee,
            legal_entity=entity,
            currency=currency,
            issue_date=str(issued or today),
            po_number=po_number,
            lines=[doc.invoice_line(str(i), pl, q, p, a) for i, (pl, q, p, a) in enumerate(lines, 1)],
            tax_total=tax,
        )
        return Publication(IN_INVOICES, payee, "invoice.submitted", data)

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
    # Payment terms and an urgent payout (SPEC §13.5, §13.2): `corporate` pays on due date and
    # takes early-payment discounts (deploy/policy.yaml). Two-way POs: no receipt needed.
    po_f, po_g = f"PO-F600-{t}", f"PO-G700-{t}"
    inv["f"], inv["g"] = f"inv-f-{t}", f"inv-g-{t}"
    pubs += [
        po(
            po_f,
            de,
            eur_entity,
            "EUR",
            "corporate",
            [("1", "AUDIT-FEE", "services", "1", "5000.00")],
            "two_way",
            "2/10 NET30",
        ),
        po(
            po_g,
            de,
            eur_entity,
            "EUR",
            "corporate",
            [("1", "LEGAL-RETAINER", "services", "1", "1200.00")],
            "two_way",
        ),
        invoice(
            inv["f"],
            f"DE-{t}-0046",
            de,
            eur_entity,
            "EUR",
            po_f,
            [("1", "1", "5000.00", "5000.00")],
            "0.00",
            issued=today - timedelta(days=8),
        ),
        invoice(
            inv["g"], f"DE-{t}-0047", de, eur_entity, "EUR", po_g, [("1", "1", "1200.00", "1200.00")], "0.00"
        ),
    ]
    # SPEC §12.2: a procurement tool sends PO H800 as a Peppol Order and the warehouse its receipt
    # as a UBL ReceiptAdvice (5 received, 1 rejected: 4 count); the supplier invoices the 4.
    po_h, inv["h"] = f"PO-H800-{t}", f"inv-h-{t}"
    order = doc.ubl_order(
        po_h,
        [doc.ubl_order_line("1", "5", "250.00", item_id="HEADSET-PRO", name="Headset", currency="EUR")],
        buyer=eur_entity,
        seller=de,
        issue_date=str(today - timedelta(days=30)),
        end_date=str(today + timedelta(days=335)),
        payment_terms="NET30",
    )
    advice = doc.ubl_receipt_advice(
        f"GRN-H-{t}",
        po_h,
        [doc.ubl_receipt_line("1", "1", "5", rejected="1")],
        issue_date=str(today - timedelta(days=2)),
    )
    pubs += [
        Publication(
            IN_PURCHASE_ORDERS,
            po_h,
            "purchase_order.submitted_ubl",
            doc.po_submitted_ubl(
                order,
                business_unit="it",
                created_by="buyer@example.com",
                approved_by="procurement.lead@example.com",
                approved_at=ts(today - timedelta(days=29)),
            ),
        ),
        Publication(
            IN_RECEIPTS,
            po_h,
            "receipt.recorded_ubl",
            doc.receipt_recorded_ubl(advice, recorded_by="warehouse@example.com"),
        ),
        invoice(
            inv["h"], f"DE-{t}-0048", de, eur_entity, "EUR", po_h, [("1", "4", "250.00", "1000.00")], "190.00"
        ),
    ]
    return Scenario(
        tag=t,
        today=today,
        setup=pubs,
        expected_approved={inv["a"], inv["b"], inv["d"], inv["h"]},
        expected_held={inv["c"]: "price_mismatch", inv["e"]: "qty_over_received"},
        expected_rejected={inv["dup"]: "duplicate_invoice", inv["bad"]: "line_amount_mismatch"},
        override_invoice=inv["c"],
        blocked_invoice=inv["d"],
        discount_invoice=inv["f"],
        expedite_invoice=inv["g"],
        account_change=_account_change(pubs, us),
        peppol_po=po_h,
        peppol_invoice=inv["h"],
    )


def _account_change(pubs: list[Publication], payee_id: str) -> Publication:
    """The payee's next profile version with a new payout account, sent by its vendor portal."""
    first = next(p for p in pubs if p.event_type == "payee.profile_updated" and p.key == payee_id)
    data = {
        **first.data,
        "profile_version": first.data["profile_version"] + 1,
        "payout_account_ref": f"{first.data['payout_account_ref']}_new",
        "updated_by": "vendor.portal@example.com",
    }
    return Publication(IN_PAYEES, payee_id, "payee.profile_updated", data)
