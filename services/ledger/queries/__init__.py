"""What the ledger answers (SPEC §9), one module per question: trace, reconcile, invariants,
1099-NEC. Each query takes an asyncpg connection to the ledger database and returns
dataclasses; the SQL only fetches rows, the arithmetic is in pure functions (unit-tested). The
CLI (`concord trace|reconcile`, `ledger check`), the tests and the chaos run call these."""

from services.ledger.queries.invariants import INVARIANTS, Violation, check_invariants
from services.ledger.queries.nec1099 import Nec1099Total, totals_1099_nec
from services.ledger.queries.reconciliation import Reconciliation, reconcile
from services.ledger.queries.traces import entries, trace
from services.ledger.queries.views import Trace

__all__ = [
    "INVARIANTS",
    "Nec1099Total",
    "Reconciliation",
    "Trace",
    "Violation",
    "check_invariants",
    "entries",
    "reconcile",
    "totals_1099_nec",
    "trace",
]
