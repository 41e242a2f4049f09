"""bench/timing.py: engines alternate in blocks, and a short measurement still spreads over several."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from bench.timing import interleaved  # noqa: E402


def _blocks(order, name):
    """Runs of consecutive calls of `name` in the call order."""
    runs, prev = 0, None
    for n in order:
        if n == name and prev != name:
            runs += 1
        prev = n
    return runs


def test_min_blocks_spreads_fast_calls_over_alternations():
    order = []
    fns = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    out = interleaved(fns, 100, block_s=10.0, settle_s=0.0, min_blocks=10)
    assert [len(v) for v in out.values()] == [100, 100]
    # Each block starts with one untimed call: 110 calls are 10 blocks of 10 timed ones. Rounds
    # alternate A B / B A, so two blocks of one engine meet at each round's turn: 6 runs of "a".
    assert order.count("a") == 110 and order.count("b") == 110
    assert _blocks(order, "a") == 6 and _blocks(order, "b") == 5


def test_default_is_one_block_when_it_fits():
    order = []
    fns = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    interleaved(fns, 100, block_s=10.0, settle_s=0.0)
    assert order.count("a") == 101 and _blocks(order, "a") == 1 and _blocks(order, "b") == 1
