"""runnx and onnxruntime side by side on the bench zoo, in one process, as ratios.

Usage:
    python bench/compare.py [--models mlp,resnet50,mobilenetv2,bert] [--threads 2]
                            [--repeats N] [--scale full|tiny] [--budget S] [--no-rss] [--no-host-state]
    RUNNX_DEV_BUILD=build/dev python bench/compare.py ...   # a developer build of runnx

Per model it checks correctness first (max abs diff of every output vs onnxruntime, batches 1
and 3), then times: session creation (median of a few, in process), batch-1
latency p50/p90 with the engines in alternating blocks (A B / B A, each after the other's thread
pool went idle: see bench/timing.py) so a noisy shared host hurts both alike,
throughput at batch 32 (BERT full: batch 8), and, in a fresh subprocess per engine, the cold start
(file to first result) and the peak RSS growth. If runnx cannot be imported or fails on a model,
its cells show the error and onnxruntime's numbers are still printed. Each CPU's speed
(bench/host_state.py) is printed before and after, so a run says whether the host was quiet.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
# Like tests/conftest.py: RUNNX_DEV_BUILD=build/dev benchmarks a developer build (its py/ folder
# holds runnx/_C*.so) instead of the installed package. Subprocess probes inherit it.
if os.environ.get("RUNNX_DEV_BUILD"):
    sys.path[1:1] = [str(ROOT / "python"), os.path.join(os.environ["RUNNX_DEV_BUILD"], "py")]

from bench.host_state import core_speeds, cross_core_ns, describe_cross_core
from bench.timing import interleaved, time_call

ENGINES = ("runnx", "ort")
# Latency and throughput calls come in at least this many alternating blocks per engine: the MLP's
# 5000 batch-1 calls were one ~22 ms window per engine, and its 200 batch-32 calls one of ~8 ms,
# so one slow stretch of the host (they last seconds) could fall on one engine's window only.
MIN_BLOCKS = 10
LABEL = {"runnx": "runnx", "ort": "onnxruntime"}


def throughput_batch(name: str, scale: str) -> int:
    """Batch size of the throughput measurement: 32, but 8 for full BERT (32 takes ~7 s a run)."""
    return 8 if (name == "bert" and scale == "full") else 32


def _short(exc: BaseException) -> str:
    msg = f"{type(exc).__name__}: {exc}".strip().replace("\n", " ")
    return msg if len(msg) <= 160 else msg[:157] + "..."


def import_engine(engine: str):
    """Imports runnx or onnxruntime and returns the module."""
    if engine == "runnx":
        import runnx

        return runnx
    import onnxruntime

    return onnxruntime


def make_session(engine: str, path: str, threads: int):
    """A CPU InferenceSession with `threads` intra-op threads (ORT optimizations at default).

    Example:
        >>> sess = make_session("ort", "tests/models/mlp_tiny.onnx", threads=2)
    """
    mod = import_engine(engine)
    opts = mod.SessionOptions()
    opts.intra_op_num_threads = threads
    if engine == "ort":
        opts.inter_op_num_threads = 1
    return mod.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])


# ----------------------------------------------------------------------------- subprocess probe


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _peak_rss_kib() -> int:
    # VmHWM is this process's own high-water mark. ru_maxrss is not usable here: Linux carries
    # the parent's RSS at fork into the child's ru_maxrss across exec, so a child started by a
    # parent holding a big model would report the parent's size. ru_maxrss is only the fallback.
    hwm = _status_kib("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def probe(engine: str, path: str, inputs_npz: str, threads: int) -> dict:
    """Runs in a fresh process: cold start (create + first batch-1 result) and peak RSS growth over
    create + batch-1 run + batch-N run. Only numpy and the engine are imported."""
    data = np.load(inputs_npz)
    feeds1 = {k[3:]: data[k] for k in data.files if k.startswith("b1:")}
    feedsn = {k[3:]: data[k] for k in data.files if k.startswith("bn:")}
    import_engine(engine)
    base = _status_kib("VmRSS") or _peak_rss_kib()
    t0 = time.perf_counter()
    sess = make_session(engine, path, threads)
    t1 = time.perf_counter()
    sess.run(None, feeds1)
    t2 = time.perf_counter()
    sess.run(None, feedsn)
    peak = _peak_rss_kib()
    return {
        "create_s": t1 - t0,
        "cold_s": t2 - t0,
        "rss_base_mib": base / 1024,
        "peak_delta_mib": (peak - base) / 1024,
    }


def run_probe(engine: str, path: str, inputs_npz: str, threads: int, timeout: float) -> dict:
    """Starts `probe` in a subprocess; returns its dict, or {'error': ...}."""
    cmd = [sys.executable, __file__, "--_probe", engine, path, inputs_npz, str(threads)]
    try:
        p = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"probe timed out after {timeout:.0f} s"}
    lines = [ln for ln in p.stdout.splitlines() if ln.startswith("{")]
    if p.returncode != 0 or not lines:
        tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
        return {"error": f"probe failed (rc {p.returncode}): {tail[:160]}"}
    return json.loads(lines[-1])


# ----------------------------------------------------------------------------- in-process timing


def _reps(per_call: float, budget: float, lo: int, hi: int) -> int:
    return int(max(lo, min(hi, budget / max(per_call, 1e-7))))


def max_abs_diff(got: list, ref: list) -> float:
    """Largest |got - ref| over all outputs; raises ValueError on a count or shape mismatch."""
    if len(got) != len(ref):
        raise ValueError(f"{len(got)} outputs, onnxruntime gives {len(ref)}")
    worst = 0.0
    for g, r in zip(got, ref):
        g = np.asarray(g)
        if g.shape != r.shape:
            raise ValueError(f"output shape {g.shape}, onnxruntime gives {r.shape}")
        if g.size:
            worst = max(worst, float(np.max(np.abs(g.astype(np.float64) - r))))
    return worst


def bench_model(name: str, args) -> dict:
    """All measurements for one zoo model; a runnx failure is recorded, never raised."""
    from bench.models import zoo

    path = str(zoo.cached_path(name, args.scale))
    bn = args.batch or throughput_batch(name, args.scale)
    feeds1 = zoo.sample_inputs(name, 1, args.scale, seed=0)
    feedsn = zoo.sample_inputs(name, bn, args.scale, seed=1)
    feeds3 = zoo.sample_inputs(name, 3, args.scale, seed=2)  # correctness at a batch > 1
    res = {
        "name": name,
        "path": path,
        "mb": os.path.getsize(path) / 1e6,
        "bn": bn,
        "shapes": {k: list(v.shape) for k, v in feeds1.items()},
        "err": {},
        "m": {e: {} for e in ENGINES},
    }

    sessions = {"ort": make_session("ort", path, args.threads)}
    ref1, ref3 = sessions["ort"].run(None, feeds1), sessions["ort"].run(None, feeds3)
    scale_ref = max(1.0, max(float(np.max(np.abs(r))) for r in ref1 + ref3))
    try:
        sessions["runnx"] = make_session("runnx", path, args.threads)
        diff = max(
            max_abs_diff(sessions["runnx"].run(None, feeds1), ref1),
            max_abs_diff(sessions["runnx"].run(None, feeds3), ref3),
        )
        res["diff"] = diff
        res["ok"] = diff <= 1e-3 * scale_ref
    except Exception as exc:  # noqa: BLE001 - runnx is under construction: report, go on
        res["err"]["runnx"] = _short(exc)
        if args.verbose:
            traceback.print_exc()
        sessions.pop("runnx", None)
    live = list(sessions)

    def guarded(engine, fn):
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001
            res["err"].setdefault(engine, _short(exc))
            return None

    # Session creation, in process, interleaved: the median of 5 each (of 3, a run on a noisy host
    # reported 0.38 and 0.60 for ratios that were 0.19-0.30 in every other run).
    n_create = 5
    creates = {e: [] for e in live}
    for r in range(n_create):
        for e in live if r % 2 == 0 else live[::-1]:
            t = guarded(e, lambda e=e: time_call(lambda: make_session(e, path, args.threads)))
            if t is not None:
                creates[e].append(t)
    for e in live:
        if creates[e]:
            res["m"][e]["create"] = statistics.median(creates[e])

    # Batch-1 latency.
    calls1 = {e: (lambda s=sessions[e]: s.run(None, feeds1)) for e in live}
    warm = interleaved(calls1, 3)
    per_call = sum(statistics.median(v) for v in warm.values())
    reps = args.repeats or _reps(per_call, args.budget, 10, 5000)
    lat = interleaved(calls1, reps, min_blocks=MIN_BLOCKS)
    for e in live:
        res["m"][e]["p50"] = float(np.percentile(lat[e], 50))
        res["m"][e]["p90"] = float(np.percentile(lat[e], 90))
    res["lat_reps"] = reps

    # Throughput at batch bn: one warm-up run each (a new shape may need a new plan), then timed.
    callsn = {e: (lambda s=sessions[e]: s.run(None, feedsn)) for e in live}
    first = interleaved(callsn, 1)
    per_call = sum(v[0] for v in first.values())
    reps_n = _reps(per_call, args.budget, 3, 200)  # median of >= 3: one stall can't decide
    tput = interleaved(callsn, reps_n, min_blocks=MIN_BLOCKS)
    for e in live:
        res["m"][e]["tput"] = bn / statistics.median(tput[e])
    res["tput_reps"] = reps_n
    del sessions, calls1, callsn

    # Cold start and peak RSS, each engine alone in a fresh process.
    if not args.no_rss:
        with tempfile.TemporaryDirectory() as tmp:
            npz = os.path.join(tmp, "inputs.npz")
            np.savez(
                npz,
                **{f"b1:{k}": v for k, v in feeds1.items()},
                **{f"bn:{k}": v for k, v in feedsn.items()},
            )
            for e in ENGINES:
                if e == "runnx" and "runnx" in res["err"]:
                    continue
                out = run_probe(e, path, npz, args.threads, timeout=300)
                if "error" in out:
                    res["err"].setdefault(e, out["error"])
                else:
                    res["m"][e]["cold"] = out["cold_s"]
                    res["m"][e]["rss"] = out["peak_delta_mib"]
    return res


# ----------------------------------------------------------------------------- report


def _fmt_time(s: float | None) -> str:
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1.0:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.3f} s"


def _ratio(a, b) -> str:
    return f"{a / b:.2f}" if a is not None and b else "-"


def print_model(res: dict) -> None:
    """Prints one model's block: a row per metric, runnx | onnxruntime | runnx/ORT."""
    shapes = ", ".join(f"{k}{v}" for k, v in res["shapes"].items())
    print(f"\n== {res['name']}  ({res['mb']:.1f} MB; batch-1 inputs {shapes})")
    if "diff" in res:
        verdict = "ok" if res["ok"] else "MISMATCH (timings below are suspect)"
        print(
            f"   correctness: max |runnx - ORT| = {res['diff']:.3g} over all outputs, "
            f"batches 1 and 3: {verdict}"
        )
    r, o = res["m"]["runnx"], res["m"]["ort"]
    rows = [
        ("session create (in process)", "create", _fmt_time, False),
        ("cold start: file to 1st result", "cold", _fmt_time, False),
        (f"batch 1 latency p50 ({res.get('lat_reps', 0)} calls)", "p50", _fmt_time, False),
        ("batch 1 latency p90", "p90", _fmt_time, False),
        (f"batch {res['bn']} throughput, samples/s", "tput", lambda v: f"{v:.1f}", True),
        ("peak RSS growth, MiB", "rss", lambda v: f"{v:.1f}", False),
    ]
    print(f"   {'metric':40s} {'runnx':>12s} {'onnxruntime':>12s} {'runnx/ORT':>10s}")
    for label, key, fmt, higher in rows:
        a, b = r.get(key), o.get(key)
        note = "  (higher is better)" if higher else ""
        print(
            f"   {label:40s} {fmt(a) if a is not None else '-':>12s} "
            f"{fmt(b) if b is not None else '-':>12s} {_ratio(a, b):>10s}{note}"
        )
    for e, msg in res["err"].items():
        print(f"   {LABEL[e]}: ERROR {msg}")


