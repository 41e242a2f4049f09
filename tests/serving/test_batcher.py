"""runnx.Batcher: results equal single-request runs, batching rules, priorities, deadlines,
queue limits, shutdown, errors. No timings are asserted; long delays only make batching
deterministic (a batch forms when it fills or when the batcher closes)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import threading

import numpy as np
import pytest
import runnx
from serving import models

LONG_US = 30_000_000  # a delay no test waits out: batches form by filling up or at close
BIG_US = 10**12  # max_inline_us that any compute time meets


@pytest.fixture(scope="module")
def mlp_session():
    return runnx.InferenceSession(models.mlp())


def single(sess, feeds, output_names=None):
    names = output_names or [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(names, feeds)))


def assert_result(res, expected):
    assert list(res.outputs) == list(expected)
    for name, exp in expected.items():
        got = res.outputs[name]
        assert got.dtype == exp.dtype and got.shape == exp.shape, name
        np.testing.assert_allclose(got, exp, rtol=1e-5, atol=1e-6, err_msg=name)


def x_rows(rng, n, features=5):
    return rng.standard_normal((n, features)).astype(np.float32)


def test_submit_matches_session_run(mlp_session):
    rng = np.random.default_rng(1)
    with runnx.Batcher(mlp_session, max_batch_size=4, max_queue_delay_us=100) as b:
        x = x_rows(rng, 3)
        res = b.submit({"x": x}).result(timeout=30)
        assert isinstance(res, runnx.InferResult)
        assert_result(res, single(mlp_session, {"x": x}))
        assert res.batch_size >= 3 and res.queue_us >= 0 and res.compute_us >= 0
        assert [i.name for i in b.inputs] == ["x"]
        assert [o.name for o in b.outputs] == ["y", "z"]
        assert (b.max_batch_size, b.max_queue_delay_us, b.instance_count, b.max_queue_size) == (
            4,
            100,
            1,
            1024,
        )
        assert b.preferred_batch_sizes == ()
    assert b.closed


def test_model_from_path_and_bytes(tmp_path):
    data = models.mlp()
    path = tmp_path / "m.onnx"
    path.write_bytes(data)
    ref = runnx.InferenceSession(data)
    x = x_rows(np.random.default_rng(2), 2)
    so = runnx.SessionOptions()
    so.intra_op_num_threads = 1
    for model in (str(path), data):
        with runnx.Batcher(model, sess_options=so, instance_count=2) as b:
            assert_result(b.submit({"x": x}).result(timeout=30), single(ref, {"x": x}))


def test_output_names_subset_and_order(mlp_session):
    rng = np.random.default_rng(3)
    with runnx.Batcher(mlp_session, max_batch_size=8, max_queue_delay_us=LONG_US) as b:
        cases = [(["z"],), (["z", "y"],), (None,), (["y"],), ("z",)]
        futs = []
        for (names,) in cases * 3:
            x = x_rows(rng, 1)
            futs.append((b.submit({"x": x}, output_names=names), x, names))
        b.close()
        for fut, x, names in futs:
            wanted = [names] if isinstance(names, str) else names
            assert_result(fut.result(timeout=30), single(mlp_session, {"x": x}, wanted))
        # Different output lists never share a batch ("z" is ["z"]: 6 requests; the rest 3 each).
        assert b.stats()["batch_sizes"] == {3: 3, 6: 1}


def test_bad_feeds_raise_at_submit(mlp_session):
    with runnx.Batcher(mlp_session, max_batch_size=4) as b:
        ok = np.zeros((1, 5), np.float32)
        bad = [
            ({"x": ok, "extra": ok}, "unknown input 'extra'"),
            ({}, "missing input 'x'"),
            ({"x": ok.astype(np.float64)}, "dtype"),
            ({"x": np.zeros((1, 5, 1), np.float32)}, "rank"),
            ({"x": np.zeros((1, 6), np.float32)}, "expects"),
            ({"x": np.zeros((5, 5), np.float32)}, "max_batch_size=4"),
            ({"x": np.zeros((0, 5), np.float32)}, "batch size 0"),
            ({"x": np.zeros(5, np.float32)}, "rank"),
        ]
        for feeds, msg in bad:
            with pytest.raises(runnx.InvalidArgument, match=msg):
                b.submit(feeds)
        with pytest.raises(runnx.InvalidArgument, match="unknown output 'nope'"):
            b.submit({"x": ok}, output_names=["nope"])
        with pytest.raises(runnx.InvalidArgument):
            b.submit([("x", ok)])
        with pytest.raises(runnx.InvalidArgument, match="timeout_us"):
            b.submit({"x": ok}, timeout_us=-1)
        assert b.queue_depth() == 0
        assert b.submit({"x": ok}).result(timeout=30).outputs["y"].shape == (1, 3)


def test_bad_options(mlp_session):
    for kw, msg in [
        ({"max_batch_size": -1}, "max_batch_size"),
        ({"max_queue_size": 0}, "max_queue_size"),
        ({"instance_count": 0}, "instance_count"),
        ({"max_queue_delay_us": -5}, "max_queue_delay_us"),
        ({"max_batch_size": 4, "preferred_batch_sizes": (8,)}, "preferred batch size 8"),
    ]:
        with pytest.raises(runnx.InvalidArgument, match=msg):
            runnx.Batcher(mlp_session, **kw)


def test_fixed_shape_model_needs_max_batch_size_0():
    sess = runnx.InferenceSession(models.fixed_shape())
    with pytest.raises(runnx.InvalidArgument, match="max_batch_size=0"):
        runnx.Batcher(sess, max_batch_size=4)
    rng = np.random.default_rng(4)
    with runnx.Batcher(sess, max_batch_size=0, max_queue_delay_us=LONG_US, instance_count=2) as b:
        xs = [rng.standard_normal((2, 3)).astype(np.float32) for _ in range(20)]
        futs = [b.submit({"x": x}) for x in xs]
        for fut, x in zip(futs, xs):
            res = fut.result(timeout=30)  # runs alone at once: no waiting for the delay
            assert res.batch_size == 1
            assert_result(res, {"y": x + 1})
        with pytest.raises(runnx.InvalidArgument, match="expects"):
            b.submit({"x": np.zeros((1, 3), np.float32)})
    assert b.stats()["batches"] == 20


def test_incompatible_shapes_batch_separately():
    sess = runnx.InferenceSession(models.two_inputs())
    rng = np.random.default_rng(5)
    with runnx.Batcher(sess, max_batch_size=64, max_queue_delay_us=LONG_US) as b:
        futs = []
        rows = {3: 0, 4: 0}
        for i in range(16):
            k = 3 if i % 2 else 4
            n = 1 + i % 3
            rows[k] += n
            feeds = {
                "a": rng.standard_normal((n, k)).astype(np.float32),
                "b": rng.integers(-5, 5, n),
            }
            futs.append((b.submit(feeds), feeds, k))
        assert b.queue_depth() == 16
        b.close()
        for fut, feeds, k in futs:
            res = fut.result(timeout=30)
            assert res.batch_size == rows[k]
            assert_result(res, single(sess, feeds))


def test_request_rows_and_preferred_size_dispatch(mlp_session):
    rng = np.random.default_rng(6)
    with runnx.Batcher(
        mlp_session, max_batch_size=8, max_queue_delay_us=LONG_US, preferred_batch_sizes=(4,)
    ) as b:
        xs = [x_rows(rng, n) for n in (1, 2, 1)]
        futs = [b.submit({"x": x}) for x in xs]
        for fut, x in zip(futs, xs):  # 4 rows: a preferred size, so no waiting for the delay
            res = fut.result(timeout=30)
            assert res.batch_size == 4
            assert_result(res, single(mlp_session, {"x": x}))


def test_full_batch_dispatches_without_waiting(mlp_session):
    rng = np.random.default_rng(7)
    with runnx.Batcher(mlp_session, max_batch_size=4, max_queue_delay_us=LONG_US) as b:
        xs = [x_rows(rng, 1) for _ in range(8)]
        futs = [b.submit({"x": x}) for x in xs]
        for fut, x in zip(futs, xs):
            res = fut.result(timeout=30)
            assert res.batch_size == 4
            assert_result(res, single(mlp_session, {"x": x}))
        assert b.stats()["batch_sizes"] == {4: 2}


def test_priority_then_fifo(mlp_session):
    rng = np.random.default_rng(8)
    with runnx.Batcher(mlp_session, max_batch_size=8, max_queue_delay_us=LONG_US) as b:
        low = [b.submit({"x": x_rows(rng, 1)}, priority=5) for _ in range(3)]
        high = [b.submit({"x": x_rows(rng, 2)}, priority=0) for _ in range(3)]
        # 3 + 6 rows > 8: the batch that fills takes the high-priority requests first, then the
        # low ones in arrival order; the last low one waits for close().
        for f in high + low[:2]:
            assert f.result(timeout=30).batch_size == 8
        assert not low[2].done()
    assert low[2].result(timeout=30).batch_size == 1


def test_queue_full_raises_at_once(mlp_session):
    with runnx.Batcher(
        mlp_session, max_batch_size=64, max_queue_delay_us=LONG_US, max_queue_size=5
    ) as b:
        x = np.ones((1, 5), np.float32)
        futs = [b.submit({"x": x}) for _ in range(5)]
        assert b.queue_depth() == 5
        with pytest.raises(runnx.QueueFull, match="max_queue_size=5"):
            b.submit({"x": x})
        assert isinstance(runnx.QueueFull("q"), runnx.ResourceExhausted)
        assert b.stats()["requests_rejected"] == 1
        b.close(drain=True)
        assert all(f.result(timeout=30).batch_size == 5 for f in futs)


def test_deadline_exceeded_while_queued(mlp_session):
    with runnx.Batcher(mlp_session, max_batch_size=64, max_queue_delay_us=LONG_US) as b:
        x = np.ones((1, 5), np.float32)
        waiting = b.submit({"x": x})
        expiring = [b.submit({"x": x}, timeout_us=2000, priority=p) for p in (0, 3)]
        for f in expiring:
            with pytest.raises(runnx.DeadlineExceeded, match="2000 us"):
                f.result(timeout=30)
        assert not waiting.done()
        s = b.stats()
        assert s["requests_expired"] == 2 and s["batches"] == 0 and b.queue_depth() == 1
    assert waiting.result(timeout=30).batch_size == 1  # expired requests never ran with it


def test_close_drain_answers_everything_in_flight(mlp_session):
    rng = np.random.default_rng(9)
    b = runnx.Batcher(mlp_session, max_batch_size=8, max_queue_delay_us=LONG_US, instance_count=2)
    items = [(x_rows(rng, 1 + i % 3),) for i in range(60)]
    futs = [b.submit({"x": x}) for (x,) in items]
    b.close(drain=True)
    assert all(f.done() for f in futs)
    for f, (x,) in zip(futs, items):
        assert_result(f.result(), single(mlp_session, {"x": x}))
    with pytest.raises(runnx.BatcherClosed):
        b.submit({"x": items[0][0]})
    b.close()  # idempotent
    s = b.stats()
    assert s["requests_ok"] == 60 and s["queue_depth"] == 0


def test_close_without_drain_fails_queued(mlp_session):
    b = runnx.Batcher(mlp_session, max_batch_size=64, max_queue_delay_us=LONG_US)
    futs = [b.submit({"x": np.ones((1, 5), np.float32)}) for _ in range(10)]
    b.close(drain=False)
    for f in futs:
        with pytest.raises(runnx.BatcherClosed):
            f.result(timeout=0)
    assert b.stats()["requests_failed"] == 10


def test_close_timeout_fails_what_is_left(mlp_session):
    b = runnx.Batcher(mlp_session, max_batch_size=64, max_queue_delay_us=LONG_US)
    futs = [b.submit({"x": np.ones((1, 5), np.float32)}) for _ in range(10)]
    b.close(drain=True, timeout_s=5)
    # Either drained in time (one batch of 10) or failed: never lost, never left pending.
    for f in futs:
        assert f.done()
        assert f.exception() is None or isinstance(f.exception(), runnx.BatcherClosed)


def test_dropping_the_batcher_answers_its_requests(mlp_session):
    b = runnx.Batcher(mlp_session, max_batch_size=64, max_queue_delay_us=LONG_US)
    fut = b.submit({"x": np.ones((2, 5), np.float32)})
    del b
    gc.collect()
    assert fut.result(timeout=30).batch_size == 2


def test_run_time_error_fails_only_its_batch():
    sess = runnx.InferenceSession(models.lookup(table_rows=5))
    with runnx.Batcher(sess, max_batch_size=4, max_queue_delay_us=LONG_US) as b:
        bad = [b.submit({"idx": np.array([1, 99])}) for _ in range(2)]  # one batch of 4 rows
        for f in bad:
            with pytest.raises(runnx.RunnxError, match="Gather") as e:
                f.result(timeout=30)
            assert not isinstance(e.value, (runnx.DeadlineExceeded, runnx.BatcherClosed))
        good = [b.submit({"idx": np.array([i % 5])}) for i in range(4)]
        for i, f in enumerate(good):
            np.testing.assert_array_equal(
                f.result(timeout=30).outputs["y"], [[2 * (i % 5), 2 * (i % 5) + 1]]
            )
        s = b.stats()
        assert s["requests_failed"] == 2 and s["requests_ok"] == 4


def test_rows_counted_but_not_yet_queued_are_waited_for():
    # A producer counts its rows in flight before it pushes the request. A leader that looked in
    # between (here: back from the failed batch while the next four arrive) took every expected row
    # for here, sent the 3 it could see and left the 4th to wait out the whole delay alone (1 round
    # in 10 to 500). Here now means seen: queued or running. Each round is ~1 ms; the bug cost 30 s.
    sess = runnx.InferenceSession(models.lookup(table_rows=5))
    for _ in range(1000):
        with runnx.Batcher(sess, max_batch_size=4, max_queue_delay_us=LONG_US) as b:
            for f in [b.submit({"idx": np.array([1, 99])}) for _ in range(2)]:
                with pytest.raises(runnx.RunnxError, match="Gather"):
                    f.result(timeout=30)
            good = [b.submit({"idx": np.array([i])}) for i in range(4)]
            for f in good:
                f.result(timeout=30)
            assert b.stats()["batch_sizes"] == {4: 2}


def test_stress_many_producers(mlp_session):
    """16 threads x 500 requests, 1..3 rows each, random priorities, some with tiny timeouts:
    every request is answered exactly once, with its own rows."""
    n_threads, per_thread = 16, 500
    b = runnx.Batcher(
        mlp_session,
        max_batch_size=8,
        max_queue_delay_us=300,
        instance_count=2,
        max_queue_size=n_threads * per_thread,
    )
    submitted = [None] * n_threads
    start = threading.Barrier(n_threads)

    def produce(t):
        rng = np.random.default_rng(100 + t)
        mine = []
        start.wait()
        for i in range(per_thread):
            x = x_rows(rng, int(rng.integers(1, 4)))
            x[:, 0] = t * 1000 + i  # a tag: a mix-up shows in the outputs
            timeout = int(rng.integers(1, 50)) if rng.random() < 0.1 else 0
            fut = b.submit({"x": x}, priority=int(rng.integers(0, 4)), timeout_us=timeout)
            mine.append((fut, x, timeout))
        submitted[t] = mine

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    ok = expired = 0
    rows_seen = 0
    for mine in submitted:
        for fut, x, timeout in mine:
            exc = fut.exception(timeout=60)
            if exc is not None:
                assert isinstance(exc, runnx.DeadlineExceeded) and timeout > 0, exc
                expired += 1
                continue
            res = fut.result()
            assert 1 <= res.batch_size <= 8 and res.batch_size >= x.shape[0]
            assert_result(res, single(mlp_session, {"x": x}))
            ok += 1
            rows_seen += x.shape[0]
    b.close()
    s = b.stats()
    total = n_threads * per_thread
    assert ok + expired == total
    assert (s["requests_ok"], s["requests_expired"], s["requests_failed"]) == (ok, expired, 0)
    assert sum(k * v for k, v in s["batch_sizes"].items()) == rows_seen
    assert sum(s["batch_sizes"].values()) == s["batches"]
    assert max(s["batch_sizes"]) > 1, s["batch_sizes"]
    print(
        f"\nstress: {total} requests from {n_threads} threads, {ok} ok, {expired} expired, "
        f"{s['batches']} batches, mean batch {rows_seen / s['batches']:.2f} rows "
        f"({ok / s['batches']:.2f} requests), histogram {dict(sorted(s['batch_sizes'].items()))}"
    )


def test_asyncio_infer_200_tasks(mlp_session):
    rng = np.random.default_rng(11)
    xs = [x_rows(rng, 1 + i % 2) for i in range(200)]

    async def main(b):
        results = await asyncio.gather(*(b.infer({"x": x}) for x in xs))
        with pytest.raises(runnx.InvalidArgument):
            await b.infer({"x": np.zeros((1, 4), np.float32)})
        expired = await asyncio.gather(
            b.infer({"x": xs[0]}, timeout_us=1, priority=9), return_exceptions=True
        )
        return results, expired

    with runnx.Batcher(
        mlp_session, max_batch_size=8, max_queue_delay_us=1000, instance_count=2
    ) as b:
        results, expired = asyncio.run(main(b))
        for res, x in zip(results, xs):
            assert_result(res, single(mlp_session, {"x": x}))
        assert max(r.batch_size for r in results) > 1
        assert isinstance(expired[0], (runnx.DeadlineExceeded, runnx.InferResult))
        # A second event loop gets its own channel; the first loop's is reused once it closed.
        again = asyncio.run(main(b))[0]
        assert_result(again[5], single(mlp_session, {"x": xs[5]}))


def test_asyncio_and_threads_together(mlp_session):
    rng = np.random.default_rng(12)
    xs = [x_rows(rng, 1) for _ in range(40)]
    with runnx.Batcher(mlp_session, max_batch_size=4, max_queue_delay_us=500) as b:

        async def main():
            loop = asyncio.get_running_loop()
            pool = concurrent.futures.ThreadPoolExecutor(4)
            sync = [
                loop.run_in_executor(pool, lambda x=x: b.submit({"x": x}).result(30))
                for x in xs[:20]
            ]
            res = await asyncio.gather(*sync, *(b.infer({"x": x}) for x in xs[20:]))
            pool.shutdown()
            return res

        for res, x in zip(asyncio.run(main()), xs):
            assert_result(res, single(mlp_session, {"x": x}))


@pytest.mark.parametrize("passes", [1, 2])
def test_close_inside_the_loop_resolves_pending_infers(mlp_session, passes):
    # One loop pass: the tasks prepared their requests, which are handed over at the pass's end;
    # two: they are queued. close() runs both kinds.
    async def main():
        b = runnx.Batcher(mlp_session, max_batch_size=64, max_queue_delay_us=LONG_US)
        tasks = [
            asyncio.ensure_future(b.infer({"x": np.ones((1, 5), np.float32)})) for _ in range(5)
        ]
        for _ in range(passes):
            await asyncio.sleep(0)
        if passes == 2:
            assert b.queue_depth() == 5
        b.close()
        return await asyncio.wait_for(asyncio.gather(*tasks), 30)

    results = asyncio.run(main())
    assert [r.batch_size for r in results] == [5] * 5


def test_closed_batcher_refuses_both_paths(mlp_session):
    b = runnx.Batcher(mlp_session)
    b.close()
    x = np.ones((1, 5), np.float32)
    with pytest.raises(runnx.BatcherClosed):
        b.submit({"x": x})
    with pytest.raises(runnx.BatcherClosed):
        asyncio.run(b.infer({"x": x}))
    assert b._delivery.thread is None  # no resolver thread left behind


def test_huge_timeout_means_no_deadline(mlp_session):
    with runnx.Batcher(mlp_session, max_batch_size=2, max_queue_delay_us=0) as b:
        x = x_rows(np.random.default_rng(13), 1)
        assert_result(
            b.submit({"x": x}, timeout_us=2**62).result(timeout=30), single(mlp_session, {"x": x})
        )
    with pytest.raises(runnx.InvalidArgument, match="max_queue_delay_us"):
        runnx.Batcher(mlp_session, max_queue_delay_us=2**62)


def test_unconvertible_output_fails_only_that_request():
    sess = runnx.InferenceSession(models.to_bfloat16())
    with runnx.Batcher(sess, max_batch_size=4, max_queue_delay_us=0) as b:
        fut = b.submit({"x": np.ones((1, 2), np.float32)})
        with pytest.raises(runnx.UnsupportedOp, match="bfloat16"):
            fut.result(timeout=30)
        with pytest.raises(runnx.UnsupportedOp):
            asyncio.run(b.infer({"x": np.ones((2, 2), np.float32)}))
    s = b.stats()
    assert s["batches"] == 2 and s["requests_failed"] == 2 and s["requests_ok"] == 0


@pytest.mark.parametrize("drain", [True, False])
def test_close_while_producers_submit(mlp_session, drain):
    b = runnx.Batcher(mlp_session, max_batch_size=4, max_queue_delay_us=200, instance_count=2)
    accepted = [[] for _ in range(6)]
    refused = [0] * 6
    go = threading.Barrier(7)

    def produce(t):
        x = np.full((1, 5), t, np.float32)
        go.wait()
        for _ in range(300):
            try:
                accepted[t].append(b.submit({"x": x}))
            except runnx.BatcherClosed:
                refused[t] += 1

    threads = [threading.Thread(target=produce, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    go.wait()
    while sum(len(a) for a in accepted) < 200:
        threading.Event().wait(0.001)
    b.close(drain=drain)
    for th in threads:
        th.join()
    expected = {t: single(mlp_session, {"x": np.full((1, 5), t, np.float32)}) for t in range(6)}
    closed = 0
    for t, futs in enumerate(accepted):
        for f in futs:
            exc = f.exception(timeout=30)  # every accepted request is answered
            if exc is None:
                assert_result(f.result(), expected[t])
            else:
                assert isinstance(exc, runnx.BatcherClosed) and not drain
                closed += 1
    s = b.stats()
    assert s["requests_ok"] + closed == sum(len(a) for a in accepted)
    assert sum(refused) + sum(len(a) for a in accepted) == 6 * 300


def test_batch_fills_from_requests_of_several_rows(mlp_session):
    # The leader sleeps until enough rows arrive to fill a batch: a request that brings exactly
    # the missing rows must wake it (no waiting for the delay).
    rng = np.random.default_rng(14)
    with runnx.Batcher(mlp_session, max_batch_size=8, max_queue_delay_us=LONG_US) as b:
        xs = [x_rows(rng, n) for n in (1, 1, 1, 1, 1, 2, 1, 3, 3, 2)]
        futs = [b.submit({"x": x}) for x in xs]
        for fut, x in zip(futs[:7], xs):
            res = fut.result(timeout=30)
            assert res.batch_size == 8
            assert_result(res, single(mlp_session, {"x": x}))
        for fut, x in zip(futs[7:], xs[7:]):
            assert fut.result(timeout=30).batch_size == 8


def test_group_goes_once_the_rows_expected_in_flight_are_back(mlp_session):
    # Closed-loop clients: a group stops waiting for the delay once as many rows are in flight
    # as were at the busiest moment between the last two batch completions (before the first
    # completion it never does). Preferred sizes (2, 4) make the first batches go; the 5- and
    # 3-row batches below can only go by the in-flight rule (the delay is never waited out).
    rng = np.random.default_rng(15)

    def run(b, rows_and_priorities):
        xs = [x_rows(rng, n) for n, _ in rows_and_priorities]
        futs = [b.submit({"x": x}, priority=p) for x, (_, p) in zip(xs, rows_and_priorities)]
        results = [fut.result(timeout=30) for fut in futs]
        for res, x in zip(results, xs):
            assert_result(res, single(mlp_session, {"x": x}))
        return [res.batch_size for res in results]

    with runnx.Batcher(
        mlp_session, max_batch_size=8, max_queue_delay_us=LONG_US, preferred_batch_sizes=(2, 4)
    ) as b:
        # 3 rows wait (3 is not a preferred size); with 1 more, 4 is preferred.
        assert run(b, [(3, 0), (1, 0)]) == [4, 4]
        # 4 expected: the 3 rows wait for the 2 more; the urgent ones run first in the batch.
        assert run(b, [(3, 5), (2, 0)]) == [5, 5]
        assert run(b, [(2, 0)]) == [2]  # preferred; the peak of its period was 2 rows ...
        assert run(b, [(3, 0)]) == [3]  # ... so 3 rows are all that is expected
        assert b.stats()["batch_sizes"] == {2: 1, 3: 1, 4: 1, 5: 1}


def test_missing_rows_are_waited_for_at_most_the_delay(mlp_session):
    rng = np.random.default_rng(16)
    delay_us = 200_000
    with runnx.Batcher(mlp_session, max_batch_size=4, max_queue_delay_us=delay_us) as b:
        xs = [x_rows(rng, 1) for _ in range(4)]
        futs = [b.submit({"x": x}) for x in xs]  # full: no waiting
        assert [f.result(timeout=30).batch_size for f in futs] == [4] * 4
        # 4 rows expected, 1 comes: it waits out the delay (the queue time counts from submit),
        # then runs alone.
        x = x_rows(rng, 1)
        res = b.submit({"x": x}).result(timeout=30)
        assert res.batch_size == 1 and res.queue_us >= delay_us
        assert_result(res, single(mlp_session, {"x": x}))
        # Its period's peak was 1 row: the next lone request is all that is expected.
        x = x_rows(rng, 1)
        assert_result(b.submit({"x": x}).result(timeout=30), single(mlp_session, {"x": x}))


def test_deadline_answered_while_every_worker_is_busy():
    so = runnx.SessionOptions()
    so.intra_op_num_threads = 1
    sess = runnx.InferenceSession(models.slow(), sess_options=so)
    x = np.full((1, 1 << 22), 0.5, np.float32)  # about a second of Sin on one core
    with runnx.Batcher(sess, max_batch_size=2, max_queue_delay_us=0, instance_count=1) as b:
        running = b.submit({"x": x})
        while b.queue_depth():  # until the only worker has taken it
            threading.Event().wait(0.001)
        expiring = b.submit({"x": x}, timeout_us=2000)
        with pytest.raises(runnx.DeadlineExceeded):
            expiring.result(timeout=60)
        # Answered by the reaper while the only worker was still busy with the first request.
        assert not running.done()
        res = running.result(timeout=60)
        assert res.batch_size == 1
        np.testing.assert_allclose(
            res.outputs["y"][0, :3], sess.run(None, {"x": x[:, :3]})[0][0], rtol=1e-6
        )


def test_lone_infer_runs_inline_with_the_same_answer(mlp_session):
    """An idle batcher of a cheap model runs a lone infer() on the loop's thread: same outputs,
    a batch of the request's own rows, its own timings."""
    rng = np.random.default_rng(21)
    xs = [x_rows(rng, n) for n in (2, 1, 3, 8, 1)]

    async def main(b):
        first = await b.infer({"x": xs[0]})  # no batch timed yet: through a worker
        assert b.stats()["inline_runs"] == 0
        rest = [await b.infer({"x": x}) for x in xs[1:]]
        sub = await b.infer({"x": xs[1]}, output_names=["z"])
        return [first, *rest], sub

    # No bound on the compute time: a slow moment of a shared machine must not change the path.
    with runnx.Batcher(mlp_session, max_batch_size=8, max_queue_delay_us=0, max_inline_us=BIG_US) as b:
        results, sub = asyncio.run(main(b))
        s = b.stats()
    for res, x in zip(results, xs):
        assert_result(res, single(mlp_session, {"x": x}))
        assert res.batch_size == len(x) and res.queue_us >= 0 and res.compute_us >= 0
    assert_result(sub, single(mlp_session, {"x": xs[1]}, ["z"]))
    assert s["inline_runs"] == len(xs)  # every lone request after the first
    assert s["batches"] == len(xs) + 1 and s["requests_ok"] == len(xs) + 1
    assert s["batch_sizes"] == {1: 3, 2: 1, 3: 1, 8: 1}


