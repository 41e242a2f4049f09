"""GPU timings for bench/gpu_check.sh: GEMM TFLOP/s against the measured peak, and the zoo on the
CUDA provider (fp32, fp16, int8 for the MLP and ResNet-50) against PyTorch eager fp16 on the same device.
Prints one table.

Every row is independent: a missing hook or a failing model prints its reason and the table goes on.
Times are medians of CUDA-synchronised wall-clock runs after warm-up.

    python bench/gpu_bench.py [--models mlp,resnet50,mobilenetv2,bert] [--out table.txt]
"""

# Each row stands alone: any failure becomes that row's text, so blind excepts are the point here.
# ruff: noqa: BLE001
from __future__ import annotations

import argparse
import statistics
import sys
import time
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import runnx

from bench.models import zoo

CUDA = ["CUDAExecutionProvider", "CPUExecutionProvider"]
BATCHES = {"mlp": (1, 64), "resnet50": (1, 64), "mobilenetv2": (1, 64), "bert": (1, 32)}
# Models with an int8 row: their Gemm and Conv layers quantized by qdq_quantize (MobileNetV2's
# depthwise convs have no int8 CUDA kernel yet, BERT's MatMuls are not quantized by it).
INT8_MODELS = ("mlp", "resnet50")
ROWS: list[str] = []


def emit(line: str = "") -> None:
    print(line, flush=True)
    ROWS.append(line)


def median_time(fn, sync, budget_s: float = 0.6, max_iters: int = 200) -> float:
    for _ in range(3):
        fn()
    sync()
    times = []
    spent = 0.0
    while spent < budget_s and len(times) < max_iters:
        t0 = time.perf_counter()
        fn()
        sync()
        dt = time.perf_counter() - t0
        times.append(dt)
        spent += dt
    return statistics.median(times)


def short(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0][:90] if str(e) else ''}"


# ---------------------------------------------------------------------------------------- GEMM


def gemm_rows(torch) -> None:
    emit("## GEMM (TFLOP/s; % of the measured tensor-core peak)")
    testing = getattr(runnx._C.cuda, "_testing", None)
    peak = None
    probe = getattr(testing, "tensor_core_peak_tflops", None)
    if probe is not None:
        try:
            peak = float(probe())
            emit(f"measured fp16 mma.sync peak: {peak:.0f} TFLOP/s")
        except Exception as e:
            emit(f"peak probe: {short(e)}")
    else:
        emit("peak probe: no runnx hook (cuda._testing.tensor_core_peak_tflops)")
    emit(f"{'shape':<18}{'dtype':<7}{'runnx':>10}{'%peak':>8}{'torch':>10}{'ratio':>8}")
    for m, n, k in ((4096, 4096, 4096), (8192, 8192, 8192), (128, 768, 768), (128, 3072, 768), (1, 768, 3072)):
        for dtype in ("f16", "f32", "i8"):
            flops = 2.0 * m * n * k
            hook = getattr(testing, f"time_gemm_{dtype}", None)
            ours = "n/a"
            ours_tf = None
            if hook is not None:
                try:
                    ms = float(hook(m, n, k, 20))
                    ours_tf = flops / ms / 1e9
                    ours = f"{ours_tf:.1f}"
                except Exception as e:
                    ours = short(e)[:10]
            theirs_tf = None
            theirs = "n/a"
            if dtype != "i8":
                tdtype = torch.float16 if dtype == "f16" else torch.float32
                a = torch.randn(m, k, device="cuda", dtype=tdtype)
                b = torch.randn(k, n, device="cuda", dtype=tdtype)
                sec = median_time(lambda a=a, b=b: torch.matmul(a, b), torch.cuda.synchronize, 0.3)
                theirs_tf = flops / sec / 1e12
                theirs = f"{theirs_tf:.1f}"
            pct = f"{100 * ours_tf / peak:.0f}%" if ours_tf and peak and dtype == "f16" else ""
            ratio = f"{ours_tf / theirs_tf:.2f}" if ours_tf and theirs_tf else ""
            emit(f"{f'{m}x{n}x{k}':<18}{dtype:<7}{ours:>10}{pct:>8}{theirs:>10}{ratio:>8}")


# ------------------------------------------------------------------------------ int8 (QDQ) models


