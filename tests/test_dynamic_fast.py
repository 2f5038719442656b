"""The isolated mode's fast forms (snncheck.diagnose.dynamic) give the very numbers of the plain expressions they
replace: the membrane slope to the last bit."""
from __future__ import annotations

import numpy as np
import pytest

from snncheck.backends.base import LayerRecord
from snncheck.diagnose import dynamic


def _plain_slope(rec, spikes_b, h_b):
    """The slope as dynamic computed it before its products shared one buffer."""
    differ = np.not_equal(spikes_b, rec.spikes)
    flipped = np.zeros_like(differ)
    np.logical_or.accumulate(differ[:, :-1], axis=1, out=flipped[:, 1:])
    a, b = rec.h.astype(np.float64), h_b.astype(np.float64)
    keep = ~flipped
    den = float(np.sum(a * a, where=keep))
    return float(np.sum(b * a, where=keep) / den) if den > 0 else None


@pytest.mark.parametrize("dtype_b", [np.int32, np.float32])
def test_slope_is_the_plain_least_squares_slope(dtype_b):
    """Catches products summed over the wrong entries (the mask inverted, a neuron's own step counted as an earlier
    flip), a square where the cross product belongs, and sums taken in float32."""
    rng = np.random.default_rng(4)
    shape = (4, 6, 3, 5)
    h_a = (rng.standard_normal(shape) * 3).astype(np.float32)
    h_b = np.rint(h_a.astype(np.float64) * 1234.5 + rng.integers(-40, 41, shape)).astype(dtype_b)
    spikes_a = h_a > 1.0
    spikes_b = np.where(rng.random(shape) < 0.05, ~spikes_a, spikes_a)
    rec = LayerRecord("n", spikes_a, None, h_a, 1.0)
    got = dynamic._slope(rec, spikes_b, h_b)
    assert got == _plain_slope(rec, spikes_b, h_b)
    assert dynamic._slope(rec, spikes_a, np.zeros_like(h_b)) == 0.0
    assert dynamic._slope(rec.replace(h=np.zeros_like(h_a)), spikes_b, h_b) is None