def test_inline_off_even_for_sub_microsecond_batches():
    # max_inline_us = 0 means never, though a batch of this model takes under a microsecond: its
    # recent compute time, in whole microseconds, is 0 and once passed the "at most 0" test.
    sess = runnx.InferenceSession(models.tiny())

    async def lone(b):
        for i in range(20):
            out = await b.infer({"x": np.full((1, 1), i - 10, np.float32)})
            assert out.outputs["y"][0, 0] == max(i - 10, 0)

    with runnx.Batcher(sess, max_batch_size=8, max_queue_delay_us=0, max_inline_us=0) as b:
        asyncio.run(lone(b))
        assert b.stats()["inline_runs"] == 0 and b.stats()["requests_ok"] == 20


def test_inline_off_and_concurrent_infers_still_batch(mlp_session):
    rng = np.random.default_rng(22)
    xs = [x_rows(rng, 1) for _ in range(24)]

    async def lone_then_together(b):
        for x in xs[:3]:
            await b.infer({"x": x})
        return await asyncio.gather(*(b.infer({"x": x}) for x in xs))

    with runnx.Batcher(mlp_session, max_batch_size=8, max_queue_delay_us=0, max_inline_us=0) as b:
        asyncio.run(lone_then_together(b))
        assert b.stats()["inline_runs"] == 0
    with runnx.Batcher(mlp_session, max_batch_size=8, max_queue_delay_us=0, max_inline_us=BIG_US) as b:
        results = asyncio.run(lone_then_together(b))
        s = b.stats()
    for res, x in zip(results, xs):
        assert_result(res, single(mlp_session, {"x": x}))
    # The 24 requests of one loop pass were handed over together: none inline, batches of 8.
    assert s["inline_runs"] == 2 and max(r.batch_size for r in results) == 8
    with pytest.raises(runnx.InvalidArgument, match="max_inline_us"):
        runnx.Batcher(mlp_session, max_inline_us=-1)


