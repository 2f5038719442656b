"""Exact, faster forms of the array reductions that diff's own work (compare, align, the diagnoses) repeats on
every layer of every pair: each returns exactly what the plain NumPy expression in its docstring returns, only
without the temporaries that made it slow ([N, T, neurons] arrays of int64 or float64, reductions along a middle
axis). tests/test_kernels.py holds each against its plain expression."""
from __future__ import annotations

from typing import Optional

import numpy as np

_U8_ROWS = 255           # rows a uint8 sum of 0/1 values can take without overflow
_F32_EPS = float(np.finfo(np.float32).eps)


def spike_counts(spikes: np.ndarray) -> np.ndarray:
    """Spikes per neuron over samples and steps, int64 [*shape]: `np.count_nonzero(spikes.reshape(N*T, -1),
    axis=0).astype(np.int64).reshape(shape)`, summed 255 rows at a time in uint8 for bool spikes."""
    shape = spikes.shape[2:]
    rows = spikes.reshape(-1, int(np.prod(shape, dtype=np.int64)))
    if spikes.dtype != np.bool_:
        return np.count_nonzero(rows, axis=0).astype(np.int64).reshape(shape)
    bits = rows.view(np.uint8)
    out = np.zeros(bits.shape[1], np.int64)
    for lo in range(0, bits.shape[0], _U8_ROWS):
        out += np.add.reduce(bits[lo:lo + _U8_ROWS], axis=0, dtype=np.uint8)
    return out.reshape(shape)


def rate(spikes: np.ndarray) -> float:
    """`float(spikes.mean())`: for bool spikes their count over their size (the same float: a float64 sum of 0/1
    is exact, and both divisions round the same quotient once)."""
    if spikes.dtype != np.bool_ or not spikes.size:
        return float(spikes.mean())
    return np.count_nonzero(spikes) / spikes.size


def seen_before(flat: np.ndarray) -> np.ndarray:
    """For [N, T, K] bool: whether each (sample, neuron) was True at an earlier step, i.e. `out[:, 0] = False`,
    `out[:, 1:] = np.logical_or.accumulate(flat[:, :-1], axis=1)`; one OR per step (accumulating along the middle
    axis is ~50x slower)."""
    out = np.zeros_like(flat, dtype=bool)
    for step in range(1, flat.shape[1]):
        np.logical_or(out[:, step - 1], flat[:, step - 1], out=out[:, step])
    return out


def membrane_diff(a: np.ndarray, b: np.ndarray, scale: Optional[float] = None) -> tuple:
    """(max |a - b|, entries that differ) exactly as compare has always computed them: integers both, no scale:
    `d = np.abs(np.subtract(a, b, dtype=np.int64))`; else `d = np.abs(a.astype(np.float64) - b.astype(np.float64) /
    scale)` (no division without a scale); then `(float(d.max()), int((d > 0).sum()))`, the count None with a scale
    (in other units the membranes never agree exactly: compare reports no count). Only the entries that can hold
    the maximum go through int64 or float64: those that differ, or those whose float32 difference is (within its
    rounding error of) the largest float32 difference. NaN, infinities and empty arrays take the plain way (a
    float32 difference is finite only where both values are). NumPy's warnings about NaN and infinities are
    silenced: the screens expect them, and the result says what they mean."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        return _membrane_diff(a, b, scale)


def _membrane_diff(a: np.ndarray, b: np.ndarray, scale: Optional[float]) -> tuple:
    if not a.size:
        return _plain(a, b, scale)
    if scale is not None:
        ok = a.dtype == np.float32 and np.isfinite(float(scale)) and scale
        return _scaled(a, b, float(scale)) if ok else _plain(a, b, scale)
    if a.dtype.kind == b.dtype.kind == "i":
        return _differing(*one_type(a, b))
    fa, fb = _float32(a), _float32(b)
    if fa is None or fb is None:
        return _differing(a, b) if _finite(a) and _finite(b) else _plain(a, b, scale)
    return _screened(a, b, fa, fb)


def _finite(x: np.ndarray) -> bool:
    return x.dtype.kind in "iub" or bool(np.isfinite(x.min()) and np.isfinite(x.max()))


def one_type(a: np.ndarray, b: np.ndarray) -> tuple:
    """Two arrays in one dtype (the narrower cast once: compared mixed, NumPy casts in every loop)."""
    if a.dtype == b.dtype:
        return a, b
    common = np.result_type(a, b)
    return a.astype(common, copy=False), b.astype(common, copy=False)


def _float32(x: np.ndarray) -> Optional[np.ndarray]:
    """x as float32 if every value is one exactly (float32 itself, or integers within 2**24), else None."""
    if x.dtype == np.float32:
        return x
    if x.dtype.kind in "iu" and max(abs(int(x.min())), abs(int(x.max()))) <= 2 ** 24:
        return x.astype(np.float32)
    return None


def _differing(a: np.ndarray, b: np.ndarray) -> tuple:
    differ = np.not_equal(a, b)            # as float64 where a kind is float: exactly where d > 0 (all finite)
    count = int(np.count_nonzero(differ))
    if not count:
        return 0.0, 0
    if a.dtype.kind == b.dtype.kind == "i":
        d = np.abs(np.subtract(a[differ], b[differ], dtype=np.int64))
    else:
        d = np.abs(a[differ].astype(np.float64) - b[differ].astype(np.float64))
    return float(d.max()), count


def _screened(a: np.ndarray, b: np.ndarray, fa: np.ndarray, fb: np.ndarray) -> tuple:
    """Both exactly float32: their float32 difference is the exact one correctly rounded, and rounding keeps order,
    so the largest exact difference is among the largest float32 ones."""
    d32 = np.abs(fa - fb)
    m32 = float(d32.max())
    if not np.isfinite(m32):
        return _plain(a, b, None)
    if not m32:
        return 0.0, 0
    near = d32 == m32
    count = int(np.count_nonzero(np.not_equal(fa, fb)))
    return float(np.abs(a[near].astype(np.float64) - b[near].astype(np.float64)).max()), count


def _scaled(a: np.ndarray, b: np.ndarray, scale: float) -> tuple:
    d32 = np.abs(a - b.astype(np.float32) / np.float32(scale))
    m32 = float(d32.max())
    if not np.isfinite(m32):                   # NaN, infinities, a float32 overflow: the plain way
        return _plain(a, b, scale)
    # float32 against float64: three roundings of b / scale and one of their difference, each within eps/2 of
    # |a| + |b / scale| (<= the largest |a| plus the largest |b| / scale), and the subnormals
    slack = 4 * _F32_EPS * (_top(a) + _top(b) / abs(scale)) + 2 * float(np.finfo(np.float32).tiny)
    if not np.isfinite(slack):
        return _plain(a, b, scale)
    near = d32 >= m32 - 2 * slack
    return float(np.abs(a[near].astype(np.float64) - b[near].astype(np.float64) / scale).max()), None


def _top(x: np.ndarray) -> float:
    return max(abs(float(x.min())), abs(float(x.max())))


def _plain(a: np.ndarray, b: np.ndarray, scale: Optional[float]) -> tuple:
    if scale is None and a.dtype.kind == b.dtype.kind == "i":
        d = np.abs(np.subtract(a, b, dtype=np.int64))
    else:
        vb = b.astype(np.float64) / scale if scale is not None else b.astype(np.float64)
        d = np.abs(a.astype(np.float64) - vb)
    return float(d.max()), (int((d > 0).sum()) if scale is None else None)
