"""What a relay holds while it catches up: rows handed off wait in memory until they are sent, up
to thousands of them behind a slow broker, so each must cost about its bytes, not its payload as
Python objects (intake's peak memory under a backlog is the sum of them)."""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

from shared.envelope import new_envelope
from shared.outbox import OutboxMessage, OutboxRelay


def _messages(count: int) -> list[OutboxMessage]:
    data: dict[str, Any] = {
        "po": {
            "po_number": "PO-1",
            "lines": [{"line_id": str(n), "quantity": "10", "unit_price": "100.00"} for n in range(8)],
        },
        "changes": [],
    }
    return [
        OutboxMessage(
            "concord.intake.documents",
            "PO-1",
            new_envelope("purchase_order.version_in_force", dict(data), source="intake"),
            {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"},
        )
        for _ in range(count)
    ]


def test_a_row_handed_off_costs_the_relay_about_its_bytes() -> None:
    relay = OutboxRelay("intake", None, None)  # type: ignore[arg-type]  # hand_off needs neither
    relay.is_leader = True
    gc.collect()
    tracemalloc.start()  # before the messages exist: what survives them is what the relay keeps
    try:
        before = tracemalloc.get_traced_memory()[0]
        messages = _messages(500)
        for m in messages:  # serialised once, as the batch's outbox write does before the hand-off
            m.value()
            _ = m.row_headers
        value_bytes = len(messages[0].value())
        relay.hand_off(messages)
        del messages, m
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(relay._handed) == 500
    assert held / 500 < 2 * value_bytes + 600