def test_inline_run_time_error_is_the_requests_own():
    sess = runnx.InferenceSession(models.lookup(table_rows=5))

    async def main(b):
        good = await b.infer({"idx": np.array([3])})
        with pytest.raises(runnx.RunnxError, match="Gather") as e:
            await b.infer({"idx": np.array([1, 99])})
        assert not isinstance(e.value, (runnx.DeadlineExceeded, runnx.BatcherClosed))
        return good, await b.infer({"idx": np.array([4])})

    with runnx.Batcher(sess, max_batch_size=4, max_queue_delay_us=0, max_inline_us=BIG_US) as b:
        good, after = asyncio.run(main(b))
        s = b.stats()
    np.testing.assert_array_equal(good.outputs["y"], [[6, 7]])
    np.testing.assert_array_equal(after.outputs["y"], [[8, 9]])
    assert s["inline_runs"] == 2 and s["requests_failed"] == 1 and s["requests_ok"] == 2


def test_infer_refusals_reach_the_awaiting_task(mlp_session):
    """Requests of one pass are queued together; those beyond max_queue_size fail QueueFull."""
    x = np.ones((1, 5), np.float32)

    async def main(b):
        tasks = [asyncio.ensure_future(b.infer({"x": x})) for _ in range(3)]
        done, _ = await asyncio.wait(tasks, timeout=0.5, return_when=asyncio.FIRST_EXCEPTION)
        assert len(done) == 1
        with pytest.raises(runnx.QueueFull, match="max_queue_size=2"):
            tasks[2].result()
        assert b.queue_depth() == 2
        b.close()
        return [await t for t in tasks[:2]]

    b = runnx.Batcher(mlp_session, max_batch_size=64, max_queue_delay_us=LONG_US, max_queue_size=2)
    assert [r.batch_size for r in asyncio.run(main(b))] == [2, 2]
    assert b.stats()["requests_rejected"] == 1


