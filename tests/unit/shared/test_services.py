"""The services are named once in Python (shared/services.py); the deploy scripts keep the one
copy a shell script must: deploy/lib.sh's SERVICES, in the same order (health ports follow it)."""

from __future__ import annotations

import re
from pathlib import Path

from shared.services import SERVICES, SERVICES_AND_GATEWAY

LIB_SH = Path(__file__).resolve().parents[3] / "deploy" / "lib.sh"


def test_deploy_scripts_run_the_services_python_names_in_the_same_order() -> None:
    [line] = re.findall(r"^SERVICES=\((.*)\)$", LIB_SH.read_text(), flags=re.MULTILINE)
    assert tuple(line.split()) == SERVICES_AND_GATEWAY


def test_every_service_has_its_package() -> None:
    services = Path(__file__).resolve().parents[3] / "services"
    assert all((services / name / "handlers.py").is_file() for name in SERVICES_AND_GATEWAY)
    assert SERVICES_AND_GATEWAY[: len(SERVICES)] == SERVICES
