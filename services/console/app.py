"""The console's pages (SPEC §14.2): routes only translate a request into reads and one decision.

Every page needs a signed-in person (a signed session cookie); every form carries the session's
CSRF token and a POST without it is answered 403. The signed-in person — never a form field — is
requested_by / approved_by. The console changes nothing in a service except by the signed
`hold.override_requested` (and deadletter replays) it publishes as `ops`.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import asyncpg
import structlog
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from services.console import readers, store
from services.console.config import ConsoleConfig
from services.console.overrides import (
    REQUEST_ID,
    Draft,
    OpenHold,
    evidence_lines,
    problems_with_decision,
    problems_with_request,
)
from services.ledger import queries as ledger_queries
from services.matching.domain import QUEUES, overridable
from shared.db import create_pool, migrate
from shared.envelope import utcnow
from shared.publish import Publisher
from shared.topics import BY_NAME, IN_COMMANDS
from tools.cli.dlq import ReplayRefused, is_inbound, read_deadletters, replay
from tools.cli.readers import NotReachable, connect, parse_age

log = structlog.get_logger(__name__)
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
OVERRIDE_REQUESTED = "hold.override_requested"


class CsrfRefused(Exception):
    pass


# --- session helpers ----------------------------------------------------------------------------


def signed_in(request: Request) -> str | None:
    user = request.session.get("user")
    return user if isinstance(user, str) else None


def csrf_token(request: Request) -> str:
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


async def checked_form(request: Request) -> FormData:
    """The POSTed form, if it carries this session's CSRF token; otherwise CsrfRefused (403)."""
    form = await request.form()
    sent = form.get("csrf_token")
    expected = request.session.get("csrf")
    if (
        not isinstance(sent, str)
        or not isinstance(expected, str)
        or not secrets.compare_digest(sent, expected)
    ):
        raise CsrfRefused
    return form


def flash(request: Request, kind: str, text: str) -> None:
    request.session.setdefault("flash", []).append([kind, text])


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> Response:
    messages = request.session.pop("flash", [])
    return templates.TemplateResponse(
        request,
        template,
        {
            "user": signed_in(request),
            "csrf": csrf_token(request),
            "messages": messages,
            "zipkin_url": config(request).zipkin_url,
            **context,
        },
        status_code=status_code,
    )


def config(request: Request) -> ConsoleConfig:
    cfg: ConsoleConfig = request.app.state.config
    return cfg


def field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


Page = Callable[[Request], Awaitable[Response]]


def requires_sign_in(page: Page) -> Page:
    async def guarded(request: Request) -> Response:
        if signed_in(request) is None:
            if request.method == "POST":
                return render(request, "error.html", 403, message="Sign in first: your session has ended.")
            return RedirectResponse(f"/signin?next={quote(request.url.path)}", 303)
        return await page(request)

    return guarded


def back(path: str) -> RedirectResponse:
    return RedirectResponse(path, 303)


# --- sign-in --------------------------------------------------------------------------------------


async def signin_page(request: Request) -> Response:
    return render(request, "signin.html", next=_safe_next(request.query_params.get("next")))


def _safe_next(value: str | None) -> str:
    # Only a path of this site: never an open redirect to another host.
    if value and value.startswith("/") and not value.startswith("//") and not urlsplit(value).netloc:
        return value
    return "/holds"


async def signin(request: Request) -> Response:
    form = await checked_form(request)
    email, password = field(form, "email"), field(form, "password")
    user = config(request).users.authenticate(email, password)
    if user is None:
        log.info("console_signin_refused")
        return render(
            request,
            "signin.html",
            401,
            next=_safe_next(field(form, "next")),
            email=email,
            error="Unknown e-mail address or wrong password.",
        )
    request.session.clear()  # a new session: no fixation of a token handed out before sign-in
    request.session["user"] = user.email
    csrf_token(request)
    log.info("console_signed_in", user=user.email)
    return back(_safe_next(field(form, "next")))


async def signout(request: Request) -> Response:
    await checked_form(request)
    request.session.clear()
    flash(request, "ok", "Signed out.")
    return back("/signin")


