"""Float network -> integer network for PAIBox, and the deployed checkpoint format of DESIGN.md.

Per synaptic layer l feeding a neuron: input scale s_in (the analog input's scale for the first layer, e.g. 255
for 0-255 pixels, and 1 for spikes), weight scale s_w chosen by a *rule*. Then
    W_int = round(s_w * W)  saturated to int8,   b_int = round(s_in * s_w * b),   theta_int = round(s_in * s_w * theta)
and with hard reset v_reset_int = round(s_in * s_w * v_reset). Bias and threshold carry the same factor, so the
layer keeps its spikes up to rounding; scaling only one of them moves every spike of the layer.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Optional

import numpy as np

from . import ir
from .errors import InputError, require

INT8_MAX = 127


def round_saturate(x: np.ndarray, lo: int = -128, hi: int = 127) -> np.ndarray:
    """Round to nearest (ties to even, as NumPy does), then clip: never truncate, never wrap."""
    return np.clip(np.rint(x), lo, hi)


# ------------------------------------------------------------------------------------------------- rules
def rule_seed(weight: np.ndarray, bias: Optional[np.ndarray], **_) -> float:
    """The seed project's rule: mult = int(127 / max(|w|, |b|)), an integer multiplier."""
    m = float(np.abs(weight).max())
    if bias is not None:
        m = max(m, float(np.abs(bias).max()))
    return float(max(1, int(INT8_MAX / m))) if m > 0 else 1.0


def rule_max(weight: np.ndarray, bias: Optional[np.ndarray], **_) -> float:
    """Full int8 range for the weights alone: s_w = 127 / max|w| (bias lives in a 30-bit register in PAIBox)."""
    m = float(np.abs(weight).max())
    return INT8_MAX / m if m > 0 else 1.0


RULES: dict = {"seed": rule_seed, "max": rule_max}


def register_rule(name: str, fn: Callable) -> None:
    RULES[name] = fn


# ------------------------------------------------------------------------------------------------- convert
@dataclasses.dataclass
class Conversion:
    """An integer network plus what was done to get it."""
    network: ir.Network
    scales: dict          # {synapse layer name: s_w}
    input_scale: float
    rule: str
    vthr: list            # integer thresholds of the spiking layers, in order
    reset: str


def convert(net: ir.Network, input_scale: float = 1.0, rule: str = "max", reset: Optional[str] = None,
            calibration: Optional[np.ndarray] = None) -> Conversion:
    """Folds BatchNorm, then scales each Conv/Linear + neuron pair to integers (see module docstring).

    reset: "hard"/"soft" overrides the float network's reset mode (None keeps it).
    calibration: optional inputs [N, T, ...] that data-aware rules may use.
    """
    require(rule in RULES, f"unknown conversion rule {rule!r}; known: {', '.join(sorted(RULES))}")
    net = ir.fold_batchnorm(net)
    layers, scales, vthr = [], {}, []
    s_in, pending = float(input_scale), None
    for layer in net.layers:
        if isinstance(layer, ir.SYNAPSE_TYPES):
            pending = len(layers)
        elif isinstance(layer, ir.NEURON_TYPES):
            if not isinstance(layer, (ir.IF, ir.AdditiveLIF)):
                raise InputError(f"layer {layer.name!r}: only IF neurons convert to PAIBox integers "
                                 f"({type(layer).__name__} has a multiplicative leak)")
            require(pending is not None, f"layer {layer.name!r} is not fed by a Conv2d/Linear")
            syn = layers[pending]
            s_w = RULES[rule](syn.weight, syn.bias, threshold=layer.threshold, s_in=s_in,
                              layer=syn.name, network=net, calibration=calibration)
            scales[syn.name] = s_w
            layers[pending] = scale_synapse(syn, s_w, s_in)
            layer = scale_neuron(layer, s_in * s_w, reset)
            vthr.append(int(layer.threshold))
            s_in, pending = 1.0, None
        layers.append(layer)
    out = dataclasses.replace(net, layers=layers, input_scale=float(input_scale), name=f"{net.name}-int")
    modes = {"soft" if l.soft_reset else "hard" for l in out.neurons}
    return Conversion(out, scales, float(input_scale), rule, vthr, modes.pop() if len(modes) == 1 else "mixed")


def scale_synapse(layer, s_w: float, s_in: float):
    w = round_saturate(layer.weight.astype(np.float64) * s_w).astype(np.int8)
    b = None if layer.bias is None else np.rint(layer.bias.astype(np.float64) * s_w * s_in).astype(np.int64)
    return dataclasses.replace(layer, weight=w, bias=b)


def scale_neuron(layer: ir.Neuron, k: float, reset: Optional[str] = None) -> ir.Neuron:
    """Threshold, reset value and initial potential times k, rounded (a threshold of at least 1)."""
    soft = reset == "soft" or (reset is None and layer.v_reset is None)
    return dataclasses.replace(
        layer, threshold=max(1, int(np.rint(layer.threshold * k))),
        v_reset=None if soft else int(np.rint((layer.v_reset or 0.0) * k)),
        v_init=None if layer.v_init is None else int(np.rint(layer.v_init * k)))
