"""Bad and hostile payee profiles: each one ends ineligible with its reasons, or deadlettered —
never eligible, never silently dropped (SPEC §7, §15 "Compliance").

A verification, screening or signature dated more than five minutes in the future counts as
absent, at the profile update and at every periodic sweep after it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.compliance_gate.handlers import router
from shared.consumer import DEADLETTER_EVENT_TYPE, RawRecord
from shared.unit_of_work import UnitOfWork
from tests.integration.compliance_gate.test_handlers import (
    CLOCK,
    business_profile,
    changes,
    deliver,
    profile,
    profile_updated,
    run_sweep,
)
from tests.support import emitted, scratch_pool

pytestmark = pytest.mark.integration


def ts(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


IN_2099 = "2099-01-01T00:00:00Z"
SIX_MINUTES_AHEAD = ts(CLOCK + timedelta(minutes=6))
FOUR_MINUTES_AHEAD = ts(CLOCK + timedelta(minutes=4))
W9 = {"type": "W-9", "status": "valid", "signed_at": "2024-03-10"}  # never expires: only AML changes
TOMORROW = (CLOCK + timedelta(days=1)).date().isoformat()


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    async with scratch_pool("compliance_gate") as p:
        yield p


@pytest.fixture(autouse=True)
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(UnitOfWork, "now", property(lambda self: CLOCK))
    yield


def corpus() -> list[tuple[str, dict[str, Any], list[str] | None]]:
    """(name, profile data, the reasons it ends ineligible with — None: deadlettered)."""
    aml_2099 = {"status": "clear", "screened_at": IN_2099}
    return [
        ("AML screening dated 2099", profile(aml=aml_2099), ["aml_not_clear", "aml_screening_stale"]),
        (
            "AML screening six minutes ahead",
            profile(aml={"status": "clear", "screened_at": SIX_MINUTES_AHEAD}),
            ["aml_not_clear", "aml_screening_stale"],
        ),
        (
            "KYC verified in the future",
            profile(kyc={"status": "verified", "verified_at": IN_2099}),
            ["kyc_not_verified"],
        ),
        (
            "W-8BEN signed tomorrow",
            profile(tax_form={"type": "W-8BEN", "status": "valid", "signed_at": TOMORROW}),
            ["tax_form_invalid"],
        ),
        (
            "W-9 signed in 2099",
            profile(
                "payee-us",
                country="US",
                tax_form={"type": "W-9", "status": "valid", "signed_at": "2099-01-01"},
            ),
            ["tax_form_invalid"],
        ),
        (
            "VAT checked in the future",
            business_profile(vat={"number": "DE1", "status": "valid", "checked_at": IN_2099}),
            ["vat_invalid"],
        ),
        (
            "everything dated in the future",
            profile(
                kyc={"status": "verified", "verified_at": IN_2099},
                aml=aml_2099,
                tax_form={"type": "W-8BEN", "status": "valid", "signed_at": "2099-01-01"},
            ),
            ["aml_not_clear", "aml_screening_stale", "kyc_not_verified", "tax_form_invalid"],
        ),
        (
            "AML screening without an offset",
            profile(aml={"status": "clear", "screened_at": "2027-05-01T09:00"}),
            None,
        ),
        ("AML status unknown", profile(aml={"status": "fine", "screened_at": "2027-05-01T09:00:00Z"}), None),
        ("no AML block", {k: v for k, v in profile().items() if k != "aml"}, None),
        ("profile version as text", profile(profile_version="2"), None),
        ("country in lower case", profile(country="de"), None),
    ]


CORPUS = corpus()


@pytest.mark.parametrize(("name", "data", "reasons"), CORPUS, ids=[c[0] for c in CORPUS])
async def test_each_bad_profile_ends_ineligible_or_deadlettered(
    pool: asyncpg.Pool, name: str, data: dict[str, Any], reasons: list[str] | None
) -> None:
    rec: RawRecord = profile_updated(data)
    result = await deliver(pool, router, rec)
    if reasons is None:
        assert changes(result) == [] and result.deadlettered == 1, name
        [dead] = emitted(result, DEADLETTER_EVENT_TYPE)
        assert dead["data"]["origin"]["offset"] == rec.offset
        return
    [event] = changes(result)
    assert (event["data"]["eligible"], event["data"]["reasons"]) == (False, reasons), name


async def test_a_timestamp_within_five_minutes_ahead_is_clock_skew_and_counts(pool: asyncpg.Pool) -> None:
    data = profile(
        kyc={"status": "verified", "verified_at": FOUR_MINUTES_AHEAD},
        aml={"status": "clear", "screened_at": FOUR_MINUTES_AHEAD},
        tax_form={"type": "W-8BEN", "status": "valid", "signed_at": CLOCK.date().isoformat()},
    )
    [event] = changes(await deliver(pool, router, profile_updated(data)))
    assert (event["data"]["eligible"], event["data"]["reasons"]) == (True, [])


async def test_the_sweep_never_makes_a_payee_screened_in_2099_eligible(pool: asyncpg.Pool) -> None:
    data = profile(aml={"status": "clear", "screened_at": IN_2099}, tax_form=W9, country="US")
    [first] = changes(await deliver(pool, router, profile_updated(data)))
    assert first["data"]["eligible"] is False
    # A year of sweeps later the screening is still in the future: nothing changes, nothing is published.
    for days in (1, 30, 365, 3650):
        assert await run_sweep(pool, CLOCK + timedelta(days=days)) == []


async def test_a_date_in_the_future_at_receipt_stays_absent_after_the_clock_passes_it(
    pool: asyncpg.Pool,
) -> None:
    # Judged against the receipt, not each sweep: nothing shows the screening happened when the
    # profile claimed, and time passing never makes a payee eligible by itself.
    ahead = CLOCK + timedelta(minutes=10)
    data = profile(aml={"status": "clear", "screened_at": ts(ahead)}, tax_form=W9, country="US")
    [first] = changes(await deliver(pool, router, profile_updated(data)))
    assert first["data"]["reasons"] == ["aml_not_clear", "aml_screening_stale"]
    for later in (timedelta(minutes=10), timedelta(days=1), timedelta(days=30)):
        assert await run_sweep(pool, CLOCK + later) == []


async def test_a_new_profile_version_with_a_believable_date_makes_the_payee_eligible(
    pool: asyncpg.Pool,
) -> None:
    data = profile(kyc={"status": "verified", "verified_at": SIX_MINUTES_AHEAD})
    [first] = changes(await deliver(pool, router, profile_updated(data)))
    assert first["data"]["reasons"] == ["kyc_not_verified"]
    fixed = profile(version=2, kyc={"status": "verified", "verified_at": ts(CLOCK - timedelta(hours=1))})
    [second] = changes(await deliver(pool, router, profile_updated(fixed)))
    assert (second["data"]["eligible"], second["data"]["reasons"]) == (True, [])
