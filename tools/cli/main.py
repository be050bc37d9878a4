"""`concord`: the operator CLI. Errors are one clear sentence, never a stack trace."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import Callable, Coroutine
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.text import Text

from services.ledger import queries as ledger_queries
from services.ledger.queries import Nec1099Total, Reconciliation, Trace, Violation
from shared.envelope import utcnow
from shared.kafka_auth import as_principal
from shared.production import guard_process, signing_secrets
from shared.settings import Settings, get_settings
from shared.topics import BY_NAME
from tools.cli import commands, views
from tools.cli.console import make_console, shown
from tools.cli.dlq import ReplayRefused, is_inbound, read_deadletters, replay
from tools.cli.readers import CliDatabases, NotReachable, OpenHoldRow, connect, open_holds, parse_age

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
console = make_console()
err = make_console(stderr=True)

app = typer.Typer(
    help="Operate Concord: the stack, holds, payout runs, traces, the ledger, the deadletter topic.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
holds_app = typer.Typer(help="Matching holds: list them, override them with evidence.", no_args_is_help=True)
invoice_app = typer.Typer(help="Invoices.", no_args_is_help=True)
payout_app = typer.Typer(help="Payout runs.", no_args_is_help=True)
ledger_app = typer.Typer(help="The journal.", no_args_is_help=True)
dlq_app = typer.Typer(help="The deadletter topic.", no_args_is_help=True)
app.add_typer(holds_app, name="holds")
app.add_typer(invoice_app, name="invoice")
app.add_typer(payout_app, name="payout")
app.add_typer(ledger_app, name="ledger")
app.add_typer(dlq_app, name="dlq")
payee_app = typer.Typer(help="Payees: confirm a changed payout account (SPEC §13.3).", no_args_is_help=True)
app.add_typer(payee_app, name="payee")


@app.callback()
def _refuse_unsafe_in_production() -> None:
    """SPEC §11: with CONCORD_ENV=production the CLI refuses local defaults (exit 2, one line)."""
    databases = CliDatabases()
    guard_process(
        get_settings(),
        secrets=signing_secrets(get_settings(), ["ops"]),  # commands and deadletter replays
        dsns={
            "CONCORD_LEDGER_DB_DSN": databases.ledger_db_dsn,
            "CONCORD_MATCHING_DB_DSN": databases.matching_db_dsn,
        },
    )


class CliError(Exception):
    """A failure the operator can act on; its message is the whole story."""


def run(coro: Callable[[], Coroutine[Any, Any, T]]) -> T:
    try:
        return asyncio.run(coro())
    except (CliError, NotReachable) as exc:
        _error(exc)
        raise typer.Exit(2) from None
    except ReplayRefused as exc:
        _error(exc, "replay refused")
        raise typer.Exit(2) from None
    except (OSError, ConnectionError) as exc:
        _error(f"cannot reach the stack ({exc.__class__.__name__}: {exc}); is it up? (make up)")
        raise typer.Exit(2) from None
    except Exception as exc:  # the last line of defence: one sentence, not a traceback
        name = exc.__class__.__name__
        if "Kafka" in name or "NoBrokers" in name:
            bootstrap = get_settings().kafka_bootstrap
            _error(f"cannot reach Kafka at {bootstrap}; is it up? (make up)")
        else:
            _error(f"{name}: {exc}")
        raise typer.Exit(2) from None


def cli_settings() -> Settings:
    """The CLI publishes and reads as `ops` (SPEC §11) unless CONCORD_KAFKA_USERNAME says otherwise."""
    settings = get_settings()
    return settings if settings.kafka_username else as_principal(settings, "ops", settings.kafka_password)


def _error(message: object, label: str = "error") -> None:
    """One line on stderr; the message may quote stored or typed text, so it is shown, not parsed."""
    err.print(Text.assemble((f"{label}:", "red"), " ", shown(message)))


def _script(*args: str) -> None:
    result = subprocess.run([str(ROOT / "deploy" / args[0]), *args[1:]], cwd=ROOT)
    if result.returncode != 0:
        err.print(
            f"[red]error:[/red] deploy/{args[0]} failed with exit code {result.returncode}; see .cache/logs/"
        )
        raise typer.Exit(result.returncode)


@app.command()
def up() -> None:
    """Start Kafka, PostgreSQL and the five services (only what is not running)."""
    _script("up.sh")


@app.command()
def down(purge: bool = typer.Option(False, help="Also delete Kafka's and PostgreSQL's data.")) -> None:
    """Stop the services, Kafka and PostgreSQL."""
    _script("down.sh", *(["--purge"] if purge else []))


@app.command()
def demo() -> None:
    """Start the stack and run the demo scenario, printing what was matched, held, released and posted."""
    from tools.cli.demo import print_report, run_demo

    _script("up.sh")
    report = run(lambda: run_demo(get_settings(), console=console))  # upstream, rail and ops
    print_report(report, console)
    if report.problems:
        raise typer.Exit(1)


@app.command("console")
def serve_console() -> None:
    """Serve the web console on 127.0.0.1:8090 (CONCORD_CONSOLE_PORT) until Ctrl-C; `make up` runs it too."""
    from services.console.__main__ import main as serve

    serve()


@holds_app.command("list")
def holds_list(
    queue: str | None = typer.Option(None, help="Only this queue: ap, ops, procurement, no_po_review."),
    older_than: str | None = typer.Option(None, help="Only holds open longer than this: 2d, 12h, 90m."),
) -> None:
    """List the open matching holds, oldest first, with owner, due date and next action."""
    try:
        age = parse_age(older_than) if older_than else None
    except ValueError as exc:
        _error(exc)
        raise typer.Exit(2) from None
    now = utcnow()

    async def go() -> list[OpenHoldRow]:
        async with connect(CliDatabases().matching_db_dsn, "matching") as conn:
            return await open_holds(conn, queue=queue, opened_before=now - age if age else None)

    views.print_holds(console, run(go), now)


@holds_app.command("override")
def holds_override(
    invoice_id: str,
    requested_by: str = typer.Option(..., help="Who asks for the override."),
    approved_by: str = typer.Option(..., help="Who approves it: must differ and hold a role for the queue."),
    evidence: list[str] = typer.Option(..., help="Evidence reference (repeatable; at least one)."),
    justification: str = typer.Option(..., help="Why the hold may be released."),
    reason_code: str = typer.Option("approved_exception", help="Short reason code."),
    hold_reason: list[str] = typer.Option([], help="Hold reason to release (repeatable); none means all."),
    wait: float = typer.Option(15.0, help="Seconds to wait for matching's answer (0: do not wait)."),
) -> None:
    """Request an override of an invoice's holds; shows whether matching released or refused it."""
    override_id = f"ovr-{uuid.uuid4().hex[:12]}"
    data = {
        "override_id": override_id,
        "invoice_id": invoice_id,
        "hold_reasons": hold_reason or "all",
        "reason_code": reason_code,
        "justification": justification,
        "requested_by": requested_by,
        "approved_by": approved_by,
        "evidence": evidence,
    }
    outcome = run(
        lambda: commands.send_and_watch(
            cli_settings(),
            invoice_id,
            "hold.override_requested",
            data,
            wait,
            console,
            lambda s: (
                s.data.get("override_id") == override_id
                or (s.event_type == "invoice.approved_to_pay" and s.data.get("invoice_id") == invoice_id)
            ),
        )
    )
    commands.print_outcome(console, f"override {override_id}", outcome)


