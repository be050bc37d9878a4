"""`make demo`: run the demo scenario on a running stack; print what was matched, held, released, posted."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from shared.envelope import utcnow
from shared.observability import services_of, wait_for_invoice_trace, zipkin_trace_link
from shared.publish import Publisher
from shared.settings import Settings, get_settings
from shared.topics import (
    COMPLIANCE_ELIGIBILITY,
    DEADLETTER,
    IN_COMMANDS,
    IN_RAIL_EVENTS,
    INTAKE_DOCUMENTS,
    MATCHING_DECISIONS,
    OUT_EXCEPTIONS,
    OUT_INVOICE_RESPONSES,
    OUT_JOURNAL,
    OUT_PAYOUTS,
    OUT_REJECTIONS,
)
from testkit import documents as doc
from testkit.scenario import Scenario, build
from testkit.watch import TopicWatcher, WaitTimedOut
from tools.cli.bank import Answered, answer_outbox, gateway_ready
from tools.cli.console import make_console, shown

WATCHED = (
    OUT_REJECTIONS,
    INTAKE_DOCUMENTS,
    MATCHING_DECISIONS,
    OUT_EXCEPTIONS,
    OUT_PAYOUTS,
    OUT_JOURNAL,
    DEADLETTER,
    COMPLIANCE_ELIGIBILITY,
    OUT_INVOICE_RESPONSES,
)


@dataclass
class DemoReport:
    scenario: Scenario
    watcher: TopicWatcher
    problems: list[str] = field(default_factory=list)
    account_change: list[str] = field(default_factory=list)  # SPEC §13.3: what the demo showed
    bank_files: list[Answered] = field(default_factory=list)  # the round trip through ISO 20022 files

    def mine(self, invoice_id: str | None) -> bool:
        return invoice_id is not None and invoice_id in self.scenario.invoice_ids()


async def run_demo(
    settings: Settings, *, timeout_s: float = 90, console: Console | None = None
) -> DemoReport:
    console = console or Console()
    # Letters first: a tag of digits would merge with the invoice numbers' digit runs when normalised.
    tag = "r" + datetime.now(UTC).strftime("%m%d%H%M%S")
    scenario = build(tag, utcnow().date())
    watcher = TopicWatcher(settings, WATCHED)
    await watcher.start()
    report = DemoReport(scenario, watcher)
    try:
        async with Publisher(settings, source="concord-demo") as pub:
            with console.status("publishing payees, funding, purchase orders and receipts…"):
                for p in scenario.setup:
                    if p.event_type != "invoice.submitted":
                        await pub.publish_event(p.topic, p.key, p.event_type, p.data)
                # Any arrival order converges; waiting for the receipts just keeps the story short.
                receipts = sum(1 for p in scenario.setup if p.event_type.startswith("receipt.recorded"))
                await watcher.wait_until(
                    lambda: len(watcher.of("receipt.accepted")) >= receipts,
                    timeout_s,
                    f"intake to accept the {receipts} receipts",
                )
            with console.status("suppliers submit their invoices…"):
                for p in scenario.setup:
                    if p.event_type == "invoice.submitted":
                        await pub.publish_event(p.topic, p.key, p.event_type, p.data)
            with console.status("waiting for intake and matching…"):
                await watcher.wait_until(
                    lambda: _decided(report), timeout_s, "every invoice approved, held or rejected"
                )
            await _override(pub, report, watcher, timeout_s, console)
            await _account_change(pub, report, settings, timeout_s, console)
            with console.status("requesting a payout run…"):
                await pub.publish_event(
                    IN_COMMANDS,
                    f"demo-run-{tag}",
                    "payout_run.requested",
                    doc.payout_run(f"demo-run-{tag}", requested_by="treasury@example.com"),
                )
                await watcher.wait_until(
                    lambda: _paid_or_blocked(report),
                    timeout_s,
                    "the payout run to release or block every approved invoice",
                )
            await _expedite(pub, report, watcher, timeout_s, console)
            # With the bank gateway running, the bank answers through files (SPEC §12.4); else JSON.
            by_files = (
                not settings.topic_prefix  # the local stack; a test's own topic set has no gateway
                and gateway_ready()
                and await _settle_through_bank_files(report, settings, timeout_s, console)
            )
            with console.status("the payment rail settles what was released…"):
                for released in (
                    []
                    if by_files
                    else watcher.of(
                        "payout.released", lambda d: any(report.mine(i["invoice_id"]) for i in d["invoices"])
                    )
                ):
                    d = released.data
                    await pub.publish_event(
                        IN_RAIL_EVENTS,
                        d["payout_id"],
                        "payout.settled",
                        doc.payout_settled(
                            d["payout_id"],
                            rail_event_id=f"rail-{d['payout_id']}",
                            amount=d["amount"],
                            currency=d["currency"],
                            settled_at=utcnow().isoformat(),
                        ),
                    )
                await watcher.wait_until(
                    lambda: _settled_posted(report),
                    timeout_s,
                    "every settlement posted to the journal",
                    settle_s=2.0,
                )
                await watcher.wait_until(
                    lambda: _paid_answered(report), timeout_s, "a PD Invoice Response for every paid invoice"
                )
    except WaitTimedOut as timed_out:  # the story cannot go on; what it showed so far is reported
        report.problems.append(f"the demo stopped: {timed_out}")
    finally:
        await watcher.stop()
    _check(report)
    return report


async def _override(
    pub: Publisher, report: DemoReport, watcher: TopicWatcher, timeout_s: float, console: Console
) -> None:
    invoice_id = report.scenario.override_invoice
    with console.status("an AP lead overrides the price hold with evidence…"):
        await pub.publish_event(
            IN_COMMANDS,
            invoice_id,
            "hold.override_requested",
            doc.hold_override(
                f"ovr-{report.scenario.tag}",
                invoice_id,
                hold_reasons=["price_mismatch"],
                reason_code="price_agreed",
                justification="Supplier raised the price after a spec change; agreed.",
                requested_by="ap.clerk@example.com",
                approved_by="ap.lead@example.com",
                evidence=["mail://procurement/2026-11-18/monitor-price-change"],
            ),
        )
        await watcher.wait_until(
            lambda: bool(watcher.of("invoice.approved_to_pay", lambda d: d["invoice_id"] == invoice_id)),
            timeout_s,
            f"{invoice_id} approved to pay after its override",
        )


async def _expedite(
    pub: Publisher, report: DemoReport, watcher: TopicWatcher, timeout_s: float, console: Console
) -> None:
    """SPEC §13.2: the not-yet-due corporate invoice is paid at once on treasury's approval."""
    invoice_id = report.scenario.expedite_invoice
    with console.status("treasury expedites an invoice that is not due yet…"):
        await pub.publish_event(
            IN_COMMANDS,
            invoice_id,
            "payout.expedite_requested",
            {
                "expedite_id": f"exp-{report.scenario.tag}",
                "invoice_id": invoice_id,
                "requested_by": "ap.clerk@example.com",
                "approved_by": "treasurer@example.com",
                "justification": "Outside counsel stops work on the filing until the retainer is paid.",
            },
        )
        await watcher.wait_until(
            lambda: _expedited(report), timeout_s, f"the expedited {invoice_id} released"
        )


