"""How B receives its input: round(x * input_scale), from A's inputs x. Checked on the inputs themselves.

- Effective input step: B sees x on a grid of 1 / input_scale in A's units. The input error this causes,
  mean |round(x * s) / s - x| over mean |x|, is INPUT_ERROR at most for a usable encoding (0-1 images at s = 255:
  0.2%); analog inputs at s = 1 are *binarised* (0 or 1: 25% and more), and no per-layer check can see it, since
  the isolated yardstick of every layer is fed the same rounded input.
- Range: PAIBox's InputProj casts its input to uint8 (SEMANTICS: -1 becomes 255, 300 becomes 44), so B's inputs
  must lie in 0..255.
"""
from __future__ import annotations

import numpy as np

from ..backends.paibox.limits import INPUT as UINT8      # what PAIBox's InputProj carries
from . import Diagnosis

INPUT_ERROR = 0.05          # mean input error over mean input beyond which B's input is not A's
DISTINCT_SHOWN = 6


def check(inputs: np.ndarray, input_scale: float, first_layer: str) -> list:
    """Diagnoses of B's input encoding: `inputs` [N, T, ...] in A's range (the evidence samples), B gets
    round(inputs * input_scale); `first_layer`: the spiking layer the input feeds (where it shows)."""
    x = np.asarray(inputs, np.float64)
    if not x.size:
        return []
    s = float(input_scale)
    deployed = np.rint(x * s)                       # what B receives, computed once for both checks
    return _resolution(x, s, first_layer, deployed) + _range(x, s, first_layer, deployed)


def input_error(x: np.ndarray, s: float, deployed: np.ndarray = None) -> float:
    """Mean |round(x * s) / s - x| over mean |x| (0 for all-zero inputs); `deployed`: round(x * s) if known."""
    scale = float(np.mean(np.abs(x)))
    deployed = np.rint(x * s) if deployed is None else deployed
    return float(np.mean(np.abs(deployed / s - x))) / scale if scale > 0 else 0.0


def suggested_scale(x: np.ndarray) -> float:
    """The input scale that fills uint8 with the largest input: 255 for 0..1 images."""
    top = float(np.abs(x).max())
    return float(np.floor(UINT8[1] / top)) if top > 0 else 1.0


def _resolution(x: np.ndarray, s: float, layer: str, deployed: np.ndarray) -> list:
    err = input_error(x, s, deployed)
    if err <= INPUT_ERROR:
        return []
    deployed, distinct_a = np.unique(deployed), int(np.unique(x).size)
    want = suggested_scale(x)
    err_want = input_error(x, want)
    values = ", ".join(f"{v:g}" for v in deployed[:DISTINCT_SHOWN]) + (", ..." if deployed.size > DISTINCT_SHOWN
                                                                       else "")
    binarised = deployed.size <= 2
    return [Diagnosis(
        "input_scale", layer, "error",
        f"B receives round(x * {s:g}): A's inputs, {distinct_a} distinct values in "
        f"[{x.min():g}, {x.max():g}], become {deployed.size} value(s) ({values})"
        + (": the inputs are binarised" if binarised else "") +
        f"; the mean input error is {err:.1%} of the mean input (effective input step {1 / s:g} in A's units)",
        evidence={"layer": layer, "input_scale": s, "input_error": err, "distinct_a": distinct_a,
                  "distinct_b": int(deployed.size), "suggested_input_scale": want,
                  "input_error_at_suggested": err_want},
        fix=f"--input-scale {want:g} (input error {err_want:.2%}), and scale the first layer's bias "
            f"and threshold by {want / s:g} with it (re-convert with input_scale={want:g})")]


def _range(x: np.ndarray, s: float, layer: str, deployed: np.ndarray) -> list:
    lo, hi = float(deployed.min()), float(deployed.max())
    if UINT8[0] <= lo and hi <= UINT8[1]:
        return []
    out = int(np.sum((deployed < UINT8[0]) | (deployed > UINT8[1])))
    return [Diagnosis(
        "input_scale", layer, "warning",
        f"B's inputs round(x * {s:g}) span [{lo:g}, {hi:g}]: {out} of {deployed.size} values lie outside "
        f"0..255, which PAIBox's InputProj casts to uint8 (wrapping: -1 becomes 255, 300 becomes 44)",
        evidence={"layer": layer, "input_scale": s, "min": lo, "max": hi, "outside": out},
        fix=(f"use --input-scale {suggested_scale(x):g} or less" if hi > UINT8[1] else
             "shift or rectify the inputs to be non-negative (spikes, 0..255 pixels)") +
            "; the reference and SpikingJelly compute the values as given")]