@invoice_app.command("rematch")
def invoice_rematch(
    invoice_id: str,
    requested_by: str = typer.Option(..., help="Who asks."),
    wait: float = typer.Option(10.0, help="Seconds to wait for a decision (0: do not wait)."),
) -> None:
    """Ask matching to re-evaluate an invoice now."""
    outcome = run(
        lambda: commands.send_and_watch(
            cli_settings(),
            invoice_id,
            "invoice.rematch_requested",
            {"invoice_id": invoice_id, "requested_by": requested_by},
            wait,
            console,
            lambda s: s.data.get("invoice_id") == invoice_id,
        )
    )
    commands.print_outcome(console, f"rematch of {invoice_id}", outcome)


@payout_app.command("run")
def payout_run(
    requested_by: str = typer.Option(..., help="Who asks for the run."),
    legal_entity: str | None = typer.Option(None, help="Only this legal entity."),
    currency: str | None = typer.Option(None, help="Only this currency."),
    wait: float = typer.Option(10.0, help="Seconds to watch the run's releases and blocks."),
) -> None:
    """Request a payout run now; a live table shows what it releases and blocks."""
    run_id = f"run-ops-{uuid.uuid4().hex[:10]}"
    data: dict[str, Any] = {"run_id": run_id, "requested_by": requested_by}
    if legal_entity:
        data["legal_entity"] = legal_entity
    if currency:
        data["currency"] = currency
    outcome = run(
        lambda: commands.send_and_watch(
            cli_settings(),
            run_id,
            "payout_run.requested",
            data,
            wait,
            console,
            lambda s: s.data.get("run_id") == run_id,
            live=True,
        )
    )
    if not outcome:  # otherwise the live table already shows what came back
        commands.print_outcome(console, f"payout run {run_id}", outcome)


