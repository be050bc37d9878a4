"""The UBL 2.1 ApplicationResponse schema (copied into tests/fixtures/ubl21, see its README), for
checking every Invoice Response Concord issues (SPEC §12.3)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from lxml import etree

FIXTURES = Path(__file__).resolve().parent / "fixtures"
APPLICATION_RESPONSE_XSD = FIXTURES / "ubl21" / "xsd" / "maindoc" / "UBL-ApplicationResponse-2.1.xsd"
PEPPOL_EXAMPLES = FIXTURES / "peppol" / "invoice-response"


@cache
def application_response_schema() -> Any:
    return etree.XMLSchema(etree.parse(str(APPLICATION_RESPONSE_XSD)))


def schema_errors(document: str | bytes) -> list[str]:
    """Every schema error of the document ([] when it is valid)."""
    data = document.encode() if isinstance(document, str) else document
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    tree = etree.fromstring(data, parser)
    schema = application_response_schema()
    if schema.validate(tree):
        return []
    return [f"line {e.line}: {e.message}" for e in schema.error_log]


def assert_valid(document: str | bytes | None) -> None:
    assert document is not None, "no document was rendered"
    errors = schema_errors(document)
    assert not errors, "\n".join(errors)
