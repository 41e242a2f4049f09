"""Per-layer convolution bench: GFLOP/s of runnx and onnxruntime on single-Conv models with the
ResNet-50 and MobileNetV2 layer shapes (batch 1 at 224x224), in one process, interleaved.

Each row is one distinct layer shape (how many times the model uses it in `n`). Besides runnx's
own choice (`auto`), `--algos` times forced paths (RUNNX_CONV_ALGO=im2col|winograd|generic, read
at session creation) to see which wins per shape. The ratio is runnx auto time / ORT time.

`--profile` instead times whole zoo models node by node (both engines' enable_profiling, the
median (--min: fastest) over runs of each node's time) and prints the time per op type, per group
of convolutions (kernel and stride; the 7x7 stage apart) and the slowest nodes. Per-node minimums
summed by group moved by about 1% between runs on this session's noisy host, where whole-run
times moved 10-40%: the way to A/B a kernel change.

Usage:
    RUNNX_DEV_BUILD=build/dev python bench/conv.py [--threads 2] [--budget 0.3]
        [--models resnet50,mobilenetv2] [--algos im2col,winograd] [--batch 1] [--filter 3x3]
    RUNNX_DEV_BUILD=build/dev python bench/conv.py --profile --models mobilenetv2 --threads 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parent.parent
if os.environ.get("RUNNX_DEV_BUILD"):
    sys.path[0:0] = [str(ROOT / "python"), os.path.join(os.environ["RUNNX_DEV_BUILD"], "py")]
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))
from bench.timing import SETTLE_S, interleaved_for

# (c_in, c_out, k, stride, group, spatial in, uses) per model; spatial in is the input H = W.
RESNET50 = [
    (3, 64, 7, 2, 1, 224, 1),
    (64, 64, 1, 1, 1, 56, 1),
    (64, 64, 3, 1, 1, 56, 3),
    (64, 256, 1, 1, 1, 56, 4),
    (256, 64, 1, 1, 1, 56, 2),
    (256, 128, 1, 1, 1, 56, 1),
    (128, 128, 3, 2, 1, 56, 1),
    (128, 512, 1, 1, 1, 28, 4),
    (256, 512, 1, 2, 1, 56, 1),
    (512, 128, 1, 1, 1, 28, 3),
    (128, 128, 3, 1, 1, 28, 3),
    (512, 256, 1, 1, 1, 28, 1),
    (256, 256, 3, 2, 1, 28, 1),
    (256, 1024, 1, 1, 1, 14, 6),
    (512, 1024, 1, 2, 1, 28, 1),
    (1024, 256, 1, 1, 1, 14, 5),
    (256, 256, 3, 1, 1, 14, 5),
    (1024, 512, 1, 1, 1, 14, 1),
    (512, 512, 3, 2, 1, 14, 1),
    (512, 2048, 1, 1, 1, 7, 3),
    (1024, 2048, 1, 2, 1, 14, 1),
    (2048, 512, 1, 1, 1, 7, 2),
    (512, 512, 3, 1, 1, 7, 2),
]
MOBILENETV2 = [
    (3, 32, 3, 2, 1, 224, 1),
    (32, 32, 3, 1, 32, 112, 1),
    (32, 16, 1, 1, 1, 112, 1),
    (16, 96, 1, 1, 1, 112, 1),
    (96, 96, 3, 2, 96, 112, 1),
    (96, 24, 1, 1, 1, 56, 1),
    (24, 144, 1, 1, 1, 56, 2),
    (144, 144, 3, 1, 144, 56, 1),
    (144, 24, 1, 1, 1, 56, 1),
    (144, 144, 3, 2, 144, 56, 1),
    (144, 32, 1, 1, 1, 28, 1),
    (32, 192, 1, 1, 1, 28, 3),
    (192, 192, 3, 1, 192, 28, 2),
    (192, 32, 1, 1, 1, 28, 2),
    (192, 192, 3, 2, 192, 28, 1),
    (192, 64, 1, 1, 1, 14, 1),
    (64, 384, 1, 1, 1, 14, 4),
    (384, 384, 3, 1, 384, 14, 4),
    (384, 64, 1, 1, 1, 14, 3),
    (384, 96, 1, 1, 1, 14, 1),
    (96, 576, 1, 1, 1, 14, 3),
    (576, 576, 3, 1, 576, 14, 2),
    (576, 96, 1, 1, 1, 14, 2),
    (576, 576, 3, 2, 576, 14, 1),
    (576, 160, 1, 1, 1, 7, 1),
    (160, 960, 1, 1, 1, 7, 3),
    (960, 960, 3, 1, 960, 7, 3),
    (960, 160, 1, 1, 1, 7, 2),
    (960, 320, 1, 1, 1, 7, 1),
    (320, 1280, 1, 1, 1, 7, 1),
]
MODELS = {"resnet50": RESNET50, "mobilenetv2": MOBILENETV2}


def conv_model(c_in, c_out, k, stride, group, size, batch, seed=0) -> onnx.ModelProto:
    """One Conv (+ bias), pads (k-1)/2, as the zoo builders write it."""
    rng = np.random.default_rng(seed)
    w = (rng.standard_normal((c_out, c_in // group, k, k)) * 0.1).astype(np.float32)
    b = rng.standard_normal(c_out).astype(np.float32)
    p = (k - 1) // 2
    node = helper.make_node(
        "Conv", ["x", "w", "b"], ["y"], kernel_shape=[k, k], strides=[stride, stride],
        pads=[p, p, p, p], group=group,
    )
    out = (size + 2 * p - k) // stride + 1
    graph = helper.make_graph(
        [node], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, c_in, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, c_out, out, out])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def flops(c_in, c_out, k, stride, group, size, batch) -> float:
    out = (size + 2 * ((k - 1) // 2) - k) // stride + 1
    return 2.0 * batch * c_out * out * out * (c_in // group) * k * k


def make_sessions(model_bytes, threads, algos):
    import onnxruntime as ort
    import runnx

    sessions = {}
    for algo in ["auto"] + algos:
        if algo == "auto":
            os.environ.pop("RUNNX_CONV_ALGO", None)
        else:
            os.environ["RUNNX_CONV_ALGO"] = algo
        o = runnx.SessionOptions()
        o.intra_op_num_threads = threads
        sessions[algo] = runnx.InferenceSession(model_bytes, o)
    os.environ.pop("RUNNX_CONV_ALGO", None)
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    sessions["ort"] = ort.InferenceSession(model_bytes, o, providers=["CPUExecutionProvider"])
    return sessions


def time_interleaved(sessions, feeds, budget, clock=time.perf_counter, stat=statistics.median):
    """Seconds per run of each session (median, or `stat`), in settled alternating blocks (see
    bench/timing.py). clock=time.process_time counts CPU time instead of wall time: with one
    thread that is robust against other processes sharing the cores."""
    fns = {n: (lambda s=s: s.run(None, feeds)) for n, s in sessions.items()}
    times = interleaved_for(fns, budget, clock=clock, hi=200)
    return {n: stat(v) for n, v in times.items()}


def _node_times(events, stat) -> dict[tuple[str, str], float]:
    """(node name, op type) -> microseconds over the recorded runs (median or `stat`)."""
    per = {}
    for name, op, dur in events:
        per.setdefault((name, op), []).append(dur)
    return {k: stat(v) for k, v in per.items()}


def _conv_shapes(path: str) -> dict[str, tuple[str, tuple]]:
    """Conv node name -> ('kxk/s g C->M @H', (C, M, kh, kw, H, OH)) from the model file (onnx
    shape inference); the tuple is the key that pairs it with ORT's node (_ort_conv_key)."""
    m = onnx.shape_inference.infer_shapes(onnx.load(path))
    dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in list(m.graph.value_info) + list(m.graph.input)}
    inits = {t.name: list(t.dims) for t in m.graph.initializer}
    out = {}
    for n in m.graph.node:
        if n.op_type != "Conv" or n.input[1] not in inits:
            continue
        w = inits[n.input[1]]
        a = {x.name: helper.get_attribute_value(x) for x in n.attribute}
        x = dims.get(n.input[0], [0, w[1] * a.get("group", 1), 0])
        y = dims.get(n.output[0], [0, w[0], 0])
        label = (f"{w[2]}x{w[3]}/s{a.get('strides', [1])[0]} g{a.get('group', 1)} "
                 f"{x[1]}->{w[0]} @{x[2] if len(x) > 2 else '?'}")
        out[n.name] = (label, (x[1], w[0], w[2], w[3], x[2] if len(x) > 2 else 0, y[2] if len(y) > 2 else 0))
    return out


