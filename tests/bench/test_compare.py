"""Smoke test of bench/compare.py on a tiny model: it must print onnxruntime's numbers whether or
not runnx imports or works (the runtime is built in parallel with the harness)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

compare = importlib.import_module("bench.compare")


def test_compare_prints_ort_rows_and_summary(capsys):
    assert (
        compare.main(
            ["--models", "mlp", "--scale", "tiny", "--budget", "0.02", "--repeats", "5", "--no-rss"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "== mlp" in out and "batch 1 latency p50" in out and "== summary" in out
    states = [ln for ln in out.splitlines() if ln.startswith("host state")]
    assert [ln.split()[2] for ln in states] == ["before:", "after:"] and all(" ms" in ln for ln in states)
    ort_cell = next(ln for ln in out.splitlines() if "batch 1 latency p50" in ln).split()
    assert any(tok in ("us", "ms", "s") for tok in ort_cell), "no onnxruntime latency printed"


def test_max_abs_diff_reports_shape_mismatch():
    import numpy as np
    import pytest

    ref = [np.zeros((2, 3), np.float32)]
    assert compare.max_abs_diff([np.full((2, 3), 0.5, np.float32)], ref) == 0.5
    with pytest.raises(ValueError):
        compare.max_abs_diff([np.zeros((3, 2), np.float32)], ref)