def _expedited(r: DemoReport) -> bool:
    return any(
        i["invoice_id"] == r.scenario.expedite_invoice and x.data.get("expedite")
        for x in r.watcher.of("payout.released")
        for i in x.data["invoices"]
    )


# SPEC §13.3 in the demo: only with a cooling-off the demo can wait for (make demo sets seconds).
DEMO_COOLING_OFF_MAX_S = 30.0


async def _account_change(
    pub: Publisher, report: DemoReport, settings: Settings, timeout_s: float, console: Console
) -> None:
    """A payee changes its payout account: ineligible (payout_account_unconfirmed) until treasury
    confirms it and the cooling-off has passed; the payout then carries the new account."""
    change, w = report.scenario.account_change, report.watcher
    hours = settings.account_change_cooling_off_hours
    if change is None or hours is None or hours * 3600 > DEMO_COOLING_OFF_MAX_S:
        report.account_change.append(
            "skipped: the cooling-off is not a few seconds (CONCORD_ACCOUNT_CHANGE_COOLING_OFF_HOURS)"
        )
        return
    payee, ref = change.key, change.data["payout_account_ref"]

    def eligibility(eligible: bool) -> bool:
        return bool(
            w.of(
                "payee.eligibility_changed",
                lambda d: (
                    d["payee_id"] == payee and d["payout_account_ref"] == ref and d["eligible"] is eligible
                ),
            )
        )

    with console.status("a contractor changes its payout account…"):
        started = asyncio.get_running_loop().time()
        await pub.publish_event(change.topic, change.key, change.event_type, change.data)
        await w.wait_until(
            lambda: eligibility(False),
            timeout_s,
            f"{payee} ineligible until its new account {ref} is confirmed",
        )
    report.account_change.append(f"{payee}: new account {ref} → payout_account_unconfirmed")
    with console.status("treasury confirms it once the cooling-off has passed…"):
        elapsed = asyncio.get_running_loop().time() - started
        await asyncio.sleep(max(0.0, hours * 3600 - elapsed) + 0.5)
        await pub.publish_event(
            IN_COMMANDS,
            payee,
            "payee.payout_account_confirmed",
            doc.payout_account_confirmation(payee, ref, confirmed_by="treasurer@example.com"),
        )
        await w.wait_until(
            lambda: eligibility(True), timeout_s, f"{payee} eligible with its confirmed account {ref}"
        )
    report.account_change.append(f"{payee}: {ref} confirmed by treasurer@example.com → eligible")