def print_summary(results: list[dict]) -> None:
    """One line per model with the runnx/ORT ratios."""
    print("\n== summary: runnx/ORT ratios (times: lower is better; throughput: higher is better)")
    print(
        f"   {'model':12s} {'create':>8s} {'cold':>8s} {'b1 p50':>8s} {'tput':>8s} {'rss':>8s}  "
        "max|diff|"
    )
    for res in results:
        r, o = res["m"]["runnx"], res["m"]["ort"]
        cells = [_ratio(r.get(k), o.get(k)) for k in ("create", "cold", "p50", "tput", "rss")]
        if "diff" in res:
            diff = f"{res['diff']:.3g}" + ("" if res["ok"] else " MISMATCH")
        else:
            diff = res["err"].get("runnx", "-")[:60]
        print(f"   {res['name']:12s} " + " ".join(f"{c:>8s}" for c in cells) + f"  {diff}")


def header(args) -> None:
    """Prints the run's conditions: versions, threads, host, load, how each number is taken."""
    import onnxruntime

    try:
        import runnx

        rx = f"runnx {getattr(runnx, '__version__', '?')}"
    except Exception as exc:  # noqa: BLE001
        rx = f"runnx not importable ({_short(exc)})"
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"runnx vs onnxruntime {onnxruntime.__version__} | {rx} | numpy {np.__version__} | "
        f"python {platform.python_version()}"
    )
    print(
        f"host: {os.cpu_count()} CPUs ({cpu}), load avg {load} | intra_op threads: "
        f"{args.threads} both | scale: {args.scale} | ORT graph optimizations: default"
    )
    print(
        f"latency: batch 1, engines in alternating settled blocks A B / B A (>= {MIN_BLOCKS} each), p50/p90 of "
        "every call; throughput: "
        "batch 32 (full BERT: batch 8, as batch 32 takes ~7 s a run), median of runs; "
        "session create: median of 5 in this process; cold start and peak RSS growth "
        "(VmHWM over create + batch-1 run + throughput-batch run, minus RSS after imports): "
        "each engine alone in a fresh subprocess."
    )


