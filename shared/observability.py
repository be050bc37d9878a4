"""The Prometheus configuration that scrapes Concord's processes (SPEC §14.1): one renderer for the
local stack (deploy/prometheus.sh) and the tests' own Prometheus instances.

    python -m shared.observability prometheus-config --port-base 8081 intake matching … > prometheus.yml
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

ALERT_RULES = Path(__file__).resolve().parent.parent / "deploy" / "prometheus" / "alerts.yml"
JOB = "concord"  # the alert rules' `up{job="concord"}`

# Where the processes that do not exist yet will be scraped; listed once they run, so that no
# target is down today.
_NOT_YET = """\
# Not scraped yet, because they do not exist yet (no target may be down for nothing):
# - bank_gateway (SPEC §12.4): joins SERVICES in deploy/lib.sh and so this job, at the next
#   health port (CONCORD_HEALTH_PORT_BASE + 5, 8086 by default).
# - the console (SPEC §14.2), 127.0.0.1:8090: a target {component: console} in this job once it
#   serves /metrics.
"""


def prometheus_config(
    targets: Mapping[str, str],
    *,
    scrape_interval: str = "15s",
    rule_files: Sequence[Path] = (ALERT_RULES,),
) -> str:
    """`targets`: component name → host:port serving /metrics. Each target is labelled with its
    `component` (not `service`: the metrics carry their own `service` label)."""
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [
            {
                "job_name": JOB,
                "metrics_path": "/metrics",
                "static_configs": [
                    {"targets": [address], "labels": {"component": name}} for name, address in targets.items()
                ],
            }
        ],
    }
    header = "# Rendered by shared/observability.py; edits are overwritten.\n" + _NOT_YET
    return header + yaml.safe_dump(config, sort_keys=False)


def local_targets(names: Sequence[str], port_base: int) -> dict[str, str]:
    """The local stack's processes: health ports from the base, in deploy/lib.sh's SERVICES order."""
    return {name: f"127.0.0.1:{port_base + i}" for i, name in enumerate(names)}


Span = dict[str, Any]  # Zipkin's JSON v2 span


def zipkin_traces(zipkin_url: str, tag: str, value: str, *, limit: int = 10) -> list[list[Span]]:
    """The traces Zipkin holds with a span tagged `tag`=`value` (its own API, as an SRE asks it)."""
    query = urllib.parse.urlencode({"annotationQuery": f"{tag}={value}", "limit": limit})
    with urllib.request.urlopen(f"{zipkin_url}/api/v2/traces?{query}", timeout=5) as r:
        traces: list[list[Span]] = json.load(r)
    return traces


def services_of(trace: Sequence[Span]) -> set[str]:
    return {s.get("localEndpoint", {}).get("serviceName", "") for s in trace}


def wait_for_invoice_trace(
    zipkin_url: str, invoice_id: str, services: Sequence[str], *, timeout_s: float = 20
) -> list[Span] | None:
    """The invoice's trace once spans from every one of `services` have reached Zipkin (they are
    exported in batches, a second or so after the work), else None at the timeout."""
    deadline = time.monotonic() + timeout_s
    while True:
        for trace in zipkin_traces(zipkin_url, "invoice_id", invoice_id):
            if set(services) <= services_of(trace):
                return trace
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.5)


def zipkin_trace_link(zipkin_url: str, trace: Sequence[Span]) -> str:
    return f"{zipkin_url}/zipkin/traces/{trace[0]['traceId']}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.observability")
    sub = parser.add_subparsers(dest="command", required=True)
    cfg = sub.add_parser("prometheus-config", help="print the local stack's Prometheus configuration")
    cfg.add_argument("--port-base", type=int, default=8081)
    cfg.add_argument("--scrape-interval", default="15s")
    cfg.add_argument("services", nargs="+")
    args = parser.parse_args(argv)
    sys.stdout.write(
        prometheus_config(local_targets(args.services, args.port_base), scrape_interval=args.scrape_interval)
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