async def _settle_through_bank_files(
    report: DemoReport, settings: Settings, timeout_s: float, console: Console
) -> bool:
    """Play the bank: answer the gateway's pain.001 files until every payout of this run was in one."""
    from services.bank_gateway.domain.ids import end_to_end_id

    mine = {
        end_to_end_id(x.data["payout_id"])
        for x in report.watcher.of("payout.released")
        if any(report.mine(i["invoice_id"]) for i in x.data["invoices"])
    }
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    with console.status("the bank gateway writes a pain.001; the sandbox bank answers with files…"):
        while mine and loop.time() < deadline:
            for answered in answer_outbox(settings):
                if mine & set(answered.end_to_end_ids):
                    report.bank_files.append(answered)
                mine -= set(answered.end_to_end_ids)
            await asyncio.sleep(0.5)
    return not mine


def _decided(r: DemoReport) -> bool:
    s, w = r.scenario, r.watcher
    approved = {x.data["invoice_id"] for x in w.of("invoice.approved_to_pay")}
    held = {x.data["invoice_id"] for x in w.of("hold.opened")}
    rejected_events = {x.data["rejected_event_id"] for x in w.of("document.rejected")}
    return (
        s.expected_approved <= approved
        and set(s.expected_held) <= held
        and len(rejected_events) >= len(s.expected_rejected)
    )


def _paid_or_blocked(r: DemoReport) -> bool:
    w = r.watcher
    released = {i["invoice_id"] for x in w.of("payout.released") for i in x.data["invoices"]}
    blocked = {x.data["invoice_id"] for x in w.of("payout.blocked")}
    wanted = (r.scenario.expected_approved | {r.scenario.override_invoice}) - {r.scenario.blocked_invoice}
    wanted.add(r.scenario.discount_invoice)  # inside its discount window: paid less the discount
    not_due = r.scenario.expedite_invoice  # the run blocks it not_due; treasury expedites it next
    return wanted <= released and r.scenario.blocked_invoice in blocked and not_due in blocked


