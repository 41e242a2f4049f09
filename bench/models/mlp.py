"""Tabular MLP 64-256-256-1 (Gemm, Relu, final Sigmoid), dynamic batch, as torch exports it."""

from __future__ import annotations

import numpy as np
import onnx

from ._graph import FLOAT, GraphBuilder, check_scale

PRESETS = {
    "full": {"features": 64, "hidden": (256, 256)},
    "tiny": {"features": 64, "hidden": (32, 32)},
}


def build(scale: str = "full", seed: int = 1, **overrides) -> onnx.ModelProto:
    """Builds the MLP. Input `input` float32 [batch, features], output `output` float32 [batch, 1].

    Example:
        >>> m = build("tiny")
        >>> [i.name for i in m.graph.input]
        ['input']
    """
    check_scale(scale)
    cfg = {**PRESETS[scale], **overrides}
    g = GraphBuilder(f"mlp_{scale}", seed)
    x = g.input("input", FLOAT, ["batch", cfg["features"]])
    sizes = [cfg["features"], *cfg["hidden"], 1]
    for i, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        # He-uniform weights ([out, in], as nn.Linear stores them) keep the activations' scale
        # through the ReLUs, so the sigmoid output is spread out rather than stuck near 0.5.
        w_bound, b_bound = np.sqrt(6.0 / fan_in), 1.0 / np.sqrt(fan_in)
        w = g.uniform(f"fc{i}.weight", (fan_out, fan_in), -w_bound, w_bound)
        b = g.uniform(f"fc{i}.bias", (fan_out,), -b_bound, b_bound)
        x = g.op("Gemm", [x, w, b], name=f"fc{i}", transB=1)
        if i < len(sizes) - 2:
            x = g.op("Relu", [x])
    g.op("Sigmoid", [x], out="output")
    g.output("output", FLOAT, ["batch", 1])
    return g.model(f"MLP {'-'.join(map(str, sizes))}")


def sample_inputs(batch: int, scale: str = "full", seed: int = 0) -> dict[str, np.ndarray]:
    """Standard-normal features, float32 [batch, features]."""
    check_scale(scale)
    rng = np.random.default_rng(seed)
    return {"input": rng.standard_normal((batch, PRESETS[scale]["features"])).astype(np.float32)}
