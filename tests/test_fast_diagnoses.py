"""The diagnoses' fast paths decide exactly as their plain forms: the reset mode from the share at the median of the
post-spike potentials (no sort) against reset_signature's share at the most common value (np.unique)."""
from __future__ import annotations

import numpy as np
import pytest

from snncheck.backends.base import LayerRecord
from snncheck.diagnose import dynamic


def _record(post: np.ndarray) -> LayerRecord:
    """A layer whose potentials after its spikes are `post` (and arbitrary where it does not spike)."""
    n = post.size
    spikes = np.zeros((1, 2 * n), bool)
    spikes[0, ::2] = True
    v = np.full((1, 2 * n), 7, post.dtype)
    v[0, ::2] = post
    return LayerRecord("n", spikes, v)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float32])
@pytest.mark.parametrize("at_reset", [0, 1, 98, 99, 100, 180, 989, 990, 991, 1000])
def test_reset_mode_is_reset_signatures_mode(dtype, at_reset):
    """Catches a median taken off by one, or a share compared otherwise than reset_signature compares it: shares
    on both sides of HARD_SIGNATURE (989, 990, 991 of 1000 at v_reset), and below one half (no value dominates;
    the most common value then is not the median)."""
    rng = np.random.default_rng(at_reset)
    post = rng.integers(-50, 50, 1000).astype(dtype)
    post[post == 0] = 1
    post[:at_reset] = 0
    post[at_reset:at_reset + 200] = 5 if at_reset < 500 else post[at_reset:at_reset + 200]    # a common non-reset
    rec = _record(rng.permutation(post))
    assert dynamic.reset_mode(rec) == dynamic.reset_signature(rec)[0]


def test_reset_mode_with_too_few_spikes_or_no_potential():
    """Catches a mode claimed without evidence (fewer than min_spikes, or no v recorded)."""
    rec = _record(np.zeros(10, np.int32))
    assert dynamic.reset_mode(rec) is None and dynamic.reset_signature(rec) == (None, None)
    assert dynamic.reset_mode(rec.replace(v=None)) is None
