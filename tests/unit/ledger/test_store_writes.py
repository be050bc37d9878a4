"""store.Write joins another statement with its parameters renumbered (`_shifted`): that is only
right while the store's SQL has no `$` but its parameters, and every parameter is renumbered."""

from __future__ import annotations

import re

from services.ledger import store


def test_parameters_are_renumbered_after_the_statement_joined() -> None:
    assert store._shifted("SELECT $1::text[], $2, $12 FROM unnest($10::int[])", 19) == (
        "SELECT $20::text[], $21, $31 FROM unnest($29::int[])"
    )


def test_every_write_uses_only_numbered_parameters_from_one_up() -> None:
    writes = {
        "po_versions": store.po_versions_write([]),
        "decisions": store.decisions_write([]),
        "payouts": store.payouts_write([]),
        "payout_outcomes": store.payout_outcomes_write([]),
        "fundings": store.fundings_write([]),
    }
    for name, write in writes.items():
        dollars = re.findall(r"\$(\d*)", write.sql)
        assert all(dollars), f"{name}: a `$` that is not a parameter would be renumbered too"
        assert sorted({int(n) for n in dollars}) == list(range(1, len(write.args) + 1)), name
    joined = re.findall(r"\$(\d+)", store._INSERT_ENTRIES)
    assert sorted({int(n) for n in joined}) == list(range(1, store._ENTRY_PARAMS + 1))