# --- hold queues and holds ----------------------------------------------------------------------


@requires_sign_in
async def holds_page(request: Request) -> Response:
    q = request.query_params
    problems: list[str] = []
    age = None
    if q.get("older_than"):
        try:
            age = parse_age(q["older_than"])
        except ValueError as exc:
            problems.append(str(exc))
    queue = q.get("queue") or None
    if queue is not None and queue not in QUEUES:
        problems.append(f"There is no queue {queue!r} (queues: {', '.join(QUEUES)}).")
        queue = None
    escalated = {"yes": True, "no": False}.get(q.get("escalated", ""))
    f = readers.QueueFilter(queue, q.get("owner") or None, q.get("reason") or None, age, escalated)
    now = utcnow()
    async with connect(config(request).matching_dsn, "matching") as conn:
        rows = await readers.hold_queue(conn, f, now)
        counts = await readers.counts_per_queue(conn)
        reasons = await readers.open_reasons(conn)
    for p in problems:
        flash(request, "error", p)
    return render(
        request,
        "holds.html",
        holds=rows,
        counts=counts,
        queues=QUEUES,
        reasons=reasons,
        now=now,
        q=q,
    )


@requires_sign_in
async def hold_page(request: Request) -> Response:
    hold_id = request.path_params["hold_id"]
    async with connect(config(request).matching_dsn, "matching") as conn:
        detail = await readers.hold_detail(conn, hold_id)
    if detail is None:
        return render(request, "error.html", 404, message=f"No hold with id {hold_id!r}.")
    async with _console_db(request) as conn:
        pending = await store.requests_for_invoice(conn, detail.hold["invoice_id"])
    return render(
        request,
        "hold.html",
        d=detail,
        h=detail.hold,
        requests=pending,
        request_id=f"ovr-{uuid.uuid4().hex[:16]}",
        now=utcnow(),
    )


# --- invoices -------------------------------------------------------------------------------------


@requires_sign_in
async def invoice_search(request: Request) -> Response:
    invoice_id = (request.query_params.get("id") or "").strip()
    if not invoice_id:
        return render(request, "invoice_search.html")
    return back(f"/invoices/{quote(invoice_id, safe='')}")


@requires_sign_in
async def invoice_page(request: Request) -> Response:
    invoice_id = request.path_params["invoice_id"]
    cfg = config(request)
    async with connect(cfg.ledger_dsn, "ledger") as conn:
        trace = await ledger_queries.trace(conn, invoice_id)
    async with connect(cfg.matching_dsn, "matching") as conn:
        status = await readers.invoice_status(conn, invoice_id)
        holds = await readers.invoice_holds(conn, invoice_id)
    if trace.ref_kind != "invoice" and status is None:
        return render(
            request,
            "invoice_search.html",
            404,
            error=f"No invoice with id {invoice_id!r} is known to matching or the ledger.",
            id=invoice_id,
        )
    async with connect(cfg.payout_release_dsn, "payout_release") as conn:
        blocks = await readers.payout_blocks(conn, invoice_id)
    async with _console_db(request) as conn:
        requests = await store.requests_for_invoice(conn, invoice_id)
    invoice = next((i for i in trace.invoices if i.invoice_id == invoice_id), None)
    return render(
        request,
        "invoice.html",
        invoice_id=invoice_id,
        invoice=invoice,
        status=status,
        trace=trace,
        holds=holds,
        blocks=blocks,
        requests=requests,
        verdict=_verdict(status, holds, blocks, trace),
        trace_link=f"{cfg.zipkin_url}/zipkin/?annotationQuery={quote('invoice_id=' + invoice_id)}",
    )


