"""The services Concord runs, named once.

`SERVICES`: the five that decide (SPEC §1), each its own process, database, consumer group and
Kafka principal. `SERVICES_AND_GATEWAY`: with the bank gateway (SPEC §12.4), every service
process of the local stack, in the order of deploy/lib.sh's SERVICES (the shell's copy, which
tests/unit/shared/test_services.py keeps equal): health ports are given from the base in it.
"""

from __future__ import annotations

SERVICES = ("intake", "matching", "compliance_gate", "payout_release", "ledger")
SERVICES_AND_GATEWAY = (*SERVICES, "bank_gateway")
