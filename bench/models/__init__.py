"""Deterministic ONNX model builders for the bench zoo (onnx.helper + numpy, no torch, no network).

Example:
    >>> from bench.models import zoo
    >>> model = zoo.build("mlp", scale="tiny")
    >>> feeds = zoo.sample_inputs("mlp", batch=2, scale="tiny", seed=0)
"""
