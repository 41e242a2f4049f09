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


@pytest.mark.parametrize("n,n_threads", [(0, 2), (1, 2), (2, 2), (33, 2), (4097, 3)])
def test_every_item_once_one_chunk_each(n, n_threads):
    # parallel_for_each (grain 0 in the hook): a chunk per item, past parallel_for's 16 a thread.
    assert T.thread_pool_coverage(n, 0, n_threads) == [1] * n


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


def check_concurrent_runs(sess, feeds, callers, runs):
    """`callers` threads each run `sess` `runs` times; every output must equal a lone run's."""
    expected = sess.run(None, feeds)[0]
    results, errors = [], []

    def worker():
        try:
            for _ in range(runs):
                results.append(sess.run(None, feeds)[0])
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    ts = [threading.Thread(target=worker) for _ in range(callers)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    assert len(results) == callers * runs
    for r in results:
        np.testing.assert_array_equal(r, expected)


def test_concurrent_runs_share_the_pool():
    model, feeds = mobilenet_block(3, 45)
    check_concurrent_runs(runnx.InferenceSession(model.SerializeToString(), threads(2)), feeds, 4, 15)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two allowed CPUs")
def test_workers_keep_off_the_callers_cpu():
    # Linux tends to wake a worker on its waker's CPU, where it waits behind the busy caller.
    allowed = set(os.sched_getaffinity(0))
    masks = T.thread_pool_worker_masks(2)
    assert masks, "no worker took a chunk"
    for m in masks:
        assert set(m) < allowed and len(m) == len(allowed) - 1


def test_late_joiner_wakes_the_sleeping_caller():
    # A worker that announced itself to a job but found it closed (held past the caller's 1 ms
    # wait by a test hook) must wake the caller, which went to sleep waiting for it; before
    # eaa03fd it left silently and run() waited forever. The binding wakes a hung caller itself
    # after the timeout, so a regression fails here instead of hanging the suite.
    announced, came_back = T.thread_pool_late_joiner(10.0)
    assert announced, "the worker never joined the job"
    assert came_back, "the caller was never woken by the late worker"


@pytest.mark.parametrize("n_threads", [2, 3])
def test_run_scope_keeps_workers_awake_until_the_last_run_ends(n_threads):
    # Asleep when idle; awake from a run's start (before its first job); still awake after
    # overlapping runs on three more threads ended while the first has not; asleep once all ended.
    workers = n_threads - 1
    assert T.thread_pool_run_scope_sleepers(n_threads, True, 3, 40) == (workers, 0, 0, workers)


def test_runs_wake_the_workers_only_after_a_run_that_used_them():
    # A model whose kernels all run inline (a small MLP) must not wake the workers every run.
    assert T.thread_pool_runs_after_jobless_runs(3) == (2, 0)


def test_without_spinning_workers_sleep_through_a_run():
    assert T.thread_pool_run_scope_sleepers(3, False, 3, 40) == (2, 2, 2, 2)


def _session(model, n_threads, spinning=None):
    so = runnx.SessionOptions()
    so.intra_op_num_threads = n_threads
    if spinning is not None:
        so.add_session_config_entry("session.intra_op.allow_spinning", spinning)
    return runnx.InferenceSession(model.SerializeToString(), so)


@pytest.mark.parametrize("value", ["2", "", "true", " 1", "yes"])
def test_allow_spinning_takes_0_or_1_only(value):
    model, _ = mobilenet_block(1, 9)
    with pytest.raises(runnx.InvalidArgument, match=r"session\.intra_op\.allow_spinning.*'0' or '1'"):
        _session(model, 2, value)


@pytest.mark.parametrize("value,spins", [(None, True), ("1", True), ("0", False)])
def test_allow_spinning_reaches_the_sessions_pool(value, spins):
    model, _ = mobilenet_block(1, 9)
    assert T.session_pool_allows_spinning(_session(model, 2, value)._sess) is spins


@pytest.mark.parametrize("n_threads", [1, 2, 3])
def test_allow_spinning_0_gives_the_same_results(n_threads):
    model, feeds = mobilenet_block(3, 45)
    so = runnx.SessionOptions()
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    reference = _session(model, 1).run(None, feeds)[0]
    firsts = []
    for spinning in ("0", "1"):
        sess = _session(model, n_threads, spinning)
        outs = [sess.run(None, feeds)[0] for _ in range(3)]
        for y in outs:
            np.testing.assert_array_equal(y, outs[0])
        np.testing.assert_allclose(outs[0], reference, rtol=1e-4, atol=1e-4)
        firsts.append(outs[0])
    np.testing.assert_array_equal(firsts[0], firsts[1])  # same work split: the same bits


def test_without_spinning_concurrent_runs_agree_and_idle_burns_nothing():
    model, feeds = mobilenet_block(2, 33)
    check_concurrent_runs(_session(model, 2, "0"), feeds, 3, 10)
    c0 = time.process_time()
    time.sleep(0.3)
    assert time.process_time() - c0 < 0.1
