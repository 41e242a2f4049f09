"""GPU timings for bench/gpu_check.sh: GEMM TFLOP/s against the measured peak, and the zoo on the
CUDA provider (fp32, fp16) against PyTorch eager fp16 on the same device. Prints one table.

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
                    if reference is not None:
                        got = sess.run(None, feeds)
                        diff = f"{max(float(np.max(np.abs(np.asarray(g, np.float32) - r))) for g, r in zip(got, reference)):.2e}"
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
