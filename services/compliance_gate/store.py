"""compliance_gate's SQL: payee profiles with their version and last published eligibility.

Every function takes the connection of the open unit of work; none commits. Set-based: a
batch costs the same few statements whatever its size.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import asyncpg

from services.compliance_gate.domain import (
    NO_ACCOUNT,
    AccountControl,
    AmlScreening,
    Eligibility,
    PayeeProfile,
    PayeeRecord,
    PendingAccount,
    Reason,
    SweepChange,
    TaxForm,
    eligibility_from,
)


async def load_payees_for_update(
    conn: asyncpg.Connection, payee_ids: Sequence[str]
) -> dict[str, PayeeRecord]:
    """The stored payees among `payee_ids`, their rows locked (in one order, so two batches
    never deadlock): a concurrent sweep cannot publish between our read and our write."""
    rows = await conn.fetch(
        """SELECT profile, reasons, evaluated_at, account FROM payees
            WHERE payee_id = ANY($1::text[]) ORDER BY payee_id FOR UPDATE""",
        list(payee_ids),
    )
    return {r["profile"]["payee_id"]: _record(r) for r in rows}


async def load_payees(conn: asyncpg.Connection) -> list[PayeeRecord]:
    rows = await conn.fetch("SELECT profile, reasons, evaluated_at, account FROM payees ORDER BY payee_id")
    return [_record(r) for r in rows]


@dataclass(frozen=True)
class AppliedProfile:
    profile: PayeeProfile
    eligibility: Eligibility
    event_id: str  # of the payee.profile_updated that carried it
    account: AccountControl = NO_ACCOUNT


async def save_profiles(
    conn: asyncpg.Connection, applied: Sequence[AppliedProfile], evaluated_at: datetime
) -> None:
    """Every applied version in the version history, and each payee's last one as its current
    profile with its evaluation: one statement per table."""
    if not applied:
        return
    latest = list({a.profile.payee_id: a for a in applied}.values())
    await conn.execute(
        """INSERT INTO payees (payee_id, profile_version, profile, eligible, reasons, evaluated_at, account)
           SELECT p.payee_id, p.profile_version, p.profile, p.reasons = '',
                  string_to_array(p.reasons, ','), $5, p.account
             FROM unnest($1::text[], $2::bigint[], $3::jsonb[], $4::text[], $6::jsonb[])
                  AS p(payee_id, profile_version, profile, reasons, account)
           ON CONFLICT (payee_id) DO UPDATE SET
               profile_version = EXCLUDED.profile_version, profile = EXCLUDED.profile,
               eligible = EXCLUDED.eligible, reasons = EXCLUDED.reasons,
               evaluated_at = EXCLUDED.evaluated_at, account = EXCLUDED.account, updated_at = now()
           -- never let an older version overwrite a newer one, whatever the caller checked
           WHERE payees.profile_version < EXCLUDED.profile_version""",
        [a.profile.payee_id for a in latest],
        [a.profile.profile_version for a in latest],
        [profile_to_json(a.profile) for a in latest],
        [_joined(a.eligibility) for a in latest],
        evaluated_at,
        [account_to_json(a.account) for a in latest],
    )
    await conn.execute(
        """INSERT INTO payee_profile_versions (payee_id, profile_version, profile, event_id)
           SELECT * FROM unnest($1::text[], $2::bigint[], $3::jsonb[], $4::text[])
           ON CONFLICT DO NOTHING""",
        [a.profile.payee_id for a in applied],
        [a.profile.profile_version for a in applied],
        [profile_to_json(a.profile) for a in applied],
        [a.event_id for a in applied],
    )


async def save_swept(
    conn: asyncpg.Connection, changes: Sequence[SweepChange], evaluated_at: datetime
) -> set[str]:
    """Record a sweep's new outcomes for the profile versions it evaluated; the payees written.
    A payee whose newer profile was applied meanwhile is left out: that profile's evaluation wins."""
    if not changes:
        return set()
    rows = await conn.fetch(
        """UPDATE payees SET eligible = s.reasons = '', reasons = string_to_array(s.reasons, ','),
                  evaluated_at = $4, updated_at = now()
             FROM unnest($1::text[], $2::bigint[], $3::text[]) AS s(payee_id, profile_version, reasons)
            WHERE payees.payee_id = s.payee_id AND payees.profile_version = s.profile_version
        RETURNING payees.payee_id""",
        [c.profile.payee_id for c in changes],
        [c.profile.profile_version for c in changes],
        [_joined(c.eligibility) for c in changes],
        evaluated_at,
    )
    return {r["payee_id"] for r in rows}


async def save_confirmations(
    conn: asyncpg.Connection, records: Sequence[PayeeRecord], evaluated_at: datetime
) -> None:
    """SPEC §13.3: confirmed accounts, with the eligibility they led to (published when it
    changed, so the row still describes what downstream knows): one statement."""
    latest = list({r.profile.payee_id: r for r in records}.values())
    if not latest:
        return
    await conn.execute(
        """UPDATE payees SET account = c.account, eligible = c.reasons = '',
                  reasons = string_to_array(c.reasons, ','), evaluated_at = $4, updated_at = now()
             FROM unnest($1::text[], $2::jsonb[], $3::text[]) AS c(payee_id, account, reasons)
            WHERE payees.payee_id = c.payee_id""",
        [r.profile.payee_id for r in latest],
        [account_to_json(r.account) for r in latest],
        [_joined(r.eligibility) for r in latest],
        evaluated_at,
    )


def _joined(eligibility: Eligibility) -> str:
    """Reason codes as one text (they never hold a comma): ragged text[][] do not exist."""
    return ",".join(eligibility.codes)


def _record(row: asyncpg.Record) -> PayeeRecord:
    profile = profile_from_json(row["profile"], row["evaluated_at"])
    return PayeeRecord(
        profile=profile,
        eligibility=eligibility_from(Reason(r) for r in row["reasons"]),
        account=account_from_json(row["account"], profile.payout_account_ref),
    )


def account_to_json(account: AccountControl) -> dict[str, Any]:
    p = account.pending
    return {
        "confirmed_ref": account.confirmed_ref,
        "pending": None
        if p is None
        else {
            "ref": p.ref,
            "changed_at": p.changed_at.isoformat(),
            "updated_by": p.updated_by,
            "confirmed_by": p.confirmed_by,
            "confirmed_at": _iso(p.confirmed_at),
        },
    }


def account_from_json(doc: dict[str, Any] | None, current_ref: str | None) -> AccountControl:
    """None (a payee stored before SPEC §13.3): its current account counts as confirmed."""
    if doc is None:
        return AccountControl(confirmed_ref=current_ref)
    p = doc.get("pending")
    pending = (
        None
        if p is None
        else PendingAccount(
            ref=p["ref"],
            changed_at=datetime.fromisoformat(p["changed_at"]),
            updated_by=p.get("updated_by"),
            confirmed_by=p.get("confirmed_by"),
            confirmed_at=_timestamp(p.get("confirmed_at")),
        )
    )
    return AccountControl(confirmed_ref=doc.get("confirmed_ref"), pending=pending)


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
        "updated_by": profile.updated_by,
        "occurred_at": _iso(profile.occurred_at),
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
        updated_by=doc.get("updated_by"),
        occurred_at=_timestamp(doc.get("occurred_at")),
    )


def _iso(value: date | None) -> str | None:
    return value.isoformat() if value is not None else None


def _date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value is not None else None


def _timestamp(value: str | None) -> datetime | None:
    # Profiles stored before these timestamps were kept have none: the rules treat that as absent.
    return datetime.fromisoformat(value) if value is not None else None
