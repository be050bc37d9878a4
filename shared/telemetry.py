"""structlog JSON logs with trace ids and PII redaction; OpenTelemetry, traceparent in Kafka headers."""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any

import structlog
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.propagate import extract, inject
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased

# SPEC §1 rule 8: tax ids, bank details and personal names never reach a log line.
_PII_KEYS = re.compile(
    r"(^|_)(tin|tax_?id|tin_last4|vat_?number|number_vat|iban|bic|swift|account_number|bank|"
    r"routing|name|first_name|last_name|full_name|legal_name|email|phone|address|dob|ssn)($|_)",
    re.IGNORECASE,
)
_SAFE_KEYS = frozenset({"event", "service", "topic_name", "event_type", "logger", "level", "timestamp"})
REDACTED = "[redacted]"


def _redact(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: (REDACTED if _is_pii_key(k) else _redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def _is_pii_key(key: object) -> bool:
    return isinstance(key, str) and key not in _SAFE_KEYS and bool(_PII_KEYS.search(key))


def redact_pii(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if _is_pii_key(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redact(event_dict[key])
    return event_dict


def add_trace_ids(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    span = trace.get_current_span()
    ctx = span.get_span_context()
    if ctx.is_valid:
        event_dict.setdefault("trace_id", format(ctx.trace_id, "032x"))
        event_dict.setdefault("span_id", format(ctx.span_id, "016x"))
    return event_dict


def configure_logging(service: str, *, level: str = "INFO", fmt: str = "json") -> None:
    renderer: Any = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            add_trace_ids,
            redact_pii,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stdout),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout)


def configure_tracing(
    service: str,
    exporter: str = "none",
    extra: SpanProcessor | None = None,
    *,
    sample_ratio: float = 1.0,
    zipkin_endpoint: str | None = None,
) -> TracerProvider:
    """Install a tracer provider once per process. 'zipkin' posts JSON v2 to `zipkin_endpoint`;
    'otlp' reads OTEL_EXPORTER_OTLP_ENDPOINT."""
    current = trace.get_tracer_provider()
    if isinstance(current, TracerProvider):
        if extra is not None:
            current.add_span_processor(extra)
        return current
    provider = TracerProvider(
        resource=Resource.create({"service.name": service}), sampler=make_sampler(sample_ratio)
    )
    span_exporter = _exporter(exporter, zipkin_endpoint)
    if span_exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(span_exporter))
    if extra is not None:
        provider.add_span_processor(extra)
    trace.set_tracer_provider(provider)
    return provider


def make_sampler(ratio: float) -> Sampler:
    """SPEC §14.1: a new trace is kept with probability `ratio`; a span with a parent (a record's
    traceparent, whatever service wrote it) follows the parent's decision, so a flow is traced
    whole or not at all, and a sampled-out record records nothing."""
    return ParentBased(root=TraceIdRatioBased(ratio))


def _exporter(name: str, zipkin_endpoint: str | None) -> SpanExporter | None:
    if name == "zipkin":
        from opentelemetry.exporter.zipkin.json import ZipkinExporter

        return ZipkinExporter(endpoint=zipkin_endpoint)
    if name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if name == "console":
        return ConsoleSpanExporter()
    return None


# SPEC §14.1: the business keys a span is tagged with, so Zipkin finds a flow by
# `annotationQuery=invoice_id=<id>` (and po_number, payee_id, payout_id where they apply).
BUSINESS_TAGS = ("invoice_id", "po_number", "payee_id", "payout_id")


def business_tags(data: Mapping[str, Any]) -> dict[str, str]:
    return {key: value for key in BUSINESS_TAGS if isinstance(value := data.get(key), str) and value}


@functools.cache
def tracer() -> trace.Tracer:
    # Cached: get_tracer builds a new tracer each call (2% of a service's CPU per record). Safe
    # before configure_tracing too: the global provider is set once, and a tracer taken before
    # it is a proxy that follows it.
    return trace.get_tracer("concord")


def headers_to_dict(headers: Iterable[tuple[str, bytes | None]] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in headers or ():
        out[key] = value.decode("utf-8", "replace") if value is not None else ""
    return out


def context_from_headers(headers: Mapping[str, str]) -> otel_context.Context:
    return extract(dict(headers))


def span_headers(span: trace.Span) -> dict[str, str]:
    """traceparent/tracestate of `span` (current or not), to store with an outbox row."""
    carrier: dict[str, str] = {}
    inject(carrier, context=trace.set_span_in_context(span))
    return carrier


def current_trace_headers() -> dict[str, str]:
    """traceparent/tracestate of the current span, to store with an outbox row."""
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier


def unsampled_parent(headers: Mapping[str, str]) -> dict[str, str] | None:
    """The record's trace headers when they name a parent that was sampled out, else None.

    Parent-based sampling (make_sampler) drops every span under such a parent, so a consumer need
    not build one — nor the context, attributes and carrier that go with it — to handle the
    record: the headers pass through to what it emits, and the flow stays untraced downstream as
    it would with a dropped span (same trace id, same flag; only the span id, which nothing
    records, is the parent's). None — the parent was sampled, is absent or unreadable, or state or
    baggage rides along — means: start a span as usual."""
    parent = headers.get("traceparent")
    if parent is None or len(parent) != 55 or "baggage" in headers or "tracestate" in headers:
        return None
    version, trace_id, span_id, flags = parent[:2], parent[3:35], parent[36:52], parent[53:]
    if version != "00" or parent[2] != "-" or parent[35] != "-" or parent[52] != "-":
        return None
    if not (_is_hex(trace_id) and _is_hex(span_id) and _is_hex(flags)) or int(flags, 16) & 1:
        return None
    if trace_id == "0" * 32 or span_id == "0" * 16:
        return None
    return {"traceparent": parent}


_HEX = frozenset("0123456789abcdef")


def _is_hex(text: str) -> bool:
    return _HEX.issuperset(text)
