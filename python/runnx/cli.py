"""The ``runnx`` command line.

    runnx run MODEL [--input NAME=FILE.npy ...] [--repeat N]   run a model, print outputs and timing
    runnx run --demo                                            the same on a model shipped with runnx
    runnx inspect MODEL                                         inputs, outputs, op counts, memory plan
    runnx bench MODEL [--compare onnxruntime]                   latency side by side, as ratios
    runnx serve PATH [--host --port --max-batch-size ...]       KServe v2 HTTP server
    runnx serve --demo                                          the same on the shipped model
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import time

import numpy as np

from . import InferenceSession, RunnxError, SessionOptions

_NUMPY_TYPES = {
    "tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
    "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int8)": np.int8,
    "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_,
}


def demo_model_path() -> str:
    """Path of the small MLP shipped inside the package (what ``--demo`` runs)."""
    return os.path.join(os.path.dirname(__file__), "demo", "mlp.onnx")


def random_feeds(sess, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs matching a session's declared inputs; symbolic dims become ``batch``."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for arg in sess.get_inputs():
        shape = [d if isinstance(d, int) and d >= 0 else batch for d in arg.shape]
        dtype = _NUMPY_TYPES.get(arg.type, np.float32)
        if np.dtype(dtype).kind in "iu":
            feeds[arg.name] = rng.integers(0, 2, size=shape).astype(dtype)
        elif dtype is np.bool_:
            feeds[arg.name] = rng.random(shape) < 0.5
        else:
            feeds[arg.name] = rng.standard_normal(shape).astype(dtype)
    return feeds


def _session(path: str, threads: int) -> InferenceSession:
    so = SessionOptions()
    so.intra_op_num_threads = threads
    return InferenceSession(path, so)


def _time_runs(run, repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def cmd_run(args) -> int:
    path = demo_model_path() if args.demo else args.model
    if not path:
        print("runnx run: give a MODEL path or --demo", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    sess = _session(path, args.threads)
    load_ms = (time.perf_counter() - t0) * 1e3
    feeds = random_feeds(sess, batch=args.batch)
    for spec in args.input or []:
        name, _, file = spec.partition("=")
        if not file:
            print(f"runnx run: --input expects NAME=FILE.npy, got {spec!r}", file=sys.stderr)
            return 2
        feeds[name] = np.load(file)
    outputs = sess.run(None, feeds)
    times = _time_runs(lambda: sess.run(None, feeds), args.repeat)
    print(f"model: {path}")
    for name, x in feeds.items():
        print(f"input  {name}: {x.dtype} {list(x.shape)}")
    np.set_printoptions(precision=5, threshold=20, edgeitems=3)
    for arg, y in zip(sess.get_outputs(), outputs):
        print(f"output {arg.name}: {y.dtype} {list(y.shape)}")
        print("  " + np.array2string(y, prefix="  "))
    print(f"session creation: {load_ms:.2f} ms")
    print(f"run: p50 {statistics.median(times):.3f} ms, min {min(times):.3f} ms over {len(times)} runs")
    return 0


def cmd_inspect(args) -> int:
    import onnx  # inspect reads the graph with the onnx package when it is installed

    model = onnx.load(args.model, load_external_data=False)
    sess = _session(args.model, args.threads)
    print(f"model: {args.model}  (producer {model.producer_name} {model.producer_version})")
    print("opsets: " + ", ".join(f"{o.domain or 'ai.onnx'}={o.version}" for o in model.opset_import))
    for arg in sess.get_inputs():
        print(f"input  {arg.name}: {arg.type} {arg.shape}")
    for arg in sess.get_outputs():
        print(f"output {arg.name}: {arg.type} {arg.shape}")
    counts = collections.Counter(n.op_type for n in model.graph.node)
    print(f"nodes: {len(model.graph.node)}  initializers: {len(model.graph.initializer)}")
    for op, n in counts.most_common():
        print(f"  {op:24s} {n}")
    fired = sess._passes_fired()
    print("graph passes fired: " + (", ".join(f"{k} x{v}" for k, v in fired.items()) or "none"))
    sess.run(None, random_feeds(sess))
    stats = sess.memory_stats()
    print(
        f"memory plan (batch 1): arena {stats['arena_bytes'] / 1e6:.2f} MB, outputs on heap "
        f"{stats['unplanned_bytes'] / 1e6:.2f} MB, in-place nodes {stats['inplace_nodes']}"
    )
    return 0


def cmd_bench(args) -> int:
    sess = _session(args.model, args.threads)
    feeds = random_feeds(sess, batch=args.batch)
    engines = {"runnx": lambda: sess.run(None, feeds)}
    if args.compare == "onnxruntime":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        ort_sess = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])
        engines["onnxruntime"] = lambda: ort_sess.run(None, feeds)
    for run in engines.values():
        run()  # warm up (and plan)
    times = {k: [] for k in engines}
    for _ in range(args.repeat):  # interleaved, so a noisy neighbour hits both engines alike
        for k, run in engines.items():
            times[k] += _time_runs(run, 1)
    base = statistics.median(times["runnx"])
    for k, t in times.items():
        p50 = statistics.median(t)
        ratio = f"  runnx/{k} = {base / p50:.2f}" if k != "runnx" else ""
        print(f"{k:12s} p50 {p50:8.3f} ms  p90 {np.percentile(t, 90):8.3f} ms{ratio}")
    return 0


def cmd_serve(args) -> int:
    from .server import ServeDefaults, Server, logs  # the server's imports cost only here

    path = demo_model_path() if args.demo else args.path
    if not path:
        print("runnx serve: give a model repository folder, a MODEL.onnx or --demo",
              file=sys.stderr)
        return 2
    logs.setup(args.log_level)
    defaults = ServeDefaults(
        max_batch_size=args.max_batch_size, max_queue_delay_us=args.max_queue_delay_us,
        instance_count=args.instances, max_queue_size=args.max_queue_size,
        intra_op_threads=args.threads)
    token = args.auth_token or os.environ.get("RUNNX_AUTH_TOKEN") or None
    server = Server(path, host=args.host, port=args.port, defaults=defaults, auth_token=token,
                    max_body_bytes=args.max_body_bytes, shutdown_timeout_s=args.shutdown_timeout,
                    access_log=args.access_log)
    try:
        server.bind()
    except OSError as e:
        print(f"runnx serve: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 1
    print(f"runnx serve: {path} on {server.url}  (try: curl {server.url}/v2/health/ready -i)",
          file=sys.stderr, flush=True)
    try:
        return server.run()
    except KeyboardInterrupt:
        return 130


def main(argv=None) -> int:
    """Entry point of the ``runnx`` console script.

    >>> main(["run", "--demo"])  # doctest: +SKIP
    """
    p = argparse.ArgumentParser(prog="runnx", description="runnx: run ONNX models fast")
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run a model on random or given inputs")
    r.add_argument("model", nargs="?")
    r.add_argument("--demo", action="store_true", help="run the small model shipped with runnx")
    r.add_argument("--input", action="append", metavar="NAME=FILE.npy")
    r.add_argument("--batch", type=int, default=1, help="size for symbolic dims of random inputs")
    r.add_argument("--repeat", type=int, default=20)
    r.add_argument("--threads", type=int, default=0)
    r.set_defaults(fn=cmd_run)
    i = sub.add_parser("inspect", help="inputs, outputs, op counts and memory plan")
    i.add_argument("model")
    i.add_argument("--threads", type=int, default=0)
    i.set_defaults(fn=cmd_inspect)
    b = sub.add_parser("bench", help="latency, optionally side by side with onnxruntime")
    b.add_argument("model")
    b.add_argument("--compare", choices=["onnxruntime"])
    b.add_argument("--batch", type=int, default=1)
    b.add_argument("--repeat", type=int, default=50)
    b.add_argument("--threads", type=int, default=0)
    b.set_defaults(fn=cmd_bench)
    s = sub.add_parser("serve", help="KServe v2 HTTP server over a model repository or one model")
    s.add_argument("path", nargs="?", help="models/ folder (models/<name>/<version>/model.onnx) "
                   "or one .onnx file")
    s.add_argument("--demo", action="store_true", help="serve the small model shipped with runnx")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; "
                   "0.0.0.0 for every interface)")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--max-batch-size", type=int, default=None,
                   help="default for models whose config.json does not say (default 32; 0 = no "
                   "batching)")
    s.add_argument("--max-queue-delay-us", type=int, default=0,
                   help="longest wait for more requests to fill a batch (default 0: a batch "
                   "leaves when a worker is free, with all that queued meanwhile)")
    s.add_argument("--instances", type=int, default=1, help="workers per model (default 1)")
    s.add_argument("--max-queue-size", type=int, default=1024,
                   help="queued requests per model before answering 429 (default 1024)")
    s.add_argument("--threads", type=int, default=0, help="intra-op threads per model (0: all)")
    s.add_argument("--auth-token", default=None, help="require 'Authorization: Bearer TOKEN' on "
                   "all routes but health (or set RUNNX_AUTH_TOKEN)")
    s.add_argument("--max-body-bytes", type=int, default=64 << 20,
                   help="largest request body (default 64 MiB); larger ones get 413")
    s.add_argument("--shutdown-timeout", type=float, default=30.0,
                   help="seconds to finish in-flight requests on SIGTERM (default 30)")
    s.add_argument("--access-log", action="store_true", help="log every request")
    s.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    s.set_defaults(fn=cmd_serve)
    args = p.parse_args(argv)
    try:
        return args.fn(args)
    except (RunnxError, FileNotFoundError, NotADirectoryError) as e:
        print(f"runnx {args.cmd}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
