"""Without a device the CUDA probe answers 0 with a reason, and never raises."""

from runnx import _C


def test_probe_never_raises_and_explains_absence():
    n = _C.cuda.device_count()
    assert n >= 0
    if n == 0:
        assert _C.cuda.unavailable_reason()
        assert _C.cuda.describe_device(0) == ""
    assert isinstance(_C.cuda.built, bool)
