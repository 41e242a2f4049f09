"""CUDA Resize (resize.h) against the CPU runnx kernel (the same coordinate formulas)."""

import math
import os
import sys

import numpy as np
import pytest
import runnx

sys.path.insert(0, os.path.dirname(__file__))
import helpers
from helpers import rand
from kernel_ref import (
    T,
    assert_matches,
    kernel_path,  # noqa: F401  (the fixture)
)

COORDS = ["half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric"]
ROUNDINGS = ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"]
SCALES = [(2.0, 2.0), (0.5, 0.75), (1.7, 0.6), (3.0, 1.0), (0.34, 2.5)]


def cpu_resize(x, scales, mode, coord, rounding):
    attrs = {"mode": mode, "coordinate_transformation_mode": coord, "nearest_mode": rounding}
    inits = {"roi": np.zeros(0, np.float32), "scales": np.array([1, 1, *scales], np.float32)}
    model = helpers.make_model("Resize", {"x": x}, attrs=attrs, initializers=inits, opset=19)
    return runnx.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]


@pytest.mark.parametrize("scales", SCALES, ids=str)
@pytest.mark.parametrize("coord", COORDS)
@pytest.mark.parametrize("mode,rounding", [("linear", "round_prefer_floor")] + [("nearest", r) for r in ROUNDINGS])
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.usefixtures("kernel_path")
def test_resize(scales, coord, mode, rounding, layout, dtype):
    x = rand((2, 3, 7, 5), dtype, rng=np.random.default_rng(7))
    # Scales go through float32 as the model stores them.
    s32 = [float(np.float32(s)) for s in scales]
    out = [math.floor(7 * s32[0]), math.floor(5 * s32[1])]
    want = cpu_resize(x.astype(np.float32), scales, mode, coord, rounding)
    assert list(want.shape[2:]) == out
    xin = x.transpose(0, 2, 3, 1).copy() if layout == "nhwc" else x
    got = T.resize2d(xin, layout, s32, out, mode, coord, rounding)
    if layout == "nhwc":
        got = got.transpose(0, 3, 1, 2)
    assert_matches(got, want, dtype)
