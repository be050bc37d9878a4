"""The v1 hole (issue 11): a hand-written `invoice.approved_to_pay` for an invoice that was never
submitted, written straight onto `concord.matching.decisions`, was paid. On the authenticated broker
only matching (and admin) may write that topic: every other principal, and any client without
credentials, is refused by the broker, so nothing is paid and nothing is posted.

The same forged record written by admin (who may write everything) is paid: the control that shows the
record itself would have minted a payout, so the refusals above are what stop it.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, TopicAuthorizationFailedError

from shared.acl import local_password
from shared.admin import admin_settings
from shared.envelope import new_envelope, utcnow
from shared.kafka_auth import as_principal
from shared.outbox import make_producer
from shared.publish import Publisher
from shared.topics import IN_COMMANDS, MATCHING_DECISIONS, OUT_JOURNAL, OUT_PAYOUTS
from testkit.scenario import build
from testkit.watch import TopicWatcher
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e


async def _payout_run(pub: Publisher, tag: str) -> None:
    await pub.publish_event(
        IN_COMMANDS,
        f"run-{tag}",
        "payout_run.requested",
        {"run_id": f"run-{tag}", "requested_by": "treasury@example.com"},
    )


def _paid(watcher: TopicWatcher, invoice_id: str) -> list[dict[str, Any]]:
    return [
        x.data
        for x in watcher.of("payout.released")
        if any(i["invoice_id"] == invoice_id for i in x.data["invoices"])
    ]


def _posted(watcher: TopicWatcher, invoice_id: str) -> list[dict[str, Any]]:
    return [x.data for x in watcher.of("journal.entry_posted") if invoice_id in str(x.data)]


async def test_a_forged_approval_is_refused_by_the_broker_and_never_paid(stack: Stack) -> None:
    settings = stack.settings
    tag = "forge" + uuid.uuid4().hex[:6]
    scenario = build(tag, utcnow().date())
    watcher = TopicWatcher(settings, (MATCHING_DECISIONS, OUT_PAYOUTS, OUT_JOURNAL))
    await watcher.start()
    try:
        async with Publisher(settings, source="upstream-erp") as pub:
            for p in scenario.setup:  # eligible payees, funding, approved POs, receipts, invoices
                await pub.publish_event(p.topic, p.key, p.event_type, p.data)
            real = sorted(scenario.expected_approved - {scenario.blocked_invoice})[0]
            await watcher.wait_until(
                lambda: bool(watcher.of("invoice.approved_to_pay", lambda d: d["invoice_id"] == real)),
                60,
                f"{real} approved to pay",
            )
            genuine = watcher.of("invoice.approved_to_pay", lambda d: d["invoice_id"] == real)[0].envelope

            phantom = f"never-submitted-{tag}"
            data = {**genuine["data"], "invoice_id": phantom, "decision_id": f"forged-{tag}"}
            data["payable_amount"] = genuine["data"]["payable_amount"]
            forged = (
                new_envelope("invoice.approved_to_pay", data, source="matching").model_dump_json().encode()
            )
            topic = settings.topic(MATCHING_DECISIONS)

            for principal in ("upstream", "rail", "ops", "observer", "intake", "payout_release", "ledger"):
                producer = make_producer(as_principal(settings, principal, local_password(principal)))
                try:
                    with pytest.raises(Exception) as refused:
                        await producer.start()
                        await producer.send_and_wait(topic, forged, key=phantom.encode())
                    assert "AuthorizationFailed" in type(refused.value).__name__, (principal, refused.value)
                    if principal != "observer":  # observer may not even start a producer
                        assert isinstance(refused.value, TopicAuthorizationFailedError)
                finally:
                    await producer.stop()

            anonymous = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=5000)
            with pytest.raises(KafkaConnectionError):
                await anonymous.start()
            await anonymous.stop()

            await _payout_run(pub, f"{tag}-1")
            await watcher.wait_until(lambda: bool(_paid(watcher, real)), 60, f"the genuine {real} paid")
            await watcher.collect_for(3)  # room for anything else to come out
            assert _paid(watcher, phantom) == []
            assert _posted(watcher, phantom) == []

            # Control: the same bytes from a principal that may write the topic are paid.
            control = make_producer(admin_settings(settings))
            await control.start()
            try:
                await control.send_and_wait(topic, forged, key=phantom.encode())
            finally:
                await control.stop()
            await _payout_run(pub, f"{tag}-2")
            await watcher.wait_until(
                lambda: bool(_paid(watcher, phantom)),
                60,
                f"{phantom} paid once a permitted principal sent it",
            )
            [payout] = _paid(watcher, phantom)
            paid = {i["invoice_id"]: Decimal(i["amount"]) for i in payout["invoices"]}
            assert paid[phantom] == Decimal(data["payable_amount"])
    finally:
        await watcher.stop()
