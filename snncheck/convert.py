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

from .runners.paibox import THRESHOLD_MAX

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


def rule_percentile(weight: np.ndarray, bias: Optional[np.ndarray], percentile: float = 99.9, **_) -> float:
    """s_w = 127 / the 99.9th percentile of |w|: the few largest weights saturate, the rest gain resolution."""
    m = float(np.percentile(np.abs(weight), percentile))
    return INT8_MAX / m if m > 0 else rule_max(weight, bias)


SEARCH_FACTORS = tuple(2 ** (i / 4) for i in range(9))     # 1 ... 4 times the full-range scale


def rule_search(weight: np.ndarray, bias: Optional[np.ndarray], evaluate: Optional[Callable] = None,
                layer: str = "?", **_) -> float:
    """Data-aware: of s_w = f * 127/max|w| (f from 1 to 4, larger f saturates more weights but rounds the rest
    finer), the one whose integer layer, fed the float run's own input spikes on calibration data, misses the
    fewest of the float layer's spikes (ties: the smallest f)."""
    if evaluate is None:
        raise InputError(f"rule 'search' needs calibration inputs to convert {layer!r} "
                         "(convert(..., calibration=X); CLI: --calibration)")
    base = rule_max(weight, bias)
    misses = [evaluate(base * f) for f in SEARCH_FACTORS]
    return base * SEARCH_FACTORS[int(np.argmin(misses))]


RULES: dict = {"seed": rule_seed, "max": rule_max, "percentile": rule_percentile, "search": rule_search}
DATA_AWARE = {"search"}


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
            calibration: Optional[np.ndarray] = None, bias_correction: Optional[bool] = None) -> Conversion:
    """Folds BatchNorm, then scales each Conv/Linear + neuron pair to integers (see module docstring).

    reset: "hard"/"soft" overrides the float network's reset mode (None keeps it).
    calibration: optional float inputs [N, T, ...] that data-aware rules ("search") use.
    bias_correction: with calibration, add to each integer bias the mean rounding error of its layer's input
    where that loses fewer spikes (default: on for the data-aware rules).
    """
    require(rule in RULES, f"unknown conversion rule {rule!r}; known: {', '.join(sorted(RULES))}")
    require(reset in (None, "hard", "soft"), f"reset must be 'hard' or 'soft', got {reset!r}")
    require(np.isfinite(input_scale) and input_scale > 0, f"input scale must be positive, got {input_scale}")
    net = ir.fold_batchnorm(net)
    correct = bias_correction if bias_correction is not None else rule in DATA_AWARE
    probe = _Calibration(net, calibration, float(input_scale), reset) \
        if calibration is not None and (rule in DATA_AWARE or correct) else None   # else: the rule's own data
    layers, scales, vthr, s_in = [], {}, [], float(input_scale)
    for name, seg in ir.segments(net):
        syn = _only_synapse(seg)
        s_w = RULES[rule](syn.weight, syn.bias, threshold=seg[-1].threshold, s_in=s_in, layer=syn.name,
                          network=net, calibration=calibration,
                          evaluate=probe.evaluator(name, seg, s_in) if probe else None)
        scales[syn.name] = s_w
        seg_int = scale_segment(seg, s_w, s_in, reset)
        if probe and correct:
            seg_int = probe.correct_bias(name, seg, seg_int, s_in * s_w)
        layers += seg_int
        vthr.append(int(layers[-1].threshold))
        s_in = 1.0
    layers += [ir.copy_layer(l) for l in net.layers[len(layers):]]
    out = dataclasses.replace(net, layers=layers, input_scale=float(input_scale), name=f"{net.name}-int")
    _check_ranges(out, input_scale)
    modes = {"soft" if l.soft_reset else "hard" for l in out.neurons}
    return Conversion(out, scales, float(input_scale), rule, vthr, modes.pop() if len(modes) == 1 else "mixed")


