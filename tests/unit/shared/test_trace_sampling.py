"""SPEC §14.1: parent-based ratio sampling, honoured across services through `traceparent`.

Two tracer providers stand for two services with different ratios; the record between them is
the W3C header carrier the services put in Kafka headers and outbox rows."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from shared.telemetry import (
    business_tags,
    context_from_headers,
    current_trace_headers,
    make_sampler,
    unsampled_parent,
)


def service(ratio: float) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=make_sampler(ratio))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def hop(upstream_ratio: float, downstream_ratio: float) -> tuple[int, int, bool]:
    """A record produced under a new trace upstream, handled downstream: spans each side exported,
    and whether the downstream span is in the upstream's trace."""
    up, up_spans = service(upstream_ratio)
    down, down_spans = service(downstream_ratio)
    with up.get_tracer("t").start_as_current_span("intake handle invoice.submitted") as produced:
        headers = current_trace_headers()
    with down.get_tracer("t").start_as_current_span(
        "matching handle invoice.accepted", context=context_from_headers(headers), kind=SpanKind.CONSUMER
    ) as handled:
        pass
    same_trace = handled.get_span_context().trace_id == produced.get_span_context().trace_id
    return len(up_spans.get_finished_spans()), len(down_spans.get_finished_spans()), same_trace


def test_a_sampled_record_is_traced_downstream_whatever_the_downstream_ratio() -> None:
    assert hop(1.0, 0.0) == (1, 1, True)


def test_a_sampled_out_record_is_not_traced_downstream_whatever_the_downstream_ratio() -> None:
    assert hop(0.0, 1.0) == (0, 0, True)


def test_a_ratio_keeps_about_that_share_of_new_traces() -> None:
    provider, exported = service(0.25)
    for _ in range(2000):
        with provider.get_tracer("t").start_as_current_span("root"):
            pass
    assert 400 <= len(exported.get_finished_spans()) <= 600


def test_spans_are_tagged_with_the_business_keys_present() -> None:
    data = {"invoice_id": "inv-1", "po_number": "PO-1", "payee_id": "p-1", "amount": "10.00", "payout_id": ""}
    assert business_tags(data) == {"invoice_id": "inv-1", "po_number": "PO-1", "payee_id": "p-1"}


def test_a_sampled_out_parent_is_passed_on_without_a_span_and_stays_sampled_out_downstream() -> None:
    up, _ = service(0.0)
    down, down_spans = service(1.0)
    with up.get_tracer("t").start_as_current_span("intake handle invoice.submitted") as produced:
        headers = current_trace_headers()
    passed_on = unsampled_parent(headers)
    assert passed_on == {"traceparent": headers["traceparent"]}
    with down.get_tracer("t").start_as_current_span(
        "matching handle invoice.accepted", context=context_from_headers(passed_on)
    ) as handled:
        pass
    assert handled.get_span_context().trace_id == produced.get_span_context().trace_id
    assert not handled.is_recording() and down_spans.get_finished_spans() == ()


def test_only_a_well_formed_sampled_out_parent_skips_the_span() -> None:
    ok = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00"
    assert unsampled_parent({"traceparent": ok}) == {"traceparent": ok}
    assert unsampled_parent({"traceparent": ok[:-2] + "02"}) == {"traceparent": ok[:-2] + "02"}
    for refused in (
        {},
        {"traceparent": ok[:-2] + "01"},  # sampled: traced as before
        {"traceparent": ok[:-2] + "03"},
        {"traceparent": "ff" + ok[2:]},
        {"traceparent": ok.upper()},
        {"traceparent": ok[:3] + "0" * 32 + ok[35:]},
        {"traceparent": ok[:36] + "0" * 16 + ok[52:]},
        {"traceparent": ok + "-x"},
        {"traceparent": ok, "tracestate": "k=v"},
        {"traceparent": ok, "baggage": "k=v"},
    ):
        assert unsampled_parent(refused) is None, refused
