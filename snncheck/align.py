"""Realigning a pipelined run (PAIBox) with a same-step run (the reference).

In PAIBox stage k answers k-1 steps late, so a raw record has T + L - 1 rows and rows [lag, lag + T) of a node
line up with reference steps 0..T-1. The expected lag comes from the backend (`meta["expected_lag"]`); the lag
actually found is the shift whose window agrees best with the reference. Both are kept: a difference is a finding
for the diagnosis, never a crash, and the aligned records always use the expected lag so that mismatches stay
visible. Lag scores are mismatch counts, so the scores of chunks add up to those of the whole set (`Lags.merge`).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .backends.base import LayerRecord, RunResult, window
from .kernels import one_type


@dataclass(frozen=True, eq=False)
class LagScores:
    """One node's evidence for its lag: mismatching entries per shift, out of `size`, and activity seen before
    the node could have received anything (a stage that starts too early)."""
    expected: int
    counts: np.ndarray
    size: int
    early: bool

    def merge(self, other: "LagScores") -> "LagScores":
        return LagScores(self.expected, self.counts + other.counts, self.size + other.size,
                         self.early or other.early)

    def verdict(self) -> dict:
        return lag_verdict([float(c) / self.size for c in self.counts], self.expected, self.early)


@dataclass(frozen=True)
class Lags:
    """Lag scores of every node of one pipelined run."""
    nodes: dict = field(default_factory=dict)        # name -> LagScores

    def merge(self, other: "Lags") -> "Lags":
        names = list(dict.fromkeys(list(self.nodes) + list(other.nodes)))
        return Lags({n: self.nodes[n].merge(other.nodes[n]) if n in self.nodes and n in other.nodes
                     else self.nodes.get(n) or other.nodes[n] for n in names})

    def verdicts(self) -> dict:
        return {name: scores.verdict() for name, scores in self.nodes.items()}


def align(raw: RunResult, reference: RunResult) -> tuple:
    """(a copy of `raw` cropped to the reference's T steps per node at its expected lag, its Lags)."""
    expected = raw.meta["expected_lag"]
    layers, scores = [], {}
    for rec in raw.layers:
        ref = reference.layer(rec.name)
        lag, t = int(expected[rec.name]), ref.steps
        scores[rec.name] = lag_scores(rec, ref, lag)
        layers.append(rec.replace(spikes=window(rec.spikes, lag, t), v=window(rec.v, lag, t),
                                  h=window(rec.h, lag, t)))
    lags = Lags(scores)
    meta = dict(raw.meta, lags={n: v for n, v in lags.verdicts().items()})
    return raw.replace(layers=layers, meta=meta), lags


ROWS = 1 << 16       # reference entries per block of samples in lag_scores: every shift reads the block from cache


def lag_scores(rec: LayerRecord, ref: LayerRecord, expected: int) -> LagScores:
    """Mismatching (sample, step, neuron) entries for every shift d, spikes and (where both record it) membranes;
    counted a block of samples at a time, every shift on one block before the next block (counts add up)."""
    t = ref.steps
    counts = np.zeros(rec.steps - t + 1, np.int64)
    raw_v, ref_v = (rec.v, ref.v) if rec.v is None or ref.v is None else one_type(rec.v, ref.v)
    rows = max(1, ROWS // max(1, int(np.prod(ref.spikes.shape[1:]))))
    differ, v_differ = np.empty((rows,) + ref.spikes.shape[1:], bool), np.empty((rows,) + ref.spikes.shape[1:], bool)
    for lo in range(0, ref.spikes.shape[0], rows):
        hi = min(lo + rows, ref.spikes.shape[0])
        out, v_out = differ[:hi - lo], v_differ[:hi - lo]
        for d in range(len(counts)):
            np.not_equal(rec.spikes[lo:hi, d:d + t], ref.spikes[lo:hi], out=out)
            if raw_v is not None and ref_v is not None:
                out |= np.not_equal(raw_v[lo:hi, d:d + t], ref_v[lo:hi], out=v_out)
            counts[d] += np.count_nonzero(out)
    # a correctly timed stage is idle (no spike, v = 0) before its tick_wait_start; activity there means it
    # started before its input could arrive (e.g. tick_wait_start=1 everywhere), whatever shift fits best
    early = bool(rec.spikes[:, :expected].any()) or (rec.v is not None and bool(np.any(rec.v[:, :expected] != 0)))
    return LagScores(expected, counts, int(ref.spikes.size), early)


def lag_verdict(scores: list, expected: int, early: bool = False) -> dict:
    """The lag finding from the mismatch score of every shift."""
    best = int(np.argmin(scores))
    ties = [d for d, s in enumerate(scores) if s == scores[best]]
    return {
        "expected": expected,
        "detected": best if len(ties) == 1 else None,
        "ambiguous": len(ties) > 1,
        "best_mismatch": scores[best],
        "mismatch_at_expected": scores[expected] if expected < len(scores) else None,
        "scores": scores,
        "early_activity": early,
        # another shift fits better, or no shift fits at all (the node's output does not follow its input)
        "anomaly": (len(ties) == 1 and best != expected) or (len(ties) > 1 and scores[best] > 0) or early,
    }
