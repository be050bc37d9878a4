"""The periodic eligibility sweep (SPEC §7): load every payee → re-evaluate at one instant
(domain) → write the changed outcomes in one statement → emit `payee.eligibility_changed`.

Event ids derive from (payee, profile version, outcome), so a sweep re-run after a crash emits
the very same ids (dropped by the outbox and by downstream dedupe), and a re-run after a commit
finds nothing changed and emits nothing.
"""

from __future__ import annotations

from datetime import datetime

import structlog

from services.compliance_gate import contract, domain, store
from services.compliance_gate.config import GateConfig
from services.compliance_gate.domain import Eligibility, PayeeProfile
from services.compliance_gate.handlers import ELIGIBILITY_CHANGED
from shared.envelope import derived_event_id
from shared.unit_of_work import UnitOfWork

log = structlog.get_logger(__name__)


async def sweep_eligibility(uow: UnitOfWork, now: datetime) -> int:
    """Re-evaluate every payee at `now` and publish each change. Returns how many it published."""
    config: GateConfig = uow.config
    payees = await store.load_payees(uow.conn)
    changes = domain.plan_sweep(payees, now, config.policy)
    # A payee whose newer profile was applied meanwhile is not saved: its own evaluation published.
    saved = await store.save_swept(uow.conn, changes, now)
    published = [c for c in changes if c.profile.payee_id in saved]
    for c in published:
        uow.emit_event(
            contract.eligibility_changed(c.status, c.profile.profile_version, now),
            key=c.profile.payee_id,
            event_id=sweep_event_id(c.profile, c.eligibility),
        )
        log.info(
            "payee_eligibility_changed",
            payee_id=c.profile.payee_id,
            profile_version=c.profile.profile_version,
            eligible=c.eligibility.eligible,
            reasons=c.eligibility.codes,
            by="sweep",
        )
    log.info("eligibility_sweep_done", payees=len(payees), published=len(published), at=now.isoformat())
    return len(published)


async def sweep_now(uow: UnitOfWork) -> None:
    await sweep_eligibility(uow, uow.now)


def sweep_event_id(profile: PayeeProfile, eligibility: Eligibility) -> str:
    return derived_event_id(
        ELIGIBILITY_CHANGED.type,
        "sweep",
        profile.payee_id,
        str(profile.profile_version),
        eligibility.fingerprint,
    )
