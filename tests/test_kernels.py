"""snncheck.kernels: each fast reduction returns exactly what the plain NumPy expression in its docstring returns,
on arrays shaped like diff's records ([N, T, *shape], bool spikes, int32/int64/float32 membranes, sliced windows)
and on the values that break shortcuts (ties, NaN, infinities, integers beyond 2**24, float32 overflow)."""
from __future__ import annotations

import numpy as np
import pytest

from snncheck import kernels


def _plain_diff(a, b, scale=None):
    """The expression compare used before the kernels."""
    if scale is None and a.dtype.kind == b.dtype.kind == "i":
        d = np.abs(np.subtract(a, b, dtype=np.int64))
    else:
        vb = b.astype(np.float64) / scale if scale is not None else b.astype(np.float64)
        d = np.abs(a.astype(np.float64) - vb)
    return float(d.max()), (None if scale is not None else int((d > 0).sum()))


def _same(x, y) -> bool:
    return x == y or (x != x and y != y)      # NaN equals NaN here


@pytest.mark.parametrize("rows", [1, 254, 255, 256, 600])
def test_spike_counts_are_count_nonzero_past_the_uint8_limit(rows):
    """Catches a uint8 partial sum over more than 255 rows (wraps at 256) and a block boundary off by one: a
    neuron that fires at every row of 256 and 600 rows must count them all."""
    rng = np.random.default_rng(rows)
    spikes = rng.random((rows, 1, 3, 5)) < 0.5
    spikes[:, :, 0, 0] = True
    want = np.count_nonzero(spikes.reshape(rows, -1), axis=0).astype(np.int64).reshape(3, 5)
    got = kernels.spike_counts(spikes)
    assert got.dtype == np.int64 and np.array_equal(got, want)
    window = np.concatenate([spikes, spikes], axis=1)[:, 1:]          # a pipelined run's aligned view
    assert np.array_equal(kernels.spike_counts(window), want)
    assert np.array_equal(kernels.spike_counts(spikes.astype(np.float32)), want)      # a recorded run's floats


def test_seen_before_is_the_running_or_of_earlier_steps():
    """Catches a running OR that includes the step itself or starts a step late."""
    rng = np.random.default_rng(0)
    flat = rng.random((5, 7, 11)) < 0.1
    want = np.zeros_like(flat)
    np.logical_or.accumulate(flat[:, :-1], axis=1, out=want[:, 1:])
    assert np.array_equal(kernels.seen_before(flat), want)
    assert not kernels.seen_before(flat[:, :1]).any()


def _membranes(rng, kind: str, shape=(4, 6, 3, 9)):
    if kind == "int":
        a = rng.integers(-300, 300, shape).astype(np.int32)
        return a, np.where(rng.random(shape) < 0.05, a + rng.integers(-3, 4, shape), a).astype(np.int64)
    if kind == "big int":           # beyond 2**24: not exact in float32
        a = rng.integers(2 ** 25, 2 ** 26, shape)
        return (a + rng.integers(0, 2, shape)).astype(np.int32), a.astype(np.float32)
    if kind == "float":
        a = rng.standard_normal(shape).astype(np.float32) * 50
        return a, np.where(rng.random(shape) < 0.2, np.nextafter(a, np.float32(np.inf)), a)
    a = rng.integers(-300, 300, shape)                                    # "mixed": SpikingJelly's floats of B
    return a.astype(np.float32) + (rng.random(shape) < 0.1), a.astype(np.int32)


@pytest.mark.parametrize("kind", ["int", "big int", "float", "mixed"])
def test_membrane_diff_is_the_plain_difference_unscaled(kind):
    """Catches a count or maximum taken in float32 where float32 is not exact (integers beyond 2**24), a maximum
    taken on the wrong entries, and a count that drops or adds an entry."""
    rng = np.random.default_rng(1)
    a, b = _membranes(rng, kind)
    assert kernels.membrane_diff(a, b) == _plain_diff(a, b)
    b.flat[7] = a.flat[7] + 9                  # one largest difference, which a shortcut must not miss
    assert kernels.membrane_diff(a, b) == _plain_diff(a, b)
    assert kernels.membrane_diff(a, a.copy()) == (0.0, 0)
    assert kernels.membrane_diff(a[:, 1:], b[:, :-1]) == _plain_diff(a[:, 1:], b[:, :-1])


