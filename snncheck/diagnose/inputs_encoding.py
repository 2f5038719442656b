"""`input_encoding`: the two sides of a pair received different inputs, so their first layer cannot agree, and
no simulator or conversion is to blame. Every run states what it received (`meta["input_received"]`: sums per
input channel in A's units, beside the plan's encoded inputs on the same samples); a recorded run states what
the tool that recorded it fed. A user whose pipeline draws Poisson spikes once per simulator gets this.

Integer inputs (spikes, event counts) must arrive exactly; analog inputs may differ by B's input rounding
(half a step of 1 / input_scale), which `input_scale` diagnoses instead.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from . import Diagnosis

EXACT = 1e-9          # relative: the same values summed in the same order give the same sums


def different_inputs(pairs, comparisons: dict, runs: dict, layers: list) -> list:
    """One error per run whose received inputs differ from the encoded ones, when a pair it is in disagrees at
    the first spiking layer."""
    if not layers:
        return []
    first, out, named = layers[0], [], set()
    for pair in pairs:
        pc = comparisons.get(pair.key)
        if pc is None or not pc.layer(first).mismatches:
            continue
        for label, other in ((pair.a.label, pair.b.label), (pair.b.label, pair.a.label)):
            off = _offset(runs.get(label, {}).get("input_received"))
            if off is not None and label not in named:
                named.add(label)
                out.append(_diagnosis(label, other, first, pc.layer(first), off))
    return out


def _offset(got: Optional[dict]) -> Optional[dict]:
    """Rates per channel received and encoded, when they differ beyond what B's input rounding allows."""
    if not got or not got.get("count"):
        return None
    rec, enc = np.asarray(got["received"]) / got["count"], np.asarray(got["encoded"]) / got["count"]
    rounding = 0.0 if got.get("integer") else 0.5 / got.get("scale", 1.0)
    bad = np.flatnonzero(_differ(rec, enc, rounding))
    if "received_weighted" in got:         # the same count of spikes, drawn elsewhere
        bad = np.union1d(bad, np.flatnonzero(_differ(np.asarray(got["received_weighted"]) / got["count"],
                                                     np.asarray(got["encoded_weighted"]) / got["count"],
                                                     2 * rounding)))
    if not len(bad):
        return None
    return {"channels": bad.astype(int).tolist(), "received_rate": rec.round(6).tolist(), "encoded_rate": enc.round(6).tolist(),
            "values_per_channel": got["count"]}


def _differ(a: np.ndarray, b: np.ndarray, rounding: float) -> np.ndarray:
    return np.abs(a - b) > EXACT * np.maximum(1.0, np.abs(b)) + rounding


def _diagnosis(label: str, other: str, layer: str, lc, off: dict) -> Diagnosis:
    c = off["channels"][0]
    return Diagnosis(
        "input_encoding", layer, "error",
        f"{label} received other inputs than the encoded ones: rate {off['received_rate'][c]:.6g} on input channel "
        f"{c} where the encoded inputs have {off['encoded_rate'][c]:.6g} ({len(off['channels'])} channel(s) "
        f"differ); its first layer {layer} disagrees with {other} on {lc.mismatches} of {lc.total} spikes. The two "
        "sides were fed different inputs: what differs after this says nothing of the simulators",
        dict(off, run=label, against=other, mismatches=lc.mismatches),
        "encode once and feed every simulator the same tensor (--encoding poisson --encoding-seed S draws the "
        "spikes once for all runs); for a recorded run, record it on the plan's inputs")
