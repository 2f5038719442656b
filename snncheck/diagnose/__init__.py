"""Diagnoses: what went wrong, where, with the numbers that show it and the fix.

Codes are a contract (docs/diagnoses.md): a code is never reused for another meaning. Severity "error" makes a report
inconsistent; "warning" and "info" inform. A correct conversion gets no "error".
"""
from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from typing import Optional

SEVERITIES = ("error", "warning", "info")

CODES = {
    "vthr_scale": "a layer's threshold is scaled differently from its weights and bias",
    "bias_scale": "a layer's bias is scaled differently from its weights and threshold",
    "input_scale": "the first layer's parameters do not account for the input's scale, or B's rounded input loses "
                   "A's (binarised analog inputs, values outside uint8)",
    "weight_overflow": "weights wrapped around or were clipped beyond the int8 range",
    "rounding": "weights were truncated instead of rounded",
    "quantization_error": "quantization error beyond what rounding explains",
    "reset_mode": "hard and soft reset disagree between the runs",
    "timing": "a pipelined layer answers at another step than expected",
    "flatten_order": "a flattened layer's weights are permuted (CHW vs HWC)",
    "bn_not_folded": "weights were exported before BatchNorm folding",
    "silent_layer": "a layer never fires (or always fires)",
    "unsupported": "a construct one simulator cannot express",
    "simulator_mismatch": "two simulators disagree on the same integer network, with no other explanation",
    "transposed_weights": "a layer's weight matrix is transposed",
    "float_rounding": "float32 runs differ only at spikes within rounding of the threshold",
    "weight_scale": "a layer's weights are scaled differently from its bias and threshold (e.g. exported before normalisation)",
    "readout_lost": "a readout computed off-chip (a Linear head) is all zeros in B where A's is not",
    "readout_mismatch": "two runs agree on every spike but compute a readout (a vote, a Linear head) differently",
    "channel_weights": "some output channels' weights differ from the layer's (negated, or another scale)",
    "kernel_orientation": "a convolution's kernels are rotated or transposed (convolution vs cross-correlation)",
    "weight_grid": "a layer's weights sit on a grid coarser than one integer step (multiples of 2^k)",
    "vacuous": "what was compared cannot show a difference (layers that barely fire, a pair not run)",
    "initial_membrane": "two SNNs (of one ANN, or any two runs) start their neurons at different membrane potentials (theta/2 vs 0)",
    "fire_rule": "one run fires on H > threshold where the other fires on H >= threshold (spikes differ at ties)",
    "leaky_if": "an integrate-and-fire neuron runs as a leaky one (an importer's default leak)",
    "dt_scaling": "a layer's input is scaled by dt or 1/dt (NIR's r or tau read with another time step)",
    "input_encoding": "the two sides of a pair received different inputs (e.g. Poisson spikes drawn once per simulator)",
}


@dataclass(frozen=True)
class Diagnosis:
    code: str
    layer: Optional[str]
    severity: str
    message: str
    evidence: dict = field(default_factory=dict)
    fix: str = ""

    def __post_init__(self):
        if self.code not in CODES:
            raise ValueError(f"unknown diagnosis code {self.code!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    def replace(self, **changes) -> "Diagnosis":
        return dataclasses.replace(self, **changes)


def verdict(diagnoses) -> str:
    """"inconsistent" with any error; else "inconclusive" when something compared could not show a difference
    (`vacuous`, snncheck.diagnose.vacuity); else "consistent"."""
    if any(d.severity == "error" for d in diagnoses):
        return "inconsistent"
    return "inconclusive" if any(d.code == "vacuous" for d in diagnoses) else "consistent"


def rank(diagnoses: list) -> list:
    """Most severe first; within a severity, keep the order found (earlier layers first)."""
    return sorted(diagnoses, key=lambda d: SEVERITIES.index(d.severity))


USER_FIXES = {
    "timing": lambda names: "; in your network: " + ", ".join(names),
    "reset_mode": lambda node: f"; in your network: give {node} reset_v=0 (a Python int; without it PAIBox resets "
                               "softly)",
    "bias_scale": lambda node: f"; in your network: the bias (leak_v/bias) of {node}",
    "vthr_scale": lambda node: f"; in your network: the threshold of {node}",
}


def phrase_for_user(diagnoses: list, user_nodes: Optional[dict]) -> list:
    """When B is the user's own network, each fix also says which of the user's nodes to change:
    `user_nodes` = {code: {layer: what to name}} (from snncheck.frontends.paibox)."""
    if not user_nodes:
        return list(diagnoses)
    out = []
    for d in diagnoses:
        named = user_nodes.get(d.code, {}).get(d.layer)
        out.append(d.replace(fix=d.fix + USER_FIXES[d.code](named)) if named and d.code in USER_FIXES else d)
    return out