def test_aclose_drains_without_blocking_the_loop(mlp_session):
    """aclose() waits on a thread: the loop keeps running (a ticker advances) while the queued
    requests drain, and every future is resolved when it returns."""
    rng = np.random.default_rng(31)
    xs = [x_rows(rng, 1 + i % 3) for i in range(12)]

    async def main():
        b = runnx.Batcher(mlp_session, max_batch_size=64, max_queue_delay_us=LONG_US)
        tasks = [asyncio.ensure_future(b.infer({"x": x})) for x in xs]
        await asyncio.sleep(0)  # prepared; handed over at the pass's end or by aclose
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        t = asyncio.ensure_future(ticker())
        await b.aclose()
        assert all(task.done() for task in tasks)
        t.cancel()
        with pytest.raises(runnx.BatcherClosed):
            await b.infer({"x": xs[0]})
        return [task.result() for task in tasks], ticks

    results, ticks = asyncio.run(main())
    assert ticks > 0
    for res, x in zip(results, xs):
        assert_result(res, single(mlp_session, {"x": x}))
        assert res.batch_size == sum(len(x) for x in xs)


def test_inline_path_never_runs_an_expired_request(mlp_session):
    x = np.ones((1, 5), np.float32)

    async def main(b):
        await b.infer({"x": x})
        await b.infer({"x": x})  # inline
        # The hand-over comes 2 ms after prepare, past the 1 us timeout: the queue answers it,
        # unrun. (Left to the event loop's own pace, less than 1 us can pass on a fast host.)
        d = b._delivery
        dispatch = d.dispatch

        def late_dispatch(st):
            threading.Event().wait(0.002)
            dispatch(st)

        d.dispatch = late_dispatch
        try:
            with pytest.raises(runnx.DeadlineExceeded):
                await b.infer({"x": x}, timeout_us=1)
        finally:
            del d.dispatch  # the class's own again
        return await b.infer({"x": x}, timeout_us=10**9)  # inline again

    with runnx.Batcher(mlp_session, max_batch_size=4, max_queue_delay_us=0, max_inline_us=BIG_US) as b:
        res = asyncio.run(main(b))
        s = b.stats()
    assert_result(res, single(mlp_session, {"x": x}))
    assert s["inline_runs"] == 2 and s["requests_expired"] == 1 and s["requests_ok"] == 3


