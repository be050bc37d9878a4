"""Settings from the environment (SPEC §10 names). One object, read once at start."""

from __future__ import annotations

from functools import lru_cache

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.topics import Topic

# Concord processes that authenticate as an external principal rather than their own (SPEC §11:
# the bank gateway of §12.4 is the rail). shared.acl gives them their consumer group and rights.
RUNS_AS: dict[str, str] = {"bank_gateway": "rail"}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONCORD_", extra="ignore")

    service: str = "concord"
    kafka_bootstrap: str = "127.0.0.1:9092"
    # SPEC §11: every client authenticates with SASL/SCRAM-SHA-512 as its own principal.
    kafka_security_protocol: str = "SASL_PLAINTEXT"  # SASL_SSL where the network is not trusted
    kafka_sasl_mechanism: str = "SCRAM-SHA-512"
    kafka_username: str | None = None  # a service's default: its own name
    kafka_password: str | None = None  # default local-dev-<username> (refused in production)
    kafka_ca_file: str | None = None  # the CA that signed the broker's certificate (SASL_SSL)
    # Tests run isolated copies of the whole topic set side by side; production leaves it empty.
    topic_prefix: str = ""
    # SPEC §11: the service connects as its runtime role and migrates as its database's owner.
    # Unset, both are the local stack's (deploy/postgres/init.sql): see runtime_dsn / owner_dsn.
    db_dsn: str | None = None
    db_owner_dsn: str | None = None
    pg_port: int = 54329  # the local stack's PostgreSQL (deploy/postgres.sh), for those defaults
    db_pool_max: int = 10
    health_port: int = 0  # 0: no health/metrics HTTP server
    health_host: str = "127.0.0.1"  # 0.0.0.0 in containers, so probes and scrapers can reach it
    rail_secret: str = "local-dev-rail-secret"
    ops_secret: str = "local-dev-ops-secret"
    payout_run_interval_s: float = 30.0
    # compliance_gate (SPEC §7): an AML screening older than this many days is stale (exactly this
    # old is still fresh); EU businesses with a VAT number need it valid; seconds between sweeps.
    aml_max_age_days: int = Field(default=365, gt=0)
    eu_vat_check: bool = True
    compliance_sweep_interval_s: float = Field(default=60.0, gt=0, allow_inf_nan=False)
    # SPEC §13.3: replaces the policy file's compliance_gate.account_change_cooling_off_hours
    # (the demo runs with a few seconds); unset: the policy file's value (default 24).
    account_change_cooling_off_hours: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    policy_file: str | None = None
    roles_file: str | None = None
    inbox_retention_days: int = Field(default=30, ge=30)
    consumer_batch_max: int = 200
    handler_max_attempts: int = 5  # a record failing this often goes to the deadletter topic
    # How long a committed batch's offsets may wait to be committed to Kafka with the next batches'
    # (one OffsetCommit request for every batch in the interval, not one per batch). A crash or a
    # rebalance in between only redelivers those records, which the inbox skips.
    consumer_commit_interval_s: float = Field(default=0.5, ge=0, allow_inf_nan=False)
    relay_batch_max: int = 500
    relay_poll_interval_s: float = 0.2
    # Fault injection for crash tests and the chaos run: hold outbox rows back this long after start.
    relay_start_delay_s: float = 0.0
    env: str = "development"  # "production": shared/production.py refuses local defaults
    log_level: str = "INFO"
    log_format: str = "json"  # "json" or "console"
    otel_exporter: str = "none"  # "none", "zipkin" (the local stack's), "otlp" or "console"
    # SPEC §14.1: parent-based ratio sampling; a record's traceparent decides downstream.
    trace_sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    # The local stack's Zipkin and Prometheus (deploy/zipkin.sh, deploy/prometheus.sh).
    zipkin_port: int = 9411
    zipkin_endpoint: str | None = None  # default: http://127.0.0.1:<zipkin_port>/api/v2/spans
    prometheus_port: int = 9090
    # bank_gateway (SPEC §12.4): cut-off seconds, the folders a transfer agent moves, sandbox mode
    # (the local stack's), the debtor accounts and the creditor token vault, inbox polling.
    bank_cutoff_s: float = Field(default=10.0, gt=0, allow_inf_nan=False)
    bank_outbox: str = ".cache/bank/outbox"
    bank_inbox: str = ".cache/bank/inbox"
    bank_sandbox: bool = False
    bank_accounts_file: str = "deploy/bank.yaml"
    bank_vault_file: str = "deploy/bank-vault.yaml"
    bank_poll_s: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    # A file modified this recently may still be being written: it waits for the next poll.
    bank_settle_s: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    bank_max_file_bytes: int = Field(default=10 * 1024 * 1024, gt=0)

    @property
    def kafka_bootstrap_servers(self) -> list[str]:
        """CONCORD_KAFKA_BOOTSTRAP as a list: a cluster's brokers are comma-separated, and
        FastStream hands a string to aiokafka as one single host."""
        return [h.strip() for h in self.kafka_bootstrap.split(",") if h.strip()]

    @property
    def kafka_principal(self) -> str:
        return self.kafka_username or RUNS_AS.get(self.service, self.service)

    @property
    def kafka_secret(self) -> str:
        return self.kafka_password or f"local-dev-{self.kafka_principal}"

    @property
    def runtime_dsn(self) -> str:
        """The role the service runs as: by default the local stack's, named like the service."""
        return self.db_dsn or local_dsn(self.service, self.service, self.pg_port)

    @property
    def owner_dsn(self) -> str:
        """The role migrations run as. Unset: the runtime DSN's role where CONCORD_DB_DSN is set
        (one role does both, e.g. a test's scratch database), else the local stack's owner role."""
        if self.db_owner_dsn:
            return self.db_owner_dsn
        if self.db_dsn:
            return self.db_dsn
        return local_dsn(f"{self.service}_owner", self.service, self.pg_port)

    @property
    def zipkin_url(self) -> str:
        return f"http://127.0.0.1:{self.zipkin_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    def topic(self, topic: Topic | str) -> str:
        name = topic if isinstance(topic, str) else topic.name
        return self.topic_prefix + name

    def unprefixed(self, topic_name: str) -> str:
        if self.topic_prefix and topic_name.startswith(self.topic_prefix):
            return topic_name[len(self.topic_prefix) :]
        return topic_name


def local_dsn(role: str, database: str, port: int = 54329) -> str:
    """A role's DSN on the local stack, with its local password (SPEC §11: local-dev-<name>)."""
    return f"postgresql://{role}:local-dev-{role}@127.0.0.1:{port}/{database}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
