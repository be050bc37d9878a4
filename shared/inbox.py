"""The inbox's writes: a batch's inbox rows, and its outbox rows with them, in one statement.

Per batch the consumer used to issue three statements at the end — the inbox rows, the outbox
rows, the relay's NOTIFY — each a round trip and a statement for the server to run. They are
independent writes in the one transaction, so they travel as one statement: data-modifying
CTEs all run to completion, and `pg_notify` is delivered at commit like NOTIFY.
"""

from __future__ import annotations

import asyncpg

from shared.outbox import OUTBOX_INSERT, OutboxMessage, notify_relay, outbox_columns, write_outbox

# event_id, event_type, topic, partition, offset, business_ref, result, payload_hash
InboxRow = tuple[str, str, str, int, int, str | None, str, str | None]


def _inbox_insert(first: int) -> str:
    """The inbox rows as `unnest` columns, parameters $first… $first+7."""
    p = [f"${first + i}" for i in range(8)]
    return f"""INSERT INTO inbox
               (event_id, event_type, topic, partition, "offset", business_ref, result, payload_hash)
           SELECT * FROM unnest({p[0]}::text[], {p[1]}::text[], {p[2]}::text[], {p[3]}::int[],
                                {p[4]}::bigint[], {p[5]}::text[], {p[6]}::text[], {p[7]}::text[])"""


_INBOX_ONLY = _inbox_insert(1)


# OUTBOX_INSERT's parameters are $1…$6, the inbox's $7…$14; by whether the rows are handed off.
_INBOX_AND_OUTBOX = {
    handed_off: f"WITH outbox_rows AS ({OUTBOX_INSERT}), inbox_rows AS ({_inbox_insert(7)}) "
    + notify_relay(handed_off)
    for handed_off in (False, True)
}


async def write_inbox_and_outbox(
    conn: asyncpg.Connection, rows: list[InboxRow], messages: list[OutboxMessage], *, handed_off: bool = False
) -> None:
    """Every inbox row and every outbox row of the batch in one statement; the relay is
    notified when there is anything to publish (`handed_off`: see write_outbox)."""
    if not rows:
        await write_outbox(conn, messages, handed_off=handed_off)
        return
    inbox = [list(c) for c in zip(*rows, strict=True)]
    if messages:
        await conn.execute(_INBOX_AND_OUTBOX[handed_off], *outbox_columns(messages), *inbox)
    else:
        await conn.execute(_INBOX_ONLY, *inbox)
