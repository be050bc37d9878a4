"""A service process tunes Python's garbage collector once it has started (shared.service):
start-up's objects are frozen, so no full collection walks them again, and young collections
run less often. Run in a child process: the test process's own collector is left alone."""

from __future__ import annotations

import json
import subprocess
import sys

from shared.service import GC_YOUNG_THRESHOLD

_PROBE = """
import gc, json
from shared.service import tune_gc_after_start
before = (gc.get_freeze_count(), gc.get_threshold())
tune_gc_after_start()
after = (gc.get_freeze_count(), gc.get_threshold())
print(json.dumps({"before": before, "after": after}))
"""


def test_a_started_service_freezes_start_up_objects_and_collects_young_objects_less_often() -> None:
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, check=True)
    probe = json.loads(out.stdout)
    frozen_before, threshold_before = probe["before"]
    frozen_after, threshold_after = probe["after"]
    assert frozen_before == 0
    assert frozen_after > 10_000  # the modules, models and schemas start-up imported
    assert threshold_before[0] < GC_YOUNG_THRESHOLD
    assert threshold_after == [GC_YOUNG_THRESHOLD, threshold_before[1], threshold_before[2]]