def _verdict(
    status: str | None, holds: list[dict[str, Any]], blocks: list[dict[str, Any]], trace: Any
) -> str:
    """One sentence: why this invoice was paid, or why not yet."""
    invoice_id = trace.ref
    settled = [
        o
        for p in trace.payouts
        for o in p.outcomes
        if o.outcome == "settled"
        if any(i == invoice_id for i, _ in p.invoices)
    ]
    if settled:
        return "Paid: a payout that carries it has settled."
    if trace.payouts:
        return "Released for payment: a payout carries it; the rail has not confirmed settlement yet."
    open_holds = [h for h in holds if h["status"] == "open"]
    if open_holds:
        return (
            "Not paid: matching holds it — "
            + ", ".join(f"{h['reason']} ({h['queue']})" for h in open_holds)
            + "."
        )
    if blocks:
        return "Not paid: the last payout run blocked it — " + ", ".join(blocks[0]["reasons"]) + "."
    if status == "approved":
        return "Approved to pay; waiting for the next payout run."
    if status == "superseded":
        return "Not paid: a later invoice superseded it."
    return f"Not paid yet (matching status: {status or 'not decided'})."


# --- maker-checker overrides ----------------------------------------------------------------------


@requires_sign_in
async def override_request(request: Request) -> Response:
    form = await checked_form(request)
    user = signed_in(request) or ""
    draft = Draft(
        request_id=field(form, "request_id"),
        invoice_id=field(form, "invoice_id").strip(),
        hold_reasons=tuple(dict.fromkeys(v for v in form.getlist("hold_reason") if isinstance(v, str))),
        reason_code=field(form, "reason_code").strip(),
        justification=field(form, "justification").strip(),
        evidence=evidence_lines(field(form, "evidence")),
    )
    came_from = _safe_next(field(form, "back"))
    async with _console_db(request) as conn:
        existing = (
            await store.get_request(conn, draft.request_id) if REQUEST_ID.match(draft.request_id) else None
        )
    if existing is not None:
        flash(
            request,
            "info",
            "This form was already submitted: here is the request it made (nothing new was stored).",
        )
        return back(f"/overrides/{existing.request_id}")
    async with connect(config(request).matching_dsn, "matching") as conn:
        open_holds = await _open_holds(conn, draft.invoice_id)
    problems = problems_with_request(draft, open_holds)
    if problems:
        for p in problems:
            flash(request, "error", p)
        return back(came_from)
    queues = tuple(sorted({h.queue for h in open_holds or [] if h.reason in draft.hold_reasons}))
    async with _console_db(request) as conn:
        added = await store.add_request(conn, draft, queues, user)
    if added:
        log.info("override_requested_in_console", request_id=draft.request_id, by=user)
        flash(request, "ok", "Override requested. Another person with the queue's role must approve it.")
    else:
        flash(request, "info", "This form was already submitted: here is the request it made.")
    return back(f"/overrides/{draft.request_id}")


async def _open_holds(conn: asyncpg.Connection, invoice_id: str) -> list[OpenHold] | None:
    if await readers.invoice_status(conn, invoice_id) is None:
        return None
    return [
        OpenHold(h["reason"], h["queue"], overridable(h["reason"], h["action"]))
        for h in await readers.invoice_holds(conn, invoice_id)
        if h["status"] == "open"
    ]


@requires_sign_in
async def overrides_page(request: Request) -> Response:
    async with _console_db(request) as conn:
        rows = await store.list_requests(conn)
    return render(request, "overrides.html", requests=rows)


@requires_sign_in
async def override_page(request: Request) -> Response:
    req = await _request_or_none(request)
    if req is None:
        return render(request, "error.html", 404, message="No override request with that id.")
    answer = None
    if req.sent_at is not None:
        async with connect(config(request).matching_dsn, "matching") as conn:
            answer = await readers.override_answer(conn, req.request_id)
    user = signed_in(request) or ""
    may = problems_with_decision(user, req.requested_by, req.queues, config(request).roles, verb="approve")
    return render(request, "override.html", r=req, answer=answer, may_decide=not may, why_not=may)


async def _request_or_none(request: Request) -> store.OverrideRequest | None:
    request_id = request.path_params["request_id"]
    if not REQUEST_ID.match(request_id):
        return None
    async with _console_db(request) as conn:
        return await store.get_request(conn, request_id)


@requires_sign_in
async def override_approve(request: Request) -> Response:
    await checked_form(request)
    return await _decide(request, approve=True, note=None)


