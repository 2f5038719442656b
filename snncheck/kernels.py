"""Exact, faster forms of the array reductions that diff's own work (compare, align, the diagnoses) repeats on
every layer of every pair: each returns exactly what the plain NumPy expression in its docstring returns, only
without the temporaries that made it slow ([N, T, neurons] arrays of int64 or float64, reductions along a middle
axis). tests/test_kernels.py holds each against its plain expression."""
from __future__ import annotations

from typing import Optional

import numpy as np

_U8_ROWS = 255           # rows a uint8 sum of 0/1 values can take without overflow
_F32_EPS = float(np.finfo(np.float32).eps)
BLOCK = 1 << 15          # entries per block of the float32 screens: a block and its temporaries stay in L2 cache


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
    rounding error of) the largest float32 difference. NaN, infinities, empty arrays and arrays of other shapes
    (broadcast) take the plain way (a float32 difference is finite only where both values are). NumPy's warnings
    about NaN and infinities are silenced: the screens expect them, and the result says what they mean."""
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        return _membrane_diff(a, b, scale)


def _membrane_diff(a: np.ndarray, b: np.ndarray, scale: Optional[float]) -> tuple:
    if not a.size or a.shape != b.shape:
        return _plain(a, b, scale)
    if scale is not None:
        ok = a.dtype == np.float32 and np.isfinite(float(scale)) and scale
        return _scaled(a, b, float(scale)) if ok else _plain(a, b, scale)
    if a.dtype.kind == b.dtype.kind == "i":
        return _differing(*one_type(a, b))
    if not (_is_float32(a) and _is_float32(b)):
        return _differing(a, b) if _finite(a) and _finite(b) else _plain(a, b, scale)
    return _screened(a, b)


def _finite(x: np.ndarray) -> bool:
    return x.dtype.kind in "iub" or bool(np.isfinite(x.min()) and np.isfinite(x.max()))


def one_type(a: np.ndarray, b: np.ndarray) -> tuple:
    """Two arrays in one dtype (the narrower cast once: compared mixed, NumPy casts in every loop)."""
    if a.dtype == b.dtype:
        return a, b
    common = np.result_type(a, b)
    return a.astype(common, copy=False), b.astype(common, copy=False)


def _is_float32(x: np.ndarray) -> bool:
    """Whether every value of x is a float32 exactly (float32 itself, or integers within 2**24)."""
    return x.dtype == np.float32 or (x.dtype.kind in "iu" and max(abs(int(x.min())), abs(int(x.max()))) <= 2 ** 24)


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


def _screened(a: np.ndarray, b: np.ndarray) -> tuple:
    """Both exactly float32: their float32 difference is the exact one correctly rounded, and rounding keeps order,
    so the largest exact difference is among the largest float32 ones. Block by block (`_Blocks`): the largest
    float32 difference, and the entries that differ (a float32 difference of finite values is 0 only where they are
    equal); the exact one only on the blocks that hold the largest."""
    blocks = _Blocks(a, b, lambda x, y, d: np.abs(np.subtract(x, y, out=d, dtype=np.float32, casting="unsafe"),
                                                  out=d))
    m32 = float(blocks.maxima.max())
    if not np.isfinite(m32):
        return _plain(a, b, None)
    if not m32:
        return 0.0, 0
    exact = blocks.each(lambda x, y, d: np.abs(x[d == m32].astype(np.float64) - y[d == m32].astype(np.float64))
                        .max(), blocks.maxima == m32)
    return float(max(exact)), blocks.nonzero


def _scaled(a: np.ndarray, b: np.ndarray, scale: float) -> tuple:
    """a float32: |a - b / scale| screened in float32 block by block, the exact float64 maximum taken only on the
    blocks holding a float32 difference within the screen's rounding slack of the largest."""
    k32 = np.float32(scale)

    def screen(x, y, d):
        np.divide(y, k32, out=d, dtype=np.float32, casting="unsafe")      # b.astype(float32) / float32(scale)
        return np.abs(np.subtract(x, d, out=d), out=d)
    blocks = _Blocks(a, b, screen, extremes=True)
    m32 = float(blocks.maxima.max())
    if not np.isfinite(m32):                   # NaN, infinities, a float32 overflow: the plain way
        return _plain(a, b, scale)
    near = m32 - 2 * _slack(blocks.top_a, blocks.top_b, scale)
    if not np.isfinite(near):
        return _plain(a, b, scale)
    exact = blocks.each(lambda x, y, d: np.abs(x[d >= near].astype(np.float64) -
                                                   y[d >= near].astype(np.float64) / scale).max(),
                        blocks.maxima >= near)
    return float(max(exact)), None


def _slack(top_a: float, top_b: float, scale: float) -> float:
    """float32 against float64: three roundings of b / scale and one of their difference, each within eps/2 of
    |a| + |b / scale| (<= the largest |a| plus the largest |b| / scale), and the subnormals."""
    return 4 * _F32_EPS * (top_a + top_b / abs(scale)) + 2 * float(np.finfo(np.float32).tiny)


class _Blocks:
    """Two non-empty arrays of one shape, read BLOCK entries at a time into one float32 buffer: `screen(x, y, d)`
    fills d from blocks x, y and returns it. One pass gives the maximum of every block's d, the entries of d that
    are not 0, and (`extremes`) the largest magnitude of each array. A window that is not contiguous (an aligned
    record) is copied once by `reshape`: still faster than screening it whole with whole-array temporaries."""

    def __init__(self, a: np.ndarray, b: np.ndarray, screen, extremes: bool = False):
        self.a, self.b, self.screen = a.reshape(-1), b.reshape(-1), screen
        self.d = np.empty(min(self.a.size, BLOCK), np.float32)
        differ = np.empty(self.d.size, bool)            # counted as bool: count_nonzero of floats is 5x slower
        starts = range(0, self.a.size, BLOCK)
        self.maxima = np.empty(len(starts), np.float32)
        lows, highs, self.nonzero = [], [], 0
        for i, lo in enumerate(starts):
            x, y = self.a[lo:lo + BLOCK], self.b[lo:lo + BLOCK]
            d = self.screen(x, y, self.d[:x.size])
            self.maxima[i] = d.max()
            self.nonzero += int(np.count_nonzero(np.not_equal(d, 0, out=differ[:x.size])))
            if extremes:
                lows.append((x.min(), y.min()))
                highs.append((x.max(), y.max()))
        if extremes:
            lo, hi = np.array(lows), np.array(highs)
            self.top_a = max(abs(float(lo[:, 0].min())), abs(float(hi[:, 0].max())))
            self.top_b = max(abs(float(lo[:, 1].min())), abs(float(hi[:, 1].max())))

    def each(self, fn, which: np.ndarray) -> list:
        """fn(x, y, d) on the blocks `which` selects, each screened anew."""
        out = []
        for lo in np.flatnonzero(which) * BLOCK:
            x, y = self.a[lo:lo + BLOCK], self.b[lo:lo + BLOCK]
            out.append(fn(x, y, self.screen(x, y, self.d[:x.size])))
        return out


def _plain(a: np.ndarray, b: np.ndarray, scale: Optional[float]) -> tuple:
    if scale is None and a.dtype.kind == b.dtype.kind == "i":
        d = np.abs(np.subtract(a, b, dtype=np.int64))
    else:
        vb = b.astype(np.float64) / scale if scale is not None else b.astype(np.float64)
        d = np.abs(a.astype(np.float64) - vb)
    return float(d.max()), (int((d > 0).sum()) if scale is None else None)
