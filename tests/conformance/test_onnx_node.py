"""ONNX's own node-test cases run through runnx.backend.

The onnx wheel no longer ships the generated data/node folder, but it ships the generators:
onnx.backend.test.case.node.collect_testcases() builds every case (model, inputs, expected
outputs computed by numpy) in memory, so nothing comes from the network.

Expected failures live in skiplist.txt, one exact case name or glob per line with a reason. The
list may only shrink: a listed case that passes fails this test, so the entry must be removed.
"""

from __future__ import annotations

import fnmatch
import os
import warnings

import numpy as np
import onnx
import pytest
from onnx import numpy_helper
from onnx.backend.test.case import node as node_cases
from runnx import backend

SKIPLIST = os.path.join(os.path.dirname(__file__), "skiplist.txt")


def _load_skiplist() -> list[str]:
    patterns = []
    with open(SKIPLIST) as f:
        for line in f:
            entry = line.split("#", 1)[0].strip()
            if entry:
                patterns.append(entry)
    return patterns


with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    _CASES = {c.name: c for c in node_cases.collect_testcases(None) if c.kind == "node"}
SKIP = _load_skiplist()


def _skipped(name: str) -> str | None:
    for p in SKIP:
        if fnmatch.fnmatchcase(name, p):
            return p
    return None


def _as_array(x):
    if isinstance(x, np.generic):
        return np.asarray(x)
    if isinstance(x, onnx.TensorProto):
        return numpy_helper.to_array(x)
    return x


def _run_case(case) -> None:
    rep = backend.prepare(case.model)
    init_names = {i.name for i in case.model.graph.initializer}
    input_names = [i.name for i in case.model.graph.input if i.name not in init_names]
    for ins, expected in case.data_sets:
        # Generators write some values as numpy scalars or as TensorProtos; both are tensors.
        ins = [_as_array(x) for x in ins]
        expected = [_as_array(x) for x in expected]
        for x in list(ins) + list(expected):
            if not isinstance(x, np.ndarray):
                raise TypeError(f"non-tensor value {type(x).__name__} (sequences/optionals)")
        outs = rep.run(dict(zip(input_names, ins)))
        assert len(outs) == len(expected)
        for a, e in zip(outs, expected):
            assert a.dtype == e.dtype, f"dtype {a.dtype} != {e.dtype}"
            assert a.shape == e.shape, f"shape {a.shape} != {e.shape}"
            if e.dtype.kind in "fc":
                np.testing.assert_allclose(a, e, rtol=case.rtol, atol=case.atol)
            else:
                np.testing.assert_array_equal(a, e)


@pytest.mark.parametrize("name", sorted(_CASES))
def test_node(name):
    case = _CASES[name]
    pattern = _skipped(name)
    if pattern is None:
        _run_case(case)
        return
    try:
        _run_case(case)
    except Exception:
        pytest.xfail(f"listed in skiplist.txt as {pattern}")
    pytest.fail(f"{name} passes now: narrow or remove '{pattern}' in tests/conformance/skiplist.txt")
