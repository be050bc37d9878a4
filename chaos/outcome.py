"""What a run did, read from its output topics as an outsider would, and the invariants checked on it."""

from __future__ import annotations

import base64
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from chaos.workload import Workload


@dataclass(frozen=True)
class InvoiceOutcome:
    """The parts of an invoice's end state that must not depend on faults or timing (payout ids
    and grouping do, so they are left out)."""

    intake: str  # "accepted", "rejected:<codes>", "missing", or "accepted+rejected:<codes>"
    matching: str  # "approved", "held:<reasons>", "superseded", "revoked", "-" (none)
    paid: Decimal | None  # the amount paid for it in live payouts, None if unpaid

    def show(self) -> str:
        paid = f"paid {self.paid}" if self.paid is not None else "unpaid"
        return f"{self.intake} / {self.matching} / {paid}"


@dataclass
class RunOutcome:
    """Everything the checks need from one run."""

    label: str
    invoices: dict[str, InvoiceOutcome] = field(default_factory=dict)
    live_payouts_per_invoice: dict[str, list[str]] = field(default_factory=dict)
    released_minus_failed: dict[str, Decimal] = field(default_factory=dict)
    paid_payable: dict[str, Decimal] = field(default_factory=dict)
    paid_not_approved: list[str] = field(default_factory=list)
    payable_mismatch: list[str] = field(default_factory=list)
    deadletters: list[dict[str, Any]] = field(default_factory=list)
    ledger_violations: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    duration_s: float = 0.0
    rail_answers: int = 0
    balances: dict[tuple[str, str], Decimal] = field(default_factory=dict)  # (account, currency)
    eligibility: dict[str, str] = field(default_factory=dict)  # payee → "eligible" / reasons
    grni_by_po: dict[str, Decimal] = field(default_factory=dict)  # debits − credits on GRNI
    notes: list[str] = field(default_factory=list)
    # SPEC §12.3: what each supplier was told, in the order read from the topic.
    responses: dict[str, list[str]] = field(default_factory=dict)
    # SPEC §13.3: every released payout per payee (payout_id, account, released_at, failed), and
    # when each payee turned eligible again after an unconfirmed account.
    payouts_of_payee: dict[str, list[tuple[str, str | None, datetime, bool]]] = field(default_factory=dict)
    reconfirmed_at: dict[str, datetime] = field(default_factory=dict)
    # SPEC §13.4: invoice → override ids its reopened holds name; invoices whose approval was revoked
    lapsed_holds: dict[str, set[str]] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)
    released_invoices: set[str] = field(default_factory=set)  # in any payout.released, failed or not
    refusals: dict[str, set[str]] = field(default_factory=dict)  # refused confirmation event_id → codes


