"""The payout_release section of the policy file: rollout cohorts (SPEC §8 gate 5, §10)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.payout_release.domain import ALL_AUTOMATED, Cohorts
from services.payout_release.policy import PolicyError, load_cohorts, parse_cohorts
from shared.settings import Settings


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (None, ALL_AUTOMATED),
        ({}, ALL_AUTOMATED),
        ({"matching": {"defaults": {}}}, ALL_AUTOMATED),
        ({"payout_release": {}}, ALL_AUTOMATED),
        ({"payout_release": {"automated_business_units": "all"}}, ALL_AUTOMATED),
        (
            {"payout_release": {"automated_business_units": ["BU-A", "BU-B"]}},
            Cohorts(frozenset({"BU-A", "BU-B"})),
        ),
        ({"payout_release": {"automated_business_units": []}}, Cohorts(frozenset())),
    ],
    ids=["empty file", "empty mapping", "no section", "empty section", "all", "a list", "nobody"],
)
def test_cohorts_from_the_policy_file(document: Any, expected: Cohorts) -> None:
    assert parse_cohorts(document) == expected


@pytest.mark.parametrize(
    ("document", "names"),
    [
        ([1, 2], "top level"),
        ({"payout_release": ["BU-A"]}, "payout_release"),
        ({"payout_release": {"automated_business_units": "some"}}, "automated_business_units"),
        ({"payout_release": {"automated_business_units": ["BU-A", 7]}}, "automated_business_units"),
    ],
)
def test_malformed_section_fails_naming_the_key(document: Any, names: str) -> None:
    with pytest.raises(PolicyError, match=names):
        parse_cohorts(document)


def test_cohort_membership() -> None:
    cohort = Cohorts(frozenset({"BU-A"}))
    assert cohort.is_automated("BU-A")
    assert not cohort.is_automated("BU-B")
    assert not cohort.is_automated(None)
    assert ALL_AUTOMATED.is_automated("anything") and ALL_AUTOMATED.is_automated(None)


def test_named_policy_file_is_read(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("payout_release:\n  automated_business_units: [marketing]\n")
    assert load_cohorts(Settings(policy_file=str(path))) == Cohorts(frozenset({"marketing"}))


def test_named_policy_file_that_does_not_exist_fails_at_start(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="does not exist"):
        load_cohorts(Settings(policy_file=str(tmp_path / "missing.yaml")))


def test_invalid_yaml_fails_at_start(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("payout_release: [unclosed\n")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_cohorts(Settings(policy_file=str(path)))


def test_shipped_policy_file_is_valid_for_payout_release() -> None:
    """The default deploy/policy.yaml (owned by matching) must not stop payout_release at start."""
    assert isinstance(load_cohorts(Settings(policy_file=None)), Cohorts)
