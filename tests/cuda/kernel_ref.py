"""Shared by cudaops' kernel tests (tests/cuda/test_<family>.py): the launcher bindings, the
fast/simple path switch and per-dtype tolerances. Test files put this folder on sys.path."""

import numpy as np
import pytest
from runnx import _C

# runnx._C.cuda._testing exists only in a CUDA build; these tests skip without a device anyway.
T = getattr(_C.cuda, "_testing", None)


@pytest.fixture(params=[False, True], ids=["fast", "simple"])
def kernel_path(request):
    """Runs a test through the fast kernels and again through the plain ones (RUNNX_CUDA_SIMPLE)."""
    before = T.use_simple_kernels()  # RUNNX_CUDA_SIMPLE's setting, kept for the tests after this one
    T.set_simple_kernels(request.param)
    yield request.param
    T.set_simple_kernels(before)


def assert_matches(got, want, dtype, rtol=None, atol=None):
    """fp32 ~1e-5 relative, fp16 ~1e-2 (the output is rounded to fp16), integers and bools exact.
    `want` is computed in float64 from the same (already rounded) inputs."""
    dtype = np.dtype(dtype)
    assert got.shape == np.shape(want), (got.shape, np.shape(want))
    if dtype == np.float32:
        rtol, atol = rtol or 1e-5, atol or 1e-6
    elif dtype == np.float16:
        rtol, atol = rtol or 1e-2, atol or 1e-3
    else:
        np.testing.assert_array_equal(got, want)
        return
    np.testing.assert_allclose(got.astype(np.float64), np.asarray(want, np.float64), rtol=rtol, atol=atol)
