"""MobileNetV2 (inverted residuals, depthwise convs, ReLU6 as Clip), torch export style."""

from __future__ import annotations

import numpy as np
import onnx

from ._cnn import calibration_images, classifier, conv_bn, image_inputs
from ._graph import FLOAT, GraphBuilder, check_scale

# (expand ratio t, channels c, repeats n, first stride s), torchvision's table.
_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
PRESETS = {
    "full": {
        "width_mult": 1.0,
        "repeats": None,
        "image": 224,
        "last_channel": 1280,
        "classes": 1000,
        "calib": 2,
    },
    "tiny": {
        "width_mult": 0.25,
        "repeats": (1, 2, 2, 1, 1, 1, 1),
        "image": 32,
        "last_channel": 128,
        "classes": 10,
        "calib": 8,
    },
}


def _divisible(v: float, divisor: int = 8) -> int:
    """torchvision's channel rounding: nearest multiple of 8, never below 90% of v."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def build(scale: str = "full", seed: int = 3, **overrides) -> onnx.ModelProto:
    """Builds MobileNetV2 (`tiny`: width x0.25, fewer repeats, 32x32 input, 10 classes).

    Input `input` float32 [batch, 3, H, W]; output `output` float32 [batch, classes].

    Example:
        >>> m = build("tiny")
        >>> any(a.name == "group" and a.i > 1 for n in m.graph.node for a in n.attribute)
        True
    """
    check_scale(scale)
    cfg = {**PRESETS[scale], **overrides}
    g = GraphBuilder(f"mobilenetv2_{scale}", seed)
    lo, hi = g.init("relu6.min", np.float32(0.0)), g.init("relu6.max", np.float32(6.0))

    def relu6(t: str, tv: np.ndarray):
        return g.op("Clip", [t, lo, hi]), np.clip(tv, 0.0, 6.0)

    size = cfg["image"]
    x = g.input("input", FLOAT, ["batch", 3, size, size])
    c_in = _divisible(32 * cfg["width_mult"])
    x, xv = relu6(*conv_bn(g, x, calibration_images(cfg["calib"], size), c_in, 3, 2, "features.0"))
    repeats = cfg["repeats"] or [s[2] for s in _SETTINGS]
    idx = 1
    for (t, c, _, s), n in zip(_SETTINGS, repeats):
        c_out = _divisible(c * cfg["width_mult"])
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = c_in * t
            name = f"features.{idx}"
            y, yv = x, xv
            if t != 1:
                y, yv = relu6(*conv_bn(g, y, yv, hidden, 1, 1, f"{name}.expand"))
            y, yv = relu6(*conv_bn(g, y, yv, hidden, 3, stride, f"{name}.dw", group=hidden))
            residual = stride == 1 and c_in == c_out
            y, yv = conv_bn(
                g,
                y,
                yv,
                c_out,
                1,
                1,
                f"{name}.project",
                gamma=(0.1, 0.4) if residual else (0.7, 1.3),
            )
            x, xv = (g.op("Add", [x, y]), xv + yv) if residual else (y, yv)
            c_in, idx = c_out, idx + 1
    x, xv = relu6(*conv_bn(g, x, xv, cfg["last_channel"], 1, 1, f"features.{idx}"))
    classifier(g, x, cfg["last_channel"], cfg["classes"], out="output")
    g.output("output", FLOAT, ["batch", cfg["classes"]])
    return g.model(f"MobileNetV2 ({scale}) with random weights and BN statistics")


def sample_inputs(batch: int, scale: str = "full", seed: int = 0) -> dict[str, np.ndarray]:
    """Standard-normal images float32 [batch, 3, H, W] (H = W = 224 full, 32 tiny)."""
    check_scale(scale)
    return image_inputs(batch, PRESETS[scale]["image"], seed)