def _scaled_case(seed: int):
    """B = round(7.3 A) + (-3..3) with A ~ 1e6: float32 rounds B / 7.3 by up to 0.06, more than the largest
    |A - B / 7.3| differ among themselves."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(1e6, 2e6, (6, 8, 50)).astype(np.float32)
    b = (np.rint(a.astype(np.float64) * 7.3) + rng.integers(-3, 4, a.shape)).astype(np.int32)
    return a, b, 7.3


@pytest.mark.parametrize("seed", range(6))
def test_membrane_diff_scaled_finds_the_float64_maximum(seed):
    """Catches a float32 screen without its rounding slack (or with too little): float32 orders the largest
    differences otherwise than float64 here (next test), and the maximum must still be float64's."""
    a, b, scale = _scaled_case(seed)
    assert kernels.membrane_diff(a, b, scale) == _plain_diff(a, b, scale)
    rng = np.random.default_rng(seed)                    # and at a network's sizes (|A| ~ 3, scale ~ 1e3)
    a = (rng.standard_normal((6, 8, 50)) * 3).astype(np.float32)
    scale = float(rng.uniform(100, 5000))
    b = np.rint(a.astype(np.float64) * scale + rng.integers(-2, 3, a.shape) * 0.5).astype(np.int32)
    assert kernels.membrane_diff(a, b, scale) == _plain_diff(a, b, scale)


def test_membrane_diff_scaled_float32_alone_would_pick_other_entries():
    """Not vacuous: in most cases above float32's largest difference is not on float64's largest entry."""
    misses = 0
    for seed in range(6):
        a, b, scale = _scaled_case(seed)
        d32 = np.abs(a - b.astype(np.float32) / np.float32(scale))
        d64 = np.abs(a.astype(np.float64) - b.astype(np.float64) / scale)
        misses += int(d64[d32 == d32.max()].max() < d64.max())
    assert misses >= 3


@pytest.mark.parametrize("poison", [np.nan, np.inf, -np.inf])
def test_membrane_diff_with_nan_or_infinity_is_the_plain_one(poison):
    """Catches shortcuts that drop NaN (max must be NaN) or equal infinities (inf - inf is NaN in the plain form)."""
    rng = np.random.default_rng(2)
    a, b = _membranes(rng, "float")
    a[1, 2, 0, 3] = b[1, 2, 0, 3] = poison
    for scale in (None, 7.0):
        assert all(_same(x, y) for x, y in zip(kernels.membrane_diff(a, b, scale), _plain_diff(a, b, scale)))


def test_membrane_diff_float32_overflow_is_the_plain_one():
    """Catches a float32 screen that overflows (B / scale beyond float32) and returns inf."""
    a = np.full((2, 2, 3), 3e38, np.float32)
    b = np.full((2, 2, 3), -2 ** 31 + 1, np.int64)
    assert kernels.membrane_diff(a, b, 1e-30) == _plain_diff(a, b, 1e-30)


@pytest.mark.parametrize("size", [1, 3, 7, 1000, 12544 * 8 + 5])
def test_rate_is_the_mean(size):
    """Catches a rate over the wrong count (a count_nonzero of the wrong array, a size off by one): the float
    must be spikes.mean()'s to the last bit."""
    rng = np.random.default_rng(size)
    spikes = rng.random(size) < 0.37
    assert kernels.rate(spikes) == float(spikes.mean())
    assert kernels.rate(spikes.astype(np.float32)) == float(spikes.astype(np.float32).mean())
