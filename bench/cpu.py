"""Where the cores go: CPU seconds of processes, from /proc, for the benchmark's accounting."""

from __future__ import annotations

import os
import resource
from pathlib import Path

from tests.support import ROOT

_TICKS_PER_S = os.sysconf("SC_CLK_TCK")

# This stack's PostgreSQL and Kafka only (their data and properties live in its state dir): other
# stacks on the machine run theirs too.
_STATE = str(Path(os.environ.get("CONCORD_STATE_DIR") or ROOT / ".cache")).encode()


def process_cpu_s(pid: int | str, *, with_reaped_children: bool = False) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])  # utime + stime
    if with_reaped_children:
        ticks += int(fields[13]) + int(fields[14])  # cutime + cstime: children that have exited
    return ticks / _TICKS_PER_S


def _processes() -> dict[int, tuple[int, bytes]]:
    """pid → (parent pid, command line) of every process."""
    found: dict[int, tuple[int, bytes]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            found[int(entry.name)] = (ppid, (entry / "cmdline").read_bytes())
        except (OSError, IndexError, ValueError):
            continue
    return found


def infrastructure_cpu_s() -> dict[str, float]:
    """CPU seconds used so far by this stack's PostgreSQL (its postmaster and the postmaster's
    children, the backends) and by this stack's Kafka brokers."""
    used = {"postgresql": 0.0, "kafka": 0.0}
    procs = _processes()
    postmasters = {
        pid
        for pid, (_, cmd) in procs.items()
        if cmd.startswith((b"postgres", b"/usr/lib/postgresql")) and _STATE in cmd
    }
    for pid, (ppid, cmd) in procs.items():
        if pid in postmasters:
            # The postmaster reaps its backends: a backend that exited during the window (asyncpg
            # replaces a connection after 50,000 queries) is counted in the postmaster's cutime.
            used["postgresql"] += process_cpu_s(pid, with_reaped_children=True)
        elif ppid in postmasters:
            used["postgresql"] += process_cpu_s(pid)
        elif b"java" in cmd[:300] and _STATE + b"/run" in cmd:
            used["kafka"] += process_cpu_s(pid)
    return used


def driver_cpu_s() -> float:
    """This process: the load generator and the watcher (or the baseline hop's clients)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    return own.ru_utime + own.ru_stime


def delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items()}