def _ort_conv_key(event) -> tuple | None:
    """(C, M, kh, kw, H, OH) of an ORT Conv event from its recorded input/output shapes."""
    try:
        ins = [next(iter(d.values())) for d in event["args"]["input_type_shape"]]
        y = next(iter(event["args"]["output_type_shape"][0].values()))
        x, w = ins[0], ins[1]
        return (x[1], w[0], w[2], w[3], x[2], y[2])
    except (KeyError, IndexError, StopIteration, TypeError):
        return None


def conv_group(label: str) -> str:
    """A conv's group from its _conv_shapes label: kernel and stride ('3x3/s2'), the 7x7 stage
    apart ('1x1/s1 @7': it runs the transposed GEMM)."""
    return label.split(" ")[0] + (" @7" if label.endswith("@7") else "")


def _pair_convs(r_convs, r_keys, o_convs, o_keys) -> dict:
    """runnx conv -> ORT conv: in execution order within each shape key (the engines order a
    block's downsample and conv2 differently, so pairing by global order swapped them), else by
    global order when the counts match."""
    by_key = {}
    for k in o_convs:
        by_key.setdefault(o_keys.get(k), []).append(k)
    out = {}
    for k in r_convs:
        queue = by_key.get(r_keys.get(k))
        if queue:
            out[k] = queue.pop(0)
    if len(out) == len(r_convs):
        return out
    return dict(zip(r_convs, o_convs)) if len(r_convs) == len(o_convs) else {}