@payout_app.command("expedite")
def payout_expedite(
    invoice_id: str,
    requested_by: str = typer.Option(..., help="Who asks for the urgent payout."),
    approved_by: str = typer.Option(..., help="Who approves it: someone else, with the treasury role."),
    justification: str = typer.Option(..., help="Why it cannot wait for its due date or the next run."),
    wait: float = typer.Option(15.0, help="Seconds to wait for the release or the refusal (0: do not wait)."),
) -> None:
    """Release one approved invoice now (SPEC §13.2): every gate but automation and due date still
    applies; shows the payout released or every reason the expedite was refused."""
    expedite_id = f"exp-{uuid.uuid4().hex[:12]}"
    data = {
        "expedite_id": expedite_id,
        "invoice_id": invoice_id,
        "requested_by": requested_by,
        "approved_by": approved_by,
        "justification": justification,
    }
    outcome = run(
        lambda: commands.send_and_watch(
            cli_settings(),
            invoice_id,
            "payout.expedite_requested",
            data,
            wait,
            console,
            lambda s: (
                s.data.get("expedite_id") == expedite_id
                or (s.data.get("expedite") or {}).get("expedite_id") == expedite_id
            ),
        )
    )
    commands.print_outcome(console, f"expedite {expedite_id}", outcome)


@app.command()
def trace(
    ref: str = typer.Argument(..., help="A journal entry id, invoice id, payout id or PO number."),
) -> None:
    """Trace money back to documents and people: PO version, receipts, holds, overrides, approvals, payout."""

    async def go() -> Trace:
        async with connect(CliDatabases().ledger_db_dsn, "ledger") as conn:
            return await ledger_queries.trace(conn, ref)

    result = run(go)
    views.print_trace(console, result)
    if not result.found:
        raise typer.Exit(1)


@app.command()
def reconcile(
    requisition_age: int = typer.Option(30, help="Days after which an unconverted requisition is listed."),
) -> None:
    """Per PO ordered/received/approved/paid, GRNI and in-transit ageing, open holds, stale requisitions."""

    async def go() -> Reconciliation:
        async with connect(CliDatabases().ledger_db_dsn, "ledger") as conn:
            return await ledger_queries.reconcile(conn, requisition_max_age=timedelta(days=requisition_age))

    result = run(go)
    views.print_reconciliation(console, result)


@ledger_app.command("check")
def ledger_check() -> None:
    """Prove the journal's invariants; exits 1 if any is violated."""

    async def go() -> list[Violation]:
        async with connect(CliDatabases().ledger_db_dsn, "ledger") as conn:
            return await ledger_queries.check_invariants(conn)

    violations = run(go)
    views.print_violations(console, violations)
    if violations:
        raise typer.Exit(1)


@ledger_app.command("1099")
def ledger_1099(
    year: int = typer.Option(..., help="Calendar year."),
    threshold: str = typer.Option("600.00", help="Report payees paid at least this much (USD)."),
) -> None:
    """1099-NEC totals per US payee for a year: payouts settled minus returned."""
    try:
        limit = Decimal(threshold)
    except ArithmeticError:
        _error(f"the threshold {threshold!r} is not a decimal amount")
        raise typer.Exit(2) from None

    async def go() -> list[Nec1099Total]:
        async with connect(CliDatabases().ledger_db_dsn, "ledger") as conn:
            return await ledger_queries.totals_1099_nec(conn, year, limit)

    views.print_1099(console, year, threshold, run(go))


