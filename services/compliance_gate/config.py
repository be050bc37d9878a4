"""compliance_gate's configuration: one frozen object, built once at start (Service(config=…)).

| variable                               | default | meaning                                          |
|----------------------------------------|---------|--------------------------------------------------|
| `CONCORD_AML_MAX_AGE_DAYS`             | 365     | an AML screening older than this is stale        |
| `CONCORD_EU_VAT_CHECK`                 | true    | EU businesses with a VAT number need it valid    |
| `CONCORD_COMPLIANCE_SWEEP_INTERVAL_S`  | 60      | seconds between two eligibility sweeps           |

They are typed fields of shared.settings.Settings: a bad value stops the start naming the field.
The sweep's interval is read by its PeriodicTask (app.py), which the shared runtime hands Settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from services.compliance_gate.domain import CompliancePolicy
from shared.settings import Settings


@dataclass(frozen=True)
class GateConfig:
    policy: CompliancePolicy = field(default_factory=CompliancePolicy)

    @classmethod
    def load(cls, settings: Settings) -> GateConfig:
        return cls(
            policy=CompliancePolicy(
                aml_max_age=timedelta(days=settings.aml_max_age_days),
                eu_vat_check=settings.eu_vat_check,
            )
        )
