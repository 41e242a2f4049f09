"""The CUDA probe: what the module reports with and without a device."""

import pytest

from runnx import _C


def test_probe_reports_devices_and_a_reason():
    n = _C.cuda.device_count()
    assert n >= 1
    assert _C.cuda.unavailable_reason() == ""
    assert "sm_" in _C.cuda.describe_device(0)


def test_self_test_runs_a_kernel_on_every_device():
    for i in range(_C.cuda.device_count()):
        _C.cuda.self_test(i)


def test_self_test_rejects_a_missing_device():
    with pytest.raises(Exception, match="does not exist"):
        _C.cuda.self_test(_C.cuda.device_count())
