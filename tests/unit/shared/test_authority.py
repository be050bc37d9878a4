"""Approval authority (SPEC §13.1): the pure rule and the roles file's approval_limits section."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from shared.authority import SPEC_DEFAULT_AUTHORITY, parse_authority, po_total
from shared.config import ConfigError

FILE = parse_authority(
    {
        "buyer.lead@example.com": {
            "purchase_order": [
                {"currency": "EUR", "limit": "5000.00", "business_units": ["ops", "marketing"]},
                {"currency": "*", "limit": "1000.00", "business_units": "*"},
            ],
            "requisition": [{"currency": "JPY", "limit": 100000, "business_units": "*"}],
        },
        "Controller@Example.com": {
            "purchase_order": [{"currency": "*", "limit": "unlimited", "business_units": "*"}]
        },
    }
)


@pytest.mark.parametrize(
    ("person", "kind", "currency", "unit", "total", "rule"),
    [
        # exactly at the limit passes; one minor unit over fails
        ("buyer.lead@example.com", "purchase_order", "EUR", "ops", "5000.00", "purchase_order[0]"),
        ("buyer.lead@example.com", "purchase_order", "EUR", "ops", "5000.01", None),
        ("buyer.lead@example.com", "purchase_order", "USD", "ops", "1000.00", "purchase_order[1]"),
        ("buyer.lead@example.com", "purchase_order", "USD", "ops", "1000.01", None),
        # the specific entry wins over "*" when both cover
        ("buyer.lead@example.com", "purchase_order", "EUR", "marketing", "10.00", "purchase_order[0]"),
        # another business unit: only the "*" entry applies
        ("buyer.lead@example.com", "purchase_order", "EUR", "finance", "1000.00", "purchase_order[1]"),
        ("buyer.lead@example.com", "purchase_order", "EUR", "finance", "1000.01", None),
        # JPY has no minor unit: one yen over fails
        ("buyer.lead@example.com", "requisition", "JPY", "ops", "100000", "requisition[0]"),
        ("buyer.lead@example.com", "requisition", "JPY", "ops", "100001", None),
        ("buyer.lead@example.com", "requisition", "EUR", "ops", "1.00", None),  # no EUR requisitions
        # people compare case-insensitively; unlimited is unlimited
        ("controller@example.com", "purchase_order", "GBP", "x", "999999999999.99", "purchase_order[0]"),
        ("controller@example.com", "requisition", "GBP", "x", "1.00", None),
        # a person not in the file has no authority at all
        ("stranger@example.com", "purchase_order", "EUR", "ops", "0.01", None),
        (None, "purchase_order", "EUR", "ops", "0.01", None),
    ],
)
def test_covering_limit(
    person: str | None, kind: str, currency: str, unit: str, total: str, rule: str | None
) -> None:
    limit = FILE.covering_limit(person, kind, currency, unit, Decimal(total))  # type: ignore[arg-type]
    assert (limit.key.rsplit(".", 1)[1] if limit else None) == rule


def test_po_total_counts_lines_and_allowed_charges() -> None:
    lines = [(Decimal("3"), Decimal("333.333")), (Decimal("0.5"), Decimal("10"))]
    assert po_total(lines, [Decimal("12.50")]) == Decimal("1017.499")


def test_the_shipped_defaults() -> None:
    for person in ("manager@example.com", "procurement.lead@example.com"):
        for kind in ("requisition", "purchase_order"):
            assert SPEC_DEFAULT_AUTHORITY.covering_limit(person, kind, "CHF", "any", Decimal("1000000.00"))
            assert not SPEC_DEFAULT_AUTHORITY.covering_limit(
                person, kind, "CHF", "any", Decimal("1000000.01")
            )
    assert SPEC_DEFAULT_AUTHORITY.covering_limit(
        "controller@example.com", "purchase_order", "USD", "x", Decimal("1e12")
    )
    assert not SPEC_DEFAULT_AUTHORITY.covering_limit(
        "ap.lead@example.com", "purchase_order", "USD", "x", Decimal(1)
    )


def test_the_shipped_roles_file_holds_the_spec_defaults() -> None:
    import yaml

    document = yaml.safe_load((Path(__file__).parents[3] / "deploy" / "roles.yaml").read_text())
    assert parse_authority(document["approval_limits"]) == SPEC_DEFAULT_AUTHORITY


def _one(kind: str = "purchase_order", **entry: object) -> dict[str, object]:
    return {"a@x": {kind: [{"currency": "*", "limit": "1", "business_units": "*", **entry}]}}


_PO0 = "approval_limits.a@x.purchase_order[0]"


@pytest.mark.parametrize(
    ("section", "key"),
    [
        (_one(limit="-1"), f"{_PO0}.limit"),
        (_one(limit="-0.01"), f"{_PO0}.limit"),
        (_one(limit="lots"), f"{_PO0}.limit"),
        (_one(limit="NaN"), f"{_PO0}.limit"),
        (_one(limit="Infinity"), f"{_PO0}.limit"),
        (_one(limit=True), f"{_PO0}.limit"),
        (_one(limit=None), f"{_PO0}.limit"),
        (_one("invoice"), "approval_limits.a@x.invoice"),
        (_one(currency="euro"), f"{_PO0}.currency"),
        (_one(business_units=[]), f"{_PO0}.business_units"),
        (_one(business_units="ops"), f"{_PO0}.business_units"),
        (_one(max=2), f"{_PO0}.max"),
        ({"a@x": {"purchase_order": [{"currency": "EUR", "limit": "1"}]}}, f"{_PO0}.business_units"),
        ({"a@x": {"requisition": {"currency": "EUR"}}}, "approval_limits.a@x.requisition"),
        ({"a@x": {}, "A@X": {}}, "approval_limits.A@X"),
        (["a@x"], "approval_limits"),
    ],
)
def test_a_bad_approval_limit_names_its_key(section: object, key: str) -> None:
    with pytest.raises(ConfigError) as exc:
        parse_authority(section)
    assert exc.value.key == key


def test_matching_and_the_console_refuse_a_bad_limit_at_start_too(tmp_path: Path) -> None:
    from services.matching.config import MatchingConfig
    from shared.settings import Settings

    roles = tmp_path / "roles.yaml"
    roles.write_text(
        "approval_limits:\n  a@x:\n"
        '    purchase_order: [{currency: "*", limit: "1,000", business_units: "*"}]\n'
    )
    with pytest.raises(ConfigError) as exc:
        MatchingConfig.load(Settings(service="matching", roles_file=str(roles)))
    assert exc.value.key == "approval_limits.a@x.purchase_order[0].limit"
