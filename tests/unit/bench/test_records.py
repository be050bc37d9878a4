"""Kafka records per flow, as make bench reports them: what a flow writes per topic, and how many
records each service is handed (every record of every topic it reads); and the batch sizes
bench.broker load reads off the services' metrics."""

from __future__ import annotations

from bench.broker import batch_records
from bench.records import readers, records_per_flow


def test_each_reader_of_a_topic_is_handed_every_record_written_to_it() -> None:
    before = {"concord.in.invoices": 10, "concord.intake.documents": 30, "concord.out.journal": 0}
    after = {"concord.in.invoices": 110, "concord.intake.documents": 330, "concord.out.journal": 285}
    subscribed = {
        "concord.in.invoices": ["intake"],
        "concord.intake.documents": ["matching", "payout_release", "ledger"],
    }
    got = records_per_flow(before, after, 100, subscribed)
    assert got["written"] == {
        "concord.in.invoices": 1.0,
        "concord.intake.documents": 3.0,
        "concord.out.journal": 2.85,
    }
    assert got["written_total"] == 6.85
    assert got["handed_to"] == {
        "intake": 1.0,
        "matching": 3.0,
        "compliance_gate": 0.0,
        "payout_release": 3.0,
        "ledger": 3.0,
    }
    assert got["handed_total"] == 10.0  # out.journal is read by nobody in the stack


def test_the_subscriptions_are_the_services_own() -> None:
    subscribed = readers()
    assert sorted(subscribed["concord.intake.documents"]) == ["ledger", "matching", "payout_release"]
    assert subscribed["concord.in.invoices"] == ["intake"]
    assert "concord.out.journal" not in subscribed
    assert subscribed["concord.out.payouts"] == ["ledger"]  # the bank gateway is not in the benchmark


def test_batch_sizes_are_read_off_a_service_s_metrics() -> None:
    metrics = (
        "# HELP concord_batch_records Records per consumed batch\n"
        'concord_batch_records_bucket{le="1.0",service="intake"} 3.0\n'
        'concord_batch_records_count{service="intake"} 12.0\n'
        'concord_batch_records_sum{service="intake"} 1432.0\n'
    )
    assert batch_records(metrics) == (1432.0, 12.0)
    assert batch_records("") == (0.0, 0.0)
