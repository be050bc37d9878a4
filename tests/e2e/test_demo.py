"""The demo scenario end to end: five service processes, real Kafka, real PostgreSQL."""

from __future__ import annotations

import asyncio
import sys
from decimal import Decimal

import pytest
from rich.console import Console

from services.ledger.queries import check_invariants
from shared.db import connect
from tests.e2e.conftest import Stack
from tests.kafka_support import settings_env
from tests.support import ROOT
from tools.cli.demo import open_holds, print_report, run_demo

pytestmark = pytest.mark.e2e


async def test_demo_scenario_matches_holds_releases_blocks_and_posts(stack: Stack) -> None:
    console = Console(record=True, width=140)
    report = await run_demo(stack.settings, timeout_s=60, console=console)
    print_report(report, console)
    assert report.problems == [], console.export_text()
    w, s = report.watcher, report.scenario

    approved = {x.data["invoice_id"] for x in w.of("invoice.approved_to_pay")}
    on_terms = {s.discount_invoice, s.expedite_invoice}
    assert approved == s.expected_approved | {s.override_invoice} | on_terms
    still_held = {h["invoice_id"]: h["reason"] for h in open_holds(w)}
    assert still_held == {i: r for i, r in s.expected_held.items() if i != s.override_invoice}
    assert {h["queue"] for h in open_holds(w)} == {"ops"}  # qty over received: the warehouse, not AP
    [override] = [x.data for x in w.of("hold.released") if x.data["released_by"] == "override"]
    assert (override["invoice_id"], override["approved_by"]) == (s.override_invoice, "ap.lead@example.com")

    rejected_codes = {c["code"] for x in w.of("document.rejected") for c in x.data["reasons"]}
    assert set(s.expected_rejected.values()) <= rejected_codes

    paid = {
        i["invoice_id"]: Decimal(i["amount"]) for x in w.of("payout.released") for i in x.data["invoices"]
    }
    assert set(paid) == (s.expected_approved | {s.override_invoice} | on_terms) - {s.blocked_invoice}
    blocked = {x.data["invoice_id"]: x.data["reasons"] for x in w.of("payout.blocked")}
    assert blocked[s.blocked_invoice] == ["payee_ineligible", "tax_form_missing"]
    payable = {
        x.data["invoice_id"]: Decimal(x.data["payable_amount"]) for x in w.of("invoice.approved_to_pay")
    }
    discount = {
        i["invoice_id"]: Decimal(i.get("discount") or 0)
        for x in w.of("payout.released")
        for i in x.data["invoices"]
    }
    assert all(paid[i] + discount[i] == payable[i] for i in paid), (
        "a payout pays the payable less any discount"
    )
    # SPEC §13.5: corporate on 2/10 NET30, inside the window: 2 % off; nothing else discounted
    assert {i: d for i, d in discount.items() if d} == {s.discount_invoice: Decimal("100.00")}
    assert blocked[s.expedite_invoice] == ["not_due"]
    [expedited] = [x.data for x in w.of("payout.released") if x.data.get("expedite")]
    assert [i["invoice_id"] for i in expedited["invoices"]] == [s.expedite_invoice]
    assert expedited["expedite"]["approved_by"] == "treasurer@example.com"
    # One payout per (payee, currency, legal entity, funding account): the German invoices travel
    # together; the expedite is a single-invoice run of its own.
    assert len(w.of("payout.released")) == 3
    # SPEC §13.3: the US contractor's new account held the payee, then was confirmed and paid to.
    change = s.account_change
    assert change is not None
    ref = change.data["payout_account_ref"]
    states = [
        (x.data["eligible"], x.data["reasons"])
        for x in w.of("payee.eligibility_changed", lambda d: d["payee_id"] == change.key)
        if x.data["payout_account_ref"] == ref
    ]
    assert states == [(False, ["payout_account_unconfirmed"]), (True, [])]
    [to_us] = [x.data for x in w.of("payout.released") if x.data["payee_id"] == change.key]
    assert to_us["payout_account_ref"] == ref

    for entry in w.of("journal.entry_posted"):
        debits = sum(Decimal(line.get("debit") or 0) for line in entry.data["lines"])
        credits = sum(Decimal(line.get("credit") or 0) for line in entry.data["lines"])
        assert debits == credits, entry.data


async def concord(stack: Stack, *args: str) -> tuple[int, str]:
    """Run the operator CLI as a user would, against this test stack."""
    env = settings_env(stack.settings)
    env["CONCORD_LEDGER_DB_DSN"] = stack.dsns["ledger"]
    env["CONCORD_MATCHING_DB_DSN"] = stack.dsns["matching"]
    env["COLUMNS"] = "400"  # one table row per line, so assertions read whole cells
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.cli",
        *args,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_after_the_demo_the_ledger_proves_its_invariants_and_traces_the_override(stack: Stack) -> None:
    report = await run_demo(stack.settings, timeout_s=60, console=Console(width=140))
    assert report.problems == []
    conn = await connect(stack.dsns["ledger"])
    try:
        assert await check_invariants(conn) == []
    finally:
        await conn.close()

    code, out = await concord(stack, "ledger", "check")
    assert code == 0 and "VIOLATED" not in out, out
    code, out = await concord(stack, "trace", report.scenario.override_invoice)
    assert code == 0, out
    for shown in (
        "ap.lead@example.com",
        "ap.clerk@example.com",
        "price_agreed",
        "monitor-price-change",
        "procurement.lead@example.com",
        "settled",
        # SPEC §13.1: the approval limit that allowed the PO's approval
        "within approval_limits.procurement.lead@example.com.purchase_order[0]",
    ):
        assert shown in out, (shown, out)
    # SPEC §13.3: a confirmation of an account the payee does not have is refused, and says why
    change = report.scenario.account_change
    assert change is not None
    code, out = await concord(
        stack,
        "payee",
        "confirm-account",
        change.key,
        "tok-not-theirs",
        "--confirmed-by",
        "treasurer@example.com",
    )
    assert code == 1 and "payout_account_not_current" in out, out
    code, out = await concord(stack, "holds", "list", "--queue", "ops")
    assert code == 0 and "qty_over_received" in out, out
    code, out = await concord(stack, "trace", "no-such-thing")
    assert code == 1 and "nothing in the ledger answers" in out


async def test_after_the_demo_trace_shows_the_expedite_and_reconcile_the_discount(stack: Stack) -> None:
    report = await run_demo(stack.settings, timeout_s=60, console=Console(width=140))
    assert report.problems == []
    s = report.scenario
    code, out = await concord(stack, "trace", s.expedite_invoice)
    assert code == 0, out
    for shown in (f"exp-{s.tag}", "treasurer@example.com", "Outside counsel stops work", "NET30"):
        assert shown in out, (shown, out)
    code, out = await concord(stack, "reconcile")
    assert code == 0, out
    assert "invoices by due date" in out and "early-payment discounts taken" in out
    assert any(s.discount_invoice in line and "100.00 EUR" in line for line in out.splitlines()), out
    # The operator CLI signs the command; payout_release refuses it with every reason.
    code, out = await concord(
        stack,
        "payout",
        "expedite",
        s.expedite_invoice,
        "--requested-by",
        "ap.clerk@example.com",
        "--approved-by",
        "ap.clerk@example.com",
        "--justification",
        "again, please",
        "--wait",
        "30",
    )
    assert code == 0, out
    assert "expedite.refused" in out, out
    for reason in ("self_approval", "approver_not_treasury", "already_released"):
        assert reason in out, (reason, out)