def summarise(label: str, workload: Workload, seen: list[tuple[str, dict[str, Any]]]) -> RunOutcome:
    """`seen`: (topic without prefix, envelope) in arrival order, deduplicated by event_id.
    Per key (so per invoice on the decisions topic) arrival order is Kafka's partition order."""
    out = RunOutcome(label)
    mine = set(workload.expected)
    accepted: set[str] = set()
    rejected: dict[str, set[str]] = defaultdict(set)
    last_decision: dict[str, str] = {}
    payable: dict[str, tuple[str, Decimal]] = {}
    released: dict[str, dict[str, Any]] = {}
    failed: set[str] = set()
    unconfirmed: set[str] = set()
    for _topic, env in seen:
        et, data = env.get("event_type", ""), env.get("data") or {}
        out.counts[et] += 1
        inv = data.get("invoice_id")
        if et == "invoice.accepted" and inv in mine:
            accepted.add(inv)
        elif et == "document.rejected":
            target = workload.invoice_event_ids.get(data.get("rejected_event_id", ""))
            if target is not None:
                rejected[target] |= {r["code"] for r in data.get("reasons", [])}
            if data.get("rejected_event_id") in workload.refused_confirmations:
                out.refusals.setdefault(data["rejected_event_id"], set()).update(
                    r["code"] for r in data.get("reasons", [])
                )
        elif et == "invoice.approved_to_pay" and inv in mine:
            last_decision[inv] = "approved"
            payable[inv] = (data["currency"], Decimal(data["payable_amount"]))
        elif et == "invoice.held" and inv in mine:
            reasons = sorted({h["reason"] for h in data.get("holds", [])})
            last_decision[inv] = "held:" + ",".join(reasons)
        elif et == "invoice.superseded" and inv in mine:
            last_decision[inv] = "superseded"
        elif et == "invoice.approval_revoked" and inv in mine:
            last_decision[inv] = "revoked"
            out.revoked.add(inv)
        elif et == "hold.opened" and inv in mine and data.get("lapsed_override_id"):
            out.lapsed_holds.setdefault(inv, set()).add(data["lapsed_override_id"])
        elif et == "payout.released":
            released[data["payout_id"]] = data
        elif et == "payout.failure_recorded":
            failed.add(data["payout_id"])
        elif et == "deadletter.recorded":
            out.deadletters.append(data)
        elif et == "journal.entry_posted":
            po = (data.get("links") or {}).get("po_number")
            for line in data.get("lines", []):
                if po and line["account"] == "liability:grni":
                    net = Decimal(line.get("debit") or 0) - Decimal(line.get("credit") or 0)
                    out.grni_by_po[po] = out.grni_by_po.get(po, Decimal(0)) + net
        elif et == "invoice_response.issued" and inv in mine:
            out.responses.setdefault(inv, []).append(data["status"])
        elif et == "payee.eligibility_changed":
            out.eligibility[data["payee_id"]] = (
                "eligible" if data["eligible"] else "ineligible:" + ",".join(sorted(data.get("reasons", [])))
            )
            # Per payee, the eligibility topic is in partition order: eligible after unconfirmed.
            if "payout_account_unconfirmed" in data.get("reasons", []):
                unconfirmed.add(data["payee_id"])
            elif data["eligible"] and data["payee_id"] in unconfirmed:
                unconfirmed.discard(data["payee_id"])
                out.reconfirmed_at.setdefault(data["payee_id"], _when(env.get("occurred_at")))

    live_amounts: dict[str, Decimal] = defaultdict(Decimal)
    live_of: dict[str, list[str]] = defaultdict(list)
    totals: dict[str, Decimal] = defaultdict(Decimal)
    discounts: dict[str, Decimal] = defaultdict(Decimal)
    for payout_id, p in released.items():
        sign = 0 if payout_id in failed else 1
        # What a payout settles: the cash it pays plus the early-payment discounts it takes (§13.5).
        taken = sum((Decimal(line.get("discount") or 0) for line in p["invoices"]), Decimal(0))
        totals[p["currency"]] += sign * (Decimal(p["amount"]) + taken)
        if sign:
            for line in p["invoices"]:
                live_amounts[line["invoice_id"]] += Decimal(line["amount"])
                discounts[line["invoice_id"]] += Decimal(line.get("discount") or 0)
                live_of[line["invoice_id"]].append(payout_id)
    for payout_id, p in released.items():
        out.payouts_of_payee.setdefault(p["payee_id"], []).append(
            (payout_id, p.get("payout_account_ref"), _when(p.get("released_at")), payout_id in failed)
        )
        out.released_invoices |= {line["invoice_id"] for line in p["invoices"]}
    out.released_minus_failed = dict(totals)
    out.live_payouts_per_invoice = dict(live_of)

    paid_payable: dict[str, Decimal] = defaultdict(Decimal)
    for inv, amount in live_amounts.items():
        if last_decision.get(inv) != "approved" or inv not in payable:
            out.paid_not_approved.append(inv)
            continue
        currency, value = payable[inv]
        paid_payable[currency] += value
        if value != amount + discounts[inv]:
            out.payable_mismatch.append(f"{inv}: paid {amount} + discount {discounts[inv]}, payable {value}")
    out.paid_payable = dict(paid_payable)

    for inv in sorted(mine):
        codes = ",".join(sorted(rejected.get(inv, ())))
        if inv in accepted and inv in rejected:
            intake = f"accepted+rejected:{codes}"
        elif inv in accepted:
            intake = "accepted"
        elif inv in rejected:
            intake = f"rejected:{codes}"
        else:
            intake = "missing"
        out.invoices[inv] = InvoiceOutcome(intake, last_decision.get(inv, "-"), live_amounts.get(inv))
    return out


