"""The static fit's fast forms (snncheck.diagnose.static) give the very numbers of the plain NumPy expressions they
replace, on weights as conversions leave them: rounded, truncated, clipped, wrapped, few, with zeros and ties."""
from __future__ import annotations

import numpy as np
import pytest

from snncheck.diagnose import static


def _weights(seed: int, kind: str, size: int = 600):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(size) * 0.05
    a[rng.random(size) < 0.1] = 0.0
    s = 127 / np.abs(a).max() * (2.0 if kind == "clipped" else 1.0)
    b = {"rounded": np.rint(a * s), "truncated": np.trunc(a * s), "clipped": np.clip(np.rint(a * s), -128, 127),
         "wrapped": (np.rint(a * s * 1.5).astype(np.int64) + 128) % 256 - 128}[kind]
    return a, b.astype(np.float64)


def _plain_feasible(a, b, sat):
    """_feasible as it was: both bounds of every entry, gathered, then their extremes."""
    nz = a != 0
    lo_b, hi_b = (b - 0.5) / np.where(nz, a, 1), (b + 0.5) / np.where(nz, a, 1)
    lo = np.where(a > 0, lo_b, hi_b)[nz & ~sat]
    hi = np.where(a > 0, hi_b, lo_b)[nz & ~sat]
    floor = (static.INT8 - 0.5) / np.abs(a[nz & sat & (np.sign(a) == np.sign(b))])
    low = max(float(lo.max()) if lo.size else 0.0, float(floor.max()) if floor.size else 0.0)
    high = float(hi.min()) if hi.size else low * (1 + static.CLIP_ALLOWANCE)
    return (low, high) if 0 < low <= high else None


@pytest.mark.parametrize("kind", ["rounded", "truncated", "clipped", "wrapped"])
@pytest.mark.parametrize("size", [3, 40, 600])
def test_feasible_and_best_are_the_plain_ones(kind, size):
    """Catches a lower bound taken with the wrong half-step sign for negative weights, an extreme over the
    saturated entries, and a best candidate other than max()'s (the last of equal counts instead of the first)."""
    for seed in range(5):
        a, b = _weights(seed, kind, size)
        sat = np.abs(b) >= static.INT8
        assert static._feasible(a, b, sat) == _plain_feasible(a, b, sat)
        usable = ~sat & (a != 0)
        candidates = static._candidates(a, b, usable)
        candidates += candidates[:1]                 # a tie: max() keeps the first
        want = max(candidates, key=lambda s: np.sum(usable & (np.abs(b - s * a) <= 1.5)))
        s0, inl = static._best(a, b, usable, candidates)
        assert s0 == want and np.array_equal(inl, usable & (np.abs(b - want * a) <= 1.5))
    a, b = _weights(0, kind, size)
    few = np.zeros_like(a)
    few[:2] = a[:2]
    assert static._feasible(few, b, np.abs(b) >= static.INT8) == _plain_feasible(few, b, np.abs(b) >= static.INT8)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7, 8, 1000, 1001])
def test_median_is_numpys(size):
    """Catches the wrong middle entry (k or k - 1 taken alone for an even count, k + 1 for an odd one) and a mean
    of the two in another rounding: ties, infinities and NaN included."""
    rng = np.random.default_rng(size)
    for x in (rng.standard_normal(size) * 1e3, np.rint(rng.standard_normal(size) * 3),
              rng.uniform(1e8, 1e8 + 1, size)):
        assert static.median(x) == float(np.median(x))
        y = x.copy()
        y[0] = np.inf
        assert static.median(y) == float(np.median(y))
        y[-1] = np.nan
        assert np.isnan(static.median(y)) and np.isnan(np.median(y))
