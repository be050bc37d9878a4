"""Deterministic identifiers (SPEC §12.4): a payout's EndToEndId and UETR, and rail_event_id."""

from __future__ import annotations

import hashlib
import uuid


def _digest(*parts: str) -> bytes:
    return hashlib.sha256("\x1f".join(parts).encode()).digest()


def end_to_end_id(payout_id: str) -> str:
    """35 characters (the ISO maximum): `CNC` + 32 hex digits of the payout id's hash."""
    return "CNC" + _digest("e2e", payout_id).hex()[:32].upper()


def uetr(payout_id: str) -> str:
    """A UUIDv4-shaped UETR (the XSD's pattern: version 4, RFC 4122 variant) from the payout id."""
    return str(uuid.UUID(bytes=_digest("uetr", payout_id)[:16], version=4))


def rail_event_id(msg_id: str, tx_ref: str) -> str:
    """From the bank message's id and the transaction reference: reading a file twice yields the same ids."""
    return f"bank:{msg_id}:{tx_ref}"
