"""Is the host quiet right now? A scalar loop pinned to each CPU in turn, timed.

On the shared 2-core hosts each core's speed swings for seconds to minutes: the loop below runs in
~20 ms on a quiet core and 30-45 ms on a slowed one, each CPU on its own (most likely a busy SMT
sibling on the host). runnx lost ~16% at ResNet-50 batch 1 in those periods against ~7% for
onnxruntime, so a bench run says little unless you know which state it ran in: print this before
and after it, or use bench/ab_builds.py, which compares builds call by call in one process.

Usage:
    python bench/host_state.py [--iters 500000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time


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
        print("  ".join(f"cpu{c} {ms:6.1f} ms" for c, ms in speeds.items()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