def _settled_posted(r: DemoReport) -> bool:
    payouts = {x.data["payout_id"] for x in r.watcher.of("payout.released")}
    posted = {
        x.data.get("links", {}).get("payout_id")
        for x in r.watcher.of("journal.entry_posted")
        if x.data.get("source_event_type") == "payout.settlement_recorded"
    }
    return bool(payouts) and payouts <= posted


def _paid_answered(r: DemoReport) -> bool:
    """Every invoice of the demo's settled payouts has had its PD (SPEC §12.3)."""
    paid = {
        i["invoice_id"]
        for x in r.watcher.of("payout.released")
        for i in x.data["invoices"]
        if r.mine(i["invoice_id"])
    }
    answered = {
        x.data["invoice_id"] for x in r.watcher.of("invoice_response.issued") if x.data["status"] == "PD"
    }
    return paid <= answered


def _check(r: DemoReport) -> None:
    if not _decided(r):
        r.problems.append("not every invoice was decided (approved, held or rejected) in time")
    if not _paid_or_blocked(r):
        r.problems.append("the payout run did not release or block every approved invoice in time")
    if not _expedited(r):
        r.problems.append("the expedited invoice was not released in time")
    if not _settled_posted(r):
        r.problems.append("not every settlement reached the journal in time")
    change = r.scenario.account_change
    if change is not None and r.account_change and not r.account_change[0].startswith("skipped"):
        ref = change.data["payout_account_ref"]
        paid = r.watcher.of("payout.released", lambda d: d["payee_id"] == change.key)
        if not paid or any(x.data.get("payout_account_ref") != ref for x in paid):
            r.problems.append(f"{change.key} was not paid to its confirmed new account {ref}")
    if r.watcher.of("deadletter.recorded"):
        r.problems.append(
            f"{len(r.watcher.of('deadletter.recorded'))} record(s) reached the deadletter topic"
        )


