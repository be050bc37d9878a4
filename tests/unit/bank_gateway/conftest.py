from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "iso20022"


def schema(name: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(FIXTURES / "xsd" / name)))


@pytest.fixture(scope="session")
def pain001_schema() -> etree.XMLSchema:
    return schema("pain.001.001.09.xsd")


@pytest.fixture(scope="session")
def pain002_schema() -> etree.XMLSchema:
    return schema("pain.002.001.10.xsd")


@pytest.fixture(scope="session")
def camt054_schema() -> etree.XMLSchema:
    return schema("camt.054.001.08.xsd")


def example(name: str) -> bytes:
    return (FIXTURES / "examples" / name).read_bytes()
