"""The ``runnx`` command line.

    runnx run MODEL [--input NAME=FILE.npy ...] [--repeat N]   run a model, print outputs and timing
    runnx run --demo                                            the same on a model shipped with runnx
    runnx inspect MODEL [--dim NAME=N ...] [--level L] [--cuda]  optimised graph, passes, kernels, FLOPs, memory
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


def _inspect_dims(model, args) -> dict[str, int]:
    """Sizes for symbolic input dims: --dim NAME=N, else --batch."""
    sizes = {}
    for spec in args.dim or []:
        name, _, value = spec.partition("=")
        sizes[name] = int(value)
    for vi in model.graph.input:
        for d in vi.type.tensor_type.shape.dim:
            if d.dim_param and d.dim_param not in sizes:
                sizes[d.dim_param] = args.batch
    return sizes


def _observed_shapes(model, feeds, threads: int) -> dict[str, list[int]]:
    """Value name -> shape, observed by running the unoptimised graph once with every node output
    made a graph output (fused nodes keep the names of the values they replace, so these cover
    the optimised graph too). Empty if that run fails (e.g. weights in external files)."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    seen = {o.name for o in m.graph.output}
    for node in m.graph.node:
        for o in node.output:
            if o and o not in seen:
                m.graph.output.append(onnx.ValueInfoProto(name=o))
                seen.add(o)
    so = SessionOptions()
    so.intra_op_num_threads = threads
    so.graph_optimization_level = 0
    try:
        sess = InferenceSession(m.SerializeToString(), so)
        values = sess.run(None, feeds)
    except (RunnxError, ValueError, OSError):
        return {}
    shapes = {t.name: list(t.dims) for t in m.graph.initializer}
    shapes.update({k: list(v.shape) for k, v in feeds.items()})
    shapes.update({arg.name: list(v.shape) for arg, v in zip(sess.get_outputs(), values)})
    return shapes


