"""A float input of integer values as the narrowest integer array, checked in the same pass that casts it.

The reference runs an integer network exactly when its inputs are integer-valued (pixels 0..255, event counts
arrive as float64), and carries them as the narrowest integer type (1 byte per value for every later pass). As
separate NumPy passes that was: all finite, rounded equal to itself, min, max, cast, six passes and two
full-size temporaries (3.7 ms of a 16 ms reference run on 2x128x128 events at T=32). Here: min and max (taken
when the inputs are checked: they show NaN and infinities too), then one compiled loop (numba) that casts and
compares each value with its cast.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from . import jit

TYPES = (np.int8, np.uint8, np.int16, np.int32, np.int64)
COMPILED = (np.dtype(np.float32), np.dtype(np.float64))


def narrowest(lo: float, hi: float) -> Optional[type]:
    """The narrowest integer type holding [lo, hi]; None beyond int64."""
    return next((t for t in TYPES if np.iinfo(t).min <= lo and hi <= np.iinfo(t).max), None)


def integer_copy(x: np.ndarray, lo: float, hi: float) -> Optional[np.ndarray]:
    """x (finite, within [lo, hi]) in the narrowest integer type when every value is an integer; else None."""
    dtype = narrowest(lo, hi)
    if dtype is None:
        return None
    if x.dtype.kind in "biu":
        return x.astype(dtype, copy=False)
    out = np.empty(x.shape, dtype)
    # (the loop is compiled for native float32 and float64: float16, big-endian or long double take NumPy's way)
    cast = _kernel() if ENABLED and x.dtype in COMPILED and x.dtype.isnative else None
    if cast is not None:
        flat = np.ascontiguousarray(x).reshape(-1)
        return out if cast(flat, out.reshape(-1)) else None
    np.copyto(out, x, casting="unsafe")
    return out if np.array_equal(out, x) else None


ENABLED = True         # off: NumPy's cast and comparison (identity tests, benchmarks)


def _kernel():
    return jit.compiled(_cast)


def _cast(x, out):
    """out = x cast, both flat; whether every value came through unchanged (an integer: x == its cast)."""
    same = True
    for i in range(x.size):
        out[i] = x[i]
        same &= out[i] == x[i]
    return same
