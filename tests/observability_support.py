"""A test's own Zipkin and Prometheus (SPEC §14.1), beside whatever `make up` runs: Zipkin through
deploy/zipkin.sh on a free port, Prometheus on a free port scraping the test's own processes with
the shipped alert rules. Nothing here is mocked: the same jar, package and rules as `make up`."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.observability import prometheus_config
from tests.kafka_support import free_port
from tests.support import ROOT

ZIPKIN_SH = ROOT / "deploy" / "zipkin.sh"


def get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


@dataclass
class Zipkin:
    port: int
    ready: asyncio.Task[None]  # done once it answers; its JVM takes 10–30 s here

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@asynccontextmanager
async def zipkin(workdir: Path) -> AsyncIterator[Zipkin]:
    """Starts Zipkin in the background, so that a test can start its services meanwhile and
    await `ready` before it needs the spans."""
    port = free_port()
    env = {
        **os.environ,
        "CONCORD_ZIPKIN_PORT": str(port),
        "CONCORD_RUN_DIR": str(workdir / "run"),
        "CONCORD_LOG_DIR": str(workdir / "logs"),
    }

    async def start() -> None:
        proc = await asyncio.create_subprocess_exec(
            str(ZIPKIN_SH), "start", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        out, _ = await proc.communicate()
        assert proc.returncode == 0, out.decode()

    task = asyncio.create_task(start())
    try:
        yield Zipkin(port, task)
    finally:
        if not task.done():
            await asyncio.wait([task])
        await asyncio.to_thread(
            subprocess.run, [str(ZIPKIN_SH), "stop"], env=env, capture_output=True, timeout=60, check=False
        )


@contextmanager
def prometheus(targets: Mapping[str, str], workdir: Path, *, interval: str = "1s") -> Iterator[str]:
    """Prometheus scraping `targets` (component → host:port) every `interval`, evaluating the
    shipped alert rules as often; yields its base URL."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus is missing: deploy/install.sh installs it (Debian's package)"
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "prometheus.yml"
    config.write_text(prometheus_config(targets, scrape_interval=interval))
    port = free_port()
    log = open(workdir / "prometheus.log", "ab")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, f"prometheus exited; log: {workdir / 'prometheus.log'}"
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "prometheus not ready after 30 s"
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def target_health(prometheus_url: str) -> dict[str, str]:
    """component → up/down/unknown, as Prometheus's targets API reports them."""
    data = get_json(f"{prometheus_url}/api/v1/targets?state=active")["data"]["activeTargets"]
    return {t["labels"]["component"]: t["health"] for t in data}


def alerts(prometheus_url: str) -> list[dict[str, Any]]:
    """Prometheus's alerts API: every pending or firing alert with its labels and annotations."""
    return list(get_json(f"{prometheus_url}/api/v1/alerts")["data"]["alerts"])


async def wait_until(check: Any, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        assert time.monotonic() < deadline, f"not within {timeout_s}s: {what}"
        await asyncio.sleep(0.5)


def query(prometheus_url: str, promql: str) -> list[dict[str, Any]]:
    q = urllib.parse.urlencode({"query": promql})
    return list(get_json(f"{prometheus_url}/api/v1/query?{q}")["data"]["result"])