def _when(value: Any) -> datetime:
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    blocking: bool = True  # an informational check never fails the run


def _origin(deadletter: dict[str, Any]) -> str:
    origin = deadletter.get("origin") or {}
    return f"{origin.get('topic')}[{origin.get('partition')}]@{origin.get('offset')}"


def _first(items: list[str], n: int = 5) -> str:
    more = f" (+{len(items) - n} more)" if len(items) > n else ""
    return "; ".join(items[:n]) + more


def check_runs(workload: Workload, baseline: RunOutcome, faulty: RunOutcome) -> list[Check]:
    checks: list[Check] = []

    # 1. Same end state per invoice as the fault-free run.
    diffs = [
        f"{inv}: fault-free {baseline.invoices[inv].show()} ≠ faulty {faulty.invoices[inv].show()}"
        for inv in workload.invoice_ids
        if baseline.invoices[inv] != faulty.invoices[inv]
    ]
    checks.append(
        Check(
            "same end state as the fault-free run",
            not diffs,
            _first(diffs)
            if diffs
            else f"{len(workload.invoice_ids)} invoices identical "
            "(intake verdict + codes, matching state + hold reasons, paid amount)",
        )
    )

    # The journal's end balances: the same financial facts must leave the same balances on every
    # account (payout ids and grouping differ between runs; amounts per account must not).
    accounts = sorted(set(baseline.balances) | set(faulty.balances))
    off_balance = [
        f"{a} {c}: fault-free {baseline.balances.get((a, c), 0)} ≠ faulty {faulty.balances.get((a, c), 0)}"
        for a, c in accounts
        if baseline.balances.get((a, c), Decimal(0)) != faulty.balances.get((a, c), Decimal(0))
    ]
    checks.append(
        Check(
            "journal balances per account as in the fault-free run",
            not off_balance,
            _first(off_balance) if off_balance else f"{len(accounts)} (account, currency) balances identical",
        )
    )
    payees = sorted(set(baseline.eligibility) | set(faulty.eligibility))
    off_payee = [
        f"{p}: {baseline.eligibility.get(p)} ≠ {faulty.eligibility.get(p)}"
        for p in payees
        if baseline.eligibility.get(p) != faulty.eligibility.get(p)
    ]
    checks.append(
        Check(
            "payee eligibility as in the fault-free run",
            not off_payee,
            _first(off_payee) if off_payee else f"{len(payees)} payees identical",
        )
    )

    for run in (faulty, baseline):
        suffix = "" if run is faulty else " (fault-free run)"
        # Every approved invoice's PO was fully received: what was accrued at receipt must be
        # relieved by the approval, so GRNI for that PO ends at zero (SPEC §9 posting table).
        residual = [
            f"{workload.po_of[inv]} ({workload.kinds[inv]}): GRNI {run.grni_by_po[workload.po_of[inv]]}"
            for inv, o in sorted(run.invoices.items())
            if o.matching == "approved"
            and inv in workload.po_of
            and run.grni_by_po.get(workload.po_of[inv], Decimal(0)) != 0
        ]
        checks.append(
            Check(
                "GRNI cleared on every approved, fully received PO" + suffix,
                not residual,
                _first(residual) if residual else "every approved invoice relieved exactly what was accrued",
            )
        )

        suffix = "" if run is faulty else " (fault-free run)"
        # 2. Never paid twice.
        twice = [f"{inv} in {', '.join(p)}" for inv, p in run.live_payouts_per_invoice.items() if len(p) > 1]
        checks.append(
            Check(
                "no invoice paid twice" + suffix,
                not twice,
                _first(twice)
                if twice
                else f"{len(run.live_payouts_per_invoice)} invoices each in exactly one live payout",
            )
        )
        # 3. The ledger proves its invariants.
        checks.append(
            Check(
                "ledger invariants (check_invariants)" + suffix,
                not run.ledger_violations,
                _first(run.ledger_violations)
                if run.ledger_violations
                else "balanced, AP, in-transit, no double post",
            )
        )
        # 4. Money out = payable of what was paid.
        currencies = sorted(set(run.released_minus_failed) | set(run.paid_payable))
        sums_ok = all(
            run.released_minus_failed.get(c, Decimal(0)) == run.paid_payable.get(c, Decimal(0))
            for c in currencies
        )
        problems = [f"paid but not approved: {i}" for i in run.paid_not_approved] + run.payable_mismatch
        detail = ", ".join(
            f"{c}: released−failed {run.released_minus_failed.get(c, Decimal(0))} / payable "
            f"{run.paid_payable.get(c, Decimal(0))}"
            for c in currencies
        )
        checks.append(
            Check(
                "payouts (released − failed) = payable of paid approved invoices" + suffix,
                sums_ok and not problems,
                detail + ("; " + _first(problems) if problems else ""),
            )
        )
        # 5. Only the deliberately bad records on the deadletter topic, and every one of them.
        bad = workload.bad_values
        dead_values = [base64.b64decode(d.get("value_base64") or "") for d in run.deadletters]
        unexpected = [
            f"{_origin(d)}: {str(d.get('error'))[:80]}"
            for d, v in zip(run.deadletters, dead_values, strict=True)
            if v not in bad
        ]
        missing = [r.note for r in workload.records if r.bad and r.value not in set(dead_values)]
        checks.append(
            Check(
                "deadletter holds only the deliberately bad records" + suffix,
                not unexpected and not missing,
                (
                    _first(
                        [f"unexpected {u}" for u in unexpected] + [f"not deadlettered: {m}" for m in missing]
                    )
                    if unexpected or missing
                    else f"{len(run.deadletters)} deadletter records, all {len(bad)} bad records among them"
                ),
            )
        )

    checks += control_checks(workload, baseline, faulty)
    checks += response_checks(workload, baseline, faulty)

    # Informational: the fault-free run does what the generator meant (catches workload bugs
    # and plain functional bugs that a comparison of two runs cannot see).
    off: list[str] = []
    for inv, exp in workload.expected.items():
        got = baseline.invoices[inv]
        want_intake = exp.intake
        intake_ok = (
            got.intake == "accepted"
            if want_intake == "accepted"
            else got.intake.startswith("rejected:") and want_intake.split(":")[1] in got.intake
        )
        if not intake_ok or (exp.matching or "-") != got.matching or exp.paid != (got.paid is not None):
            off.append(f"{inv} ({workload.kinds[inv]}): meant {exp}, got {got.show()}")
    checks.append(
        Check(
            "fault-free run does what the workload meant",
            not off,
            _first(off) if off else f"{len(workload.expected)} invoices as designed",
            blocking=False,
        )
    )
    return checks


