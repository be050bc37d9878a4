"""The target's latency phase starts on a stack at rest: after the saturated throughput window the
bench waits until the stack's CPU is back near idle (or a ceiling), and says how long it waited."""

from __future__ import annotations

from typing import Any

import pytest
from rich.console import Console

import bench.__main__ as bench_main


class _Watcher:
    def __init__(self) -> None:
        self.drains = 0

    def drain(self) -> None:
        self.drains += 1


def _cpu_clock(cores_per_sample: list[float], monkeypatch: pytest.MonkeyPatch) -> None:
    """cpu_seconds() as a stack that burns the given cores, one value per sample, then idles;
    the driver's own CPU is large and must not count."""
    used = {"t": 0.0, "calls": 0}

    def cpu_seconds(_stack: Any) -> dict[str, float]:
        # called twice per sample: at its start and at its end
        i = used["calls"] // 2
        if used["calls"] % 2 == 1:
            rate = cores_per_sample[i] if i < len(cores_per_sample) else 0.05
            used["t"] += rate * bench_main.SETTLE_SAMPLE_S
        used["calls"] += 1
        return {"postgresql": used["t"], "benchmark driver": 100.0 * used["calls"]}

    monkeypatch.setattr(bench_main, "cpu_seconds", cpu_seconds)


async def test_waits_while_the_stack_is_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_main, "SETTLE_SAMPLE_S", 0.2)
    _cpu_clock([1.5, 0.9, 0.5], monkeypatch)
    watcher = _Watcher()
    settled = await bench_main._settle(None, watcher, Console(quiet=True))  # type: ignore[arg-type]
    # three busy samples, then the idle one ends it
    assert settled["stack_cores_at_start"] < bench_main.SETTLED_CORES
    assert 0.7 <= settled["settle_s"] <= 3.0
    assert watcher.drains >= 8  # the watcher keeps stamping arrivals meanwhile


async def test_gives_up_at_the_ceiling_and_says_how_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench_main, "SETTLE_SAMPLE_S", 0.2)
    monkeypatch.setattr(bench_main, "SETTLE_MAX_S", 0.5)
    _cpu_clock([1.5] * 100, monkeypatch)
    settled = await bench_main._settle(None, _Watcher(), Console(quiet=True))  # type: ignore[arg-type]
    assert settled["stack_cores_at_start"] > 1.0
    assert settled["settle_s"] < 2.0
