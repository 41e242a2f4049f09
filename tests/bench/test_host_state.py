"""bench/host_state.py times its loop on every allowed CPU and leaves the process's CPU mask as it
was; its cross-core probe measures a round trip between two CPUs and refuses CPUs it may not use."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import pytest

import runnx

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


two_cpus = pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")


@two_cpus
def test_cross_core_round_trip_is_measured_and_the_callers_mask_restored():
    from runnx._C import _testing as T

    cpus = sorted(os.sched_getaffinity(0))
    before = os.sched_getaffinity(0)
    ns = T.cross_core_round_trip_ns(cpus[0], cpus[1], 200)
    # A round trip is two cache-line transfers: more than a nanosecond, far less than a millisecond.
    assert 1.0 < ns < 1e6
    assert os.sched_getaffinity(0) == before
    assert host_state.describe_cross_core(ns).endswith("(far)" if ns >= host_state.FAR_NS else "(near)")


def test_cross_core_probe_rejects_cpus_it_may_not_use():
    from runnx._C import _testing as T

    cpus = sorted(os.sched_getaffinity(0))
    outside = max(cpus) + 1
    with pytest.raises(runnx.InvalidArgument, match="two different CPUs"):
        T.cross_core_round_trip_ns(cpus[0], cpus[0])
    with pytest.raises(runnx.InvalidArgument, match="two different CPUs"):
        T.cross_core_round_trip_ns(cpus[0], outside)
    with pytest.raises(runnx.InvalidArgument, match="trips"):
        T.cross_core_round_trip_ns(cpus[0], outside, 0)


def test_describe_cross_core_without_a_reading():
    assert host_state.describe_cross_core(None) == ""


def test_cross_core_ns_is_none_with_a_runnx_older_than_the_probe(monkeypatch):
    # RUNNX_DEV_BUILD may point bench/compare.py at an older build: its host line then leaves it out.
    from runnx._C import _testing as T

    monkeypatch.delattr(T, "cross_core_round_trip_ns")
    assert host_state.cross_core_ns() is None
