"""Funding over a batch: an account funds one legal entity in one currency (SPEC §10)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from services.ledger.domain.facts import FundingReceipt


def fundings_for_their_owners(
    fundings: Sequence[FundingReceipt], owners: Mapping[str, tuple[str, str]], known_ids: set[str]
) -> list[bool]:
    """For each funding in order, whether it is for its account's owner (legal entity,
    currency). The first funding recorded on an account makes its owner; payout_release refuses
    a credit for another pair, so the journal must not show it either."""
    owner_of = dict(owners)
    recorded = set(known_ids)
    out = []
    for f in fundings:
        owner = owner_of.get(f.account_id)
        if owner is not None and owner != (f.legal_entity, f.currency):
            out.append(False)
            continue
        out.append(True)
        if f.funding_id not in recorded:  # recorded now (an id seen before is not recorded again)
            recorded.add(f.funding_id)
            owner_of.setdefault(f.account_id, (f.legal_entity, f.currency))
    return out