def fold_batch_norms(model):
    """Conv -> BatchNormalization (constant parameters, the Conv's only reader) folded into the
    Conv's weights and bias, as inference-time exporters do; returns a new model."""
    import onnx
    from onnx import numpy_helper

    q = onnx.ModelProto()
    q.CopyFrom(model)
    g = q.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    readers: dict[str, int] = {}
    for n in g.node:
        for i in n.input:
            readers[i] = readers.get(i, 0) + 1
    producer = {o: n for n in g.node for o in n.output}
    dropped, new_inits = set(), {}
    for i, n in enumerate(g.node):
        conv = producer.get(n.input[0]) if n.op_type == "BatchNormalization" else None
        params = n.input[1:5]
        if (conv is None or conv.op_type != "Conv" or conv.input[1] not in inits or readers[n.input[0]] != 1
                or not all(p in inits for p in params)):
            continue
        dropped.add(i)
        gamma, beta, mean, var = (inits[p].astype(np.float64) for p in params)
        eps = next((a.f for a in n.attribute if a.name == "epsilon"), 1e-5)
        k = gamma / np.sqrt(var + eps)
        w = inits[conv.input[1]].astype(np.float64)
        b = inits[conv.input[2]].astype(np.float64) if len(conv.input) > 2 and conv.input[2] else 0.0
        x = conv.input[0]
        del conv.input[:]
        conv.input.extend([x, conv.output[0] + "_w", conv.output[0] + "_b"])
        new_inits[conv.input[1]] = (w * k.reshape((-1,) + (1,) * (w.ndim - 1))).astype(np.float32)
        new_inits[conv.input[2]] = ((b - mean) * k + beta).astype(np.float32)
        conv.output[0] = n.output[0]  # the Conv now produces what the BatchNormalization did
    keep = []
    for i, n in enumerate(g.node):
        if i not in dropped:
            keep.append(onnx.NodeProto())
            keep[-1].CopyFrom(n)
    del g.node[:]
    g.node.extend(keep)
    g.initializer.extend(numpy_helper.from_array(v, k) for k, v in new_inits.items())
    return q


