"""Realigning a pipelined run (PAIBox) with a same-step run (the reference).

In PAIBox stage k answers k-1 steps late, so a raw record has T + L - 1 rows and rows [lag, lag + T) of a layer
line up with reference steps 0..T-1. The expected lag comes from the network's stages; the lag actually found is
the shift whose window agrees best with the reference. Both are kept: a difference is a finding for the
diagnosis, never a crash, and the aligned records always use the expected lag so that mismatches stay visible.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .runners.base import LayerRecord, RunResult


def align(raw: RunResult, reference: RunResult) -> RunResult:
    """A copy of `raw` cropped to the reference's T steps per layer, with `meta["lags"]` per layer."""
    if not raw.meta.get("raw"):
        return raw
    expected = raw.meta["expected_lag"]
    layers, lags = [], {}
    for rec in raw.layers:
        ref = reference.layer(rec.name)
        t = ref.steps
        lag = int(expected[rec.name])
        lags[rec.name] = detect_lag(rec, ref, lag)
        layers.append(dataclasses.replace(rec, spikes=_window(rec.spikes, lag, t), v=_window(rec.v, lag, t),
                                          h=_window(rec.h, lag, t)))
    meta = {k: v for k, v in raw.meta.items() if k != "raw"}
    meta["lags"] = lags
    return RunResult(raw.runner, raw.label, layers, meta)


def detect_lag(rec: LayerRecord, ref: LayerRecord, expected: int) -> dict:
    """Score every shift d by the fraction of (sample, step, neuron) entries whose spike (and membrane, where both
    record it) differ from the reference; the best shift is the detected lag, unless several tie."""
    t = ref.steps
    scores = []
    for d in range(rec.steps - t + 1):
        differ = rec.spikes[:, d:d + t] != ref.spikes
        if rec.v is not None and ref.v is not None:
            differ |= rec.v[:, d:d + t] != ref.v
        scores.append(float(differ.mean()))
    # a correctly timed stage is idle (no spike, v = 0) before its tick_wait_start; activity there means it
    # started before its input could arrive (e.g. tick_wait_start=1 everywhere), whatever shift fits best
    early = bool(rec.spikes[:, :expected].any()) or (rec.v is not None and bool(np.any(rec.v[:, :expected] != 0)))
    return lag_verdict(scores, expected, early)


def lag_verdict(scores: list, expected: int, early: bool = False) -> dict:
    """The lag finding from the mismatch score of every shift (also used on scores summed over chunks)."""
    best = int(np.argmin(scores))
    ties = [d for d, s in enumerate(scores) if s == scores[best]]
    return {
        "expected": expected,
        "detected": best if len(ties) == 1 else None,
        "ambiguous": len(ties) > 1,
        "best_mismatch": scores[best],
        "mismatch_at_expected": scores[expected] if expected < len(scores) else None,
        "scores": scores,
        # another shift fits better, or no shift fits at all (the layer's output does not follow its input)
        "early_activity": early,
        "anomaly": (len(ties) == 1 and best != expected) or (len(ties) > 1 and scores[best] > 0) or early,
    }


def _window(a, lag: int, t: int):
    if a is None:
        return None
    out = a[:, lag:lag + t]
    if out.shape[1] < t:   # a mis-built pipeline may be shorter than its expected lag: pad with zeros, visibly
        out = np.concatenate([out, np.zeros((a.shape[0], t - out.shape[1]) + a.shape[2:], a.dtype)], axis=1)
    return out
