"""Side-by-side timing of two engines in one process, each measured as if it ran alone.

onnxruntime's intra-op workers keep spinning for about 40 ms of wall time after every run (its
default `session.intra_op.allow_spinning=1`; measured here: ~40 ms of extra process CPU time after
each run). Timed call by call, the other engine's next run shares the two cores with that spinning
thread and loses most of its second thread. So engines alternate in blocks: before each block the
process sleeps until the other engine's pool has gone idle, one untimed call wakes this engine's
pool, and then a block of about `block_s` seconds of calls is timed. Alternating blocks (A B, B A,
...) still lets a noisy host hurt both engines alike.
"""

from __future__ import annotations

import math
import time

SETTLE_S = 0.1  # longer than onnxruntime's post-run spin (~40 ms), with margin for a busy host


def time_call(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def interleaved(fns: dict, reps: int, block_s: float = 0.25, settle_s: float = SETTLE_S,
                clock=time.perf_counter, min_blocks: int = 1) -> dict[str, list[float]]:
    """Times each callable at least `reps` times (at most a block more), in blocks that alternate
    the engines' order; returns seconds per call (or `clock` units) for each name. Blocks hold at
    most `block_s` seconds of calls and at most reps / `min_blocks` calls: a fast model's calls
    then spread over several alternations, not one window of a few milliseconds per engine that
    a slow stretch of the host (they last seconds) can hit for one engine only."""
    names = list(fns)
    out: dict[str, list[float]] = {n: [] for n in names}
    r = 0
    while min(len(v) for v in out.values()) < reps:
        for n in names if r % 2 == 0 else names[::-1]:
            if len(out[n]) >= reps:
                continue
            time.sleep(settle_s)
            untimed = time_call(fns[n])  # wakes this engine's pool
            per_block = max(1, min(reps - len(out[n]), math.ceil(block_s / max(untimed, 1e-7)),
                                   math.ceil(reps / max(min_blocks, 1))))
            for _ in range(per_block):
                t = clock()
                fns[n]()
                out[n].append(clock() - t)
        r += 1
    return out


def interleaved_for(fns: dict, budget: float, clock=time.perf_counter, hi: int = 1000
                    ) -> dict[str, list[float]]:
    """About `budget` seconds of calls per engine (at least 3, at most `hi`), in settled
    alternating blocks of about a quarter of that."""
    per_call = max(time_call(f) for f in fns.values())  # also a warm-up
    reps = int(max(3, min(hi, budget / max(per_call, 1e-7))))
    return interleaved(fns, reps, block_s=budget / 4, clock=clock)
