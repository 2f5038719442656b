"""Exact integer matrix products at BLAS speed, shared by the reference and PAIBox's fast path.

NumPy's integer matmul does not use BLAS (tens of times slower than float32). An integer product is computed
exactly by the fastest kernel its operands allow:
- int8 x int8 with int32 accumulation (`torch._int_mm`, oneDNN's VNNI kernel: ~7x float32 BLAS here) when both
  operands fit int8 (spikes are 0/1, weights int8) and every partial sum is below 2**31;
- float32 BLAS when every partial sum is provably below 2**24 (integers are exact there, in any order);
- float64 BLAS below 2**53.
`kernel(bound, a_fits, b_fits)` names the choice, so tests can check each one against int64 arithmetic. The int8
kernel is trusted only after a probe on this CPU (`int8_exact`): without VNNI, some oneDNN kernels go through
saturating int16 pairs, which would be silently wrong.
"""
from __future__ import annotations

import functools

import numpy as np

from ..errors import require

INT8 = (-128, 127)
KERNELS = ("int8", "float32", "float64")


def fits_int8(x: np.ndarray) -> bool:
    """Every value of x is an integer in int8's range (bool always is); x's values are integers already."""
    if x.dtype == bool or x.dtype == np.int8:
        return True
    return x.size == 0 or (INT8[0] <= x.min() and x.max() <= INT8[1])


def bound(a_max: float, b: np.ndarray) -> float:
    """Largest |partial sum| of a @ b with |a| <= a_max: max over columns of sum_k |b_k| * a_max."""
    b = np.abs(np.asarray(b, np.float64))
    return float(b.sum(axis=0).max() * a_max) if b.size else 0.0


def kernel(limit: float, a_fits: bool, b_fits: bool) -> str:
    """The exact kernel for a product whose partial sums stay below `limit`."""
    require(limit < 2 ** 53, "synaptic sums exceed 2**53: integer network too large for exact float64")
    if a_fits and b_fits and limit < 2 ** 31 and int8_exact():
        return "int8"
    return "float32" if limit < 2 ** 24 else "float64"


def matmul(a: np.ndarray, b: np.ndarray, a_max: float = None, use: str = None) -> np.ndarray:
    """a [M, K] @ b [K, N] of integer values, exactly, as int64 (`use` forces a kernel: tests, benchmarks)."""
    if use is None:
        a_max = (1.0 if a.dtype == bool else float(np.abs(a).max(initial=0))) if a_max is None else a_max
        use = kernel(bound(a_max, b), fits_int8(a), fits_int8(b))
    return product(a, b, use).astype(np.int64)


def product(a: np.ndarray, b: np.ndarray, use: str) -> np.ndarray:
    """a @ b by the kernel `use`, in that kernel's result dtype (int32, float32, float64), integer-valued."""
    if use == "int8":
        return int8_matmul(a, b)
    dtype = np.float32 if use == "float32" else np.float64
    return a.astype(dtype, copy=False) @ b.astype(dtype, copy=False)


def int8_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a [M, K] @ b [K, N], both int8-valued (bool is read as int8 without a copy), int32 result."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(1)        # as the reference's BLAS: with a neighbour on the other core, 2 threads ran
    try:                            # a 16384x288 @ 288x32 product in 6.8 ms, 1 thread in 0.39 ms
        return torch._int_mm(_as_torch_int8(a), _as_torch_int8(b)).numpy()
    finally:
        torch.set_num_threads(threads)


def _as_torch_int8(x: np.ndarray):
    import torch
    x = x.view(np.int8) if x.dtype == bool else x.astype(np.int8, copy=False)
    return torch.from_numpy(np.ascontiguousarray(x) if not (x.flags.c_contiguous or x.flags.f_contiguous) else x)


@functools.lru_cache(maxsize=None)
def int8_exact() -> bool:
    """Probe, once per process: does int8 x int8 accumulate exactly into int32 on this CPU, at the extremes
    (-128 * -128 and 127 * -128 pairs, long sums) where a saturating int16 stage would show?"""
    try:
        import torch
        if not hasattr(torch, "_int_mm"):
            return False
        rng = np.random.default_rng(0)
        a = np.concatenate([np.full((8, 512), -128), np.full((8, 512), 127), rng.integers(-128, 128, (16, 512))])
        b = np.concatenate([np.full((512, 8), -128), np.full((512, 8), 127), rng.integers(-128, 128, (512, 16))], 1)
        a, b = a.astype(np.int8), b.astype(np.int8)
        return bool(np.array_equal(int8_matmul(a, b), a.astype(np.int64) @ b.astype(np.int64)))
    except Exception:           # no torch, or an int8 kernel this build lacks: the float paths are exact too
        return False