def test_waiting_from_seen_never_expires_what_the_delay_from_arrival_would_send():
    # A, the first request, waits out the delay (2 s: nothing is known of the clients yet) and
    # runs alone; B arrives while the only worker runs A (~0.25 s quiet, ~1 s on a loaded host;
    # the test holds for 0.05-2 s). B's delay counts from when the worker is free, and A's
    # completion leaves B's row expected in flight, so B would wait for company until past its
    # 2.05 s timeout. Counted from its arrival the delay would have sent it in time, so it leaves
    # before its deadline (by 5% of its timeout, capped at 50 ms) instead of expiring.
    so = runnx.SessionOptions()
    so.intra_op_num_threads = 1
    sess = runnx.InferenceSession(models.slow(), sess_options=so)
    x = np.full((1, 1 << 22), 0.5, np.float32)
    with runnx.Batcher(sess, max_batch_size=2, max_queue_delay_us=2_000_000, instance_count=1,
                       max_inline_us=0) as b:
        a = b.submit({"x": x})
        while b.queue_depth():  # until the only worker has taken it
            threading.Event().wait(0.001)
        late = b.submit({"x": x}, timeout_us=2_050_000)
        assert a.result(timeout=60).batch_size == 1
        res = late.result(timeout=60)
        assert res.batch_size == 1
        assert_result(res, single(sess, {"x": x}))