def response_checks(workload: Workload, baseline: RunOutcome, faulty: RunOutcome) -> list[Check]:
    """SPEC §12.3: the suppliers are told the same things whatever the faults, in causal order."""
    told = {(inv, st) for inv, sts in faulty.responses.items() for st in sts}
    told_baseline = {(inv, st) for inv, sts in baseline.responses.items() for st in sts}
    diffs = [f"{inv} {st}: only in the faulty run" for inv, st in sorted(told - told_baseline)] + [
        f"{inv} {st}: only in the fault-free run" for inv, st in sorted(told_baseline - told)
    ]
    checks = [
        Check(
            "invoice responses (invoice, status) as in the fault-free run",
            not diffs,
            _first(diffs) if diffs else f"{len(told)} (invoice, status) pairs identical",
        )
    ]
    # Causal order per invoice: acknowledged (or rejected) first, paid only after accepted. The
    # outbox relay pipelines a batch's sends, so a broker failover between intake's AB and its
    # invoice.accepted could in principle reorder AB after matching's UQ: reported, not blocking.
    rank = {"AB": 0, "RE": 0, "UQ": 1, "AP": 2, "PD": 3}
    out_of_order = [
        f"{inv}: {' → '.join(sts)}"
        for inv, sts in sorted(faulty.responses.items())
        if rank[sts[0]] != 0 or ("PD" in sts and "AP" not in sts[: sts.index("PD")])
    ]
    checks.append(
        Check(
            "invoice responses in causal order (AB first, PD after AP)",
            not out_of_order,
            _first(out_of_order) if out_of_order else f"{len(faulty.responses)} invoices in order",
            blocking=False,
        )
    )
    return checks


