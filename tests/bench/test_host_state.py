"""bench/host_state.py times its loop on every allowed CPU and leaves the process's CPU mask as it was."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

host_state = importlib.import_module("bench.host_state")


def test_core_speeds_one_reading_per_cpu_and_mask_restored():
    before = os.sched_getaffinity(0)
    speeds = host_state.core_speeds(iters=2000)
    assert set(speeds) == before
    assert all(ms > 0 for ms in speeds.values())
    assert os.sched_getaffinity(0) == before


def test_main_prints_a_line_per_reading(capsys):
    assert host_state.main(["--iters", "1000", "--repeat", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all("cpu" in ln and "ms" in ln for ln in lines)
