"""Is the host quiet right now? A scalar loop pinned to each CPU in turn, timed, and a cache
line's round trip between the first two CPUs.

On the shared 2-core hosts each core's speed swings for seconds to minutes: the loop below runs in
~20 ms on a quiet core and 30-45 ms on a slowed one, each CPU on its own (most likely a busy SMT
sibling on the host). runnx lost ~16% at ResNet-50 batch 1 in those periods against ~7% for
onnxruntime, so a bench run says little unless you know which state it ran in: print this before
and after it, or use bench/ab_builds.py, which compares builds call by call in one process.

Separately, the host places the two vCPUs near each other (a round trip of ~60-100 ns) or far
apart (~320 ns), also for seconds at a time, while each core alone runs at full speed. Work that
passes data between threads pays it on every hand-over: the 2-thread tabular MLP at batch 1 took
8.7 us far apart against 4.7 us near (its 1-thread time, 4.9 us, does not change).

Usage:
    python bench/host_state.py [--iters 500000] [--repeat 5]
    RUNNX_DEV_BUILD=build/dev python bench/host_state.py ...   # the round trip needs runnx
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if os.environ.get("RUNNX_DEV_BUILD") and __name__ == "__main__":
    sys.path[0:0] = [str(ROOT / "python"), os.path.join(os.environ["RUNNX_DEV_BUILD"], "py")]

# Round trips at or above this many ns: the vCPUs are far apart.
FAR_NS = 200.0


def cross_core_ns() -> float | None:
    """Median ns of a cache line's round trip between the first two allowed CPUs (runnx's C++
    probe); None with fewer than two CPUs, without runnx or with a runnx older than the probe."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    try:
        from runnx._C import _testing
    except ImportError:
        return None
    probe = getattr(_testing, "cross_core_round_trip_ns", None)  # builds before the probe lack it
    return probe(cpus[0], cpus[1]) if probe else None


def describe_cross_core(ns: float | None) -> str:
    """'cpu0-cpu1 round trip 95 ns (near)', or '' when it could not be measured."""
    if ns is None:
        return ""
    cpus = sorted(os.sched_getaffinity(0))
    return f"cpu{cpus[0]}-cpu{cpus[1]} round trip {ns:.0f} ns ({'far' if ns >= FAR_NS else 'near'})"


def core_speeds(iters: int = 500_000) -> dict[int, float]:
    """Milliseconds of a pure-Python loop of `iters` steps on each allowed CPU (best of two)."""
    cpus = sorted(os.sched_getaffinity(0))
    out = {}
    try:
        for c in cpus:
            os.sched_setaffinity(0, {c})
            best = float("inf")
            for _ in range(2):
                t = time.perf_counter()
                s = 0
                for i in range(iters):
                    s += i * i
                best = min(best, time.perf_counter() - t)
            out[c] = best * 1e3
    finally:
        os.sched_setaffinity(0, set(cpus))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iters", type=int, default=500_000)
    ap.add_argument("--repeat", type=int, default=5, help="readings, 0.5 s apart")
    args = ap.parse_args(argv)
    for r in range(args.repeat):
        if r:
            time.sleep(0.5)
        speeds = core_speeds(args.iters)
        line = "  ".join(f"cpu{c} {ms:6.1f} ms" for c, ms in speeds.items())
        print(f"{line}  {describe_cross_core(cross_core_ns())}".rstrip(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