@requires_sign_in
async def override_decline(request: Request) -> Response:
    form = await checked_form(request)
    return await _decide(request, approve=False, note=field(form, "note").strip() or None)


async def _decide(request: Request, *, approve: bool, note: str | None) -> Response:
    cfg = config(request)
    user = signed_in(request) or ""
    req = await _request_or_none(request)
    if req is None:
        return render(request, "error.html", 404, message="No override request with that id.")
    here = f"/overrides/{req.request_id}"
    if req.status != "pending":
        flash(
            request,
            "error",
            f"This request was already {req.status} by {req.decided_by}: nothing was sent again.",
        )
        return back(here)
    verb = "approve" if approve else "decline"
    problems = problems_with_decision(user, req.requested_by, req.queues, cfg.roles, verb=verb)
    if approve and not problems:
        async with connect(cfg.matching_dsn, "matching") as conn:
            still_open = {h.reason for h in await _open_holds(conn, req.invoice_id) or []}
        problems += [
            f"The hold {r!r} on invoice {req.invoice_id} is no longer open (already released): "
            "nothing was sent."
            for r in req.hold_reasons
            if r not in still_open
        ]
    if problems:
        for p in problems:
            flash(request, "error", p)
        return back(here)
    async with _console_db(request) as conn:
        decided = await store.decide(conn, req.request_id, "approved" if approve else "declined", user, note)
    if decided is None:  # someone else decided it a moment ago
        flash(
            request, "error", "This request was decided a moment ago by someone else: nothing was sent again."
        )
        return back(here)
    if not approve:
        flash(request, "ok", "Declined. Nothing was sent to matching.")
        return back(here)
    await _send(request, decided)
    return back(here)


async def _send(request: Request, req: store.OverrideRequest) -> None:
    """The signed hold.override_requested, as `ops`; override_id is the request id, so a resend
    after a failure is the same override to matching."""
    data = {
        "override_id": req.request_id,
        "invoice_id": req.invoice_id,
        "hold_reasons": list(req.hold_reasons),
        "reason_code": req.reason_code,
        "justification": req.justification,
        "requested_by": req.requested_by,
        "approved_by": req.decided_by,
        "evidence": list(req.evidence),
    }
    try:
        async with Publisher(config(request).kafka, source="concord-console") as pub:
            await pub.publish_event(IN_COMMANDS, req.invoice_id, OVERRIDE_REQUESTED, data)
    except Exception as exc:
        log.warning("override_send_failed", request_id=req.request_id, error=str(exc))
        flash(
            request,
            "error",
            f"Approved, but the command could not be sent ({exc.__class__.__name__}); use Send again.",
        )
        return
    async with _console_db(request) as conn:
        await store.mark_sent(conn, req.request_id)
    log.info("override_sent", request_id=req.request_id, approved_by=req.decided_by)
    flash(request, "ok", "Approved and sent to matching (signed, as ops). Its answer appears below.")


@requires_sign_in
async def override_resend(request: Request) -> Response:
    """An approval whose command did not reach the broker: the approver sends it again."""
    await checked_form(request)
    req = await _request_or_none(request)
    if req is None:
        return render(request, "error.html", 404, message="No override request with that id.")
    if req.status != "approved" or req.sent_at is not None or req.decided_by != signed_in(request):
        flash(
            request,
            "error",
            "Only the approver of an approved request that was not sent may send it: nothing sent.",
        )
    else:
        await _send(request, req)
    return back(f"/overrides/{req.request_id}")


# --- reconciliation and deadletter ----------------------------------------------------------------


@requires_sign_in
async def reconciliation_page(request: Request) -> Response:
    try:
        days = int(request.query_params.get("requisition_age", "30"))
    except ValueError:
        days = 30
    async with connect(config(request).ledger_dsn, "ledger") as conn:
        rec = await ledger_queries.reconcile(conn, requisition_max_age=timedelta(days=max(days, 0)))
    return render(request, "reconciliation.html", rec=rec, days=days)