def _only_synapse(seg: list):
    """The one Conv2d/Linear feeding a segment's neuron; an IF is required (PAIBox has no multiplicative leak)."""
    neuron = seg[-1]
    if not isinstance(neuron, (ir.IF, ir.AdditiveLIF)):
        raise InputError(f"layer {neuron.name!r}: only IF neurons convert to PAIBox integers "
                         f"({type(neuron).__name__} has a multiplicative leak)")
    syns = [l for l in seg if isinstance(l, ir.SYNAPSE_TYPES)]
    require(syns, f"layer {neuron.name!r} is not fed by a Conv2d/Linear")
    require(len(syns) == 1, f"layers {', '.join(l.name for l in syns)} feed {neuron.name!r} without a neuron in "
                            "between: they cannot become one integer layer")
    return syns[0]


def scale_segment(seg: list, s_w: float, s_in: float, reset: Optional[str] = None) -> list:
    """A segment (pools, flatten, its synapse, its neuron) with the synapse and neuron scaled to integers."""
    out = []
    for l in seg:
        if isinstance(l, ir.SYNAPSE_TYPES):
            l = scale_synapse(l, s_w, s_in)
        elif isinstance(l, ir.NEURON_TYPES):
            l = scale_neuron(l, s_in * s_w, reset)
        else:
            l = ir.copy_layer(l)
        out.append(l)
    return out


class _Calibration:
    """The float network's run on calibration inputs, to score one integer layer in isolation: fed the float
    run's own input to that layer, how many of the float layer's spikes does it miss?"""

    def __init__(self, net: ir.Network, inputs: np.ndarray, input_scale: float, reset: Optional[str]):
        from .diagnose.dynamic import segment_inputs
        from .runners.base import check_inputs
        from .runners.reference import ReferenceRunner
        inputs = check_inputs(net, inputs)
        self.run = ReferenceRunner(net, "calibration", record_v=False).run(inputs)
        self.float_inputs = segment_inputs(net, self.run, inputs)
        self.inputs = segment_inputs(net, self.run, np.rint(np.asarray(inputs, np.float64) * input_scale))
        self.reset = reset

    def misses(self, name: str, seg_int: list) -> int:
        from .runners.reference import run_segment
        spikes = run_segment(seg_int, self.inputs[name], record_v=False)[0]
        return int(np.sum(spikes != self.run.layer(name).spikes))

    def evaluator(self, name: str, seg: list, s_in: float) -> Callable:
        return lambda s_w: self.misses(name, scale_segment(seg, s_w, s_in, self.reset))

    def correct_bias(self, name: str, seg: list, seg_int: list, k: float) -> list:
        """Bias correction: shift the integer bias by the mean error of the synaptic input, k * X_float - X_int,
        over the calibration data (per output channel), if that misses fewer spikes."""
        from .runners.reference import synaptic_input
        err = k * synaptic_input(seg, self.float_inputs[name]).astype(np.float64) \
            - synaptic_input(seg_int, self.inputs[name])
        err = err.mean(axis=(0, 1) + tuple(range(3, err.ndim)))       # per channel / per output neuron
        syn = _only_synapse(seg_int)
        bias = (np.zeros(len(err), np.int64) if syn.bias is None else syn.bias) + np.rint(err).astype(np.int64)
        fixed = [dataclasses.replace(l, bias=bias) if l is syn else l for l in seg_int]
        return fixed if self.misses(name, fixed) < self.misses(name, seg_int) else seg_int


def _check_ranges(net: ir.Network, input_scale: float) -> None:
    """Thresholds and biases must fit PAIBox's registers (threshold 0..2**29-1, 30-bit signed bias)."""
    for l in net.layers:
        if isinstance(l, ir.NEURON_TYPES):
            require(l.threshold <= THRESHOLD_MAX,
                    f"layer {l.name!r}: integer threshold {int(l.threshold)} is beyond PAIBox's maximum {THRESHOLD_MAX} "
                    f"(input scale {input_scale:g}); use a smaller input scale or weight scale")
        elif isinstance(l, ir.SYNAPSE_TYPES) and l.bias is not None:
            big = float(np.abs(l.bias).max())
            require(big <= THRESHOLD_MAX, f"layer {l.name!r}: integer bias reaches {big:.0f}, beyond PAIBox's "
                                          f"30-bit range (input scale {input_scale:g})")


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

