"""The bench zoo's tiny models: valid ONNX, run in onnxruntime, inputs that fit, shipped files
that match the builders byte for byte. Pure Python; runnx is not needed."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

make_test_models = importlib.import_module("bench.make_test_models")
zoo = importlib.import_module("bench.models.zoo")


@pytest.fixture(scope="module", params=zoo.NAMES)
def tiny(request):
    return request.param, zoo.build(request.param, "tiny")


def _ort_run(model: onnx.ModelProto, feeds: dict) -> list[np.ndarray]:
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def test_tiny_model_is_valid_onnx(tiny):
    _, model = tiny
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == 17
    assert len(model.SerializeToString()) < make_test_models.MAX_BYTES


def test_tiny_model_runs_in_onnxruntime_with_spread_out_outputs(tiny):
    name, model = tiny
    outs = _ort_run(model, zoo.sample_inputs(name, 4, "tiny", seed=0))
    for out, info in zip(outs, model.graph.output):
        assert out.dtype == np.float32
        assert out.shape[0] == 4
        assert len(out.shape) == len(info.type.tensor_type.shape.dim)
        assert np.isfinite(out).all(), f"{name}: non-finite output"
        assert out.std() > 1e-2, f"{name}: output nearly constant"
        assert out.std(axis=0).mean() > 1e-3, f"{name}: output does not depend on the input"


def test_sample_inputs_match_model_inputs(tiny):
    name, model = tiny
    for batch in (1, 3):
        feeds = zoo.sample_inputs(name, batch, "tiny", seed=7)
        assert list(feeds) == [i.name for i in model.graph.input]
        for info in model.graph.input:
            tt = info.type.tensor_type
            arr = feeds[info.name]
            assert arr.dtype == onnx.helper.tensor_dtype_to_np_dtype(tt.elem_type)
            assert arr.ndim == len(tt.shape.dim)
            for size, dim in zip(arr.shape, tt.shape.dim):
                if dim.HasField("dim_value"):
                    assert size == dim.dim_value
                elif dim.dim_param == "batch":
                    assert size == batch


def test_sample_inputs_are_deterministic():
    for name in zoo.NAMES:
        a, b = (zoo.sample_inputs(name, 2, "tiny", seed=3) for _ in range(2))
        c = zoo.sample_inputs(name, 2, "tiny", seed=4)
        assert all(np.array_equal(a[k], b[k]) for k in a)
        assert not all(np.array_equal(a[k], c[k]) for k in a)


def test_bert_ignores_padded_tokens():
    model = zoo.build("bert", "tiny")
    feeds = zoo.sample_inputs("bert", 2, "tiny", seed=0)
    mask = feeds["attention_mask"].astype(bool)
    assert not mask.all(), "the sample should contain padding"
    changed = {k: v.copy() for k, v in feeds.items()}
    changed["input_ids"][~mask] = 5
    h0, p0 = _ort_run(model, feeds)
    h1, p1 = _ort_run(model, changed)
    np.testing.assert_allclose(h1[mask], h0[mask], atol=1e-5)
    np.testing.assert_allclose(p1, p0, atol=1e-5)
    assert not np.allclose(h1[~mask], h0[~mask])


def test_bert_accepts_other_sequence_lengths():
    model = zoo.build("bert", "tiny")
    feeds = {k: v[:, :9] for k, v in zoo.sample_inputs("bert", 2, "tiny").items()}
    hidden, pooled = _ort_run(model, feeds)
    assert hidden.shape == (2, 9, 32) and pooled.shape == (2, 32)


def test_shipped_models_match_the_builders():
    """Same graph, and weights equal to float32 rounding: a weight computed with numpy's float
    math (BERT's erf-based init) may differ in its last bit between numpy 1.x and 2.x."""
    for rel, data in make_test_models.shipped_files().items():
        path = ROOT / rel
        assert path.exists(), f"{rel} missing: run python bench/make_test_models.py"
        shipped, built = onnx.load_from_string(path.read_bytes()), onnx.load_from_string(data)
        stale = f"{rel} is stale: run python bench/make_test_models.py"
        for a, b in zip(shipped.graph.initializer, built.graph.initializer):
            np.testing.assert_allclose(
                numpy_helper.to_array(a), numpy_helper.to_array(b), rtol=1e-6, atol=1e-7, err_msg=stale
            )
            a.ClearField("raw_data")
            b.ClearField("raw_data")
        assert shipped.SerializeToString() == built.SerializeToString(), stale


def test_cached_path_builds_once_and_reuses(tmp_path):
    p = zoo.cached_path("mlp", "tiny", cache_dir=tmp_path)
    assert p.read_bytes() == zoo.build("mlp", "tiny").SerializeToString()
    stamp = p.stat().st_mtime_ns
    assert zoo.cached_path("mlp", "tiny", cache_dir=tmp_path) == p
    assert p.stat().st_mtime_ns == stamp
    assert list(tmp_path.iterdir()) == [p]


def test_unknown_names_and_scales_are_rejected():
    with pytest.raises(ValueError):
        zoo.build("vgg16", "tiny")
    with pytest.raises(ValueError):
        zoo.sample_inputs("mlp", 1, "huge")
