"""Diagnoses: what went wrong, where, with the numbers that show it and the fix.

Codes are a contract (DESIGN.md): a code is never reused for another meaning. Severity "error" makes a report
inconsistent; "warning" and "info" inform. A correct conversion gets no "error".
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

SEVERITIES = ("error", "warning", "info")

CODES = {
    "vthr_scale": "a layer's threshold is scaled differently from its weights and bias",
    "bias_scale": "a layer's bias is scaled differently from its weights and threshold",
    "input_scale": "the first layer's parameters do not account for the input's scale",
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
}


@dataclass
class Diagnosis:
    code: str
    layer: Optional[str]
    severity: str
    message: str
    evidence: dict = field(default_factory=dict)
    fix: str = ""

    def __post_init__(self):
        assert self.code in CODES, f"unknown diagnosis code {self.code!r}"
        assert self.severity in SEVERITIES, self.severity

    def to_dict(self) -> dict:
        return asdict(self)


def rank(diagnoses: list) -> list:
    """Most severe first; within a severity, keep the order found (earlier layers first)."""
    return sorted(diagnoses, key=lambda d: SEVERITIES.index(d.severity))
