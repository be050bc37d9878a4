"""Payout account changes (SPEC §13.3) — pure: the account a payee may be paid to.

A payee's first payout account needs no confirmation. When a known payee's `payout_account_ref`
changes, the new account is unconfirmed until BOTH

- a signed `payee.payout_account_confirmed` for exactly that account arrives from someone other
  than the profile update's `updated_by` (people compare case-insensitively, SPEC §15), and
- `account_change_cooling_off_hours` have passed since the change (the `occurred_at` of the
  profile update that made it): exactly at the end of the cooling-off the account is confirmed.

Meanwhile the payee is ineligible with `payout_account_unconfirmed` (a compliance reason: no
override). Time is an argument, so the periodic sweep ends a cooling-off without any new event.
A profile that changes the account back to the confirmed one ends the pending change; a profile
without any `payout_account_ref` leaves the account control as it was.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from shared.text import same_person

DEFAULT_COOLING_OFF = timedelta(hours=24)


@dataclass(frozen=True)
class PendingAccount:
    """A changed account, waiting for its confirmation and the end of its cooling-off."""

    ref: str
    changed_at: datetime  # the occurred_at of the profile update that changed it
    updated_by: str | None
    confirmed_by: str | None = None
    confirmed_at: datetime | None = None


@dataclass(frozen=True)
class AccountControl:
    """The confirmed account of a payee (None: none yet) and the change waiting, if any."""

    confirmed_ref: str | None = None
    pending: PendingAccount | None = None


NO_ACCOUNT = AccountControl()


def cooled_off(pending: PendingAccount, now: datetime, cooling_off: timedelta) -> bool:
    return now - pending.changed_at >= cooling_off


def settle(account: AccountControl, now: datetime, cooling_off: timedelta) -> AccountControl:
    """A pending account that is confirmed and has cooled off becomes the confirmed account."""
    p = account.pending
    if p is not None and p.confirmed_by is not None and cooled_off(p, now, cooling_off):
        return AccountControl(confirmed_ref=p.ref, pending=None)
    return account


def is_unconfirmed(account: AccountControl, now: datetime, cooling_off: timedelta) -> bool:
    return settle(account, now, cooling_off).pending is not None


def on_profile_account(
    account: AccountControl,
    ref: str | None,
    *,
    changed_at: datetime,
    updated_by: str | None,
    now: datetime,
    cooling_off: timedelta,
) -> AccountControl:
    """The account control after a profile version naming `ref` (None: says nothing of it)."""
    account = settle(account, now, cooling_off)
    if ref is None:
        return account
    if account.confirmed_ref is None and account.pending is None:
        # SPEC §13.3: a payee's first account needs no confirmation (also when a known payee
        # names an account for the first time).
        return AccountControl(confirmed_ref=ref)
    if ref == account.confirmed_ref:
        return AccountControl(confirmed_ref=ref)  # changed back: nothing is pending any more
    if account.pending is not None and account.pending.ref == ref:
        return account  # the same change again (a later profile version repeating it)
    return replace(account, pending=PendingAccount(ref, changed_at, updated_by))


class ConfirmationOutcome(StrEnum):
    """What a `payee.payout_account_confirmed` did (the inbox row's result)."""

    CONFIRMED = "confirmed"  # the pending account is confirmed (maybe still cooling off)
    ALREADY_CONFIRMED = "already_confirmed"  # it names the account already confirmed: nothing to do
    REFUSED = "refused"  # document.rejected with the reasons


class ConfirmationRefusal(StrEnum):
    PAYEE_UNKNOWN = "payee_unknown"
    ACCOUNT_NOT_CURRENT = "payout_account_not_current"  # not the payee's current account
    SELF_CONFIRMATION = "sod_violation"  # confirmed_by is the person who changed the account


@dataclass(frozen=True)
class ConfirmationDecision:
    outcome: ConfirmationOutcome
    account: AccountControl
    refusals: tuple[ConfirmationRefusal, ...] = ()


def confirm(
    account: AccountControl | None,
    ref: str,
    confirmed_by: str,
    now: datetime,
    cooling_off: timedelta,
) -> ConfirmationDecision:
    """A signed confirmation of `ref` by `confirmed_by` (`account` None: the payee is unknown)."""
    if account is None:
        return ConfirmationDecision(
            ConfirmationOutcome.REFUSED, NO_ACCOUNT, (ConfirmationRefusal.PAYEE_UNKNOWN,)
        )
    account = settle(account, now, cooling_off)
    p = account.pending
    if p is None or p.ref != ref:
        if ref == account.confirmed_ref and p is None:
            return ConfirmationDecision(ConfirmationOutcome.ALREADY_CONFIRMED, account)
        # SPEC §13.3: a confirmation of any other account than the current one does nothing.
        return ConfirmationDecision(
            ConfirmationOutcome.REFUSED, account, (ConfirmationRefusal.ACCOUNT_NOT_CURRENT,)
        )
    if same_person(confirmed_by, p.updated_by):
        return ConfirmationDecision(
            ConfirmationOutcome.REFUSED, account, (ConfirmationRefusal.SELF_CONFIRMATION,)
        )
    if p.confirmed_by is not None:
        return ConfirmationDecision(ConfirmationOutcome.ALREADY_CONFIRMED, account)
    confirmed = replace(account, pending=replace(p, confirmed_by=confirmed_by, confirmed_at=now))
    return ConfirmationDecision(ConfirmationOutcome.CONFIRMED, settle(confirmed, now, cooling_off))
