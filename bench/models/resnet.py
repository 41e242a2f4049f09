"""ResNet-50 (v1.5 bottlenecks [3,4,6,3]) as torch exports it at opset 17 with BN left unfolded."""

from __future__ import annotations

import numpy as np
import onnx

from ._cnn import calibration_images, classifier, conv_bn, image_inputs, np_maxpool3x3s2
from ._graph import FLOAT, GraphBuilder, check_scale

PRESETS = {
    "full": {"width": 64, "blocks": (3, 4, 6, 3), "image": 224, "classes": 1000, "calib": 2},
    "tiny": {"width": 4, "blocks": (1, 1, 1, 1), "image": 32, "classes": 10, "calib": 8},
}


def build(scale: str = "full", seed: int = 2, **overrides) -> onnx.ModelProto:
    """Builds ResNet-50 (`tiny`: width/16, one block per stage, 32x32 input, 10 classes).

    Input `input` float32 [batch, 3, H, W]; output `output` float32 [batch, classes].

    Example:
        >>> m = build("tiny")
        >>> sum(n.op_type == "BatchNormalization" for n in m.graph.node)
        17
    """
    check_scale(scale)
    cfg = {**PRESETS[scale], **overrides}
    size, width = cfg["image"], cfg["width"]
    g = GraphBuilder(f"resnet50_{scale}", seed)
    x = g.input("input", FLOAT, ["batch", 3, size, size])
    xv = calibration_images(cfg["calib"], size)
    x, xv = conv_bn(g, x, xv, width, 7, 2, "conv1")
    x, xv = g.op("Relu", [x]), np.maximum(xv, 0)
    x = g.op(
        "MaxPool",
        [x],
        kernel_shape=[3, 3],
        pads=[1, 1, 1, 1],
        strides=[2, 2],
        ceil_mode=0,
        dilations=[1, 1],
    )
    xv = np_maxpool3x3s2(xv)
    c_in = width
    for stage, n_blocks in enumerate(cfg["blocks"]):
        mid = width * 2**stage
        c_out = mid * 4
        for b in range(n_blocks):
            stride = 2 if (b == 0 and stage > 0) else 1
            name = f"layer{stage + 1}.{b}"
            y, yv = conv_bn(g, x, xv, mid, 1, 1, f"{name}.conv1")
            y, yv = g.op("Relu", [y]), np.maximum(yv, 0)
            y, yv = conv_bn(g, y, yv, mid, 3, stride, f"{name}.conv2")
            y, yv = g.op("Relu", [y]), np.maximum(yv, 0)
            y, yv = conv_bn(g, y, yv, c_out, 1, 1, f"{name}.conv3", gamma=(0.1, 0.4))
            if stride != 1 or c_in != c_out:
                x, xv = conv_bn(g, x, xv, c_out, 1, stride, f"{name}.downsample")
            x, xv = g.op("Relu", [g.op("Add", [y, x])]), np.maximum(yv + xv, 0)
            c_in = c_out
    classifier(g, x, c_in, cfg["classes"], out="output")
    g.output("output", FLOAT, ["batch", cfg["classes"]])
    return g.model(f"ResNet-50 ({scale}) with random weights and BN statistics")


def sample_inputs(batch: int, scale: str = "full", seed: int = 0) -> dict[str, np.ndarray]:
    """Standard-normal images float32 [batch, 3, H, W] (H = W = 224 full, 32 tiny)."""
    check_scale(scale)
    return image_inputs(batch, PRESETS[scale]["image"], seed)
