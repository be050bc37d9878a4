"""Publishing envelopes from outside a service (operator CLI, demo, tests): never from a handler."""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer

from shared.envelope import Envelope, new_envelope
from shared.outbox import make_producer
from shared.settings import Settings
from shared.signatures import SIGNATURE_HEADER, sign
from shared.topics import Topic


class Publisher:
    def __init__(self, settings: Settings, source: str = "concord-cli") -> None:
        self.settings = settings
        self.source = source
        self.producer: AIOKafkaProducer = make_producer(settings.kafka_bootstrap)

    async def __aenter__(self) -> Publisher:
        await self.producer.start()
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.producer.stop()

    def secret_for(self, topic: Topic) -> str | None:
        if topic.signed_by == "rail":
            return self.settings.rail_secret
        if topic.signed_by == "ops":
            return self.settings.ops_secret
        return None

    async def publish(
        self,
        topic: Topic,
        key: str,
        envelope: Envelope,
        *,
        headers: dict[str, str] | None = None,
        sign_with: str | None = None,
        raw_value: bytes | None = None,
    ) -> None:
        """Send and wait for the broker's ack. Signed topics are signed with the configured secret."""
        value = raw_value if raw_value is not None else envelope.model_dump_json().encode()
        all_headers = {"content-type": "application/json", **(headers or {})}
        secret = sign_with if sign_with is not None else self.secret_for(topic)
        if secret:
            all_headers[SIGNATURE_HEADER] = sign(secret, value)
        await self.producer.send_and_wait(
            self.settings.topic(topic),
            value=value,
            key=key.encode(),
            headers=[(k, v.encode()) for k, v in all_headers.items()],
        )

    async def publish_event(
        self, topic: Topic, key: str, event_type: str, data: dict[str, Any], *, event_id: str | None = None
    ) -> Envelope:
        env = new_envelope(event_type, data, source=self.source, event_id=event_id)
        await self.publish(topic, key, env)
        return env
