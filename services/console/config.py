"""The console's settings: where it listens, whom it lets in, which databases it reads.

One object, loaded once at start (`ConsoleConfig.load`) and handed to the app; nothing reads the
environment later. Kafka and the console's own database come from shared.settings (service
`console`); the service databases are read as `concord_reader` (SPEC §11), like the CLI."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic_settings import SettingsConfigDict

from services.console.users import Users, load_users
from services.matching.config import parse_roles
from services.matching.domain import Roles
from shared import config
from shared.kafka_auth import as_principal
from shared.settings import Settings, local_dsn
from tools.cli.readers import CliDatabases

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_USERS_FILE = config.DEFAULT_ROLES_FILE  # the users: section of the roles file (SPEC §14.2)
DEFAULT_PORT = 8090
LOCAL_SESSION_SECRET = "local-dev-console-session-secret"


class ConsoleSettings(CliDatabases):
    """CONCORD_CONSOLE_* plus the CLI's reader DSNs (CONCORD_LEDGER_DB_DSN, CONCORD_MATCHING_DB_DSN)."""

    model_config = SettingsConfigDict(env_prefix="CONCORD_", extra="ignore")

    console_host: str = "127.0.0.1"
    console_port: int = DEFAULT_PORT
    console_session_secret: str = LOCAL_SESSION_SECRET
    console_session_hours: float = 8.0
    # Empty: the local stack's payout_release database as concord_reader (payout blocks).
    payout_release_db_dsn: str = ""


@dataclass(frozen=True)
class ConsoleConfig:
    host: str
    port: int
    session_secret: str
    session_max_age_s: int
    users: Users
    roles: Roles
    kafka: Settings  # as principal `ops` (SPEC §11)
    console_dsn: str
    console_owner_dsn: str
    matching_dsn: str
    ledger_dsn: str
    payout_release_dsn: str
    zipkin_url: str

    @classmethod
    def load(cls, settings: Settings | None = None, env: ConsoleSettings | None = None) -> ConsoleConfig:
        s = (settings or Settings()).model_copy(update={"service": "console"})
        e = env or ConsoleSettings()
        kafka = s if s.kafka_username else as_principal(s, "ops", s.kafka_password)
        return cls(
            host=e.console_host,
            port=e.console_port,
            session_secret=e.console_session_secret,
            session_max_age_s=int(e.console_session_hours * 3600),
            users=load_users(config.roles_path(s)),
            roles=parse_roles(config.roles_document(s)),
            kafka=kafka,
            console_dsn=s.runtime_dsn,
            console_owner_dsn=s.owner_dsn,
            matching_dsn=e.matching_db_dsn,
            ledger_dsn=e.ledger_db_dsn,
            payout_release_dsn=e.payout_release_db_dsn
            or local_dsn("concord_reader", "payout_release", e.pg_port),
            zipkin_url=s.zipkin_url,
        )
