"""Matching decisions as the ledger recorded them → holds, overrides and approvals (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from services.ledger.queries.views import ApprovalView, DecisionView, HoldView, OverrideView, PoVersionView

ZERO = Decimal(0)


def _ts(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def decision_view(row: Mapping[str, Any]) -> DecisionView:
    payload = row["payload"]
    detail: str | None = None
    if row["kind"] == "approval_revoked":
        detail = payload.get("reason")
    elif row["kind"] == "superseded":
        detail = f"superseded by {payload.get('superseded_by')}"
    elif row["kind"] == "held":
        detail = ", ".join(h["reason"] for h in payload.get("holds", ()))
    return DecisionView(
        row["invoice_id"], row["kind"], row["decision_id"], row["po_version"], row["decided_at"], detail
    )


def holds_from_decisions(rows: Iterable[Mapping[str, Any]]) -> list[HoldView]:
    """Every hold ever reported, with when it was first seen; open = still listed by the
    invoice's latest decision (an approval or supersession closes them all)."""
    first_seen: dict[tuple[str, str], tuple[Mapping[str, Any], datetime | None]] = {}
    latest_open: dict[str, set[str]] = {}
    for row in rows:  # in arrival order
        invoice_id = row["invoice_id"]
        if row["kind"] == "held":
            holds = row["payload"].get("holds", ())
            for h in holds:
                first_seen.setdefault((invoice_id, h["hold_id"]), (h, row["decided_at"]))
            latest_open[invoice_id] = {h["hold_id"] for h in holds}
        else:
            latest_open[invoice_id] = set()
    return [
        HoldView(
            invoice_id,
            hold_id,
            h["reason"],
            h["queue"],
            h.get("line_id"),
            h["action"],
            at,
            hold_id in latest_open.get(invoice_id, set()),
        )
        for (invoice_id, hold_id), (h, at) in first_seen.items()
    ]


def overrides_from_decisions(rows: Iterable[Mapping[str, Any]]) -> list[OverrideView]:
    """Overrides named by approvals: details from `overrides` when matching sent them, else the
    approver whose approval mentions the override id."""
    seen: dict[str, OverrideView] = {}
    for row in rows:
        if row["kind"] != "approved_to_pay":
            continue
        payload = row["payload"]
        for o in payload.get("overrides") or ():
            seen[o["override_id"]] = OverrideView(
                o["override_id"],
                row["invoice_id"],
                o.get("approved_by"),
                o.get("requested_by"),
                o.get("reason_code"),
                o.get("justification"),
                tuple(o.get("evidence") or ()),
                tuple(o.get("hold_reasons") or ()),
            )
        for override_id in payload.get("override_ids") or ():
            if override_id in seen:
                continue
            approver = next(
                (a for a in payload.get("approvals") or () if override_id in a.get("what", "")), None
            )
            seen[override_id] = OverrideView(
                override_id,
                row["invoice_id"],
                approver["by"] if approver else None,
                None,
                None,
                approver["what"] if approver else None,
                (),
                (),
            )
    return list(seen.values())


def _within(limit: Mapping[str, Any] | None) -> str:
    """SPEC §13.1: which approval limit allowed it, e.g. `within approval_limits.x.purchase_order[0]
    (1000000.00 any currency, business units *)`."""
    if not limit:
        return ""
    amount = (
        "unlimited"
        if limit.get("limit") is None
        else f"{limit['limit']} "
        + ("any currency" if limit.get("currency") == "*" else str(limit.get("currency")))
    )
    units = limit.get("business_units")
    units_text = units if isinstance(units, str) else ", ".join(units or ())
    return f" within {limit.get('rule')} ({amount}, business units {units_text})"


def approvals_from(
    po_versions: Iterable[PoVersionView], rows: Iterable[Mapping[str, Any]]
) -> list[ApprovalView]:
    """PO version approvers (with who created the version: segregation of duties at a glance),
    then the approvals each approval decision carried; a decision's repeat of a PO approver
    already listed is left out."""
    out = [
        ApprovalView(
            v.approved_by,
            f"PO {v.po_number} v{v.version} approved (created by {v.created_by})" + _within(v.approval_limit),
            "po_approver",
            v.approved_at,
            "po",
        )
        for v in po_versions
    ]
    po_approvers = {a.by for a in out}
    for row in rows:
        if row["kind"] != "approved_to_pay":
            continue
        for a in row["payload"].get("approvals") or ():
            if a.get("role") == "po_approver" and a["by"] in po_approvers:
                continue
            view = ApprovalView(a["by"], a["what"], a.get("role"), _ts(a.get("at")), row["invoice_id"])
            if view not in out:
                out.append(view)
    return out