def profile_model(model: str, batch: int, threads: int, runs: int, top: int, stat) -> None:
    import json

    import onnxruntime as ort
    import runnx

    from bench.models import zoo

    path = str(zoo.cached_path(model, "full"))
    feeds = zoo.sample_inputs(model, batch, "full")
    o = runnx.SessionOptions()
    o.intra_op_num_threads = threads
    o.enable_profiling = True
    rs = runnx.InferenceSession(path, o)
    oo = ort.SessionOptions()
    oo.intra_op_num_threads = threads
    oo.inter_op_num_threads = 1
    oo.enable_profiling = True
    oo.profile_file_prefix = f"/tmp/conv_bench_ort_{os.getpid()}"
    osess = ort.InferenceSession(path, oo, providers=["CPUExecutionProvider"])
    for _ in range(3):  # warm-up runs (plans, packing, first-use transforms) are not profiled
        rs.run(None, feeds)
        osess.run(None, feeds)
    rs._sess.take_profile()
    # Each engine's runs in one settled block: onnxruntime's workers spin ~40 ms after a run and
    # would otherwise share the cores with runnx's nodes (bench/timing.py).
    wall = {"runnx": [], "ort": []}
    for name, s in (("runnx", rs), ("ort", osess)):
        time.sleep(SETTLE_S)
        for _ in range(runs):
            t = time.perf_counter()
            s.run(None, feeds)
            wall[name].append(time.perf_counter() - t)
    r_nodes = _node_times(((n, op, d) for n, op, _, d, _ in rs._sess.take_profile()), stat)
    trace = osess.end_profiling()
    with open(trace) as f:
        ev = json.load(f)
    os.unlink(trace)
    o_raw = [e for e in ev if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    o_events = [(e["name"].removesuffix("_kernel_time"), e["args"]["op_name"], e["dur"]) for e in o_raw]
    o_keys = {(e["name"].removesuffix("_kernel_time"), e["args"]["op_name"]): _ort_conv_key(e) for e in o_raw}
    o_nodes = _node_times(o_events[len(o_events) * 3 // (runs + 3):], stat)  # less warm-up
    print(f"\n{model} batch {batch}, {threads} thread(s): run wall median "
          f"runnx {statistics.median(wall['runnx']) * 1e3:.2f} ms, "
          f"ort {statistics.median(wall['ort']) * 1e3:.2f} ms; "
          f"sum over nodes runnx {sum(r_nodes.values()) / 1e3:.2f} ms, "
          f"ort {sum(o_nodes.values()) / 1e3:.2f} ms")
    by_op = {}
    for eng, nodes in (("runnx", r_nodes), ("ort", o_nodes)):
        for (_, op), us in nodes.items():
            by_op.setdefault(op, {"runnx": [0.0, 0], "ort": [0.0, 0]})[eng][0] += us
            by_op[op][eng][1] += 1
    print(f"{'op type':22s} {'runnx ms':>9s} {'n':>4s} {'ort ms':>9s} {'n':>4s}")
    for op, v in sorted(by_op.items(), key=lambda kv: -kv[1]["runnx"][0]):
        print(f"{op:22s} {v['runnx'][0] / 1e3:9.3f} {v['runnx'][1]:4d} "
              f"{v['ort'][0] / 1e3:9.3f} {v['ort'][1]:4d}")
    shapes = _conv_shapes(path)
    # ORT names its NCHWc nodes after their outputs: pair the convolutions by shape, then order.
    r_convs = [k for k in r_nodes if "Conv" in k[1]]
    o_convs = [k for k in o_nodes if "Conv" in k[1]]
    r_keys = {k: shapes[k[0]][1] for k in r_convs if k[0] in shapes}
    partner = _pair_convs(r_convs, r_keys, o_convs, o_keys)
    # Convolutions by kernel and stride (the 7x7 stage apart: it runs the transposed GEMM), both
    # engines, paired nodes only: where the gap is, steadier than single nodes (--min for mins).
    groups = {}
    for key, o_key in partner.items():
        g = groups.setdefault(conv_group(shapes[key[0]][0] if key[0] in shapes else ""), [0.0, 0.0, 0])
        g[0] += r_nodes[key]
        g[1] += o_nodes[o_key]
        g[2] += 1
    print(f"{'conv group':14s} {'n':>3s} {'runnx ms':>9s} {'ort ms':>9s} {'ratio':>6s}")
    for group, (r_us, o_us, n) in sorted(groups.items()):
        print(f"{group:14s} {n:3d} {r_us / 1e3:9.3f} {o_us / 1e3:9.3f} {r_us / o_us:6.2f}")
    print(f"slowest {top} runnx nodes (us; ORT's matching convolution and the ratio):")
    for key, us in sorted(r_nodes.items(), key=lambda kv: -kv[1])[:top]:
        o_us = o_nodes[partner[key]] if key in partner else None
        o_txt = f"{o_us:8.1f}  {us / o_us:5.2f}" if o_us else f"{'-':>8s}  {'':5s}"
        print(f"  {us:8.1f} {o_txt}  {key[1]:12s} {key[0]:24s} {shapes.get(key[0], ('',))[0]}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="resnet50,mobilenetv2")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--budget", type=float, default=0.3, help="seconds per engine per layer")
    ap.add_argument("--algos", default="", help="forced runnx paths to time too: im2col,winograd,generic")
    ap.add_argument("--filter", default="", help="only layers whose label contains this")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time CPU seconds instead of wall (use with --threads 1 on a busy host)")
    ap.add_argument("--min", action="store_true", help="fastest run instead of the median")
    ap.add_argument("--profile", action="store_true",
                    help="per-node profile of the whole zoo models (runnx and onnxruntime)")
    ap.add_argument("--runs", type=int, default=20, help="--profile: runs to take medians over")
    ap.add_argument("--top", type=int, default=25, help="--profile: slowest nodes to list")
    args = ap.parse_args(argv)
    clock = time.process_time if args.cpu_time else time.perf_counter
    stat = min if args.min else statistics.median
    if args.profile:
        sys.path.insert(0, str(ROOT))
        for model in args.models.split(","):
            profile_model(model, args.batch, args.threads, args.runs, args.top, stat)
        return 0
    algos = [a for a in args.algos.split(",") if a]
    cols = ["auto"] + algos + ["ort"]
    print(f"threads {args.threads}, batch {args.batch}, {'cpu' if args.cpu_time else 'wall'} time "
          f"{'min' if args.min else 'median'}; GFLOP/s (higher is better); "
          "ratio = runnx auto time / ORT time")
    for model in args.models.split(","):
        print(f"\n{model}")
        hdr = f"{'layer':34s} {'n':>2s} " + " ".join(f"{c:>9s}" for c in cols) + "   ratio"
        print(hdr)
        tot = {c: 0.0 for c in cols}
        for c_in, c_out, k, s, g, size, uses in MODELS[model]:
            kind = "dw" if g > 1 else "conv"
            label = f"{kind} {k}x{k}/s{s} {c_in}->{c_out} @{size}"
            if args.filter and args.filter not in label:
                continue
            m = conv_model(c_in, c_out, k, s, g, size, args.batch)
            sessions = make_sessions(m.SerializeToString(), args.threads, algos)
            feeds = {"x": np.random.default_rng(1).standard_normal(
                (args.batch, c_in, size, size)).astype(np.float32)}
            ref = sessions["ort"].run(None, feeds)[0]
            for a in ["auto"] + algos:
                got = sessions[a].run(None, feeds)[0]
                err = float(np.max(np.abs(got - ref)) / (np.max(np.abs(ref)) + 1e-12))
                if err > 1e-3:
                    print(f"  !! {a} differs from onnxruntime: max rel err {err:.2e}")
            t = time_interleaved(sessions, feeds, args.budget, clock, stat)
            f = flops(c_in, c_out, k, s, g, size, args.batch)
            for c in cols:
                tot[c] += t[c] * uses
            row = " ".join(f"{f / t[c] / 1e9:9.1f}" for c in cols)
            print(f"{label:34s} {uses:2d} {row}   {t['auto'] / t['ort']:5.2f}")
        print(f"{'total ms (x uses)':37s} " + " ".join(f"{tot[c] * 1e3:9.2f}" for c in cols)
              + f"   {tot['auto'] / tot['ort']:5.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
