"""The small zoo models (tests/models/*.onnx, written by bench/make_test_models.py) give the
same outputs as onnxruntime, at several batch sizes, loaded from a path (memory-mapped)."""

import os
import sys

import numpy as np
import onnxruntime as ort
import pytest
import runnx

HERE = os.path.dirname(__file__)
MODELS = os.path.join(HERE, "..", "models")
sys.path.insert(0, os.path.join(HERE, "..", ".."))

from bench.models import zoo

NAMES = ["mlp", "resnet50", "mobilenetv2", "bert"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("batch", [1, 3])
def test_zoo_model_matches_onnxruntime(name, batch):
    path = os.path.join(MODELS, f"{name}_tiny.onnx")
    feeds = zoo.sample_inputs(name, batch=batch, scale="tiny", seed=batch)
    ref = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feeds)
    sess = runnx.InferenceSession(path)
    for _ in range(2):  # the second run uses the cached memory plan
        out = sess.run(None, feeds)
        assert len(out) == len(ref)
        for a, e in zip(out, ref):
            assert a.dtype == e.dtype and a.shape == e.shape
            np.testing.assert_allclose(a, e, rtol=1e-4, atol=1e-5)
