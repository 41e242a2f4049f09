"""Machine speed-of-light probe: memory bandwidth (GB/s) and sgemm GFLOP/s through numpy, and the
fp32 FMA peak through runnx's C++ probe (`runnx._C._testing.fma_peak_gflops`).

numpy's elementwise loops run on one thread, so the bandwidth figures are single-core; sgemm uses
OpenBLAS with --threads threads. The FMA probe runs register-only FMA chains on 1 and on --threads
threads (see /work/shared/PERF_NOTES.md for this machine's figures).

Usage: python bench/peak.py [--threads 2] [--mib 128] [--sizes 256,512,1024,2048] [--budget 1.0]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time


def _parse(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="OpenBLAS threads for sgemm")
    ap.add_argument("--mib", type=int, default=128, help="size of each bandwidth array, MiB")
    ap.add_argument("--sizes", default="256,512,1024,2048", help="square sgemm sizes")
    ap.add_argument("--budget", type=float, default=1.0, help="seconds per measurement")
    return ap.parse_args(argv)


def best_and_median(fn, budget: float, min_reps: int = 3) -> tuple[float, float]:
    """Calls fn once to warm up, then repeatedly for about `budget` seconds (at least min_reps
    times); returns (fastest, median) seconds per call.

    Example:
        >>> best, med = best_and_median(lambda: sum(range(100)), budget=0.01)
    """
    fn()
    times: list[float] = []
    end = time.perf_counter() + budget
    while len(times) < min_reps or time.perf_counter() < end:
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times), statistics.median(times)


def bandwidth(mib: int, budget: float) -> list[tuple[str, float, float]]:
    """(name, best GB/s, median GB/s) for read, write, copy and add over float32 arrays of `mib`
    MiB each, counting bytes the program reads plus writes (no write-allocate traffic)."""
    import numpy as np

    n = mib * (1 << 20) // 4
    a = np.ones(n, dtype=np.float32)
    b = np.full(n, 2.0, dtype=np.float32)
    c = np.empty(n, dtype=np.float32)
    size = a.nbytes
    probes = [
        ("read  (a.sum())", lambda: a.sum(), 1),
        ("write (c.fill)", lambda: c.fill(3.0), 1),
        ("copy  (c[:] = a)", lambda: np.copyto(c, a), 2),
        ("add   (c = a + b)", lambda: np.add(a, b, out=c), 3),
    ]
    out = []
    for name, fn, passes in probes:
        best, med = best_and_median(fn, budget)
        out.append((name, passes * size / best / 1e9, passes * size / med / 1e9))
    return out


def sgemm(sizes: list[int], budget: float) -> list[tuple[int, float, float]]:
    """(n, best GFLOP/s, median GFLOP/s) of float32 n x n @ n x n through numpy.matmul."""
    import numpy as np

    rng = np.random.default_rng(0)
    out = []
    for n in sizes:
        a = rng.standard_normal((n, n), dtype=np.float32)
        b = rng.standard_normal((n, n), dtype=np.float32)
        c = np.empty((n, n), dtype=np.float32)
        best, med = best_and_median(lambda a=a, b=b, c=c: np.matmul(a, b, out=c), budget)
        out.append((n, 2.0 * n**3 / best / 1e9, 2.0 * n**3 / med / 1e9))
    return out


def main(argv=None) -> int:
    """Prints the bandwidth and sgemm tables."""
    args = _parse(argv)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # must precede the first numpy import
    import numpy as np

    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas = f"{blas.get('name')} {blas.get('version')}"
    except Exception:  # noqa: BLE001 - only a label
        blas = "unknown BLAS"
    print(
        f"numpy {np.__version__}, {blas}; {os.cpu_count()} CPUs; load avg "
        + ", ".join(f"{x:.2f}" for x in os.getloadavg())
    )
    print(f"\nmemory bandwidth, numpy-measured (one thread), float32 arrays of {args.mib} MiB:")
    print(f"   {'kernel':22s} {'best GB/s':>10s} {'median GB/s':>12s}")
    for name, best, med in bandwidth(args.mib, args.budget):
        print(f"   {name:22s} {best:10.2f} {med:12.2f}")
    print(f"\nsgemm, numpy/OpenBLAS-measured, {args.threads} thread(s), C = A @ B, n x n:")
    print(f"   {'n':>6s} {'best GFLOP/s':>13s} {'median GFLOP/s':>15s}")
    for n, best, med in sgemm([int(s) for s in args.sizes.split(",")], args.budget):
        print(f"   {n:6d} {best:13.1f} {med:15.1f}")
    print("\n(OpenBLAS sgemm is a lower bound of the machine's peak)")
    fma_peak(args.threads, args.budget)
    return 0


def fma_peak(threads: int, budget: float) -> None:
    """Prints the fp32 FMA peak measured by runnx's C++ probe (register-only FMA chains on every
    thread of a runnx pool), on one thread and on `threads`; skipped if runnx is not importable."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.environ.get("RUNNX_DEV_BUILD"):
        sys.path[0:0] = [os.path.join(root, "python"), os.path.join(os.environ["RUNNX_DEV_BUILD"], "py")]
    try:
        from runnx._C import _testing as T
    except ImportError as e:
        print(f"\nfp32 FMA peak: runnx not importable ({e})")
        return
    if not T.has_avx2():
        print("\nfp32 FMA peak: this CPU has no AVX2/FMA")
        return
    one = T.fma_peak_gflops(1, budget)
    many = T.fma_peak_gflops(threads, budget)
    width = "512-bit" if T.uses_avx512() else "256-bit"
    print(f"\nfp32 FMA peak, C++ probe ({width} FMA chains, as the sgemm uses): {one:.1f} GFLOP/s on 1 thread, "
          f"{many:.1f} GFLOP/s on {threads}")


if __name__ == "__main__":
    sys.exit(main())
