"""Prometheus metrics every service exposes on /metrics (SPEC §10)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_PROCESSED = Counter(
    "concord_events_processed_total", "Inbound records handled", ["service", "event_type", "result"]
)
DEDUPE_HITS = Counter("concord_dedupe_hits_total", "Records skipped as already processed", ["service"])
DEADLETTERED = Counter("concord_deadlettered_total", "Records sent to the deadletter topic", ["service"])
HANDLER_LATENCY = Histogram(
    "concord_handler_seconds",
    "Time to handle one batch of records in one transaction",
    ["service"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BATCH_SIZE = Histogram(
    "concord_batch_records", "Records per consumed batch", ["service"], buckets=(1, 5, 10, 50, 100, 200, 500)
)
HANDLER_FAILURES = Counter(
    "concord_handler_failures_total", "Batches rolled back and redelivered", ["service"]
)
OUTBOX_LAG = Gauge("concord_outbox_lag_seconds", "Age of the oldest unpublished outbox row", ["service"])
OUTBOX_PUBLISHED = Counter("concord_outbox_published_total", "Outbox rows published", ["service"])
CONSUMER_LAG = Gauge(
    "concord_consumer_lag_records", "Records behind the high-water mark", ["service", "topic"]
)
HOLDS_OPEN = Gauge("concord_holds_open", "Open matching holds", ["reason"])
HOLDS_OVERDUE = Gauge("concord_holds_overdue", "Open matching holds past their due_by", ["queue"])
# SPEC §14.1 alerts on a failed or returned payout: counted when payout_release applies one.
PAYOUTS_UNSUCCESSFUL = Counter(
    "concord_payouts_unsuccessful_total", "Payouts the rail failed or returned", ["outcome"]
)


def initialise_counters(service: str) -> None:
    """Counters the alert rules watch with increase() exist at 0 from the start: a series born at
    1 has no earlier sample, and Prometheus would never see its first increase."""
    DEADLETTERED.labels(service)
    HANDLER_FAILURES.labels(service)


# SPEC §12.4: the bank gateway's files, counted when they land (written to the outbox; moved to
# processed/ or rejected/ — a rejected bank file is money treasury has not heard about yet).
BANK_FILES = Counter(
    "concord_bank_files_total", "ISO 20022 files the bank gateway wrote or filed away", ["folder"]
)
