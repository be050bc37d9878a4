"""Publishing envelopes from outside a service (operator CLI, demo, tests): never from a handler.

Who publishes (SPEC §11): with `CONCORD_KAFKA_USERNAME` set (the CLI: `ops`) every record goes out as
that principal. Without it each topic is published by the principal that writes it in normal
operation — `upstream` for the inbound documents, `rail` for rail events, `ops` for commands — so the
demo, the benchmark, the chaos run and the tests act as those systems would, each with its own
credentials, and the broker's ACLs apply to them as to anyone.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaProducer

from shared.acl import local_password, writer_of
from shared.envelope import Envelope, envelope_json, new_envelope
from shared.kafka_auth import as_principal
from shared.outbox import make_producer
from shared.settings import Settings
from shared.signatures import SIGNATURE_HEADER, sign
from shared.topics import Topic


class Publisher:
    def __init__(self, settings: Settings, source: str = "concord-cli") -> None:
        self.settings = settings
        self.source = source
        self._producers: dict[str, AIOKafkaProducer] = {}

    async def __aenter__(self) -> Publisher:
        return self

    async def __aexit__(self, *_: Any) -> None:
        producers, self._producers = list(self._producers.values()), {}
        for producer in producers:
            await producer.stop()

    def principal_for(self, topic: Topic) -> str:
        return self.settings.kafka_username or writer_of(topic)

    async def producer_for(self, topic: Topic) -> AIOKafkaProducer:
        """The producer of the principal that writes this topic (the benchmark and tests send raw)."""
        principal = self.principal_for(topic)
        producer = self._producers.get(principal)
        if producer is None:
            if principal == self.settings.kafka_username:
                settings = self.settings
            else:
                settings = as_principal(self.settings, principal, local_password(principal))
            producer = make_producer(settings)
            await producer.start()
            self._producers[principal] = producer
        return producer

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
        value = raw_value if raw_value is not None else envelope_json(envelope)
        all_headers = {"content-type": "application/json", **(headers or {})}
        secret = sign_with if sign_with is not None else self.secret_for(topic)
        if secret:
            all_headers[SIGNATURE_HEADER] = sign(secret, value)
        producer = await self.producer_for(topic)
        await producer.send_and_wait(
            self.settings.topic(topic),
            value=value,
            key=key.encode(),
            headers=[(k, v.encode()) for k, v in all_headers.items()],
        )

    async def publish_raw(
        self, topic: Topic, key: str, value: bytes, headers: dict[str, str] | None = None
    ) -> None:
        """Bytes as they are (deadletter replay): no envelope, no new signature."""
        producer = await self.producer_for(topic)
        await producer.send_and_wait(
            self.settings.topic(topic),
            value=value,
            key=key.encode(),
            headers=[(k, v.encode()) for k, v in (headers or {}).items()],
        )

    async def publish_event(
        self, topic: Topic, key: str, event_type: str, data: dict[str, Any], *, event_id: str | None = None
    ) -> Envelope:
        env = new_envelope(event_type, data, source=self.source, event_id=event_id)
        await self.publish(topic, key, env)
        return env
