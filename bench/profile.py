"""`make bench BENCH_ARGS=--profile`: py-spy samples every service process and the bench's own
(`driver`) during the steady part of the throughput window; each process's samples are summarised
as its top functions, by own time (the frame on top of the stack) and by total time (anywhere on
the stack).

Written to bench-results/profile/: `<process>.raw` (py-spy's collapsed stacks: one line per
distinct stack, frames separated by `;`, then the sample count) and `<process>.txt` (the
summary). py-spy samples without pausing the process (--nonblocking), and only while the process
holds the GIL (--gil): uvloop waits for I/O in C without the GIL, which py-spy's own idle
detection does not recognise (without --gil most samples land on `Runner.run`, the loop waiting).
The shares are therefore of the time the process was running Python or holding the GIL in C
(uvloop's callbacks, asyncpg's and pydantic's C code); time in C without the GIL (a few
libraries' I/O and decompression) is not in them.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

RATE_HZ = 100
TOP = 30


def py_spy() -> str:
    """The py-spy of this virtualenv (the dev extra), else one on PATH."""
    beside = Path(sys.executable).with_name("py-spy")
    found = str(beside) if beside.exists() else shutil.which("py-spy")
    if found is None:
        raise SystemExit("--profile needs py-spy: `make deps` installs it (pyproject's dev extra)")
    return found


@dataclass
class Profiling:
    """py-spy processes recording the given pids for `seconds`."""

    pids: dict[str, int]
    seconds: float
    out: Path
    procs: dict[str, asyncio.subprocess.Process] | None = None

    async def start(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        exe = py_spy()
        self.procs = {}
        for name, pid in self.pids.items():
            self.procs[name] = await asyncio.create_subprocess_exec(
                exe,
                "record",
                "--pid",
                str(pid),
                "--duration",
                str(max(1, round(self.seconds))),
                "--rate",
                str(RATE_HZ),
                "--format",
                "raw",
                "--function",  # one entry per function, not per line
                "--nonblocking",
                "--gil",
                "--output",
                str(self.out / f"{name}.raw"),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )

    async def finish(self) -> dict[str, str]:
        """Waits for every recording; writes the summaries; returns process → summary path (or the
        error py-spy gave)."""
        written: dict[str, str] = {}
        for name, proc in (self.procs or {}).items():
            try:
                _, err = await asyncio.wait_for(proc.communicate(), self.seconds + 60)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                written[name] = "py-spy did not finish"
                continue
            raw = self.out / f"{name}.raw"
            if proc.returncode != 0 or not raw.exists():
                written[name] = f"py-spy failed: {err.decode(errors='replace').strip()[-300:]}"
                continue
            summary = self.out / f"{name}.txt"
            summary.write_text(summarise(name, raw.read_text()))
            written[name] = str(summary)
        return written


def summarise(name: str, collapsed: str, top: int = TOP) -> str:
    """The top functions of py-spy's collapsed stacks, by own and by total samples."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    lines = [f"{name}: {samples} samples at {RATE_HZ} Hz while it held the GIL", ""]
    for title, counter in (("own time (top of stack)", own), ("total time (anywhere on the stack)", total)):
        lines.append(f"top {top} functions by {title}:")
        for frame, count in counter.most_common(top):
            lines.append(f"  {100 * count / max(1, samples):5.1f}%  {count:7d}  {frame}")
        lines.append("")
    return "\n".join(lines)
