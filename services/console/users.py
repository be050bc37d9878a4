"""Who may sign in to the console: e-mail → argon2 password hash, the `users:` section of the roles
file (SPEC §14.2; deploy/roles.yaml, CONCORD_ROLES_FILE replaces it).

The roles file (deploy/roles.yaml) says which queues a person may release; this file says who
the people are and how they prove it. It is a file of its own because matching reads the roles
file with a closed set of keys (`approvers` only) and rejects any other."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from shared.text import same_person

_HASHER = PasswordHasher()
# Verified when the e-mail is unknown too, so a wrong address costs as long as a wrong password.
_DUMMY_HASH = _HASHER.hash("no one has this password")


class UsersFileError(ValueError):
    """The users file is malformed; the message names the bad key."""


@dataclass(frozen=True)
class User:
    email: str
    name: str
    password_hash: str


@dataclass(frozen=True)
class Users:
    by_email: dict[str, User]

    def find(self, email: str) -> User | None:
        return next((u for e, u in self.by_email.items() if same_person(e, email)), None)

    def authenticate(self, email: str, password: str) -> User | None:
        """The user, if the password matches their hash; None otherwise (never says which was wrong)."""
        user = self.find(email.strip())
        try:
            _HASHER.verify(user.password_hash if user else _DUMMY_HASH, password)
        except (VerificationError, InvalidHashError):
            return None
        return user


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def parse_users(document: Any) -> Users:
    """The `users:` section of a roles document (its other keys are matching's)."""
    if not isinstance(document, dict) or not isinstance(document.get("users"), dict):
        raise UsersFileError("users: must be a mapping of e-mail → name and password_hash")
    users: dict[str, User] = {}
    for email, entry in (document.get("users") or {}).items():
        where = f"users.{email}"
        if not isinstance(email, str) or "@" not in email:
            raise UsersFileError(f"{where}: must be an e-mail address")
        if not isinstance(entry, dict) or not isinstance(entry.get("password_hash"), str):
            raise UsersFileError(f"{where}.password_hash: missing (an argon2 hash)")
        if not entry["password_hash"].startswith("$argon2"):
            raise UsersFileError(f"{where}.password_hash: not an argon2 hash")
        users[email] = User(email, str(entry.get("name") or email), entry["password_hash"])
    return Users(users)


def load_users(path: Path) -> Users:
    """The users of a roles file."""
    try:
        return parse_users(yaml.safe_load(path.read_text(encoding="utf-8")))
    except OSError as exc:
        raise UsersFileError(f"roles file {path}: cannot be read: {exc}") from exc
    except (yaml.YAMLError, UsersFileError) as exc:
        raise UsersFileError(f"{path}: {exc}") from None


def main() -> None:
    """`python -m services.console.users hash`: an argon2 hash for the users file (password on stdin)."""
    import getpass
    import sys

    if sys.argv[1:] != ["hash"]:
        print("usage: python -m services.console.users hash", file=sys.stderr)
        raise SystemExit(2)
    password = getpass.getpass("password: ") if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")
    print(hash_password(password))


if __name__ == "__main__":
    main()
