"""Ledger service wiring: `python -m services.ledger`."""

from __future__ import annotations

from pathlib import Path

from services.ledger.handlers import router
from shared.service import Service

service = Service(router, Path(__file__).parent / "migrations")
app = service.app