def control_checks(workload: Workload, baseline: RunOutcome, faulty: RunOutcome) -> list[Check]:
    """SPEC §13.3 and §13.4 in both runs: a changed payout account is paid only after its
    confirmation and only to the new account; a lapsed override reopens its hold and pays nothing."""
    checks: list[Check] = []
    for run in (faulty, baseline):
        suffix = "" if run is faulty else " (fault-free run)"
        problems: list[str] = []
        paid = 0
        for payee, (old, new) in sorted(workload.account_changes.items()):
            confirmed = run.reconfirmed_at.get(payee)
            for payout_id, account, released_at, _failed in run.payouts_of_payee.get(payee, []):
                paid += 1
                if account != new:
                    problems.append(f"{payout_id} of {payee} to {account} (changed {old} → {new})")
                if confirmed is None or released_at < confirmed:
                    problems.append(f"{payout_id} of {payee} released {released_at} before confirmation")
            if confirmed is None:
                problems.append(f"{payee}: never eligible again after confirming {new}")
        owed = [
            inv
            for inv, payee in workload.payee_of.items()
            if payee in workload.account_changes and workload.expected[inv].paid
        ]
        if owed and not paid:
            problems.append(f"no payout to a changed account, though {len(owed)} invoices were owed")
        # The self-confirmation and the one of another account, sent before the good one, are
        # refused with their reason (and so cannot have ended the change early).
        problems += [
            f"confirmation {event_id}: refused {sorted(run.refusals.get(event_id, ()))}, meant {code}"
            for event_id, code in sorted(workload.refused_confirmations.items())
            if code not in run.refusals.get(event_id, set())
        ]
        checks.append(
            Check(
                "changed payout accounts paid only after confirmation, to the new account" + suffix,
                not problems,
                _first(problems)
                if problems
                else f"{len(workload.account_changes)} changed accounts, {paid} payouts, "
                "all after the confirmation and to the new account; "
                f"{len(workload.refused_confirmations)} bad confirmations refused with their reason",
            )
        )
        lapse_problems: list[str] = []
        for inv, override_id in sorted(workload.lapsing.items()):
            if override_id not in run.lapsed_holds.get(inv, set()):
                lapse_problems.append(f"{inv}: no hold.opened with lapsed_override_id {override_id}")
            if inv not in run.revoked:
                lapse_problems.append(f"{inv}: approval on {override_id} not revoked")
            if inv in run.released_invoices:
                lapse_problems.append(f"{inv}: in a payout after its override lapsed")
        checks.append(
            Check(
                "lapsed overrides reopened their hold and paid nothing" + suffix,
                not lapse_problems,
                _first(lapse_problems)
                if lapse_problems
                else f"{len(workload.lapsing)} overrides lapsed: hold reopened with lapsed_override_id, "
                "approval revoked, never in a payout",
            )
        )
    return checks
