"""runnx serve against a hand-rolled onnxruntime app, driven by Triton's perf_analyzer.

Usage:
    python bench/serve.py [--models mlp,resnet50] [--concurrency 1,8,64] [--scale full|tiny]
                          [--window-ms 3000] [--threads 0] [--loadgen perf_analyzer|asyncio]
                          [--workers 1,2] [--rounds 1]
    RUNNX_DEV_BUILD=build/dev python bench/serve.py ...     # a developer build of runnx

Both servers run as subprocesses on 127.0.0.1 and speak KServe v2 with the binary tensor
extension: `runnx serve` (dynamic batching) and a minimal uvicorn ASGI app that runs each request
alone with `onnxruntime` on a thread pool (what users hand-roll; it uses runnx's codec, so the
difference is batching and runtime, not parsing). `--workers 1,2` also runs `runnx serve
--workers 2` (rows "runnx-w2": two server processes on the port). The load generator is `perf_analyzer` from the
`tritonclient==2.51.0` wheel (later wheels lack it), fetched with pip into bench/.zoo/ on first
use; it needs Debian's libb64-0d (`apt-get install libb64-0d`) and libcudart.so.12 from the
`nvidia-cuda-runtime-cu12` wheel (no GPU is used). `--loadgen asyncio` uses a small built-in
closed-loop generator instead (same table).

Per model and concurrency it prints throughput, p50/p99 end-to-end latency, and the server
process's CPU use (cores busy: CPU seconds / wall seconds; and CPU milliseconds per inference,
which a busy shared host distorts least), then checks the targets of the serving issue. All
servers stay up for a model and each concurrency is measured on them back to back (``--rounds
N``: N times, in alternating order; medians shown). The host is shared: compare the servers
within a run, not across runs.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import glob
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if os.environ.get("RUNNX_DEV_BUILD"):
    sys.path[1:1] = [str(ROOT / "python"), os.path.join(os.environ["RUNNX_DEV_BUILD"], "py")]

CACHE = ROOT / "bench" / ".zoo" / "perf_analyzer"
# Server settings per model: the largest batch worth forming on a CPU. The MLP takes no added
# delay (a batch leaves as soon as a worker is free, with everything queued by then). ResNet-50
# may wait up to 50 ms for clients still sending their next request (the Batcher waits only
# while fewer requests are in flight than it saw recently, so a lone client never waits; the
# bound is for clients that do not come back, and for a loaded host where the event loop is
# slow to read the 600 KB requests). With no delay, the clients answered by one batch came back
# just after the worker had left with the first one or two of them: batches of ~7 and ~1.
MODEL_CONFIG = {
    "mlp": {"max_batch_size": 64, "dynamic_batching": {"max_queue_delay_microseconds": 0}},
    "resnet50": {"max_batch_size": 8, "dynamic_batching": {"max_queue_delay_microseconds": 50000}},
}


# ---- the baseline: onnxruntime behind a minimal uvicorn app, one request at a time ----------
def baseline_app(model_path: str, name: str, threads: int):
    import onnxruntime as ort
    from runnx.server.config import ServeDefaults, parse_config, resolve
    from runnx.server.kserve import decode_infer_request, encode_infer_response

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    sess = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
    cfg = resolve(name, parse_config(MODEL_CONFIG.get(name, {})), sess.get_inputs(),
                  sess.get_outputs(), ServeDefaults())
    out_names = [o.name for o in sess.get_outputs()]
    batch = [-1] if cfg.max_batch_size else []
    meta = json.dumps({"name": name, "versions": ["1"], "platform": "onnxruntime_onnx",
                       "inputs": [{"name": t.name, "datatype": t.datatype,
                                   "shape": batch + t.dims} for t in cfg.inputs],
                       "outputs": [{"name": t.name, "datatype": t.datatype,
                                    "shape": batch + t.dims} for t in cfg.outputs]}).encode()
    routes = {
        "/v2": json.dumps({"name": "baseline", "version": "1", "extensions": []}).encode(),
        f"/v2/models/{name}": meta,
        f"/v2/models/{name}/config": json.dumps(cfg.triton_json()).encode(),
    }

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        path = scope["path"].rstrip("/")
        headers = [(b"content-type", b"application/json")]
        if path in routes:
            body = routes[path]
        elif path == f"/v2/models/{name}/infer":
            chunks = []
            while True:
                msg = await receive()
                chunks.append(msg.get("body", b""))
                if not msg.get("more_body"):
                    break
            hl = dict(scope["headers"]).get(b"inference-header-content-length")
            req = decode_infer_request(b"".join(chunks), None if hl is None else int(hl))
            loop = asyncio.get_running_loop()
            outs = await loop.run_in_executor(None, sess.run, None, req.inputs)
            flags = [req.binary_output] * len(out_names)
            if req.outputs is not None:
                flags = [req.binary_output if o.binary is None else o.binary for o in req.outputs]
                outs = [outs[out_names.index(o.name)] for o in req.outputs]
                names = [o.name for o in req.outputs]
            else:
                names = out_names
            body, hl = encode_infer_response(name, "1", req.id, list(zip(names, outs, flags)))
            if hl is not None:
                headers = [(b"content-type", b"application/octet-stream"),
                           (b"inference-header-content-length", str(hl).encode())]
        else:
            await send({"type": "http.response.start", "status": 404, "headers": headers})
            await send({"type": "http.response.body", "body": b'{"error":"not found"}'})
            return
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def run_baseline(model_path: str, name: str, port: int, threads: int) -> None:
    import uvicorn

    uvicorn.run(baseline_app(model_path, name, threads), host="127.0.0.1", port=port,
                log_level="warning", access_log=False)


# ---- helpers ---------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, path: str, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise TimeoutError("server did not become ready")


def cpu_seconds(pid: int, tree: bool = False) -> float:
    """CPU time of a process (tree: and of its children now alive: --workers' processes)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    total = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    if tree:
        for child in _children(pid):
            total += cpu_seconds(child, tree=True)
    return total


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


def find_perf_analyzer() -> tuple[str | None, dict, str]:
    """(path or None, env, why-not). Fetches the 2.51.0 wheel with pip on first use."""
    exe = CACHE / "tritonclient-2.51.0.data" / "data" / "bin" / "perf_analyzer"
    libdir = CACHE / "nvidia" / "cuda_runtime" / "lib"
    if not exe.exists() or not libdir.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        r = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d",
                            str(CACHE), "tritonclient==2.51.0", "nvidia-cuda-runtime-cu12"],
                           capture_output=True, text=True, check=False)
        if r.returncode != 0:
            return None, {}, f"pip download failed: {r.stderr.strip()[-300:]}"
        for whl in glob.glob(str(CACHE / "*.whl")):
            with zipfile.ZipFile(whl) as z:
                for n in z.namelist():
                    if n.endswith("bin/perf_analyzer") or "libcudart.so" in n:
                        z.extract(n, CACHE)
        if exe.exists():
            exe.chmod(0o755)
    if not exe.exists():
        return None, {}, "the tritonclient 2.51.0 wheel has no bin/perf_analyzer"
    env = dict(os.environ, LD_LIBRARY_PATH=f"{libdir}:{os.environ.get('LD_LIBRARY_PATH', '')}")
    r = subprocess.run(["ldd", str(exe)], capture_output=True, text=True, env=env, check=False)
    missing = [ln.split()[0] for ln in r.stdout.splitlines() if "not found" in ln]
    if missing:
        return None, {}, f"perf_analyzer lacks {missing} (libb64: apt-get install libb64-0d)"
    return str(exe), env, ""