def print_report(r: DemoReport, console: Console) -> None:
    w = r.watcher
    docs = Counter(
        x.event_type
        for x in w.of_many(("purchase_order.version_in_force", "receipt.accepted", "invoice.accepted"))
    )
    t = Table(title=f"Concord demo — run {r.scenario.tag}", show_lines=False)
    t.add_column("stage")
    t.add_column("what", overflow="fold")
    t.add_column("count", justify="right")
    t.add_column("amount", justify="right")
    _row(t, "intake", "purchase orders in force", str(docs["purchase_order.version_in_force"]), "")
    _row(t, "intake", "receipts accepted", str(docs["receipt.accepted"]), "")
    _row(t, "intake", "invoices accepted", str(docs["invoice.accepted"]), "")
    for x in w.of("document.rejected"):
        _row(t, "intake", "rejected: " + ", ".join(f"{c['code']}" for c in x.data["reasons"]), "1", "")
    approved = w.of("invoice.approved_to_pay")
    _row(t, "matching", "approved to pay", str(len(approved)), _sum(approved, "payable_amount"))
    opened = Counter((x.data["reason"], x.data["queue"], x.data["owner"]) for x in w.of("hold.opened"))
    for (reason, queue, owner), n in sorted(opened.items()):
        _row(t, "matching", f"hold opened: {reason} → queue {queue} ({owner})", str(n), "")
    released = Counter(
        (x.data["reason"], x.data["released_by"], x.data.get("approved_by") or "")
        for x in w.of("hold.released")
    )
    for (reason, by, approver), n in sorted(released.items()):
        _row(
            t,
            "matching",
            f"hold released: {reason} by {by}" + (f" ({approver})" if approver else ""),
            str(n),
            "",
        )
    for hold in open_holds(w):
        _row(t, "matching", f"still held: {hold['invoice_id']} {hold['reason']} → {hold['queue']}", "1", "")
    for line in r.account_change:
        _row(t, "compliance", f"payout account change: {line}", "", "")
    payouts = w.of("payout.released")
    _row(t, "payout", "payouts released", str(len(payouts)), _sum(payouts, "amount"))
    for x in payouts:
        _row(
            t,
            "payout",
            f"  {x.data['payee_id']}: {len(x.data['invoices'])} invoice(s)",
            "",
            f"{x.data['amount']} {x.data['currency']}",
        )
    for x in payouts:
        for i in x.data["invoices"]:
            if i.get("discount"):
                _row(t, "payout", f"  early-payment discount on {i['invoice_id']}", "", f"{i['discount']}")
        if x.data.get("expedite"):
            e = x.data["expedite"]
            _row(t, "payout", f"  expedite {e['expedite_id']} approved by {e['approved_by']}", "", "")
    # An operator-requested run answers for every waiting invoice on the stack, earlier demo
    # runs' too: show this run's.
    for x in w.of("payout.blocked"):
        if x.data["invoice_id"] in r.scenario.invoice_ids():
            _row(t, "payout", f"blocked {x.data['invoice_id']}: {', '.join(x.data['reasons'])}", "1", "")
    entries = w.of("journal.entry_posted")
    by_source: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    counts: Counter[str] = Counter()
    for x in entries:
        source = x.data.get("source_event_type", "?")
        counts[source] += 1
        for line in x.data["lines"]:
            by_source[source][line["currency"]] += Decimal(line.get("debit") or "0")
    _row(t, "ledger", "journal entries posted (all balanced)", str(len(entries)), "")
    for source in sorted(by_source):
        debits = ", ".join(f"{v} {c}" for c, v in sorted(by_source[source].items()))
        _row(t, "ledger", f"  from {source}", str(counts[source]), f"debits {debits}")
    for f in r.bank_files:
        _row(t, "bank", f"pain.001 {f.msg_id} → pain.002 + camt.054", str(f.accepted + f.rejected), "")
        _row(t, "bank", f"  booked: {f.accepted}, rejected AC01: {f.rejected}", "", "")
    dead = w.of("deadletter.recorded")
    _row(t, "deadletter", "records", str(len(dead)), "")
    _peppol_rows(r, t)
    console.print(t)
    print_invoice_responses(r, console)
    if r.problems:
        for p in r.problems:
            console.print(Text.assemble(("problem:", "red"), " ", shown(p)))
    else:
        console.print(
            "[green]every invoice ended where it should: matched, held, released, blocked and posted[/green]"
        )


def _peppol_rows(r: DemoReport, t: Table) -> None:
    """SPEC §12.2: the PO that came as a Peppol Order, its UBL ReceiptAdvice, and its invoice."""
    s, w = r.scenario, r.watcher
    if not s.peppol_po:
        return
    in_force = w.of("purchase_order.version_in_force", lambda d: d["po"]["po_number"] == s.peppol_po)
    receipts = w.of("receipt.accepted", lambda d: d["po_number"] == s.peppol_po)
    paid = [
        f"{i['amount']} {x.data['currency']}"
        for x in w.of("payout.released")
        for i in x.data["invoices"]
        if i["invoice_id"] == s.peppol_invoice
    ]
    _row(t, "peppol", f"Order {s.peppol_po} (UBL) → PO in force", str(len(in_force)), "")
    qty = ", ".join(f"line {ln['po_line_id']} × {ln['quantity']}" for x in receipts for ln in x.data["lines"])
    _row(t, "peppol", f"ReceiptAdvice (UBL) → receipt accepted: {qty}", str(len(receipts)), "")
    _row(t, "peppol", f"invoice {s.peppol_invoice} → paid", str(len(paid)), ", ".join(paid))