def print_host_state(args, when: str) -> None:
    """Each CPU's time for bench/host_state.py's loop: ~20 ms on a quiet core, 30-45 ms on one the
    shared host slows (for minutes at a time, runnx more than onnxruntime), and whether the two
    vCPUs sit near each other or far apart, so every run says which state it met."""
    if args.no_host_state or not hasattr(os, "sched_setaffinity"):  # Linux only
        return
    speeds = core_speeds()
    # Far apart, work handed between threads (the MLP at batch 1) pays ~320 ns a trip, not ~60-100.
    cross = describe_cross_core(cross_core_ns())
    print(f"host state {when}: " + "  ".join(f"cpu{c} {ms:.1f} ms" for c, ms in speeds.items())
          + "  (loop time per CPU: ~20 quiet, 30-45 slowed)" + (f"; {cross}" if cross else ""), flush=True)


def main(argv=None) -> int:
    """Entry point; see the module docstring for the options."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--_probe"]:
        engine, path, npz, threads = argv[1:5]
        print(json.dumps(probe(engine, path, npz, int(threads))))
        return 0
    from bench.models import zoo

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(zoo.NAMES))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--repeats",
        type=int,
        default=0,
        help="batch-1 calls per engine (default: as many as fit in --budget)",
    )
    ap.add_argument("--scale", choices=("full", "tiny"), default="full")
    ap.add_argument(
        "--budget",
        type=float,
        default=2.0,
        help="seconds per timed phase (latency, throughput), both engines together",
    )
    ap.add_argument("--batch", type=int, default=0, help="override the throughput batch size")
    ap.add_argument("--no-rss", action="store_true", help="skip the subprocess cold/RSS probes")
    ap.add_argument("-v", "--verbose", action="store_true", help="print runnx tracebacks")
    ap.add_argument("--no-host-state", action="store_true", help="skip the per-CPU speed probe")
    args = ap.parse_args(argv)

    header(args)
    print_host_state(args, "before")
    results = []
    for name in [m.strip() for m in args.models.split(",") if m.strip()]:
        try:
            res = bench_model(name, args)
        except Exception as exc:  # noqa: BLE001 - ORT or a builder failed: report, go on
            print(f"\n== {name}: ERROR {_short(exc)}")
            if args.verbose:
                traceback.print_exc()
            continue
        print_model(res)
        results.append(res)
        sys.stdout.flush()
    if results:
        print_summary(results)
    print_host_state(args, "after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
