"""Document-level charges of UBL documents as Concord's charge types (SPEC §12.1).

A charge (`ChargeIndicator=true`) names its kind with a UNCL7161 reason code; the policy file maps
codes to the PO's charge types, and any other code, or none, is `other`. An allowance
(`ChargeIndicator=false`) lowers what is paid: it becomes a negative charge of type `allowance`
(its reason codes are UNCL5189, not 7161, and a discount must never draw on, or offset, a PO's
charge allowance — matching never asks PO cover for a negative charge).
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from services.intake.domain.common import Charge

PO_CHARGE_TYPES = ("freight", "handling", "other")
ALLOWANCE_TYPE = "allowance"
OTHER = "other"

# SPEC §12.1, the shipped defaults (deploy/policy.yaml `intake.charge_codes` restates them).
DEFAULT_CHARGE_CODES: Mapping[str, str] = {
    "FC": "freight",  # freight
    "ADK": "freight",  # shipping
    "DL": "freight",  # delivery
    "SH": "handling",  # special handling
    "PC": "handling",  # packing
    "ABL": "handling",  # additional packaging
    "LA": "handling",  # labelling
}


def charge_type(code: str | None, codes: Mapping[str, str]) -> str:
    """The charge type of a UNCL7161 code (codes compare upper-cased, without spaces)."""
    if code is None:
        return OTHER
    return codes.get(code.strip().upper(), OTHER)


def document_charge(is_charge: bool, amount: Decimal, code: str | None, codes: Mapping[str, str]) -> Charge:
    """A document-level AllowanceCharge as a Concord charge: charges positive, allowances negative."""
    if is_charge:
        return Charge(charge_type(code, codes), amount)
    return Charge(ALLOWANCE_TYPE, -amount)
