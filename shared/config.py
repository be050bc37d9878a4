"""One loader for every service's configuration files, with the same resolution everywhere.

A service's configuration is one frozen, typed object built once at start from the policy file
and the roles file (SPEC §10: CONCORD_POLICY_FILE, CONCORD_ROLES_FILE). Unset, both mean the
shipped files in deploy/ — for every service alike. A file that is set but missing, unreadable
or not YAML, and a malformed key, stop the start with a ConfigError naming the file and the key.

    @dataclass(frozen=True)
    class MatchingConfig:
        policy: Policy

        @classmethod
        def load(cls, settings: Settings) -> MatchingConfig:
            return cls(parse_policy(config.section(settings, "matching")))
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from shared.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_POLICY_FILE = REPO_ROOT / "deploy" / "policy.yaml"
DEFAULT_ROLES_FILE = REPO_ROOT / "deploy" / "roles.yaml"


class ConfigError(ValueError):
    """A configuration file or one of its keys is unusable; `key` names it (`matching.rules[2].mode`)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


def policy_path(settings: Settings) -> Path:
    return Path(settings.policy_file) if settings.policy_file else DEFAULT_POLICY_FILE


def roles_path(settings: Settings) -> Path:
    return Path(settings.roles_file) if settings.roles_file else DEFAULT_ROLES_FILE


def policy_document(settings: Settings) -> dict[str, Any]:
    return read_yaml(str(policy_path(settings)))


def roles_document(settings: Settings) -> dict[str, Any]:
    return read_yaml(str(roles_path(settings)))


def section(settings: Settings, name: str) -> Any:
    """The policy file's top-level `name:` section (None when the file has none)."""
    return policy_document(settings).get(name)


@lru_cache(maxsize=16)
def _read(path: str) -> dict[str, Any]:
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, f"cannot be read: {exc.strerror or exc}") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(path, f"not valid YAML: {exc}") from None
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise ConfigError(path, "the top level must be a mapping")
    return document


def read_yaml(path: str) -> dict[str, Any]:
    """A YAML mapping file, read once per process (configuration is loaded at start)."""
    return _read(path)
