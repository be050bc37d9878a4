"""concord-signature: hex(HMAC-SHA256(secret, record value)) on rail events and commands (SPEC §3)."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "concord-signature"


def sign(secret: str, value: bytes) -> str:
    return hmac.new(secret.encode(), value, hashlib.sha256).hexdigest()


def verify(secret: str, value: bytes, signature: str | None) -> bool:
    if not signature:
        return False
    return hmac.compare_digest(sign(secret, value), signature.strip().lower())