@requires_sign_in
async def deadletter_page(request: Request) -> Response:
    entries = await read_deadletters(config(request).kafka)
    return render(request, "deadletter.html", entries=list(reversed(entries[-200:])))


@requires_sign_in
async def deadletter_replay(request: Request) -> Response:
    form = await checked_form(request)
    event_id = field(form, "event_id")
    settings = config(request).kafka
    entries = [e for e in await read_deadletters(settings) if e.event_id == event_id]
    if not entries:
        flash(request, "error", f"No deadletter record with id {event_id!r}: nothing replayed.")
        return back("/deadletter")
    origin = BY_NAME.get(settings.unprefixed(entries[0].origin["topic"]))
    if origin is not None and is_inbound(origin):
        entries = entries[:1]  # one record again on its topic reaches every consumer of it
    try:
        where = [await replay(settings, e, None, requested_by=signed_in(request) or "") for e in entries]
    except ReplayRefused as exc:
        flash(request, "error", f"Replay refused: {exc}")
        return back("/deadletter")
    flash(request, "ok", f"Replayed {event_id} to {', '.join(where)} (as ops).")
    return back("/deadletter")


# --- plumbing -------------------------------------------------------------------------------------


@asynccontextmanager
async def _console_db(request: Request) -> AsyncIterator[asyncpg.Connection]:
    pool: asyncpg.Pool = request.app.state.pool
    async with pool.acquire() as conn:
        yield conn


async def ready(request: Request) -> Response:
    try:
        async with _console_db(request) as conn:
            await conn.fetchval("SELECT 1")
    except Exception:
        return PlainTextResponse("not ready", 503)
    return PlainTextResponse("ok")


async def home(request: Request) -> Response:
    return back("/holds")


async def csrf_refused(request: Request, exc: Exception) -> Response:
    return render(
        request,
        "error.html",
        403,
        message="This form is missing its security token or it has expired (CSRF check): nothing was done. "
        "Open the page again and resubmit.",
    )


async def not_reachable(request: Request, exc: Exception) -> Response:
    return render(request, "error.html", 503, message=str(exc))


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return render(request, "error.html", exc.status_code, message=exc.detail)


async def migrate_console_db(cfg: ConsoleConfig) -> None:
    conn = await asyncpg.connect(cfg.console_owner_dsn)
    try:
        await migrate(conn, HERE / "migrations", runtime_role=urlsplit(cfg.console_dsn).username)
    finally:
        await conn.close()


def create_app(cfg: ConsoleConfig) -> Starlette:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await migrate_console_db(cfg)
        app.state.pool = await create_pool(cfg.console_dsn, max_size=5)
        log.info("console_started", url=f"http://{cfg.host}:{cfg.port}/")
        try:
            yield
        finally:
            await app.state.pool.close()

    routes = [
        Route("/", home),
        Route("/health/ready", ready),
        Route("/signin", signin_page, methods=["GET"]),
        Route("/signin", signin, methods=["POST"]),
        Route("/signout", signout, methods=["POST"]),
        Route("/holds", holds_page),
        Route("/holds/{hold_id}", hold_page),
        Route("/invoices", invoice_search),
        Route("/invoices/{invoice_id:path}", invoice_page),
        Route("/overrides", overrides_page, methods=["GET"]),
        Route("/overrides", override_request, methods=["POST"]),
        Route("/overrides/{request_id}", override_page),
        Route("/overrides/{request_id}/approve", override_approve, methods=["POST"]),
        Route("/overrides/{request_id}/decline", override_decline, methods=["POST"]),
        Route("/overrides/{request_id}/resend", override_resend, methods=["POST"]),
        Route("/reconciliation", reconciliation_page),
        Route("/deadletter", deadletter_page, methods=["GET"]),
        Route("/deadletter/replay", deadletter_replay, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=cfg.session_secret,
                session_cookie="concord_console",
                max_age=cfg.session_max_age_s,
                same_site="strict",
            )
        ],
        exception_handlers={
            CsrfRefused: csrf_refused,
            NotReachable: not_reachable,
            HTTPException: http_error,
        },
        lifespan=lifespan,
    )
    app.state.config = cfg
    return app
