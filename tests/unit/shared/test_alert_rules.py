"""SPEC §14.1: the shipped alert rules are valid and each fires when it should (promtool's own
rule tests over synthetic series, deploy/prometheus/alerts.test.yml), and the scrape configuration
`make up` renders lists exactly the running processes at their health ports."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from shared.observability import ALERT_RULES, local_targets, prometheus_config
from shared.services import SERVICES_AND_GATEWAY

RULE_TESTS = ALERT_RULES.with_name("alerts.test.yml")


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: deploy/install.sh installs Debian's prometheus package"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, check=False)


def test_promtool_accepts_the_alert_rules() -> None:
    result = promtool("check", "rules", str(ALERT_RULES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_each_alert_fires_when_it_should_and_only_then() -> None:
    result = promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rules_cover_every_alert_the_spec_asks_for() -> None:
    rules = yaml.safe_load(ALERT_RULES.read_text())
    names = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    assert names == {
        "ConcordDeadletter",
        "ConcordOutboxLagging",
        "ConcordConsumerLagGrowing",
        "ConcordHoldsOverdue",
        "ConcordPayoutUnsuccessful",
        "ConcordServiceDown",
    }
    tested = yaml.safe_load(RULE_TESTS.read_text())
    exercised = {t["alertname"] for case in tested["tests"] for t in case.get("alert_rule_test", [])}
    assert exercised == names


def test_make_up_scrapes_the_services_at_their_health_ports(tmp_path: Path) -> None:
    config = tmp_path / "prometheus.yml"
    config.write_text(prometheus_config(local_targets(SERVICES_AND_GATEWAY, 18081)))
    result = promtool("check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    [job] = yaml.safe_load(config.read_text())["scrape_configs"]
    scraped = {c["labels"]["component"]: c["targets"] for c in job["static_configs"]}
    assert scraped == {name: [f"127.0.0.1:{18081 + i}"] for i, name in enumerate(SERVICES_AND_GATEWAY)}
    assert job["job_name"] == "concord"  # what ConcordServiceDown watches


def test_docker_compose_runs_prometheus_with_the_same_rules_and_job() -> None:
    compose = yaml.safe_load((ALERT_RULES.parents[2] / "docker-compose.yml").read_text())
    prom = compose["services"]["prometheus"]
    mounts = {m.split(":")[0]: m.split(":")[1] for m in prom["volumes"] if m.startswith("./")}
    assert mounts["./deploy/prometheus/alerts.yml"] == "/etc/prometheus/alerts.yml"
    config = yaml.safe_load((ALERT_RULES.parent / "compose.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/alerts.yml"]
    [job] = config["scrape_configs"]
    assert job["job_name"] == "concord"
    scraped = {c["labels"]["component"]: c["targets"] for c in job["static_configs"]}
    ports = {
        name: compose["services"][name]["environment"]["CONCORD_HEALTH_PORT"] for name in SERVICES_AND_GATEWAY
    }
    assert scraped == {name: [f"{name}:{ports[name]}"] for name in SERVICES_AND_GATEWAY}
