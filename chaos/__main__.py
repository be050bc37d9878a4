"""`make chaos` / `python -m chaos [--invoices N] [--seed S] [--kills K] [--brokers 3 --replicas 2]`:
exit 1 on any violation. `--brokers 3` runs on the local stack's three-node cluster
(`make chaos-cluster` starts it) and kills and pauses its brokers instead of restarting the only one."""

from __future__ import annotations

import argparse
import asyncio
import sys

from rich.console import Console

from chaos.report import print_report
from chaos.run import ChaosConfig, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chaos", description=__doc__)
    parser.add_argument("--invoices", type=int, default=ChaosConfig.invoices)
    parser.add_argument("--seed", type=int, default=ChaosConfig.seed)
    parser.add_argument(
        "--kills", type=int, default=ChaosConfig.kills_per_service, help="SIGKILLs per service"
    )
    parser.add_argument(
        "--gap", type=float, nargs=2, default=ChaosConfig.fault_gap_s, help="seconds between faults: min max"
    )
    parser.add_argument("--brokers", type=int, choices=(1, 3), default=ChaosConfig.brokers)
    parser.add_argument(
        "--replicas", type=int, default=ChaosConfig.replicas, help="processes of every service"
    )
    parser.add_argument(
        "--broker-kills", type=int, default=ChaosConfig.broker_kills, help="SIGKILLs of a leading broker"
    )
    args = parser.parse_args(argv)
    console = Console(width=160)
    config = ChaosConfig(
        seed=args.seed,
        invoices=args.invoices,
        kills_per_service=args.kills,
        fault_gap_s=tuple(args.gap),
        brokers=args.brokers,
        replicas=args.replicas,
        broker_kills=args.broker_kills,
    )
    report = asyncio.run(run(config, console))
    print_report(report, console)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
