"""`python -m services.console` (what `concord console` and deploy/console.sh run)."""

from __future__ import annotations

import sys

import uvicorn

from services.console.app import create_app
from services.console.config import ConsoleConfig, ConsoleSettings
from services.console.users import UsersFileError
from shared.config import ConfigError
from shared.production import guard_process, signing_secrets
from shared.settings import Settings
from shared.telemetry import configure_logging
from tools.cli.readers import CliDatabases


def main() -> None:
    settings = Settings().model_copy(update={"service": "console"})
    env = ConsoleSettings()
    configure_logging("console", level=settings.log_level, fmt=settings.log_format)
    try:
        cfg = ConsoleConfig.load(settings, env)
    except (UsersFileError, ConfigError) as exc:
        print(f"console: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    databases: CliDatabases = env
    guard_process(
        settings,
        secrets={
            **signing_secrets(settings, ["ops"]),
            "CONCORD_CONSOLE_SESSION_SECRET": cfg.session_secret,
        },
        dsns={
            "CONCORD_DB_DSN": cfg.console_dsn,
            "CONCORD_DB_OWNER_DSN": cfg.console_owner_dsn,
            "CONCORD_LEDGER_DB_DSN": databases.ledger_db_dsn,
            "CONCORD_MATCHING_DB_DSN": databases.matching_db_dsn,
            "CONCORD_PAYOUT_RELEASE_DB_DSN": cfg.payout_release_dsn,
        },
    )
    uvicorn.run(create_app(cfg), host=cfg.host, port=cfg.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
