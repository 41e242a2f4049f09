"""The session thread pool (csrc/common/thread_pool.*): every index once under many concurrent
callers and nested calls, a chunk's exception reaching its caller with the pool still usable, and
no core burnt while a pool or a session sits idle (process CPU time, generous bounds), and workers
kept off the driving caller's CPU."""

import os
import threading
import time

import numpy as np
import pytest
import runnx
from helpers import rand, threads
from passes.test_nhwc_layout import block_model

T = runnx._C._testing


@pytest.mark.parametrize(
    "n,grain,n_threads",
    [(0, 1, 2), (1, 1, 4), (3, 1, 4), (5, 2, 3), (7, 100, 2), (8, 1, 2), (1000, 7, 2),
     (12345, 100, 3), (4097, 1, 5)],
)
def test_every_index_once(n, grain, n_threads):
    assert T.thread_pool_coverage(n, grain, n_threads) == [1] * n


@pytest.mark.parametrize("n_threads", [2, 3, 4])
@pytest.mark.parametrize("nested", [False, True])
def test_many_callers_at_once(n_threads, nested):
    # Four threads share one pool (one drives the workers, the others run inline, in turns), and
    # each chunk may start a parallel_for of its own on the same pool.
    bad = T.thread_pool_stress(n_threads, 4, 60 if nested else 300, 513, 3, nested)
    assert bad == [0, 0, 0, 0]


@pytest.mark.parametrize("throw_at", [0, 1, 500, 998, 999])
@pytest.mark.parametrize("n_threads", [2, 3])
def test_exception_reaches_the_caller(throw_at, n_threads):
    assert T.thread_pool_throw_then_cover(n_threads, 1000, 10, throw_at) == [1] * 1000


def test_idle_pool_burns_no_core():
    # Four threads, 200 jobs, then 0.4 s idle: spinning workers would burn up to 1.2 s of CPU.
    assert T.thread_pool_idle_cpu(4, 200, 0.4) < 0.15


def mobilenet_block(batch, size):
    """The nhwc_layout test chain, big enough that its convolutions run on the pool."""
    model = block_model(c=24, expand=96, batch=batch, size=size)
    return model, {"x": rand((batch, 3, size, size))}


def test_idle_session_burns_no_core():
    model, feeds = mobilenet_block(2, 57)
    sess = runnx.InferenceSession(model.SerializeToString(), threads(2))
    for _ in range(20):
        sess.run(None, feeds)
    c0 = time.process_time()
    time.sleep(0.4)
    assert time.process_time() - c0 < 0.15


def test_concurrent_runs_share_the_pool():
    model, feeds = mobilenet_block(3, 45)
    sess = runnx.InferenceSession(model.SerializeToString(), threads(2))
    expected = sess.run(None, feeds)[0]
    results, errors = [], []

    def worker():
        try:
            for _ in range(15):
                results.append(sess.run(None, feeds)[0])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    ts = [threading.Thread(target=worker) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    assert len(results) == 60
    for r in results:
        np.testing.assert_array_equal(r, expected)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two allowed CPUs")
def test_workers_keep_off_the_callers_cpu():
    # Linux tends to wake a worker on its waker's CPU, where it waits behind the busy caller.
    allowed = set(os.sched_getaffinity(0))
    masks = T.thread_pool_worker_masks(2)
    assert masks, "no worker took a chunk"
    for m in masks:
        assert set(m) < allowed and len(m) == len(allowed) - 1
