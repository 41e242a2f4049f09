"""bench/ab_builds.py loads the same build twice in one process (the second copy under its own
pybind11 registry) and prints the paired ratio and the per-node rows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import runnx

ROOT = Path(__file__).resolve().parents[2]


def test_ab_builds_runs_one_build_against_itself():
    build = str(Path(runnx._C.__file__).parent)  # the installed package, or the dev build's py/runnx
    env = {k: v for k, v in os.environ.items() if k != "RUNNX_DEV_BUILD"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ab_builds.py"), "--base", build, "--new", build,
         "--model", "mlp", "--scale", "tiny", "--threads", "1", "--rounds", "4"],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    head, *rows = proc.stdout.splitlines()
    assert "mlp batch 1, 1 thread(s), 4 calls each" in head and "paired ratio new/base" in head
    ratio = float(head.rsplit(" ", 1)[1])
    assert 0.1 < ratio < 10.0
    assert any(r.split()[0] == "FusedGemm" for r in rows[1:]), proc.stdout


def test_ab_builds_names_a_folder_without_the_extension(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ab_builds.py"), "--base", str(tmp_path), "--new", str(tmp_path),
         "--model", "mlp", "--scale", "tiny"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert proc.returncode != 0 and "no runnx _C" in proc.stderr
