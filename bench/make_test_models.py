"""Writes the tiny zoo models that the repository ships: tests/models/*_tiny.onnx and the
package's demo model python/runnx/demo/mlp.onnx. Deterministic: rerunning rewrites the same bytes.

Usage: python bench/make_test_models.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_BYTES = 1 << 20


def shipped_files() -> dict[Path, bytes]:
    """Maps each shipped file (relative to the repo root) to the bytes it must hold.

    Example:
        >>> files = shipped_files()
        >>> Path("tests/models/bert_tiny.onnx") in files
        True
    """
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from bench.models import zoo

    files = {
        Path("tests/models") / f"{name}_tiny.onnx": zoo.build(name, "tiny").SerializeToString()
        for name in zoo.NAMES
    }
    files[Path("python/runnx/demo/mlp.onnx")] = files[Path("tests/models/mlp_tiny.onnx")]
    return files


def main() -> None:
    """Writes every file of shipped_files() under the repository root and lists them."""
    for rel, data in shipped_files().items():
        assert len(data) < MAX_BYTES, f"{rel} is {len(data)} bytes; test models must stay small"
        path = ROOT / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        print(f"{rel}  {len(data) / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
