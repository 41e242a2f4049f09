"""GEMM kernel bench: runnx's sgemm (prepacked B) in GFLOP/s and % of the fp32 FMA peak measured
right beside it, with onnxruntime's MatMul (B a constant initializer) on the same shape in the
same run.

For each shape C[M,N] = A[M,K] @ B[K,N] it reports:
  peak     the C++ FMA probe's GFLOP/s with the same threads, measured just before the shape
           (the host is shared: the usable peak moves, so each shape gets its own);
  kernel   runnx's gemm_f32_packed timed in C++ (no Python, pool already running): best and
           median GFLOP/s, and the median as % of that peak;
  runnx    a one-node MatMul model through runnx.InferenceSession (Python timed);
  ort      the same model through onnxruntime (Python timed), interleaved with runnx's runs;
  ratio    runnx / ort median time (< 1: runnx faster).

Usage:
    python bench/gemm.py [--threads 2] [--budget 0.5] [--shapes default|quick|M,N,K;M,N,K...]
    RUNNX_DEV_BUILD=build/dev python bench/gemm.py ...
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if os.environ.get("RUNNX_DEV_BUILD"):
    sys.path[0:0] = [str(ROOT / "python"), os.path.join(os.environ["RUNNX_DEV_BUILD"], "py")]
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))
from bench.timing import interleaved_for

# (M, N, K): large squares, transformer shapes (M = batch*seq, K/N in 768/3072), batch-1 GEMV.
DEFAULT_SHAPES = (
    [(1024, 1024, 1024), (2048, 2048, 2048)]
    + [(m, n, k) for m in (128, 1024, 4096) for (n, k) in ((768, 768), (3072, 768), (768, 3072))]
    + [(1, n, k) for (n, k) in ((768, 768), (3072, 768), (768, 3072))]
)
QUICK_SHAPES = [(1024, 1024, 1024), (128, 768, 768), (128, 3072, 768), (1, 768, 3072)]


def parse_shapes(spec: str) -> list[tuple[int, int, int]]:
    """'default', 'quick' or 'M,N,K;M,N,K'.

    >>> parse_shapes("2,3,4;5,6,7")
    [(2, 3, 4), (5, 6, 7)]
    """
    if spec == "default":
        return list(DEFAULT_SHAPES)
    if spec == "quick":
        return list(QUICK_SHAPES)
    out = []
    for part in spec.split(";"):
        m, n, k = (int(x) for x in part.split(","))
        out.append((m, n, k))
    return out


def matmul_model(n: int, k: int, seed: int = 0):
    """A one-node MatMul model: input A [M, K] (M symbolic), B [K, N] a constant initializer."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    b = np.random.default_rng(seed).standard_normal((k, n)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])], "gemm",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["m", k])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, ["m", n])],
        [numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget", type=float, default=0.5, help="seconds per engine per shape")
    ap.add_argument("--shapes", default="default")
    ap.add_argument("--no-ort", action="store_true", help="skip onnxruntime")
    args = ap.parse_args(argv)

    import runnx
    from runnx._C import _testing as T

    if not T.has_avx2():
        print("this CPU has no AVX2/FMA: the FMA probe and the AVX2 kernel do not apply")
        return 1
    ort = None
    if not args.no_ort:
        import onnxruntime as ort

    peak1 = T.fma_peak_gflops(1, 0.3)
    print(f"{os.cpu_count()} CPUs, load avg " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
          + f"; FMA peak: {peak1:.1f} GFLOP/s on 1 thread, probed again per shape on {args.threads}")
    print(f"{'M':>5s} {'N':>5s} {'K':>5s} | {'peak':>6s} | {'kernel best':>11s} {'median':>7s} {'%peak':>6s} | "
          f"{'runnx':>7s} {'ort':>7s} {'ratio':>6s}   (GFLOP/s; ratio = runnx/ort time)")
    ratios = []
    for m, n, k in parse_shapes(args.shapes):
        flop = 2.0 * m * n * k
        peak = T.fma_peak_gflops(args.threads, 0.2)
        best, med = T.gemm_bench(m, n, k, args.threads, "packed_b", args.budget)
        kb, km = flop / best / 1e9, flop / med / 1e9
        model = matmul_model(n, k)
        a = np.random.default_rng(1).standard_normal((m, k)).astype(np.float32)
        so = runnx.SessionOptions()
        so.intra_op_num_threads = args.threads
        rs = runnx.InferenceSession(model, so)
        runs = {"runnx": lambda rs=rs, a=a: rs.run(None, {"a": a})}
        if ort is not None:
            oso = ort.SessionOptions()
            oso.intra_op_num_threads = args.threads
            osess = ort.InferenceSession(model, oso, providers=["CPUExecutionProvider"])
            runs["ort"] = lambda osess=osess, a=a: osess.run(None, {"a": a})
            np.testing.assert_allclose(rs.run(None, {"a": a})[0], osess.run(None, {"a": a})[0],
                                       rtol=1e-3, atol=1e-3 * np.sqrt(k))
        times = interleaved_for(runs, args.budget)
        rg = flop / statistics.median(times["runnx"]) / 1e9
        line = (f"{m:5d} {n:5d} {k:5d} | {peak:6.1f} | {kb:11.1f} {km:7.1f} {100 * km / peak:5.0f}% | {rg:7.1f}")
        if "ort" in times:
            og = flop / statistics.median(times["ort"]) / 1e9
            ratio = statistics.median(times["runnx"]) / statistics.median(times["ort"])
            ratios.append(ratio)
            line += f" {og:7.1f} {ratio:6.2f}"
        print(line, flush=True)
    if ratios:
        geo = float(np.exp(np.mean(np.log(ratios))))
        print(f"geometric mean runnx/ort time ratio: {geo:.2f} over {len(ratios)} shapes; worst {max(ratios):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