def qdq_quantize(model, calib: list[dict]):
    """Static QDQ quantization of a float model's Gemm and Conv layers, as
    onnxruntime.quantization's QDQ format writes it but with numpy only (the GPU machine needs no
    onnxruntime): BatchNormalization folded into its Conv first, uint8 activations (asymmetric,
    min/max calibrated on `calib` by a runnx CPU session), int8 weights per output channel
    (symmetric), int32 biases at scale x_scale * w_scale, and a Relu after a layer folded into
    that layer's QuantizeLinear (its range starts at 0). Other ops stay float between a
    DequantizeLinear and the next layer's QuantizeLinear. runnx's qdq_fusion turns each
    DequantizeLinear -> Gemm / Conv -> QuantizeLinear into one com.runnx QGemm / QLinearConv."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = fold_batch_norms(model)
    g = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    readers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    gemms = []  # (layer node, relu node or None, the value the quantized output replaces)
    for n in g.node:
        grouped = any(a.name == "group" and a.i != 1 for a in n.attribute)
        if n.op_type not in ("Gemm", "Conv") or n.input[1] not in inits or grouped:
            continue  # grouped (depthwise) convs stay float, as runnx's qdq_fusion leaves them
        nxt = readers.get(n.output[0], [])
        relu = nxt[0] if len(nxt) == 1 and nxt[0].op_type == "Relu" else None
        gemms.append((n, relu, relu.output[0] if relu else n.output[0]))
    # Calibration: every layer's input and (post-Relu) output as extra outputs of a CPU session.
    watched = sorted({n.input[0] for n, _, _ in gemms} | {out for _, _, out in gemms})
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    probe.graph.output.extend(helper.make_tensor_value_info(v, TensorProto.FLOAT, None) for v in watched)
    sess = runnx.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    lo = dict.fromkeys(watched, 0.0)
    hi = dict.fromkeys(watched, 0.0)
    for feeds in calib:
        for v, val in zip(watched, sess.run(watched, feeds)):
            lo[v], hi[v] = min(lo[v], float(val.min())), max(hi[v], float(val.max()))

    def act_params(v):
        scale = (hi[v] - lo[v]) / 255.0 or 1.0
        return np.float32(scale), np.uint8(np.clip(round(-lo[v] / scale), 0, 255))

    new_inits, nodes = [], []
    quantized: dict[str, str] = {}  # value -> the DequantizeLinear output that carries it
    dropped = {id(relu) for _, relu, _ in gemms if relu is not None}
    by_gemm = {id(n): (relu, out) for n, relu, out in gemms}

    def add_init(name, value):
        new_inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    for n in g.node:
        if id(n) in dropped:
            continue
        if id(n) not in by_gemm:
            nodes.append(n)
            continue
        _, out = by_gemm[id(n)]
        x, w_name = n.input[0], n.input[1]
        # Output channels on axis 0 (Conv, Gemm with transB) or 1 (Gemm).
        out_axis = 0 if n.op_type == "Conv" or any(a.name == "transB" and a.i for a in n.attribute) else 1
        w = np.moveaxis(inits[w_name], out_axis, 0)  # [N, ...]
        xs, xz = act_params(x)  # the same as the producing layer's when x is quantized already
        if x not in quantized:  # a graph input (or other float value): Q then DQ, once
            xs_n, xz_n = add_init(x + "_scale", xs), add_init(x + "_zero_point", xz)
            nodes.append(helper.make_node("QuantizeLinear", [x, xs_n, xz_n], [x + "_q"]))
            nodes.append(helper.make_node("DequantizeLinear", [x + "_q", xs_n, xz_n], [x + "_dq"]))
            quantized[x] = x + "_dq"
        x = quantized[x]
        ws = (np.abs(w).reshape(len(w), -1).max(axis=1) / 127.0).astype(np.float32)
        ws[ws == 0] = 1.0
        wq = np.clip(np.rint(w / ws.reshape((-1,) + (1,) * (w.ndim - 1))), -127, 127).astype(np.int8)
        ins = [x]
        nodes.append(helper.make_node(
            "DequantizeLinear",
            [add_init(w_name + "_q", np.moveaxis(wq, 0, out_axis)), add_init(w_name + "_scale", ws),
             add_init(w_name + "_zero_point", np.zeros_like(ws, np.int8))],
            [w_name + "_dq"], axis=out_axis))
        ins.append(w_name + "_dq")
        if len(n.input) > 2 and n.input[2]:
            bs = (xs * ws).astype(np.float32)
            bq = np.rint(inits[n.input[2]].reshape(-1) / bs).astype(np.int32)
            nodes.append(helper.make_node(
                "DequantizeLinear",
                [add_init(n.input[2] + "_q", bq), add_init(n.input[2] + "_scale", bs),
                 add_init(n.input[2] + "_zero_point", np.zeros_like(bq))],
                [n.input[2] + "_dq"], axis=0))
            ins.append(n.input[2] + "_dq")
        gemm = helper.make_node(n.op_type, ins, [out + "_f"], name=n.name)
        gemm.attribute.extend(n.attribute)
        nodes.append(gemm)
        ys, yz = act_params(out)
        ys_n, yz_n = add_init(out + "_scale", ys), add_init(out + "_zero_point", yz)
        nodes.append(helper.make_node("QuantizeLinear", [out + "_f", ys_n, yz_n], [out + "_q"]))
        # Readers of `out` take the dequantized value under its name: a next layer reads a DQ's
        # output, the pattern qdq_fusion matches.
        nodes.append(helper.make_node("DequantizeLinear", [out + "_q", ys_n, yz_n], [out]))
        quantized[out] = out
    q = onnx.ModelProto()
    q.CopyFrom(model)
    del q.graph.node[:]
    q.graph.node.extend(nodes)
    used = {i for n in q.graph.node for i in n.input}  # the float weights (and folded BNs) go
    kept = [t for t in q.graph.initializer if t.name in used]
    del q.graph.initializer[:]
    q.graph.initializer.extend(kept + new_inits)
    return q


# ----------------------------------------------------------------------------------------- zoo


def torch_model(name: str, torch):
    if name == "mlp":
        nn = torch.nn
        return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                             nn.Linear(256, 1), nn.Sigmoid())
    if name == "resnet50":
        import torchvision

        return torchvision.models.resnet50(weights=None)
    if name == "mobilenetv2":
        import torchvision

        return torchvision.models.mobilenet_v2(weights=None)
    if name == "bert":
        import transformers

        return transformers.BertModel(transformers.BertConfig())
    raise ValueError(name)


def torch_time(name: str, feeds: dict, torch) -> float:
    model = torch_model(name, torch).eval().half().cuda()
    args = {k: torch.from_numpy(v).cuda() for k, v in feeds.items()}
    if name != "bert":
        (x,) = args.values()
        args = {"x": x.half()}
    with torch.inference_mode():
        call = (lambda: model(**args)) if name == "bert" else (lambda: model(args["x"]))
        return median_time(call, torch.cuda.synchronize)


def runnx_runner(sess, feeds: dict, torch):
    """A no-argument callable that runs `sess` with inputs already on the device when the
    IOBinding API takes them (the fair comparison with eager PyTorch), else plain numpy feeds."""
    try:
        binding = sess.io_binding()
        keep = []
        for name, value in feeds.items():
            t = torch.from_numpy(value).cuda()
            keep.append(t)
            binding.bind_input(name, "cuda", 0, value.dtype, list(value.shape), t.data_ptr())
        for out in sess.get_outputs():
            binding.bind_output(out.name, "cuda")
        sess.run_with_iobinding(binding)

        def run():
            sess.run_with_iobinding(binding)

        run.keep = keep
        return run, "device"
    except Exception as e:
        print(f"    (IOBinding unavailable: {short(e)}; timing with host feeds)")
        return (lambda: sess.run(None, feeds)), "host"


def zoo_rows(names: list[str], torch) -> None:
    import runnx.quantize

    emit("")
    emit("## Zoo on the CUDA provider (ms per batch; ratio = runnx / torch eager fp16, lower is better)")
    emit(f"{'model':<12}{'batch':>6}{'prec':>6}{'io':>8}{'runnx ms':>10}{'torch fp16':>12}{'ratio':>8}{'max|d| vs cpu':>15}{'on cpu':>8}")
    for name in names:
        path = zoo.cached_path(name, "full")
        try:
            fp16_bytes = runnx.quantize.to_fp16(str(path)).SerializeToString()
        except Exception as e:
            fp16_bytes = None
            emit(f"{name}: to_fp16 failed: {short(e)}")
        cpu = runnx.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        int8_bytes, int8_cpu = None, None
        if name in INT8_MODELS:
            try:
                calib = [zoo.sample_inputs(name, 8, "full", seed=s) for s in (1, 2)]
                int8_bytes = qdq_quantize(zoo.build(name, "full"), calib).SerializeToString()
                int8_cpu = runnx.InferenceSession(int8_bytes, providers=["CPUExecutionProvider"])
            except Exception as e:
                emit(f"{name}: int8 quantization failed: {short(e)}")
        for batch in BATCHES[name]:
            feeds = zoo.sample_inputs(name, batch, "full", seed=0)
            try:
                t_torch = torch_time(name, feeds, torch)
                torch_ms = f"{t_torch * 1e3:.3f}"
            except Exception as e:
                t_torch, torch_ms = None, short(e)[:12]
            reference = cpu.run(None, feeds) if batch == 1 else None
            variants = [("fp32", str(path), {}), ("fp16", fp16_bytes, {})]
            if batch == 1:
                variants.append(("fp16+g", fp16_bytes, {"enable_cuda_graph": "1"}))
            variants.append(("int8", int8_bytes, {}))
            for prec, model, options in variants:
                if model is None:
                    continue
                try:
                    providers = [("CUDAExecutionProvider", options), "CPUExecutionProvider"] if options else CUDA
                    sess = runnx.InferenceSession(model, providers=providers)
                    placed = sess.get_providers()
                    run, io = runnx_runner(sess, feeds, torch)
                    t = median_time(run, torch.cuda.synchronize)
                    diff = ""
                    # int8 is compared with the int8 model on the CPU (the same integer math).
                    ref = (int8_cpu.run(None, feeds) if prec == "int8" else reference) if batch == 1 else None
                    if ref is not None:
                        got = sess.run(None, feeds)
                        diff = f"{max(float(np.max(np.abs(np.asarray(g, np.float32) - r))) for g, r in zip(got, ref)):.2e}"
                    on_cpu = _cpu_nodes(sess)
                    ratio = f"{t / t_torch:.2f}" if t_torch else ""
                    emit(f"{name:<12}{batch:>6}{prec:>6}{io:>8}{t * 1e3:>10.3f}{torch_ms:>12}{ratio:>8}{diff:>15}{on_cpu:>8}")
                    if "CUDAExecutionProvider" not in placed:
                        emit(f"    note: session providers {placed}")
                except Exception as e:
                    emit(f"{name:<12}{batch:>6}{prec:>6}  FAILED {short(e)}")
                    traceback.print_exc(limit=3)


def _cpu_nodes(sess) -> str:
    """How many executed nodes fell back to the CPU (from the session's placement)."""
    try:
        return str(sum(1 for node in sess._placement() if node[2] == "cpu"))
    except Exception:
        return "?"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(zoo.NAMES))
    ap.add_argument("--skip-gemm", action="store_true")
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)
    import torch

    if not torch.cuda.is_available() or runnx._C.cuda.device_count() == 0:
        print("no CUDA device:", runnx._C.cuda.unavailable_reason())
        return 1
    emit(f"# runnx GPU bench on {runnx._C.cuda.describe_device(0)}; torch {torch.__version__}")
    if not args.skip_gemm:
        try:
            gemm_rows(torch)
        except Exception as e:
            emit(f"GEMM section failed: {short(e)}")
            traceback.print_exc()
    zoo_rows([m for m in args.models.split(",") if m], torch)
    if args.out:
        Path(args.out).write_text("\n".join(ROWS) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