def window_ms_for(window_ms: int, conc: int, compute_us: float, max_batch: int) -> int:
    """A measurement window long enough for a slow model: at least two end-to-end latencies
    (conc x compute), and 20 batches, so that completions arriving a batch at a time move a
    window's count by a few percent (a window of 16 ResNet-50 requests at concurrency 8 held one
    or two batches of 8, so its throughput swung up to 2x and perf_analyzer never settled)."""
    batch_ms = max(1, min(conc, max_batch or 1)) * compute_us / 1000
    # At most 12 s: a loaded host's slow compute time must not stretch a run to many minutes.
    return int(max(window_ms, min(12000, max(2 * conc * compute_us / 1000, 20 * batch_ms))))


def perf_analyzer(exe: str, env: dict, model: str, port: int, conc: int, window_ms: int) -> dict:
    """One perf_analyzer run at one concurrency. When a busy host keeps three windows from
    agreeing within 10%, it is measured again accepting 30% (the row is marked "unsteady")."""
    try:
        return _perf_analyzer(exe, env, model, port, conc, window_ms, 10)
    except RuntimeError as e:
        if "stable measurement" not in str(e):
            raise
    r = _perf_analyzer(exe, env, model, port, conc, window_ms, 30)
    r["unsteady"] = True
    return r


