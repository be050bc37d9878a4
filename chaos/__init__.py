"""Crash, duplicate and bad-input torture test (`make chaos`; a small one runs in `make test`)."""

from chaos.run import ChaosConfig, ChaosReport, run

__all__ = ["ChaosConfig", "ChaosReport", "run"]