def print_invoice_responses(r: DemoReport, console: Console) -> None:
    """What each supplier was told, in order (SPEC §12.3: concord.out.invoice-responses)."""
    told: dict[str, list[str]] = defaultdict(list)
    documents: Counter[str] = Counter()
    for x in r.watcher.of("invoice_response.issued", lambda d: r.mine(d["invoice_id"])):
        d = x.data
        why = ", ".join(f"{c['concord']} {c['code']}/{c['action']}" for c in d.get("reasons", []))
        told[d["invoice_id"]].append(d["status"] + (f" ({why})" if why else ""))
        documents[d["invoice_id"]] += d.get("document") is not None
    t = Table(title="Invoice Responses to suppliers (Peppol BIS Invoice Response 3)")
    t.add_column("invoice")
    t.add_column("statuses, in order", overflow="fold")
    t.add_column("UBL documents", justify="right")
    for invoice_id in sorted(told):
        _row(t, invoice_id, " → ".join(told[invoice_id]), str(documents[invoice_id]))
    console.print(t)
    if told and not any(documents.values()):
        console.print("(no UBL document: the demo's party ids are not Peppol identifiers <schemeID>:<value>)")


def _row(table: Table, *values: object) -> None:
    table.add_row(*(shown(v) for v in values))


def open_holds(w: TopicWatcher) -> list[dict[str, Any]]:
    """Holds opened and not released (by rematch, override or correction) by the end of the demo."""
    released = {x.data["hold_id"] for x in w.of("hold.released")}
    return [x.data for x in w.of("hold.opened") if x.data["hold_id"] not in released]


def _sum(items: list, key: str) -> str:  # type: ignore[type-arg]
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for x in items:
        totals[x.data.get("currency", "?")] += Decimal(x.data[key])
    return ", ".join(f"{v} {c}" for c, v in sorted(totals.items()))


# The services whose spans make one invoice's trace (SPEC §14.1).
TRACED = ("intake", "matching", "payout_release", "ledger")


def print_observability(r: DemoReport, settings: Settings, console: Console) -> None:
    """Where to look next: one paid invoice's trace in Zipkin, and Prometheus (SPEC §14.1)."""
    invoice_id = sorted(r.scenario.expected_approved - {r.scenario.blocked_invoice})[0]
    try:
        trace = wait_for_invoice_trace(settings.zipkin_url, invoice_id, TRACED)
    except OSError as exc:
        console.print(f"traces: Zipkin does not answer at {settings.zipkin_url} ({shown(exc)})")
        return _print_prometheus(settings, console)
    if trace is not None:
        link = zipkin_trace_link(settings.zipkin_url, trace)
        console.print(f"trace of invoice {shown(invoice_id)}: {link}")
        console.print(
            f"  ({len(trace)} spans from {', '.join(sorted(services_of(trace)))}; every invoice: "
            f"{settings.zipkin_url}/api/v2/traces?annotationQuery=invoice_id=<id>)"
        )
    else:
        console.print(
            f"traces: no complete trace of invoice {shown(invoice_id)} in Zipkin at {settings.zipkin_url} "
            "(the services export with CONCORD_OTEL_EXPORTER=zipkin, deploy/services.sh's default)"
        )
    _print_prometheus(settings, console)


def _print_prometheus(settings: Settings, console: Console) -> None:
    console.print(f"metrics and alerts: {settings.prometheus_url}/alerts (targets: /targets)")


def print_console_hint(r: DemoReport, console: Console) -> None:
    """Where a newcomer clears the hold the demo leaves open, with two people (SPEC §14.2)."""
    from services.console.config import ConsoleSettings

    port = ConsoleSettings().console_port
    held = ", ".join(sorted(h["invoice_id"] for h in open_holds(r.watcher)))
    console.print(
        f"console: http://127.0.0.1:{port}/ — still held: {shown(held or 'nothing')}; "
        "request the override as ap.clerk@example.com / local-dev-ap.clerk, "
        "approve it as ops.lead@example.com / local-dev-ops.lead"
    )


def main() -> int:
    console = make_console()
    settings = get_settings()
    report = asyncio.run(run_demo(settings, console=console))
    print_report(report, console)
    print_observability(report, settings, console)
    print_console_hint(report, console)
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
