"""The chaos report as rich tables: the faults injected and the invariants checked."""

from __future__ import annotations

from collections import defaultdict

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from chaos.run import ChaosReport
from chaos.workload import PHASES


def print_report(report: ChaosReport, console: Console) -> None:
    w, cfg = report.workload, report.config
    faults = Table(title=f"Faults injected (seed {cfg.seed}, {len(w.expected)} invoices)")
    for col in ("kind", "target", "count", "when (s after the faulty run started; took)"):
        faults.add_column(col, overflow="fold")
    grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
    for f in report.faults:
        if f.kind.startswith("exited"):
            grouped[(f.kind, f.target)].append(f"{f.at_s:.0f} (exit code {f.took_s:.0f})")
        else:
            took = f" ({f.took_s:.0f}s)" if f.took_s >= 1 else ""
            grouped[(f.kind, f.target)].append(
                f"{f.at_s:.0f}{took}" + (escape(f" [{f.note}]") if f.note else "")
            )
    for (kind, target), whens in sorted(grouped.items()):
        faults.add_row(kind, target, str(len(whens)), ", ".join(whens))
    inbound = [r for r in w.records if not r.bad]
    faults.add_row(
        "duplicate delivery",
        "every inbound record",
        str(len(w.records)),
        f"each published twice, same event_id; {cfg.duplicate_delay_share:.0%} of second copies delayed "
        "to the next phase",
    )
    faults.add_row(
        "rail replay",
        "every rail answer",
        str(report.faulty.rail_answers),
        "sent twice with one event_id, plus once more with a fresh event_id and the same rail_event_id",
    )
    faults.add_row(
        "rail failure",
        "payouts of fail-first invoices",
        str(len(w.fail_first)),
        "failed, re-released, settled",
    )
    faults.add_row(
        "bad input",
        "garbage, unknown types, forged signatures, repeated JSON keys, wrong keys",
        str(len(w.bad_values)),
        "phase B",
    )
    faults.add_row("workload", "inbound records (good)", str(len(inbound)), "phases " + "/".join(PHASES))
    faults.add_row(
        "account change",
        "payees whose payout account changed (SPEC §13.3)",
        str(len(w.account_changes)),
        "changed in phase A, confirmed in phase E (some first self-confirmed or for another account)",
    )
    faults.add_row(
        "override lapse",
        "overrides approved, then their PO price amended (SPEC §13.4)",
        str(len(w.lapsing)),
        "override in phase C, amendment in phase D",
    )
    console.print(faults)

    checks = Table(title="Invariants checked")
    checks.add_column("name")
    checks.add_column("result")
    checks.add_column("detail", overflow="fold")
    for c in report.checks:
        result = "[green]pass[/]" if c.ok else ("[red]FAIL[/]" if c.blocking else "[yellow]warn[/]")
        checks.add_row(c.name, result, c.detail)
    console.print(checks)
    for run in (report.baseline, report.faulty):
        notes = "; ".join(run.notes)
        console.print(
            f"{run.label}: {run.duration_s:.0f}s, {sum(run.counts.values())} distinct output events"
            + (f" — {notes}" if notes else "")
        )
    verdict = "[green]all invariants hold[/]" if report.ok else "[red]invariants violated[/]"
    console.print(f"chaos run took {report.duration_s:.0f}s: {verdict}")
