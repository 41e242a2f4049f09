"""Every test in tests/cuda/ needs a CUDA device; without one the whole folder skips cleanly."""

import pytest

from runnx import _C

HAS_DEVICE = _C.cuda.device_count() > 0


def pytest_collection_modifyitems(config, items):
    if HAS_DEVICE:
        return
    reason = "no CUDA device: " + _C.cuda.unavailable_reason()
    for item in items:
        if "/tests/cuda/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.skip(reason=reason))
