"""Conv + BatchNormalization helpers shared by the ResNet and MobileNet builders.

BN running statistics are *calibrated*: while the graph is built, a small batch of standard-normal
images is pushed through it in float64 numpy, and each BN gets the per-channel mean and variance
its conv output really has, perturbed a little (as a trained network's running averages would
be). Every BN output is then close to N(beta, gamma^2), so activations stay O(1) through deep
stacks and the logits depend on the image instead of being swamped by accumulated offsets.
The statistics are rounded to half precision so that last-ulp differences between BLAS builds
cannot change the serialized bytes.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._graph import GraphBuilder


def calibration_images(n: int, size: int, seed: int = 1234) -> np.ndarray:
    """Standard-normal float64 images [n, 3, size, size] used to calibrate BN statistics."""
    return np.random.default_rng(seed).standard_normal((n, 3, size, size))


def np_conv(x: np.ndarray, w: np.ndarray, stride: int, pad: int, group: int) -> np.ndarray:
    """Reference NCHW convolution (group 1 or depthwise) in numpy, float64."""
    k = w.shape[-1]
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    if group == 1:
        win = sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
        return np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3])).transpose(0, 3, 1, 2)
    assert group == x.shape[1] == w.shape[0], "only depthwise grouped convs are supported"
    ho = (x.shape[2] + 2 * pad - k) // stride + 1
    wo = (x.shape[3] + 2 * pad - k) // stride + 1
    out = np.zeros((x.shape[0], x.shape[1], ho, wo))
    for i in range(k):
        for j in range(k):
            tap = xp[
                :, :, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride
            ]
            out += tap * w[None, :, 0, i, j, None, None]
    return out


def np_maxpool3x3s2(x: np.ndarray) -> np.ndarray:
    """MaxPool kernel 3, stride 2, pads 1, in numpy."""
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)), constant_values=-np.inf)
    return sliding_window_view(xp, (3, 3), axis=(2, 3))[:, :, ::2, ::2].max(axis=(4, 5))


def _fp16_exact(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64).astype(np.float16).astype(np.float32)


def conv_bn(
    g: GraphBuilder,
    x: str,
    xv: np.ndarray,
    c_out: int,
    k: int,
    stride: int,
    name: str,
    group: int = 1,
    gamma=(0.7, 1.3),
) -> tuple[str, np.ndarray]:
    """Conv (no bias, He-normal weights) then a separate BatchNormalization node.

    `xv` is the calibration batch's value of `x`; returns (output name, output value). `gamma` is
    the range of the BN scale: a small range on the last BN of a residual branch keeps sums bounded.
    """
    c_in = xv.shape[1]
    fan_in = (c_in // group) * k * k
    w = g.rng.standard_normal((c_out, c_in // group, k, k), dtype=np.float32)
    w *= np.float32(np.sqrt(2.0 / fan_in))
    pad = (k - 1) // 2
    y = g.op(
        "Conv",
        [x, g.init(f"{name}.weight", w)],
        name=name,
        group=group,
        kernel_shape=[k, k],
        pads=[pad, pad, pad, pad],
        strides=[stride, stride],
        dilations=[1, 1],
    )
    yv = np_conv(xv, w.astype(np.float64), stride, pad, group)
    mean, var = yv.mean(axis=(0, 2, 3)), yv.var(axis=(0, 2, 3))
    scale = g.rng.uniform(*gamma, size=c_out).astype(np.float32)
    shift = (0.1 * g.rng.standard_normal(c_out)).astype(np.float32)
    run_mean = _fp16_exact(mean + 0.1 * np.sqrt(var) * g.rng.standard_normal(c_out))
    run_var = _fp16_exact(np.maximum(var, 1e-4) * g.rng.uniform(0.8, 1.25, size=c_out))
    out = g.op(
        "BatchNormalization",
        [
            y,
            g.init(f"{name}.bn.weight", scale),
            g.init(f"{name}.bn.bias", shift),
            g.init(f"{name}.bn.running_mean", run_mean),
            g.init(f"{name}.bn.running_var", run_var),
        ],
        name=f"{name}.bn",
        epsilon=1e-5,
        momentum=0.9,
    )

    def c(a: np.ndarray) -> np.ndarray:
        return a.astype(np.float64)[None, :, None, None]

    return out, (yv - c(run_mean)) / np.sqrt(c(run_var) + 1e-5) * c(scale) + c(shift)


def classifier(g: GraphBuilder, x: str, features: int, classes: int, out: str) -> str:
    """GlobalAveragePool -> Flatten -> Gemm(transB=1), as torch exports avgpool + flatten + fc."""
    x = g.op("GlobalAveragePool", [x])
    x = g.op("Flatten", [x], axis=1)
    bound = 1.0 / np.sqrt(features)
    w = g.uniform("fc.weight", (classes, features), -bound, bound)
    b = g.uniform("fc.bias", (classes,), -bound, bound)
    return g.op("Gemm", [x, w, b], name="fc", out=out, alpha=1.0, beta=1.0, transB=1)


def image_inputs(batch: int, size: int, seed: int) -> dict[str, np.ndarray]:
    """A standard-normal float32 image batch [batch, 3, size, size] named `input`."""
    rng = np.random.default_rng(seed)
    return {"input": rng.standard_normal((batch, 3, size, size)).astype(np.float32)}
