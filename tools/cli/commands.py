"""Commands the operator sends (signed with CONCORD_OPS_SECRET, SPEC §3) and what comes back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from shared.publish import Publisher
from shared.settings import Settings
from shared.topics import DEADLETTER, IN_COMMANDS, OUT_EXCEPTIONS, OUT_PAYOUTS, Topic
from testkit.watch import Seen, TopicWatcher
from tools.cli.console import shown

# ops reads out.* and the deadletter (SPEC §11): the answers come from there.
ANSWERS = (OUT_EXCEPTIONS, OUT_PAYOUTS, DEADLETTER)
FINAL = {
    "hold.released",
    "override.refused",
    "invoice.approved_to_pay",
    "invoice.held",
    "expedite.refused",
    "payout.released",
}


async def send_and_watch(
    settings: Settings,
    key: str,
    event_type: str,
    data: dict[str, Any],
    wait_s: float,
    console: Console,
    concerns: Callable[[Seen], bool],
    *,
    live: bool = False,
    answers: tuple[Topic, ...] = ANSWERS,
) -> list[Seen]:
    """Publish one command, then collect the answers that concern it for up to `wait_s` seconds."""
    watcher = TopicWatcher(settings, answers)
    await watcher.start()
    try:
        async with Publisher(settings, source="concord-cli") as pub:
            await pub.publish_event(IN_COMMANDS, key, event_type, data)
        console.print(Text.assemble(f"sent {event_type} (signed) for ", shown(key)))
        if wait_s <= 0:
            return []
        deadline = time.monotonic() + wait_s
        if live:
            with Live(_table([]), console=console, refresh_per_second=4) as view:
                while time.monotonic() < deadline:
                    view.update(_table([s for s in watcher.seen if concerns(s)]))
                    await asyncio.sleep(0.25)
        else:
            with console.status(f"waiting up to {wait_s:.0f}s for the answer…"):
                while time.monotonic() < deadline:
                    if any(s.event_type in FINAL for s in watcher.seen if concerns(s)):
                        await asyncio.sleep(0.5)  # let the rest of the answer arrive
                        break
                    await asyncio.sleep(0.1)
        return [s for s in watcher.seen if concerns(s)]
    finally:
        await watcher.stop()


def _table(seen: list[Seen]) -> Table:
    t = Table(title="answers so far")
    for col in ("event", "subject", "detail"):
        t.add_column(col, overflow="fold")
    for s in seen:
        t.add_row(shown(s.event_type), shown(_subject(s.data)), shown(_detail(s)))
    return t


def _subject(d: dict[str, Any]) -> str:
    return str(d.get("payout_id") or d.get("invoice_id") or d.get("override_id") or "")


def _detail(s: Seen) -> str:
    d = s.data
    if s.event_type == "payout.released":
        return f"{d['amount']} {d['currency']} to {d['payee_id']} ({len(d['invoices'])} invoice(s))"
    if s.event_type in ("payout.blocked", "override.refused", "expedite.refused"):
        return ", ".join(d.get("reasons", []))
    if s.event_type == "document.rejected":
        return ", ".join(f"{r['code']}: {r.get('message', '')}" for r in d.get("reasons", []))
    if s.event_type.startswith("hold."):
        by = f" by {d['approved_by']}" if d.get("approved_by") else ""
        return f"{d.get('reason')} ({d.get('released_by', d.get('queue'))}{by})"
    return ""


def print_outcome(console: Console, what: str, seen: list[Seen]) -> None:
    if not seen:
        console.print(
            Text.assemble(
                shown(what), ": no answer yet; it is queued and will be processed when the service catches up"
            )
        )
        return
    console.print(_table(seen))
