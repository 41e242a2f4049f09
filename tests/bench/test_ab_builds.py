"""bench/ab_builds.py loads the same build twice in one process (the second copy under its own
pybind11 registry) and prints the paired ratio and the per-node rows."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import runnx

ROOT = Path(__file__).resolve().parents[2]


def test_ab_builds_runs_one_build_against_itself():
    build = str(Path(runnx._C.__file__).parent)  # the installed package, or the dev build's py/runnx
    env = {k: v for k, v in os.environ.items() if k != "RUNNX_DEV_BUILD"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ab_builds.py"), "--base", build, "--new", build,
         "--model", "mlp", "--scale", "tiny", "--threads", "1", "--rounds", "4"],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    head, *rows = proc.stdout.splitlines()
    assert "mlp batch 1, 1 thread(s), 4 calls each" in head and "paired ratio new/base" in head
    ratio = float(head.rsplit(" ", 1)[1])
    assert 0.1 < ratio < 10.0
    assert any(r.split()[0] == "FusedGemm" for r in rows[1:]), proc.stdout


def test_ab_builds_names_a_folder_without_the_extension(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ab_builds.py"), "--base", str(tmp_path), "--new", str(tmp_path),
         "--model", "mlp", "--scale", "tiny"],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert proc.returncode != 0 and "no runnx _C" in proc.stderr


def test_ab_builds_on_a_model_file_groups_its_convolutions(tmp_path):
    """An .onnx file gets random inputs (the symbolic batch = --batch); a conv's row is its group."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 4, 3, 3)).astype(np.float32), "w")
    conv = helper.make_node("Conv", ["x", "w"], ["c"], name="conv", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    relu = helper.make_node("Relu", ["c"], ["y"], name="relu")
    graph = helper.make_graph([conv, relu], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4, 9, 9])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "conv.onnx"
    onnx.save(model, path)
    build = str(Path(runnx._C.__file__).parent)
    env = {k: v for k, v in os.environ.items() if k != "RUNNX_DEV_BUILD"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "ab_builds.py"), "--base", build, "--new", build,
         "--model", str(path), "--batch", "2", "--threads", "1", "--rounds", "3"],
        capture_output=True, text=True, timeout=300, env=env, cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"{path} batch 2, 1 thread(s), 3 calls each" in proc.stdout
    rows = {r.split()[0] for r in proc.stdout.splitlines()[2:]}
    assert "3x3/s2" in rows, proc.stdout


def test_rows_pair_nodes_by_name_and_list_new_only_nodes():
    """A node the new build runs under another op type still pairs with its base row; a node only
    the new build has gets a row of its own."""
    sys.path.insert(0, str(ROOT))
    from bench.ab_builds import group_rows

    shapes = {"c1": ("3x3/s2 g1 8->8 @14", (8, 8, 3, 3, 14, 7)),
              "c2": ("1x1/s1 g1 8->8 @7", (8, 8, 1, 1, 7, 7))}
    base = {("c1", "FusedConv"): 10.0, ("c2", "FusedConv"): 4.0, ("pool", "MaxPool"): 1.0}
    new = {("c1", "NhwcConv"): 8.0, ("c2", "NhwcConv"): 3.0, ("pool", "MaxPool"): 1.5,
           ("t", "Transpose"): 0.5}
    rows = group_rows(base, new, shapes)
    assert rows["3x3/s2"] == [10.0, 8.0, 1]
    assert rows["1x1/s1 @7"] == [4.0, 3.0, 1]
    assert rows["MaxPool"] == [1.0, 1.5, 1]
    assert rows["Transpose (new only)"] == [0.0, 0.5, 1]
