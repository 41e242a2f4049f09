import os
import sys

# Tests import the installed package, or a developer build when RUNNX_DEV_BUILD points at one
# (e.g. build/dev: its py/ folder holds runnx/_C*.so).
_dev = os.environ.get("RUNNX_DEV_BUILD")
if _dev:
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "python"))
    sys.path.insert(1, os.path.join(_dev, "py"))
sys.path.insert(0, os.path.dirname(__file__))

# Every session created by the tests checks static shape inference against what the kernels
# produce (first run of each shape signature); a disagreement raises instead of being counted.
os.environ.setdefault("RUNNX_CHECK_INFERENCE", "1")
