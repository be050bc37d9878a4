"""compliance_gate's field mapping: the inbound profile → the domain's PayeeProfile, and a
payee's status → `payee.eligibility_changed`. Neither a tax id nor a VAT number nor a name gets
past `profile_from`; `payout_account_ref` is an opaque token and is forwarded."""

from __future__ import annotations

from datetime import datetime

from services.compliance_gate.domain import (
    AmlScreening,
    Confirmation,
    ConfirmationRefusal,
    PayeeProfile,
    PayeeStatus,
    TaxForm,
)
from shared.contracts.inbound import PayeePayoutAccountConfirmed, PayeeProfileUpdated
from shared.contracts.internal import PayeeEligibilityChanged


def profile_from(
    data: PayeeProfileUpdated, received_at: datetime, occurred_at: datetime | None = None
) -> PayeeProfile:
    """The inbound profile as the rules see it; tin_last4 and the VAT number stop here."""
    return PayeeProfile(
        payee_id=data.payee_id,
        profile_version=data.profile_version,
        entity_type=data.entity_type,
        country=data.country,
        aml=AmlScreening(data.aml.status, data.aml.screened_at),
        kyc_status=data.kyc.status if data.kyc is not None else None,
        kyc_verified_at=data.kyc.verified_at if data.kyc is not None else None,
        kyb_status=data.kyb.status if data.kyb is not None else None,
        beneficial_owners_verified=data.kyb.beneficial_owners_verified if data.kyb is not None else False,
        tax_form=None
        if data.tax_form is None
        else TaxForm(
            type=data.tax_form.type,
            status=data.tax_form.status,
            signed_at=data.tax_form.signed_at,
            expires_at=data.tax_form.expires_at,
        ),
        vat_status=data.vat.status if data.vat is not None else None,
        vat_checked_at=data.vat.checked_at if data.vat is not None else None,
        payout_account_ref=data.payout_account_ref,
        received_at=received_at,
        updated_by=data.updated_by,
        occurred_at=occurred_at,
    )


def confirmation_from(data: PayeePayoutAccountConfirmed) -> Confirmation:
    return Confirmation(data.payee_id, data.payout_account_ref, data.confirmed_by)


_REFUSAL_TEXT = {
    ConfirmationRefusal.PAYEE_UNKNOWN: ("payee_id", "no profile of this payee is known"),
    ConfirmationRefusal.ACCOUNT_NOT_CURRENT: (
        "payout_account_ref",
        "not the payee's current payout account: nothing is confirmed",
    ),
    ConfirmationRefusal.SELF_CONFIRMATION: (
        "confirmed_by",
        "the person who changed the payout account cannot confirm it",
    ),
}


def refusal_reasons(refusals: tuple[ConfirmationRefusal, ...]) -> list[dict[str, str]]:
    """document.rejected reasons ({code, field, message}) for a refused confirmation."""
    return [{"code": str(r), "field": _REFUSAL_TEXT[r][0], "message": _REFUSAL_TEXT[r][1]} for r in refusals]


def eligibility_changed(
    status: PayeeStatus, profile_version: int, evaluated_at: datetime
) -> PayeeEligibilityChanged:
    return PayeeEligibilityChanged(
        payee_id=status.payee_id,
        eligible=status.eligibility.eligible,
        reasons=status.eligibility.codes,
        profile_version=profile_version,
        evaluated_at=evaluated_at,
        country=status.country,
        entity_type=status.entity_type,
        payout_account_ref=status.payout_account_ref,
        reportable_1099_nec=status.reportable_1099_nec,
    )
