"""Concord's own shared infrastructure: envelope, contracts, money, Kafka wiring, inbox/outbox."""
