"""compliance_gate's SQL: payee profiles with their version and last published eligibility.

Every function takes the connection of the open unit of work; none commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from services.compliance_gate.domain import (
    AmlScreening,
    Eligibility,
    PayeeProfile,
    Reason,
    TaxForm,
    eligibility_from,
)


@dataclass(frozen=True)
class StoredPayee:
    profile: PayeeProfile
    eligibility: Eligibility  # as last published
    evaluated_at: datetime


async def load_payee_for_update(conn: asyncpg.Connection, payee_id: str) -> StoredPayee | None:
    """Locks the row, so a concurrent sweep cannot publish between our read and our write."""
    row = await conn.fetchrow(
        "SELECT profile, reasons, evaluated_at FROM payees WHERE payee_id = $1 FOR UPDATE", payee_id
    )
    return _stored(row) if row is not None else None


async def load_payees(conn: asyncpg.Connection) -> list[StoredPayee]:
    rows = await conn.fetch("SELECT profile, reasons, evaluated_at FROM payees ORDER BY payee_id")
    return [_stored(r) for r in rows]


async def save_profile(
    conn: asyncpg.Connection,
    profile: PayeeProfile,
    eligibility: Eligibility,
    evaluated_at: datetime,
    event_id: str,
) -> None:
    """The new current profile with its evaluation, plus its row in the version history."""
    document = profile_to_json(profile)
    await conn.execute(
        """INSERT INTO payees (payee_id, profile_version, profile, eligible, reasons, evaluated_at)
           VALUES ($1, $2, $3, $4, $5, $6)
           ON CONFLICT (payee_id) DO UPDATE SET
               profile_version = EXCLUDED.profile_version, profile = EXCLUDED.profile,
               eligible = EXCLUDED.eligible, reasons = EXCLUDED.reasons,
               evaluated_at = EXCLUDED.evaluated_at, updated_at = now()
           -- never let an older version overwrite a newer one, whatever the caller checked
           WHERE payees.profile_version < EXCLUDED.profile_version""",
        profile.payee_id,
        profile.profile_version,
        document,
        eligibility.eligible,
        list(eligibility.reasons),
        evaluated_at,
    )
    await conn.execute(
        """INSERT INTO payee_profile_versions (payee_id, profile_version, profile, event_id)
           VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING""",
        profile.payee_id,
        profile.profile_version,
        document,
        event_id,
    )


async def save_swept_eligibility(
    conn: asyncpg.Connection,
    payee_id: str,
    profile_version: int,
    eligibility: Eligibility,
    evaluated_at: datetime,
) -> bool:
    """Record a sweep's new outcome for the profile version it evaluated; False (nothing written)
    when a newer profile was applied meanwhile — that profile's own evaluation wins."""
    row = await conn.fetchrow(
        """UPDATE payees SET eligible = $3, reasons = $4, evaluated_at = $5, updated_at = now()
           WHERE payee_id = $1 AND profile_version = $2
           RETURNING payee_id""",
        payee_id,
        profile_version,
        eligibility.eligible,
        list(eligibility.reasons),
        evaluated_at,
    )
    return row is not None


def _stored(row: asyncpg.Record) -> StoredPayee:
    return StoredPayee(
        profile=profile_from_json(row["profile"], row["evaluated_at"]),
        eligibility=eligibility_from(Reason(r) for r in row["reasons"]),
        evaluated_at=row["evaluated_at"],
    )


# --- the jsonb form of a profile ------------------------------------------------------------


def profile_to_json(profile: PayeeProfile) -> dict[str, Any]:
    form = profile.tax_form
    return {
        "payee_id": profile.payee_id,
        "profile_version": profile.profile_version,
        "entity_type": profile.entity_type,
        "country": profile.country,
        "aml": {"status": profile.aml.status, "screened_at": profile.aml.screened_at.isoformat()},
        "kyc_status": profile.kyc_status,
        "kyc_verified_at": _iso(profile.kyc_verified_at),
        "kyb_status": profile.kyb_status,
        "beneficial_owners_verified": profile.beneficial_owners_verified,
        "tax_form": None
        if form is None
        else {
            "type": form.type,
            "status": form.status,
            "signed_at": _iso(form.signed_at),
            "expires_at": _iso(form.expires_at),
        },
        "vat_status": profile.vat_status,
        "vat_checked_at": _iso(profile.vat_checked_at),
        "payout_account_ref": profile.payout_account_ref,
        "received_at": _iso(profile.received_at),
    }


def profile_from_json(doc: dict[str, Any], evaluated_at: datetime | None = None) -> PayeeProfile:
    """`evaluated_at` stands in for the receipt time of a profile stored before it was kept."""
    form = doc.get("tax_form")
    return PayeeProfile(
        payee_id=doc["payee_id"],
        profile_version=int(doc["profile_version"]),
        entity_type=doc["entity_type"],
        country=doc["country"],
        aml=AmlScreening(doc["aml"]["status"], datetime.fromisoformat(doc["aml"]["screened_at"])),
        kyc_status=doc.get("kyc_status"),
        kyc_verified_at=_timestamp(doc.get("kyc_verified_at")),
        kyb_status=doc.get("kyb_status"),
        beneficial_owners_verified=bool(doc.get("beneficial_owners_verified", False)),
        tax_form=None
        if form is None
        else TaxForm(
            type=form["type"],
            status=form["status"],
            signed_at=_date(form.get("signed_at")),
            expires_at=_date(form.get("expires_at")),
        ),
        vat_status=doc.get("vat_status"),
        vat_checked_at=_timestamp(doc.get("vat_checked_at")),
        payout_account_ref=doc.get("payout_account_ref"),
        received_at=_timestamp(doc.get("received_at")) or evaluated_at,
    )


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value is not None else None


def _timestamp(value: str | None) -> datetime | None:
    # Profiles stored before these timestamps were kept have none: the rules treat that as absent.
    return datetime.fromisoformat(value) if value is not None else None
