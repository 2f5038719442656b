"""Static checks of one synapse's weights, below the layer's single scale: per output channel, and on the integer
grid.

- Per channel: B's weights of output channel c fitted against A's alone, s_c = <a_c, b_c> / <a_c, a_c> over the
  entries that do not saturate. Rounding moves each entry by at most half a step (RMS 0.29), so a correct channel
  has |s_c - s| within a few rounding errors of its fit, sigma_c = rms / sqrt(<a_c, a_c>). A channel beyond
  CHANNEL_SIGMAS of them (and CHANNEL_REL of the scale) is an outlier, named with its index: negated (s_c ~ -s),
  zeroed, or carried at another scale. One bad channel of many leaves the layer's fit, and most of its spikes,
  almost untouched: only this check sees it.
- Grid: every non-zero integer weight a multiple of g >= 2 (with GRID_MIN_WEIGHTS of them, chance is ruled out)
  means the low bits were dropped: a grid g times coarser than int8, truncated or rounded onto it.
"""
from __future__ import annotations

import math

import numpy as np

from ..convert import INT8_MAX, fit_scale, round_saturate
from . import Diagnosis

ROUNDING_RMS = 0.29        # RMS of round-to-nearest's error, in steps
CHANNEL_SIGMAS = 8.0       # a channel's scale this many of its own fit errors from the layer's is an outlier
CHANNEL_REL = 0.05         # ... and this far in relative terms (a few percent is within what clipping does)
GRID_MIN_WEIGHTS = 8       # non-zero weights needed before a common divisor is not chance


def channel_scales(b_int, a, scale: float, rms: float = ROUNDING_RMS) -> list:
    """[(channel, s_c, sigma_c)] for every output channel with enough weight to fit (first axis = output)."""
    a = np.asarray(a, np.float64).reshape(np.shape(a)[0], -1)
    b = np.asarray(b_int, np.float64).reshape(a.shape)
    use = (np.abs(b) < INT8_MAX) & (a != 0)
    den = np.sum(np.where(use, a * a, 0.0), axis=1)
    num = np.sum(np.where(use, a * b, 0.0), axis=1)
    out = []
    for c in np.flatnonzero(den > 0):
        sigma = max(rms, ROUNDING_RMS) / math.sqrt(den[c])
        if sigma < abs(scale) / 2:            # the channel's weights say something about its scale
            out.append((int(c), float(num[c] / den[c]), float(sigma)))
    return out


def outliers(b_int, a, scale: float, rms: float = ROUNDING_RMS) -> list:
    """[(channel, s_c / s)] of the channels whose scale departs from the layer's beyond rounding."""
    return [(c, s_c / scale) for c, s_c, sigma in channel_scales(b_int, a, scale, rms)
            if abs(s_c - scale) > max(CHANNEL_SIGMAS * sigma, CHANNEL_REL * abs(scale))]


def channel_diagnosis(neuron: str, synapse: str, b_int, a, scale: float, rms: float, where: dict) -> list:
    bad = outliers(b_int, a, scale, rms)
    n = np.shape(a)[0]
    if not bad or len(bad) > n // 2:          # most channels off: a layer-wide fault, not a channel's
        return []
    words = "; ".join(f"channel {c}: {_words(r)}" for c, r in bad[:6]) + ("; ..." if len(bad) > 6 else "")
    idx = [c for c, _ in bad]
    return [Diagnosis(
        "channel_weights", neuron, "error",
        f"{len(bad)} of {n} output channels of {synapse} do not carry the layer's scale {scale:.4g} "
        f"({words}); the other channels agree with A within rounding",
        evidence=dict(where, channels=idx, channel_ratios=[r for _, r in bad], scale=scale),
        fix=f"re-quantize output channel(s) {', '.join(map(str, idx[:6]))} of {synapse} like the others: "
            f"np.clip(np.rint(w[c] * {scale:.6g}), -128, 127)")]


def _words(r: float) -> str:
    if abs(r + 1) < 0.1:
        return "negated"
    if abs(r) < 0.1:
        return "zeroed"
    return f"{r:.3g}x the layer's scale"


def grid(b_int) -> int:
    """The largest g with every non-zero weight a multiple of g (1 when too few weights to tell)."""
    w = np.asarray(b_int).ravel()
    w = np.abs(np.rint(w) if w.dtype.kind == "f" else w).astype(np.int64)
    w = w[w != 0]
    return int(np.gcd.reduce(w)) if w.size >= GRID_MIN_WEIGHTS else 1


def grid_diagnosis(neuron: str, synapse: str, b_int, a, where: dict) -> list:
    g = grid(b_int)
    if g < 2:
        return []
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b_int, np.float64).ravel()
    use = (np.abs(b) < INT8_MAX) & (a != 0)
    s = fit_scale(b[use], a[use])
    s_all = fit_scale(b, a)                 # saturated entries included: binary weights
    if grid(round_saturate(s_all * a)) % g == 0:
        return []                 # A's own weights round onto that grid (e.g. binary weights): nothing dropped
    # against the unit-step weights the grid came from: truncation sits one-sided toward zero
    toward_zero = float(np.mean((b[use] - s * a[use]) * np.sign(a[use]))) if use.any() else 0.0
    how = "truncated" if toward_zero < -g / 8 else "rounded"
    bits = math.log2(g)
    return [Diagnosis(
        "weight_grid", neuron, "error",
        f"every non-zero weight of {synapse} is a multiple of {g}: the weights were {how} onto a grid {g} times "
        f"coarser than one integer step" + (f" ({bits:.0f} low bits dropped)" if bits == int(bits) else "") +
        f"; residuals {toward_zero:+.2f} step toward zero on average (round-to-nearest: 0, RMS 0.29)",
        evidence=dict(where, grid=g, rounding_offset=toward_zero, scale=s),
        fix=f"quantize {synapse} with a step of one: np.clip(np.rint(w * s), -128, 127) (do not drop low bits "
            f"or divide by {g} and multiply back)")]
