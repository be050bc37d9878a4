"""SPEC §13.4 through matching's real handlers on PostgreSQL: an override is bound to the facts it
approved. A PO amendment that lowers the price further, or a receipt reversal, reopens the check
as a new hold naming the lapsed override, and the invoice's approval is revoked."""

from __future__ import annotations

from typing import Any

import pytest

from services.matching.config import MatchingConfig
from services.matching.handlers import router
from shared.consumer import BatchResult
from shared.settings import Settings
from testkit import documents as doc
from testkit.samples import intake as b
from tests import support
from tests.support import emitted, scratch_pool

pytestmark = pytest.mark.integration
CONFIG = MatchingConfig.load(Settings(service="matching"))


def data(result: BatchResult, event_type: str) -> list[dict[str, Any]]:
    return [e["data"] for e in emitted(result, event_type)]


def po_version(version: int, price: str) -> Any:
    return b.po_in_force(
        version=version, match_mode="two_way", lines=[doc.po_line("L1", "LAPTOP", "goods", "10", price)]
    )


async def test_a_price_override_lapses_when_the_po_price_changes_again() -> None:
    async with scratch_pool("matching") as pool:
        first = await support.deliver(
            pool, router, po_version(1, "100.00"), b.invoice(unit_price="101.00"), config=CONFIG
        )
        [opened] = data(first, "hold.opened")
        accepted = await support.deliver(
            pool, router, b.override(hold_reasons=["price_mismatch"]), config=CONFIG
        )
        assert len(data(accepted, "invoice.approved_to_pay")) == 1
        facts = await pool.fetchval("SELECT facts FROM overrides WHERE override_id = 'OVR-1'")
        assert facts == [["price_mismatch", "1", "invoice_unit_price=101;po_unit_price=100"]]

        # A PO version that changes something else: the override stands, nothing is published.
        same = b.po_in_force(version=2, match_mode="two_way", effective_to="2026-12-30")
        assert data(await support.deliver(pool, router, same, config=CONFIG), "hold.opened") == []

        lowered = await support.deliver(pool, router, po_version(3, "95.00"), config=CONFIG)
        [reopened] = data(lowered, "hold.opened")
        assert reopened["reason"] == "price_mismatch" and reopened["lapsed_override_id"] == "OVR-1"
        assert reopened["hold_id"] != opened["hold_id"]
        [revoked] = data(lowered, "invoice.approval_revoked")
        assert revoked["invoice_id"] == "INV-1"
        status = await pool.fetchval(
            "SELECT lapsed_override_id FROM holds WHERE hold_id = $1", reopened["hold_id"]
        )
        assert status == "OVR-1"

        # A rematch on the same new facts changes nothing; a second override on them stands.
        assert (await support.deliver(pool, router, b.rematch(), config=CONFIG)).outbox == []
        second = await support.deliver(
            pool, router, b.override("OVR-2", hold_reasons=["price_mismatch"]), config=CONFIG
        )
        [released] = data(second, "hold.released")
        assert released["override_id"] == "OVR-2"
        assert len(data(second, "invoice.approved_to_pay")) == 1


async def test_a_received_quantity_override_lapses_when_a_receipt_is_reversed() -> None:
    async with scratch_pool("matching") as pool:
        first = await support.deliver(
            pool,
            router,
            b.requisition(),
            b.po_in_force(),
            b.receipt("GR-1", quantity="6"),
            b.receipt("GR-2", quantity="2"),
            b.invoice(),
            config=CONFIG,
        )
        assert [h["reason"] for h in data(first, "hold.opened")] == ["qty_over_received"]
        ops = b.override(hold_reasons=["qty_over_received"], approved_by="ops.lead@example.com")
        assert (
            len(data(await support.deliver(pool, router, ops, config=CONFIG), "invoice.approved_to_pay")) == 1
        )

        reversed_ = await support.deliver(pool, router, b.receipt_reversed("GR-2"), config=CONFIG)
        [reopened] = data(reversed_, "hold.opened")
        assert (reopened["reason"], reopened["lapsed_override_id"]) == ("qty_over_received", "OVR-1")
        assert len(data(reversed_, "invoice.approval_revoked")) == 1
