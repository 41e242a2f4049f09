"""A/B of two runnx builds in one process, run by run: is a kernel change faster, on a noisy host?

On the shared 2-core hosts the speed of each core swings by up to 1.7x for minutes at a time (a
scalar loop pinned to one CPU runs 85 or 147 ms; the other CPU changes independently), so two
builds timed one after the other, even in alternating processes, mostly measure the host. Here
both builds are loaded into one process and run the same model in turn, call by call, so both see
the same host. It prints the median of the paired per-call ratios (new / base) and the per-node
minimums summed by op type or convolution group (bench/conv.py's groups).

The base build is loaded as a second copy of the package (`runnx_base`, in a temporary folder):
its _C is a copy whose pybind11 internals key has one byte changed, so the two extension modules
do not share (and clash over) one registry of bound types. Timing only: nothing else is touched.

Usage (BASE and NEW are build folders holding py/runnx/_C*.so, or an installed runnx package;
--model is a zoo name or an .onnx file, whose float inputs get random values at --batch):
    python bench/ab_builds.py --base /tmp/base --new build/dev [--model resnet50] [--batch 1]
        [--threads 2] [--rounds 40]
"""

from __future__ import annotations

import argparse
import glob
import importlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# pybind11 keeps its registry of bound types under this key (one per ABI); a copy of _C under a
# key of the same length gets a registry of its own.
_INTERNALS_KEY = b"__pybind11_internals_v"
_RENAMED_KEY = b"__pybind11_internalZ_v"


def _extension(build: str) -> str:
    """The _C shared object of a build folder (BUILD/py/runnx) or of an installed package folder."""
    for pattern in ("py/runnx/_C*.so", "_C*.so", "runnx/_C*.so"):
        found = glob.glob(os.path.join(build, pattern))
        if found:
            return found[0]
    raise SystemExit(f"no runnx _C*.so under {build} (py/runnx/, runnx/ or the folder itself)")


def load_pair(base: str, new: str, tmp: str):
    """(runnx_base, runnx): the package twice, with base's and new's extension modules."""
    pkg = Path(tmp) / "runnx_base"
    shutil.copytree(ROOT / "python" / "runnx", pkg, ignore=shutil.ignore_patterns("_C*.so", "__pycache__"))
    so = _extension(base)
    data = Path(so).read_bytes()
    if data.count(_INTERNALS_KEY) != 1:
        raise SystemExit(f"{so}: expected one pybind11 internals key, found {data.count(_INTERNALS_KEY)}")
    (pkg / Path(so).name).write_bytes(data.replace(_INTERNALS_KEY, _RENAMED_KEY))
    new_so = Path(_extension(new))
    sys.path[0:0] = [str(ROOT / "python"), str(new_so.parent.parent), tmp]
    new_mod = importlib.import_module("runnx")
    if Path(new_mod._C.__file__).resolve() != new_so.resolve():
        raise SystemExit(f"runnx imported {new_mod._C.__file__}, not {new_so}: is another runnx first on sys.path?")
    return importlib.import_module("runnx_base"), new_mod


def file_inputs(mod, path: str, batch: int) -> dict:
    """Random float32 inputs for a model file; a symbolic dimension becomes `batch`."""
    import numpy as np

    rng = np.random.default_rng(0)
    sess = mod.InferenceSession(path)
    return {i.name: rng.standard_normal([d if isinstance(d, int) and d > 0 else batch for d in i.shape],
                                        dtype=np.float32) for i in sess.get_inputs()}


def group_rows(base: dict, new: dict, shapes: dict) -> dict[str, list]:
    """Per-node times {(name, op type): us} of both builds summed into rows {row: [base us, new
    us, nodes]}: a convolution's row is its group ('3x3/s2', '1x1/s1 @7', from bench/conv.py's
    shape labels), any other node's its op type. Nodes pair by name, as a build may run a node
    under another op type (FusedConv as NhwcConv); nodes only the new build has (a layout's
    reorders) get rows of their own, '<op> (new only)'."""
    from bench import conv

    new_by_name: dict[str, list] = {}
    for (name, op), us in new.items():
        new_by_name.setdefault(name, []).append((op, us))
    groups: dict[str, list] = {}
    for (name, op), us in base.items():
        row = conv.conv_group(shapes[name][0]) if name in shapes else op
        g = groups.setdefault(row, [0.0, 0.0, 0])
        g[0] += us
        g[1] += sum(u for _, u in new_by_name.pop(name, []))
        g[2] += 1
    for ops in new_by_name.values():
        for op, us in ops:
            g = groups.setdefault(f"{op} (new only)", [0.0, 0.0, 0])
            g[1] += us
            g[2] += 1
    return groups


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--base", required=True, help="build folder of the reference build")
    ap.add_argument("--new", required=True, help="build folder of the changed build")
    ap.add_argument("--model", default="resnet50", help="a zoo model, or an .onnx file")
    ap.add_argument("--scale", choices=("full", "tiny"), default="full")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=40, help="calls per build, alternating")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="runnx_ab_") as tmp:
        base_mod, new_mod = load_pair(args.base, args.new, tmp)
        from bench import conv
        from bench.models import zoo

        if args.model.endswith(".onnx"):
            path, feeds = args.model, file_inputs(new_mod, args.model, args.batch)
        else:
            path = str(zoo.cached_path(args.model, args.scale))
            feeds = zoo.sample_inputs(args.model, args.batch, args.scale, seed=0)
        sessions = {}
        for label, mod in (("base", base_mod), ("new", new_mod)):
            so = mod.SessionOptions()
            so.intra_op_num_threads = args.threads
            so.enable_profiling = True
            sessions[label] = mod.InferenceSession(path, so)
            for _ in range(3):  # plans, packing, first-use work
                sessions[label].run(None, feeds)
            sessions[label]._sess.take_profile()
        wall = {"base": [], "new": []}
        for r in range(args.rounds):
            for label in ("base", "new") if r % 2 == 0 else ("new", "base"):
                time.sleep(0.005)  # the other build's pool goes back to sleep
                t = time.perf_counter()
                sessions[label].run(None, feeds)
                wall[label].append(time.perf_counter() - t)
        nodes = {label: conv._node_times(((n, op, d) for n, op, _, d, _ in s._sess.take_profile()), min)
                 for label, s in sessions.items()}

    groups = group_rows(nodes["base"], nodes["new"], conv._conv_shapes(path))
    paired = statistics.median(n / b for n, b in zip(wall["new"], wall["base"]))
    print(f"{args.model} batch {args.batch}, {args.threads} thread(s), {args.rounds} calls each: "
          f"median base {statistics.median(wall['base']) * 1e3:.3f} ms, new {statistics.median(wall['new']) * 1e3:.3f} ms; "
          f"paired ratio new/base {paired:.4f}")
    print(f"{'node group':16s} {'n':>3s} {'base ms':>9s} {'new ms':>9s} {'new/base':>8s}  (per-node minimums summed)")
    for g, (b, n, c) in sorted(groups.items(), key=lambda kv: -kv[1][0]):
        print(f"{g:16s} {c:3d} {b / 1e3:9.3f} {n / 1e3:9.3f} {n / b if b else float('nan'):8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
