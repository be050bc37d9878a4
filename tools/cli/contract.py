"""The system's AsyncAPI document: every service's router, rendered by FastStream."""

from __future__ import annotations

import importlib

from shared.asyncapi import document_json
from shared.consumer import Router
from shared.services import SERVICES_AND_GATEWAY


def routers() -> list[Router]:
    return [importlib.import_module(f"services.{name}.handlers").router for name in SERVICES_AND_GATEWAY]


def asyncapi_document() -> str:
    return document_json(routers())
