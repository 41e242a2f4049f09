"""QDQ (int8) models on the CPU: runnx with qdq_fusion (level 2: QGemm / QLinearConv) against the
same model unfused (level 1: DequantizeLinear -> float op -> QuantizeLinear) and onnxruntime.

    python bench/qdq.py [--models mlp,resnet50] [--batches 1,64] [--threads 2] [--repeats 5]
    RUNNX_DEV_BUILD=build/dev python bench/qdq.py ...   # a developer build of runnx

Each zoo model ("full") is quantized by bench/gpu_bench.py's qdq_quantize (numpy, calibrated on
two random batches). Times are the best of 3 x `repeats` runs per engine, the three engines
alternating in settled blocks (bench/timing.py) so a noisy shared host hurts them alike; also printed: the largest
output difference fused vs unfused (the integer ops round once, the float path may land one
quantization step away).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
if os.environ.get("RUNNX_DEV_BUILD"):
    sys.path[:0] = [str(ROOT / "python"), str(Path(os.environ["RUNNX_DEV_BUILD"]).resolve() / "py")]

import numpy as np
import runnx

from bench.gpu_bench import qdq_quantize
from bench.models import zoo
from bench.timing import interleaved


def runnx_session(data: bytes, level: int, threads: int):
    so = runnx.SessionOptions()
    so.graph_optimization_level = runnx.GraphOptimizationLevel(level)
    so.intra_op_num_threads = threads
    return runnx.InferenceSession(data, so)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="mlp,resnet50")
    ap.add_argument("--batches", default="1,64")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    import onnxruntime as ort

    print(f"{'model':<10}{'batch':>6}{'unfused ms':>12}{'fused ms':>10}{'ort ms':>10}{'max|fused-unfused|':>20}")
    for name in args.models.split(","):
        calib = [zoo.sample_inputs(name, 8, "full", seed=s) for s in (1, 2)]
        data = qdq_quantize(zoo.build(name, "full"), calib).SerializeToString()
        plain, fused = runnx_session(data, 1, args.threads), runnx_session(data, 2, args.threads)
        so = ort.SessionOptions()
        so.intra_op_num_threads = args.threads
        so.log_severity_level = 3
        theirs = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
        for batch in (int(b) for b in args.batches.split(",")):
            feeds = zoo.sample_inputs(name, batch, "full", seed=0)
            engines = {"unfused": plain, "fused": fused, "ort": theirs}
            fns = {k: (lambda s=sess, f=feeds: s.run(None, f)) for k, sess in engines.items()}
            best = {k: min(v) * 1e3 for k, v in interleaved(fns, 3 * args.repeats).items()}
            diff = max(float(np.max(np.abs(a - b))) for a, b in zip(plain.run(None, feeds), fused.run(None, feeds)))
            print(f"{name:<10}{batch:>6}{best['unfused']:>12.3f}{best['fused']:>10.3f}{best['ort']:>10.3f}{diff:>20.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
