"""SPEC §13.1 through intake's real handlers on PostgreSQL: approval limits from the roles file.
An issued PO or requisition over its approver's authority is rejected; an amendment waits for
someone (not its author) whose limit covers the new total; the limit that allowed each approval
travels with the version (for the trace)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from services.intake.handlers import router
from shared.consumer import BatchResult
from shared.settings import Settings
from testkit import documents as doc
from testkit.samples.upstream import amendment_approved, po_amended, po_issued, po_rec, req_rec, requisition
from tests.support import deliver, emitted, scratch_pool

pytestmark = pytest.mark.integration

ROLES = """
approval_limits:
  buyer.lead@example.com:
    purchase_order:
      - {currency: EUR, limit: "8050.00", business_units: [engineering]}
    requisition:
      - {currency: "*", limit: "8000.00", business_units: "*"}
  controller@example.com:
    purchase_order: [{currency: "*", limit: unlimited, business_units: "*"}]
"""


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    async with scratch_pool("intake") as p:
        yield p


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    roles = tmp_path / "roles.yaml"
    roles.write_text(ROLES)
    return Settings(service="intake", policy_file=None, roles_file=str(roles))


async def run(pool: asyncpg.Pool, settings: Settings, *records: Any) -> BatchResult:
    return await deliver(pool, router, *records, settings=settings)


def rejection_codes(result: BatchResult) -> list[str]:
    return [r["code"] for e in emitted(result, "document.rejected") for r in e["data"]["reasons"]]


def po(po_number: str, freight: str, **changes: Any) -> dict[str, Any]:
    """10 × 800.00 + freight: 8050.00 with freight 50.00."""
    lines = [doc.po_line("L1", "DEV-DAY", "services", "10", "800.00")]
    return po_issued(
        po_number,
        lines=lines,
        charges=[{"type": "freight", "amount": freight}],
        approved_by="buyer.lead@example.com",
        **changes,
    )


async def test_exactly_at_the_limit_passes_one_cent_over_is_rejected(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    at = await run(pool, settings, po_rec("purchase_order.issued", po("PO-AT", "50.00")))
    [event] = emitted(at, "purchase_order.version_in_force")
    limit = event["data"]["po"]["approval_limit"]
    assert limit["rule"] == "approval_limits.buyer.lead@example.com.purchase_order[0]"
    assert (limit["limit"], limit["currency"], limit["business_units"]) == ("8050.00", "EUR", ["engineering"])

    over = await run(pool, settings, po_rec("purchase_order.issued", po("PO-OVER", "50.01")))
    assert rejection_codes(over) == ["approval_authority_exceeded"]
    assert emitted(over, "purchase_order.version_in_force") == []
    # another business unit, another currency, or a person not in the file: no authority
    other_unit = await run(
        pool, settings, po_rec("purchase_order.issued", po("PO-BU", "1.00", business_unit="ops"))
    )
    other_ccy = await run(
        pool, settings, po_rec("purchase_order.issued", po("PO-USD", "1.00", currency="USD"))
    )
    nobody = await run(
        pool,
        settings,
        po_rec("purchase_order.issued", po("PO-X", "1.00") | {"approved_by": "stranger@example.com"}),
    )
    for result in (other_unit, other_ccy, nobody):
        assert rejection_codes(result) == ["approval_authority_exceeded"]


async def test_an_amendment_waits_for_an_approver_with_enough_authority(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    await run(
        pool, settings, po_rec("purchase_order.issued", po_issued(approved_by="controller@example.com"))
    )
    # v2: 11 × 800 + 2 × 0.1212 + 50 = 8850.2424, above buyer.lead's 8050.00: still pending
    pending = await run(
        pool, settings, po_rec("purchase_order.amended", po_amended(2, approved_by="buyer.lead@example.com"))
    )
    assert len(emitted(pending, "purchase_order.amendment_pending")) == 1
    assert emitted(pending, "purchase_order.version_in_force") == []
    refused = await run(
        pool,
        settings,
        po_rec("purchase_order.amendment_approved", amendment_approved(2, by="buyer.lead@example.com")),
    )
    assert rejection_codes(refused) == ["approval_authority_exceeded"]
    approved = await run(pool, settings, po_rec("purchase_order.amendment_approved", amendment_approved(2)))
    [event] = emitted(approved, "purchase_order.version_in_force")
    assert event["data"]["po"]["approved_by"] == "controller@example.com"
    assert event["data"]["po"]["approval_limit"].get("limit") is None  # unlimited


async def test_a_requisition_over_its_approvers_limit_is_rejected(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    at = await run(
        pool,
        settings,
        req_rec("requisition.approved", requisition("REQ-1", approved_by="buyer.lead@example.com")),
    )
    [accepted] = emitted(at, "requisition.accepted")
    assert (
        accepted["data"]["approval_limit"]["rule"] == "approval_limits.buyer.lead@example.com.requisition[0]"
    )
    over = await run(
        pool,
        settings,
        req_rec(
            "requisition.approved",
            requisition("REQ-2", approved_by="buyer.lead@example.com", amount="8000.01"),
        ),
    )
    assert rejection_codes(over) == ["approval_authority_exceeded"]
