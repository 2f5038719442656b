"""The diagnoses' fast paths decide exactly as their plain forms: the reset mode from the share of the potential
after the first spike (no gather, no sort) against reset_signature's share at the most common value (np.unique)."""
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


@pytest.mark.parametrize("first", ["reset", "rare", "common"])
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float32])
@pytest.mark.parametrize("at_reset", [0, 1, 10, 11, 98, 99, 100, 180, 989, 990, 991, 1000])
def test_reset_mode_is_reset_signatures_mode(dtype, at_reset, first):
    """Catches a share compared otherwise than reset_signature compares it (989, 990, 991 of 1000 at v_reset: both
    sides of HARD_SIGNATURE; 10, 11: both sides of 1 - HARD_SIGNATURE for the first value), and a first value that
    is not the most common one taken as deciding (`rare`: the first spike leaves a value held by one in 1000)."""
    rng = np.random.default_rng(at_reset)
    post = rng.integers(-50, 50, 1000).astype(dtype)
    post[(post == 0) | (post == 5) | (post == 33)] = 1
    post[:at_reset] = 0
    if at_reset < 500:
        post[at_reset:at_reset + 200] = 5                  # a common value other than the reset
    post = rng.permutation(post)
    lead = {"reset": 0, "rare": 33, "common": 5}[first]
    post = np.concatenate([[lead], post[1:]]).astype(dtype)
    rec = _record(post)
    assert dynamic.reset_mode(rec) == dynamic.reset_signature(rec)[0]


@pytest.mark.parametrize("others", [9, 10, 11])
def test_reset_mode_at_the_soft_boundary(others):
    """Catches a first value taken as deciding "soft" at a share of exactly 1 - HARD_SIGNATURE: 990 at v_reset and
    10 at the value the first spike leaves is hard."""
    post = np.zeros(1000, np.int32)
    post[-others:] = 7
    rec = _record(np.roll(post, others))
    assert dynamic.reset_mode(rec) == dynamic.reset_signature(rec)[0]


def test_reset_mode_with_too_few_spikes_or_no_potential():
    """Catches a mode claimed without evidence (fewer than min_spikes, or no v recorded)."""
    rec = _record(np.zeros(10, np.int32))
    assert dynamic.reset_mode(rec) is None and dynamic.reset_signature(rec) == (None, None)
    assert dynamic.reset_mode(rec.replace(v=None)) is None
