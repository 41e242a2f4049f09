"""Execution providers, named as in onnxruntime.

>>> import runnx
>>> runnx.get_available_providers()  # doctest: +SKIP
['CUDAExecutionProvider', 'CPUExecutionProvider']
"""

from __future__ import annotations

from . import _C

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


def get_available_providers() -> list[str]:
    """Providers usable on this machine, best first (CUDA appears only when a device answers)."""
    return [CUDA, CPU] if _C.cuda.device_count() > 0 else [CPU]


def get_all_providers() -> list[str]:
    """Every provider runnx knows, available here or not."""
    return [CUDA, CPU]


def get_device() -> str:
    """The default device, as onnxruntime reports it: ``"CPU"`` or ``"GPU"``.

    >>> runnx.get_device()  # doctest: +SKIP
    'CPU'
    """
    return "GPU" if CUDA in get_available_providers() else "CPU"


def cuda_placement(model, graph_optimization_level: int = 99) -> dict:
    """Where each node would run under ``["CUDAExecutionProvider", "CPUExecutionProvider"]``,
    decided without a GPU (the same decisions a CUDA session makes at load).

    Returns ``{"nodes": [(name, op_type, "cuda" | "cpu", reason)], "copies": [(value,
    "to_device" | "to_host", step)]}`` in execution order of the optimised graph; ``reason`` says
    why a node stays on the CPU; a copy's step is the first node reading it (-1: a graph output).

    >>> runnx.providers.cuda_placement("model.onnx")["nodes"][0]  # doctest: +SKIP
    ('conv1', 'FusedConv', 'cpu', 'no CUDA kernel for com.runnx.FusedConv')
    """
    if hasattr(model, "SerializeToString"):
        model = model.SerializeToString()
    elif not isinstance(model, (bytes, str)):
        model = bytes(model)
    sess = _C.Session(
        model,
        {
            "graph_optimization_level": int(graph_optimization_level),
            "providers": [(CUDA, {}), (CPU, {})],
            "placement_only": True,
            "intra_op_num_threads": 1,
        },
    )
    return {"nodes": list(sess.placement()), "copies": list(sess.boundary_copies())}
