"""The bench zoo: build a model by name, make sample inputs for it, cache full models on disk.

Example:
    >>> from bench.models import zoo
    >>> zoo.NAMES
    ('mlp', 'resnet50', 'mobilenetv2', 'bert')
    >>> feeds = zoo.sample_inputs("bert", batch=2, scale="tiny", seed=0)
    >>> feeds["input_ids"].shape
    (2, 16)
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import onnx

from . import bert, mlp, mobilenet, resnet
from ._graph import check_scale

_MODULES = {"mlp": mlp, "resnet50": resnet, "mobilenetv2": mobilenet, "bert": bert}
NAMES = tuple(_MODULES)
CACHE_DIR = Path(__file__).resolve().parent.parent / ".zoo"


def _module(name: str):
    try:
        return _MODULES[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(NAMES)}") from None


def build(name: str, scale: str = "full") -> onnx.ModelProto:
    """Builds zoo model `name` ('mlp', 'resnet50', 'mobilenetv2', 'bert') at `scale`.

    Example:
        >>> build("mlp", "tiny").graph.input[0].name
        'input'
    """
    check_scale(scale)
    return _module(name).build(scale)


def sample_inputs(
    name: str, batch: int = 1, scale: str = "full", seed: int = 0
) -> dict[str, np.ndarray]:
    """Deterministic inputs for `name` at `scale`, keyed by graph input name.

    Example:
        >>> sample_inputs("resnet50", 1, "tiny")["input"].shape
        (1, 3, 32, 32)
    """
    return _module(name).sample_inputs(batch, scale, seed)


def _fingerprint() -> str:
    """Hash of the builders' source, so a cached model is rebuilt when a builder changes."""
    h = hashlib.sha256(onnx.__version__.encode())
    for path in sorted(Path(__file__).resolve().parent.glob("*.py")):
        h.update(path.name.encode() + path.read_bytes())
    return h.hexdigest()[:10]


def cached_path(name: str, scale: str = "full", cache_dir: str | os.PathLike | None = None) -> Path:
    """Path of `name` saved as .onnx under bench/.zoo/ (built and saved on first use).

    The file name carries a fingerprint of the builder code, so stale files are never reused.

    Example:
        >>> import onnxruntime as ort
        >>> sess = ort.InferenceSession(str(cached_path("mlp", "tiny")))
    """
    _module(name)
    check_scale(scale)
    folder = Path(cache_dir) if cache_dir is not None else CACHE_DIR
    path = folder / f"{name}-{scale}-{_fingerprint()}.onnx"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_bytes(build(name, scale).SerializeToString())
        os.replace(tmp, path)  # atomic: a concurrent reader never sees a half-written file
        for old in folder.glob(f"{name}-{scale}-*.onnx"):
            if old != path:
                old.unlink(missing_ok=True)  # built by an older version of the builders
    return path
