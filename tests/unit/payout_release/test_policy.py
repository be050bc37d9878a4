"""The payout_release section of the policy file: rollout cohorts (SPEC §8 gate 5, §10)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.payout_release.config import PayoutConfig, parse_cohorts
from services.payout_release.domain import ALL_AUTOMATED, Cohorts
from shared.config import ConfigError
from shared.settings import Settings


def load_cohorts(settings: Settings) -> Cohorts:
    return PayoutConfig.load(settings).cohorts


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("", ALL_AUTOMATED),
        ("matching:\n  defaults: {}\n", ALL_AUTOMATED),
        ("payout_release: {}\n", ALL_AUTOMATED),
        ("payout_release:\n  automated_business_units: all\n", ALL_AUTOMATED),
        (
            "payout_release:\n  automated_business_units: [BU-A, BU-B]\n",
            Cohorts(frozenset({"BU-A", "BU-B"})),
        ),
        ("payout_release:\n  automated_business_units: []\n", Cohorts(frozenset())),
    ],
    ids=["empty file", "no section", "empty section", "all", "a list", "nobody"],
)
def test_cohorts_from_the_policy_file(tmp_path: Path, document: str, expected: Cohorts) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(document)
    assert load_cohorts(Settings(policy_file=str(path))) == expected


def test_the_payout_run_interval_is_a_setting() -> None:
    assert PayoutConfig.load(Settings(payout_run_interval_s=7.5)).run_interval_s == 7.5


@pytest.mark.parametrize(
    ("document", "names"),
    [
        (["BU-A"], "payout_release"),
        ({"automated_business_units": "some"}, "payout_release.automated_business_units"),
        ({"automated_business_units": ["BU-A", 7]}, "payout_release.automated_business_units"),
    ],
)
def test_malformed_section_fails_naming_the_key(document: Any, names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        parse_cohorts(document)


def test_a_policy_file_whose_top_level_is_not_a_mapping_fails_at_start(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="top level"):
        load_cohorts(Settings(policy_file=str(path)))


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
    with pytest.raises(ConfigError, match="cannot be read"):
        load_cohorts(Settings(policy_file=str(tmp_path / "missing.yaml")))


def test_invalid_yaml_fails_at_start(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("payout_release: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_cohorts(Settings(policy_file=str(path)))


def test_shipped_policy_file_is_valid_for_payout_release() -> None:
    """The default deploy/policy.yaml (owned by matching) must not stop payout_release at start."""
    assert isinstance(load_cohorts(Settings(policy_file=None)), Cohorts)