def _node_flops(op: str, inputs: list[str], outputs: list[str], shapes, bshd: bool = False) -> int | None:
    """Multiply-add FLOPs (2 per MAC) of the matrix-product ops, None for the others or unknown.
    bshd: an attention whose K is [B, Sk, H, D] (layout "bshd") rather than K^T [..., D, Sk]."""
    def shape(i):
        return shapes.get(inputs[i]) if i < len(inputs) and inputs[i] else None

    out = shapes.get(outputs[0]) if outputs else None
    numel = int(np.prod(out)) if out is not None else None
    if op in ("MatMul", "Gemm", "FusedGemm") and numel is not None and shape(0):
        a = shape(0)
        # Gemm's A may be transposed: K is what A holds per output row.
        k = int(np.prod(a)) // out[0] if op == "Gemm" and out and out[0] else a[-1]
        return 2 * numel * k
    if op in ("Conv", "FusedConv") and numel is not None and shape(1):
        return 2 * numel * int(np.prod(shape(1)[1:]))
    if op == "ScaledDotProductAttention" and numel is not None and shape(1) and shape(0):
        s_k, d = shape(1)[1 if bshd else -1], shape(0)[-1]
        return 2 * (numel // out[-1]) * s_k * (d + out[-1])
    return None


def _shape_text(inferred, observed) -> str:
    """"[batch,seq,32]=[1,1,32]": the statically inferred shape, then the observed one when the
    static one has symbols."""
    static = None
    if inferred is not None and inferred[1] is not None:
        static = "[" + ",".join(str(d) for d in inferred[1]) + "]"
    seen = "[" + ",".join(str(d) for d in observed) + "]" if observed is not None else "?"
    if static is None:
        return seen
    return static if all(isinstance(d, int) for d in inferred[1]) else f"{static}={seen}"


def _print_cuda_placement(model_path: str, level: int, nodes) -> None:
    from .providers import cuda_placement

    placement = cuda_placement(model_path, level)
    on_cpu = [(k, n) for k, n in enumerate(placement["nodes"]) if n[2] == "cpu"]
    print(f"\nCUDA placement: {len(nodes) - len(on_cpu)} of {len(nodes)} nodes on the device"
          + ("" if on_cpu else " (no CPU fallback)"))
    for k, (name, op, _, reason) in on_cpu:
        print(f"  {k:4d} {op:34s} {name[:40]:40s} CPU: {reason}")
    print(f"boundary copies per run (host feeds): {len(placement['copies'])}")
    for value, direction, step in placement["copies"]:
        where = f"before node {step}" if step >= 0 else "after the run (graph output)"
        print(f"  {direction:9s} {value[:50]:50s} {where}")


def cmd_inspect(args) -> int:
    import onnx  # inspect reads the graph with the onnx package when it is installed

    model = onnx.load(args.model, load_external_data=False)
    so = SessionOptions()
    so.intra_op_num_threads = args.threads
    so.graph_optimization_level = args.level
    sess = InferenceSession(args.model, so)
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
    print(f"\ngraph passes fired (graph_optimization_level {args.level}): "
          + (", ".join(f"{k} x{v}" for k, v in fired.items()) or "none"))
    nodes = sess._sess.kernel_choices()
    opt_counts = collections.Counter((d + "." if d else "") + op for _, op, d, _, _, _ in nodes)
    print(f"optimised graph: {len(nodes)} nodes ("
          + ", ".join(f"{op} {n}" for op, n in opt_counts.most_common()) + ")")

    sizes = _inspect_dims(model, args)
    feeds = {}
    rng = np.random.default_rng(0)
    for arg in sess.get_inputs():
        shape = [d if isinstance(d, int) and d >= 0 else sizes.get(d, args.batch) for d in arg.shape]
        dtype = _NUMPY_TYPES.get(arg.type, np.float32)
        if np.dtype(dtype).kind in "iub":
            feeds[arg.name] = rng.integers(0, 2, size=shape).astype(dtype)
        else:
            feeds[arg.name] = rng.standard_normal(shape).astype(dtype)
    shapes = _observed_shapes(model, feeds, args.threads)
    dims_note = ", ".join(f"{k}={v}" for k, v in sizes.items()) or "all fixed"
    print(f"\nnodes in execution order (static output shapes, = observed with {dims_note}, and FLOPs):")
    inferred = sess._sess.inferred_types()
    total = 0
    for k, (name, op, domain, ins, outs, kernel) in enumerate(nodes):
        flops = _node_flops(op, ins, outs, shapes, "(bshd)" in (kernel or ""))
        total += flops or 0
        out_s = " ".join(_shape_text(inferred.get(o), shapes.get(o)) for o in outs)
        line = (f"  {k:4d} {(domain + '.' if domain else '') + op:34s} {name[:40]:40s} -> {out_s:22s}"
                f" {('%.3g MFLOP' % (flops / 1e6)) if flops else '':>14s}")
        if kernel:
            line += f"  [{kernel}]"
        print(line)
        if args.verbose:
            print(f"         in: {', '.join(ins)}\n         out: {', '.join(outs)}")
    print(f"total matrix-product FLOPs: {total / 1e9:.4g} GFLOP per run")
    if args.cuda:
        _print_cuda_placement(args.model, args.level, nodes)

    sess.run(None, feeds)
    stats = sess.memory_stats()
    print(
        f"\nmemory plan ({dims_note}): arena {stats['arena_bytes'] / 1e6:.2f} MB, outputs on heap "
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
        intra_op_threads=args.threads, max_inline_us=args.max_inline_us)
    token = args.auth_token or os.environ.get("RUNNX_AUTH_TOKEN") or None
    server = Server(path, host=args.host, port=args.port, defaults=defaults, auth_token=token,
                    max_body_bytes=args.max_body_bytes, shutdown_timeout_s=args.shutdown_timeout,
                    access_log=args.access_log, workers=args.workers)
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
    i = sub.add_parser("inspect", help="the optimised graph, passes fired, kernel choices, FLOPs "
                       "and the memory plan")
    i.add_argument("model")
    i.add_argument("--threads", type=int, default=0)
    i.add_argument("--level", type=int, default=99, choices=[0, 1, 2, 3, 99],
                   help="graph_optimization_level (default 99)")
    i.add_argument("--batch", type=int, default=1, help="size of symbolic input dims not in --dim")
    i.add_argument("--dim", action="append", metavar="NAME=N", help="size of a symbolic input dim")
    i.add_argument("--verbose", action="store_true", help="also list each node's inputs and outputs")
    i.add_argument("--cuda", action="store_true",
                   help="per-node placement under CUDAExecutionProvider and the boundary copies (no GPU needed)")
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
    s.add_argument("--workers", type=int, default=1,
                   help="server processes sharing the port (SO_REUSEPORT), each with its own "
                   "copy of the models (default 1)")
    s.add_argument("--max-batch-size", type=int, default=None,
                   help="default for models whose config.json does not say (default 32; 0 = no "
                   "batching)")
    s.add_argument("--max-queue-delay-us", type=int, default=0,
                   help="longest wait for more requests to fill a batch, counted from when a free "
                   "worker first sees a request; a batch leaves earlier once every client seen in "
                   "flight is back (default 0: a batch leaves when a worker is free, with all that "
                   "queued meanwhile)")
    s.add_argument("--instances", type=int, default=1, help="workers per model (default 1)")
    s.add_argument("--max-queue-size", type=int, default=1024,
                   help="queued requests per model before answering 429 (default 1024)")
    s.add_argument("--max-inline-us", type=int, default=1000,
                   help="a lone request to an idle model whose batches take at most this long "
                   "runs at once on the event loop's thread (default 1000; 0: never)")
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