@dlq_app.command("list")
def dlq_list(limit: int = typer.Option(50, help="Show at most this many, newest last.")) -> None:
    """List the records on the deadletter topic: origin, error, and the event id to replay."""
    views.print_deadletters(console, run(lambda: read_deadletters(cli_settings())), limit)


@dlq_app.command("replay")
def dlq_replay(
    deadletter_id: str,
    value_file: Path | None = typer.Option(
        None, help="Replay this fixed record value instead of the original (inbound topics only)."
    ),
    requested_by: str = typer.Option("concord-cli", help="Who asks (internal topics' replay command)."),
) -> None:
    """Replay a deadlettered record; the consumers' inbox makes it exactly-once.

    A record of an inbound topic (concord.in.*) is published again to it. A record of an internal
    topic is replayed by the service that deadlettered it, on a signed deadletter.replay_requested
    (one per service that deadlettered it): nobody but its owner writes an internal topic."""

    fixed = value_file.read_bytes() if value_file is not None else None

    async def go() -> list[str]:
        settings = cli_settings()
        entries = [e for e in await read_deadletters(settings) if e.event_id == deadletter_id]
        if not entries:
            raise CliError(f"no deadletter record with id {deadletter_id} (see `concord dlq list`)")
        origin = BY_NAME.get(settings.unprefixed(entries[0].origin["topic"]))
        if origin is not None and is_inbound(origin):
            entries = entries[:1]  # one record again on its topic reaches every consumer of it
        return [await replay(settings, e, fixed, requested_by=requested_by) for e in entries]

    for where in run(go):
        console.print(Text.assemble("replayed ", shown(deadletter_id), " to ", shown(where)))


@app.command()
def asyncapi(write: Path | None = typer.Option(None, help="Write the document to this file.")) -> None:
    """Print the AsyncAPI document FastStream generates for every service and topic."""
    from tools.cli.contract import asyncapi_document

    doc = asyncapi_document()
    if write is None:
        sys.stdout.write(doc)
    else:
        write.write_text(doc)
        console.print(Text.assemble("wrote ", shown(write)))


@payee_app.command("confirm-account")
def payee_confirm_account(
    payee_id: str,
    payout_account_ref: str,
    confirmed_by: str = typer.Option(..., help="Who confirms: not the person who changed the account."),
    wait: float = typer.Option(5.0, help="Seconds to wait for a refusal (0: do not wait)."),
) -> None:
    """Confirm a payee's changed payout account (signed); the payee is paid again once the
    cooling-off since the change has passed too. A refusal says why."""
    from shared.topics import DEADLETTER, OUT_REJECTIONS

    data = {"payee_id": payee_id, "payout_account_ref": payout_account_ref, "confirmed_by": confirmed_by}
    outcome = run(
        lambda: commands.send_and_watch(
            cli_settings(),
            payee_id,
            "payee.payout_account_confirmed",
            data,
            wait,
            console,
            # document.rejected is keyed like the command (payee_id); a deadletter names it in origin
            lambda s: s.key == payee_id or payee_id in str(s.data),
            answers=(OUT_REJECTIONS, DEADLETTER),
        )
    )
    if outcome:
        commands.print_outcome(console, f"confirmation of {payout_account_ref}", outcome)
        raise typer.Exit(1)
    console.print(
        Text.assemble(
            "no refusal: ",
            shown(payout_account_ref),
            " is confirmed for ",
            shown(payee_id),
            " (eligible once the cooling-off since the change has passed)",
        )
    )


bank_app = typer.Typer(help="The local sandbox bank (SPEC §12.4).", no_args_is_help=True)
app.add_typer(bank_app, name="bank")


@bank_app.command("answer")
def bank_answer() -> None:
    """Answer every pain.001 in the gateway's outbox with a pain.002 and a camt.054 in its inbox."""
    from tools.cli.bank import answer_outbox

    answered = answer_outbox(cli_settings())
    if not answered:
        console.print("no pain.001 file waiting in the outbox")
    for a in answered:
        console.print(
            Text.assemble(
                "answered ", shown(a.file), f": {a.accepted} accepted and booked, {a.rejected} rejected AC01"
            )
        )


def main() -> None:
    app()


if __name__ == "__main__":
    main()
