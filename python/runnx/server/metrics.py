"""Per-model request metrics: Prometheus text for ``/metrics`` and Triton's statistics JSON for
``/v2/models/{m}/stats``. Updated on the event loop only, so no locks.

>>> h = Histogram((1, 2, 4)); h.observe(1); h.observe(3); h.observe(9)
>>> h.counts, h.count
([1, 0, 1, 1], 3)
"""

from __future__ import annotations

import bisect
import json
import time

LATENCY_BUCKETS_S = (25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3,
                     50e-3, 100e-3, 250e-3, 500e-3, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
OUTCOMES = ("success", "failure", "rejected", "expired")
BUCKETS = {"queue": LATENCY_BUCKETS_S, "compute": LATENCY_BUCKETS_S, "e2e": LATENCY_BUCKETS_S,
           "batch": BATCH_BUCKETS}
HISTOGRAMS = tuple(BUCKETS)


class Histogram:
    """Cumulative buckets as Prometheus wants them; ``counts[i]`` holds values in
    (bounds[i-1], bounds[i]], the last slot those above every bound."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds):
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, v: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, v)] += 1
        self.sum += v
        self.count += 1

    def state(self) -> list:
        """[counts, sum, count]: what another process needs to add this histogram to its own."""
        return [list(self.counts), self.sum, self.count]

    @classmethod
    def from_state(cls, bounds, state) -> Histogram:
        h = cls(bounds)
        h.add_state(state)
        return h

    def add_state(self, state) -> None:
        counts, total, count = state
        self.counts = [a + b for a, b in zip(self.counts, counts)]
        self.sum += total
        self.count += count

    def lines(self, name: str, labels: str) -> list[str]:
        out, acc = [], 0
        for bound, n in zip(self.bounds, self.counts):
            acc += n
            out.append(f'{name}_bucket{{{labels},le="{bound:g}"}} {acc}')
        out.append(f'{name}_bucket{{{labels},le="+Inf"}} {self.count}')
        out.append(f"{name}_sum{{{labels}}} {self.sum:.9g}")
        out.append(f"{name}_count{{{labels}}} {self.count}")
        return out


class ModelMetrics:
    """Everything counted for one model version."""

    def __init__(self, name: str, version: str):
        self.name, self.version = name, version
        self.outcomes = dict.fromkeys(OUTCOMES, 0)
        self.queue = Histogram(LATENCY_BUCKETS_S)
        self.compute = Histogram(LATENCY_BUCKETS_S)
        self.e2e = Histogram(LATENCY_BUCKETS_S)
        self.batch = Histogram(BATCH_BUCKETS)
        # Triton statistics: (count, ns) pairs and per-batch-size executions.
        self.success_ns = self.fail_ns = self.queue_ns = self.compute_ns = 0
        self.fail_count = 0
        self.inference_count = 0           # rows inferred
        self.last_inference_ms = 0
        self.batch_execs: dict[int, list[float]] = {}   # batch size -> [executions, compute ns]
        # Requests the server's C++ fast path answered are counted there (runnx._C.FastStats)
        # and folded in here whenever the metrics are read.
        self.fast_sources: list = []

    def attach(self, source) -> None:
        if not any(s is source for s in self.fast_sources):
            self.fast_sources.append(source)

    def sync(self) -> None:
        """Folds in what the fast path counted since the last read."""
        for src in self.fast_sources:
            d = src.take()
            if not d["success"]:
                continue
            self.outcomes["success"] += d["success"]
            for attr in HISTOGRAMS:
                getattr(self, attr).add_state(d[attr])
            self.success_ns += d["success_ns"]
            self.queue_ns += d["queue_ns"]
            self.compute_ns += d["compute_ns"]
            self.inference_count += d["inference_count"]
            self.last_inference_ms = max(self.last_inference_ms, d["last_inference_ms"])
            for bs, (n, ns) in d["batch_execs"].items():
                b = self.batch_execs.setdefault(bs, [0.0, 0.0])
                b[0] += n
                b[1] += ns

    def success(self, rows: int, queue_us: float, compute_us: float, batch_size: int,
                e2e_s: float) -> None:
        self.outcomes["success"] += 1
        self.queue.observe(queue_us * 1e-6)
        self.compute.observe(compute_us * 1e-6)
        self.e2e.observe(e2e_s)
        self.batch.observe(batch_size)
        self.success_ns += int(e2e_s * 1e9)
        self.queue_ns += int(queue_us * 1e3)
        self.compute_ns += int(compute_us * 1e3)
        self.inference_count += rows
        self.last_inference_ms = int(time.time() * 1000)
        # A batch of B rows served B/rows requests like this one: add this request's share.
        b = self.batch_execs.setdefault(batch_size, [0.0, 0.0])
        share = rows / max(batch_size, 1)
        b[0] += share
        b[1] += share * compute_us * 1e3

    def failure(self, outcome: str, e2e_s: float) -> None:
        self.outcomes[outcome] += 1
        self.fail_count += 1
        self.fail_ns += int(e2e_s * 1e9)
        self.e2e.observe(e2e_s)

    def prometheus_state(self, queue_depth: int) -> dict:
        """Everything ``/metrics`` shows for this version, as plain JSON (``--workers`` share it)."""
        self.sync()
        return {"name": self.name, "version": self.version, "queue_depth": queue_depth,
                "outcomes": dict(self.outcomes), **{a: getattr(self, a).state() for a in HISTOGRAMS}}

    def triton_stats(self, executions: int, batch_sizes: dict | None = None) -> dict:
        """Triton's statistics JSON. ``batch_sizes`` (rows -> batches run, from the Batcher)
        makes batch_stats exact; without it they are estimated from the requests seen."""
        def d(count, ns):
            return {"count": int(count), "ns": int(ns)}
        self.sync()
        ok = self.outcomes["success"]
        return {
            "name": self.name,
            "version": self.version,
            "last_inference": self.last_inference_ms,
            "inference_count": self.inference_count,
            "execution_count": executions,
            "inference_stats": {
                "success": d(ok, self.success_ns),
                "fail": d(self.fail_count, self.fail_ns),
                "queue": d(ok, self.queue_ns),
                "compute_input": d(ok, 0),
                "compute_infer": d(ok, self.compute_ns),
                "compute_output": d(ok, 0),
                "cache_hit": d(0, 0),
                "cache_miss": d(0, 0),
            },
            "response_stats": {},
            "batch_stats": [
                {"batch_size": bs, "compute_input": d(n, 0), "compute_infer": d(n, ns),
                 "compute_output": d(n, 0)}
                for bs, n, ns in self._batch_rows(batch_sizes)
            ],
            "memory_usage": [],
        }


    def _batch_rows(self, batch_sizes: dict | None) -> list[tuple[int, int, float]]:
        if not batch_sizes:
            return [(bs, round(n), ns) for bs, (n, ns) in sorted(self.batch_execs.items())]
        # compute ns per batch: what this version's requests recorded, per execution
        out = []
        for bs, n in sorted(batch_sizes.items()):
            seen, ns = self.batch_execs.get(bs, (0.0, 0.0))
            out.append((int(bs), int(n), ns / seen * n if seen else 0.0))
        return out


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def merge_prometheus_states(parts: list[dict]) -> list[dict]:
    """Adds up the ``prometheus_state`` of the same model versions from several processes."""
    out: dict[tuple[str, str], dict] = {}
    for p in parts:
        key = (p["name"], p["version"])
        mine = out.get(key)
        if mine is None:
            out[key] = json.loads(json.dumps(p))  # a deep copy
            continue
        mine["queue_depth"] += p["queue_depth"]
        for outcome, n in p["outcomes"].items():
            mine["outcomes"][outcome] = mine["outcomes"].get(outcome, 0) + n
        for attr in HISTOGRAMS:
            h = Histogram.from_state(BUCKETS[attr], mine[attr])
            h.add_state(p[attr])
            mine[attr] = h.state()
    return list(out.values())


def prometheus_text(states: list[dict], http_codes: dict[int, int]) -> str:
    """``states``: each served version's ``prometheus_state``."""
    out = [
        ("# HELP runnx_inference_requests_total Inference requests by outcome "
         "(success, failure, rejected: queue full, expired: deadline passed in the queue)."),
        "# TYPE runnx_inference_requests_total counter",
    ]
    labels = [f'model="{_escape(m["name"])}",version="{_escape(m["version"])}"' for m in states]
    for m, lab in zip(states, labels):
        for outcome, n in m["outcomes"].items():
            out.append(f'runnx_inference_requests_total{{{lab},outcome="{outcome}"}} {n}')
    for metric, attr, help_ in (
        ("runnx_queue_duration_seconds", "queue", "Time a request waited in the batch queue."),
        ("runnx_compute_duration_seconds", "compute", "Compute time of the batch a request ran in."),
        ("runnx_request_duration_seconds", "e2e", "Server-side end-to-end time of a request."),
        ("runnx_batch_size", "batch", "Rows in the batch each request ran in."),
    ):
        out.append(f"# HELP {metric} {help_}")
        out.append(f"# TYPE {metric} histogram")
        for m, lab in zip(states, labels):
            out.extend(Histogram.from_state(BUCKETS[attr], m[attr]).lines(metric, lab))
    out.append("# HELP runnx_queue_depth Requests waiting in the model's queue.")
    out.append("# TYPE runnx_queue_depth gauge")
    for m, lab in zip(states, labels):
        out.append(f"runnx_queue_depth{{{lab}}} {m['queue_depth']}")
    out.append("# HELP runnx_http_responses_total HTTP responses by status code.")
    out.append("# TYPE runnx_http_responses_total counter")
    for code, n in sorted(http_codes.items()):
        out.append(f'runnx_http_responses_total{{code="{code}"}} {n}')
    return "\n".join(out) + "\n"
