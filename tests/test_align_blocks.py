"""align.lag_scores counts the mismatches of every shift a block of samples at a time: the counts must be the
whole-array counts whatever the block size (one sample, a ragged last block, all samples at once)."""
from __future__ import annotations

import numpy as np
import pytest

from snncheck import align
from snncheck.backends.base import LayerRecord


def _plain_counts(rec, ref):
    """Every shift over the whole arrays, as lag_scores counted before its blocks."""
    t = ref.steps
    counts = []
    for d in range(rec.steps - t + 1):
        differ = np.not_equal(rec.spikes[:, d:d + t], ref.spikes)
        if rec.v is not None and ref.v is not None:
            differ |= np.not_equal(rec.v[:, d:d + t], ref.v)
        counts.append(int(np.count_nonzero(differ)))
    return counts


@pytest.mark.parametrize("rows", [1, 7, 24, 30, 1 << 16])
@pytest.mark.parametrize("with_v", [True, False])
def test_blocked_lag_scores_are_the_whole_array_counts(monkeypatch, rows, with_v):
    """Catches a block that skips or repeats samples (a bound off by one), counts of one block only, and a shift
    applied to the reference instead of the raw run; 5 samples of 6 entries per step: blocks of 1, 2, 4, 5 and all
    samples."""
    monkeypatch.setattr(align, "ROWS", rows)
    rng = np.random.default_rng(rows)
    ref_s = rng.random((5, 4, 2, 3)) < 0.3
    raw_s = np.concatenate([rng.random((5, 2, 2, 3)) < 0.3, ref_s, rng.random((5, 1, 2, 3)) < 0.3], axis=1)
    raw_s[rng.random(raw_s.shape) < 0.05] ^= True
    ref_v = rng.integers(-5, 6, ref_s.shape).astype(np.int32)
    raw_v = np.concatenate([np.zeros((5, 2, 2, 3), np.int64), ref_v, np.ones((5, 1, 2, 3), np.int64)], axis=1)
    raw_v[rng.random(raw_v.shape) < 0.05] += 1
    rec = LayerRecord("n", raw_s, raw_v if with_v else None)
    ref = LayerRecord("n", ref_s, ref_v)
    scores = align.lag_scores(rec, ref, 2)
    assert scores.counts.tolist() == _plain_counts(rec, ref) and scores.size == ref_s.size
    assert scores.counts.dtype == np.int64