def _perf_analyzer(exe: str, env: dict, model: str, port: int, conc: int, window_ms: int,
                   stability: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".csv") as out:
        cmd = [exe, "-m", model, "-u", f"127.0.0.1:{port}", "-i", "http",
               "--concurrency-range", f"{conc}:{conc}", "-s", "100", "-f", out.name,
               "--stability-percentage", str(stability)]
        cmd += ["--measurement-interval", str(window_ms), "--max-trials", "8"]
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if r.returncode != 0:
            tail = (r.stdout + r.stderr).strip().splitlines()[-3:]
            raise RuntimeError("perf_analyzer: " + " | ".join(tail))
        with open(out.name) as f:
            row = next(csv.DictReader(f))
    return {"thr": float(row["Inferences/Second"]), "p50_us": float(row["p50 latency"]),
            "p99_us": float(row["p99 latency"]), "queue_us": float(row.get("Server Queue", 0)),
            "compute_us": float(row.get("Server Compute Infer", 0))}


async def _asyncio_load(port, model, body, hl, conc, seconds) -> dict:
    head = (f"POST /v2/models/{model}/infer HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}"
            f"\r\nInference-Header-Content-Length: {hl}\r\n\r\n").encode()
    lat: list[float] = []
    stop = time.perf_counter() + seconds

    async def one():
        r, w = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            w.write(head + body)
            n = None
            hdr = await r.readuntil(b"\r\n\r\n")
            for line in hdr.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    n = int(line.split(b":")[1])
            await r.readexactly(n)
            if not hdr.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(hdr[:60])
            lat.append(time.perf_counter() - t0)
        w.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(conc)))
    wall = time.perf_counter() - t0
    lat.sort()
    return {"thr": len(lat) / wall, "p50_us": lat[len(lat) // 2] * 1e6,
            "p99_us": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e6,
            "queue_us": float("nan"), "compute_us": float("nan")}


def compute_timer(path: str, threads: int):
    """A function that times runnx's batch-1 compute of the model in this process (median us of
    `runs`), the floor of end-to-end latency. This host's speed moves 10-30% within minutes, so
    the c=1 target compares each window with a figure taken just before it, not once per model
    (ResNet-50: a server window read 63.5 ms against 50.7 ms timed minutes earlier; timed in
    turns, the server's compute read 0-5 ms above the in-process figure)."""
    import runnx
    from runnx.cli import random_feeds

    so = runnx.SessionOptions()
    so.intra_op_num_threads = threads
    sess = runnx.InferenceSession(path, so)
    feeds = random_feeds(sess, batch=1)
    for _ in range(3):
        sess.run(None, feeds)

    def median_us(runs: int = 30) -> float:
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            sess.run(None, feeds)
            times.append((time.perf_counter() - t0) * 1e6)
        return statistics.median(times)

    return median_us


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="mlp,resnet50")
    ap.add_argument("--concurrency", default="1,8,64")
    ap.add_argument("--scale", choices=("full", "tiny"), default="full")
    ap.add_argument("--window-ms", type=int, default=3000)
    ap.add_argument("--threads", type=int, default=0, help="intra-op threads of both servers")
    ap.add_argument("--loadgen", choices=("perf_analyzer", "asyncio"), default="perf_analyzer")
    ap.add_argument("--workers", default="1", help="runnx server processes, a list (1,2)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="measure every server this many times per concurrency, in alternating "
                         "order (A B, B A, ...); the table shows medians")
    ap.add_argument("--baseline-app", nargs=3, metavar=("MODEL", "NAME", "PORT"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.baseline_app:
        run_baseline(args.baseline_app[0], args.baseline_app[1], int(args.baseline_app[2]),
                     args.threads)
        return 0

    from runnx.server.kserve import encode_infer_request

    from bench.models import zoo

    exe, pa_env, why = (None, {}, "asked for --loadgen asyncio")
    if args.loadgen == "perf_analyzer":
        exe, pa_env, why = find_perf_analyzer()
        if exe is None:
            print(f"perf_analyzer unavailable ({why}); using the asyncio load generator")
    concs = [int(c) for c in args.concurrency.split(",")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    rows = []
    for name in args.models.split(","):
        path = str(zoo.cached_path(name, args.scale))
        time_compute = compute_timer(path, args.threads)
        compute_us = time_compute()
        repo = tempfile.mkdtemp(prefix="runnx-serve-bench-")
        os.makedirs(os.path.join(repo, name, "1"))
        os.symlink(path, os.path.join(repo, name, "1", "model.onnx"))
        with open(os.path.join(repo, name, "config.json"), "w") as f:
            json.dump(MODEL_CONFIG.get(name, {}), f)
        feeds = zoo.sample_inputs(name, 1, args.scale)
        body, hl = encode_infer_request(feeds, binary=True, binary_output=True)
        servers = {}
        for w in (int(w) for w in args.workers.split(",")):
            servers["runnx" if w == 1 else f"runnx-w{w}"] = [
                sys.executable, "-m", "runnx", "serve", repo, "--threads", str(args.threads),
                "--log-level", "warning", "--workers", str(w), "--port"]
        servers["ort-app"] = [sys.executable, str(Path(__file__).resolve()), "--threads",
                              str(args.threads), "--baseline-app", path, name]
        # Every server stays up while the others are measured (idle, they cost nothing), so
        # each concurrency is measured on all of them back to back: a host whose load moves
        # within minutes then shifts them alike. --rounds repeats that, in alternating order.
        procs, ports = {}, {}
        try:
            for server, cmd in servers.items():
                ports[server] = free_port()
                procs[server] = subprocess.Popen(cmd + [str(ports[server])], env=env,
                                                 stdout=subprocess.DEVNULL)
            for server in servers:
                wait_ready(ports[server], f"/v2/models/{name}", procs[server])
            for conc in concs:
                runs = {server: [] for server in servers}
                for rnd in range(args.rounds):
                    for server in (list(servers) if rnd % 2 == 0 else list(servers)[::-1]):
                        proc = procs[server]
                        compute_now = compute_us
                        if conc == 1:  # the c=1 target's floor, timed just before its window
                            time.sleep(0.1)  # the previous window's onnxruntime workers spin a while
                            compute_now = time_compute(20)
                        cpu0, t0 = cpu_seconds(proc.pid, tree=True), time.perf_counter()
                        try:
                            if exe:
                                window = window_ms_for(
                                    args.window_ms, conc, compute_us,
                                    MODEL_CONFIG.get(name, {}).get("max_batch_size", 0))
                                r = perf_analyzer(exe, pa_env, name, ports[server], conc, window)
                            else:
                                seconds = max(args.window_ms / 1000 * 3,
                                              4 * conc * compute_us / 1e6)
                                r = asyncio.run(_asyncio_load(ports[server], name, body, hl, conc,
                                                              seconds))
                        except Exception as e:  # noqa: BLE001  (reported in the table)
                            r = {"error": str(e)[:200]}
                        wall = time.perf_counter() - t0
                        r["cpu"] = (cpu_seconds(proc.pid, tree=True) - cpu0) / wall
                        r.update(model=name, server=server, conc=conc, model_compute_us=compute_now)
                        runs[server].append(r)
                        print_row(r, flush=True)
                rows += [median_row(runs[server]) for server in servers]
        finally:
            for proc in procs.values():
                proc.terminate()
            for proc in procs.values():
                proc.wait(60)
    print()
    print_table(rows, exe is not None, why)
    return 0


def median_row(runs: list[dict]) -> dict:
    """One row from a server's rounds at one concurrency: the median of each figure."""
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return runs[0]
    row = dict(ok[0], rounds=len(ok), unsteady=any(r.get("unsteady") for r in ok))
    for k in ("thr", "p50_us", "p99_us", "queue_us", "compute_us", "cpu", "model_compute_us"):
        row[k] = statistics.median(r[k] for r in ok)
    return row


def print_row(r: dict, flush: bool = False) -> None:
    if "error" in r:
        print(f"{r['model']:9s} {r['server']:8s} c={r['conc']:<3d} ERROR {r['error']}", flush=flush)
        return
    print(f"{r['model']:9s} {r['server']:8s} c={r['conc']:<3d} {r['thr']:9.1f} infer/s  "
          f"p50 {r['p50_us'] / 1e3:8.3f} ms  p99 {r['p99_us'] / 1e3:8.3f} ms  "
          f"cpu {r['cpu']:4.2f} cores  (server queue {r['queue_us']:.0f} us, "
          f"compute {r['compute_us']:.0f} us"
          + (f"; in-process {r['model_compute_us']:.0f} us" if r["conc"] == 1 else "") + ")"
          f"{' unsteady' if r.get('unsteady') else ''}",
          flush=flush)


def print_table(rows: list[dict], used_pa: bool, why: str) -> None:
    print(f"load generator: {'perf_analyzer 2.51 (HTTP, binary tensors)' if used_pa else why}")
    print("| model | server | concurrency | infer/s | p50 ms | p99 ms | CPU cores | CPU ms/infer |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            print(f"| {r['model']} | {r['server']} | {r['conc']} | error: {r['error']} | | | | |")
            continue
        print(f"| {r['model']} | {r['server']}{' (unsteady)' if r.get('unsteady') else ''} | "
              f"{r['conc']} | {r['thr']:.1f} | "
              f"{r['p50_us'] / 1e3:.3f} | {r['p99_us'] / 1e3:.3f} | {r['cpu']:.2f} | "
              f"{r['cpu'] / max(r['thr'], 1e-9) * 1e3:.3f} |")
    by = {(r["model"], r["server"], r["conc"]): r for r in rows if "error" not in r}

    def check(label, ok, detail):
        print(f"target {label}: {'met' if ok else 'MISSED'} ({detail})")

    b = by.get(("mlp", "ort-app", 64))
    for runnx in sorted({r["server"] for r in rows if r["server"].startswith("runnx")}):
        a = by.get(("mlp", runnx, 64))
        if a and b:
            check(f"MLP c=64 throughput >= 3x ort-app ({runnx})", a["thr"] >= 3 * b["thr"],
                  f"{a['thr'] / b['thr']:.2f}x")
    for name in ("mlp", "resnet50"):
        a = by.get((name, "runnx", 1))
        if a:
            limit = a["model_compute_us"] + 300
            check(f"{name} c=1 p50 <= compute + 300 us", a["p50_us"] <= limit,
                  f"p50 {a['p50_us']:.0f} us, compute {a['model_compute_us']:.0f} us")
    a, b = by.get(("resnet50", "runnx", 8)), by.get(("resnet50", "ort-app", 8))
    if a and b:
        check("ResNet-50 c=8 throughput >= ort-app", a["thr"] >= b["thr"],
              f"{a['thr'] / b['thr']:.2f}x")
        check("ResNet-50 c=8 p99 <= 2x p50", a["p99_us"] <= 2 * a["p50_us"],
              f"p99/p50 {a['p99_us'] / a['p50_us']:.2f}")


if __name__ == "__main__":
    sys.exit(main())
