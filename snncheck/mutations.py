"""The bug catalog: functions that inject one known conversion bug into a correct conversion.

    int_net = mutations.apply(conv.network, float_net, {"name": "bias_unscaled"}, conv)

Each bug class names the diagnosis code it should produce (`CATALOG[name].code`) and the spiking layer it lands on
(`target(...)`), so tests and case files can check that the top diagnosis names the right code and layer.
spec: {"name": <bug class>, "layer": <spiking layer or its Conv/Linear; default: the first applicable>,
"factor": <number, where the bug has one>}. Mis-timing is not a network mutation: it is how PAIBox is built
(`run_options("timing")` -> {"timing": "flat"}, i.e. tick_wait_start=1 everywhere).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from . import ir
from .convert import Conversion, round_saturate
from .diagnose.static import flattened_shape
from .errors import InputError, require


@dataclass(frozen=True)
class Mutation:
    description: str
    code: str                          # the diagnosis code that names this bug
    applies: Callable                  # (Target) -> bool
    inject: Optional[Callable] = None  # (Target, factor) -> None, edits the target's B layers in place
    factor: Optional[float] = None     # default factor, where the bug has one


@dataclass
class Target:
    """One spiking layer of B and what the mutation needs to know about it."""
    index: int                 # position among the spiking layers
    synapse: object            # B's Conv2d/Linear (a copy, edited in place)
    neuron: object             # B's neuron (a copy, edited in place)
    float_synapse: object      # A's synapse, BatchNorm folded
    unfolded: object           # A's synapse before folding
    batchnorm: Optional[object]
    flatten_shape: Optional[tuple]
    s_w: float                 # the conversion's weight scale for this layer
    s_in: float                # the input scale (first layer) or 1

    @property
    def k(self) -> float:
        return self.s_w * self.s_in


# --------------------------------------------------------------------------------------------- the bugs
def _vthr(t: Target, f: float):
    t.neuron.threshold = max(1, int(round(t.neuron.threshold * f)))


def _bias_unscaled(t: Target, f: float):
    t.synapse.bias = np.rint(t.synapse.bias / f).astype(np.int64)


def _input_scale(t: Target, f: float):
    if t.synapse.bias is not None:
        _bias_unscaled(t, f)
    _vthr(t, 1.0 / f)


def _wrap(t: Target, f: float):
    """What `(w * s).to(torch.int8)` does with a scale f times too large: truncate, then wrap modulo 256."""
    w = np.trunc(np.asarray(t.float_synapse.weight, np.float64) * t.s_w * f).astype(np.int64)
    t.synapse.weight = (((w + 128) % 256) - 128).astype(np.int8)
    if t.synapse.bias is not None:
        t.synapse.bias = np.rint(np.asarray(t.float_synapse.bias, np.float64) * t.k * f).astype(np.int64)
    t.neuron.threshold = max(1, int(round(float(t.neuron.threshold) * f)))


def _truncate(t: Target, f: float):
    w = np.asarray(t.float_synapse.weight, np.float64) * t.s_w
    t.synapse.weight = np.clip(np.trunc(w), -128, 127).astype(np.int8)
    if t.synapse.bias is not None:
        t.synapse.bias = np.trunc(np.asarray(t.float_synapse.bias, np.float64) * t.k).astype(np.int64)


def _reset(t: Target, f: float):
    t.neuron.v_reset = 0 if t.neuron.v_reset is None else None
    t.neuron.v_init = None


def _flatten(t: Target, f: float):
    c, h, w = t.flatten_shape
    o = t.synapse.weight.shape[0]
    t.synapse.weight = np.ascontiguousarray(t.synapse.weight.reshape(o, c, h, w).transpose(0, 2, 3, 1).reshape(o, -1))


def _bn_unfolded(t: Target, f: float):
    """Weights (and bias) quantized from the conv before folding its BatchNorm, at their own full-range scale."""
    w = np.asarray(t.unfolded.weight, np.float64)
    s = 127.0 / float(np.abs(w).max())
    t.synapse.weight = round_saturate(w * s).astype(np.int8)
    b = t.unfolded.bias
    t.synapse.bias = None if b is None else np.rint(np.asarray(b, np.float64) * s * t.s_in).astype(np.int64)
    t.neuron.threshold = max(1, int(round(float(t.neuron.threshold) / t.k * s * t.s_in)))


def _prenorm(t: Target, f: float):
    w = np.asarray(t.float_synapse.weight, np.float64) * t.s_w * f
    t.synapse.weight = round_saturate(w).astype(np.int8)


def _transpose(t: Target, f: float):
    t.synapse.weight = np.ascontiguousarray(t.synapse.weight.T.reshape(t.synapse.weight.shape))


def _is_linear(t):
    return isinstance(t.synapse, ir.Linear)


CATALOG = {
    "vthr_scale": Mutation("the threshold multiplied by a factor that the weights and bias do not carry",
                           "vthr_scale", lambda t: True, _vthr, 2.0),
    "bias_unscaled": Mutation("the first layer's bias not multiplied by the input scale (the seed's 0-255 story: "
                              "only the threshold got x255)", "bias_scale",
                              lambda t: t.index == 0 and t.synapse.bias is not None and np.any(t.synapse.bias)
                              and t.s_in != 1, _bias_unscaled, None),
    "input_scale": Mutation("the first layer converted as if the input were not scaled (bias and threshold miss "
                            "x input scale) while it is fed 0-255", "input_scale",
                            lambda t: t.index == 0 and t.s_in != 1, _input_scale, None),
    "int8_wrap": Mutation("weights scaled by a factor too large and cast with .to(torch.int8): truncated and "
                          "wrapped around", "weight_overflow", lambda t: True, _wrap, 2.0),
    "truncation": Mutation("weights and bias truncated toward zero instead of rounded", "rounding",
                           lambda t: True, _truncate, None),
    "reset_mode": Mutation("the layer resets the other way (PAIBox's IF resets softly unless reset_v is an int)",
                           "reset_mode", lambda t: True, _reset, None),
    "flatten_order": Mutation("the Linear after a Flatten takes its inputs in HWC order instead of CHW",
                              "flatten_order", lambda t: _is_linear(t) and t.flatten_shape is not None, _flatten,
                              None),
    "bn_not_folded": Mutation("weights taken before BatchNorm folding (scaled, but without the BatchNorm)",
                              "bn_not_folded", lambda t: t.batchnorm is not None, _bn_unfolded, None),
    "prenorm_weights": Mutation("weights exported before normalisation: a scale the bias and threshold do not "
                                "carry", "weight_scale", lambda t: True, _prenorm, 0.25),
    "transposed": Mutation("a Linear's weight matrix stored transposed ((in, out), PAIBox FullConn layout)",
                           "transposed_weights", _is_linear, _transpose, None),
    "timing": Mutation("PAIBox built with tick_wait_start=1 everywhere (not a network change: run option)",
                       "timing", lambda t: t.index == 1, None, None),
}


def run_options(name: str) -> dict:
    """Runner options a bug class needs instead of a network change (the mis-timed PAIBox build)."""
    return {"timing": "flat"} if name == "timing" else {}


# --------------------------------------------------------------------------------------------- applying
def apply(int_net: ir.Network, float_net: ir.Network, spec: dict, conversion: Conversion) -> ir.Network:
    """A copy of `int_net` (a correct conversion of `float_net`) with the bug class `spec["name"]` injected."""
    name = spec.get("name")
    require(name in CATALOG, f"unknown mutation {name!r}; known: {', '.join(CATALOG)}")
    bug = CATALOG[name]
    require(bug.inject is not None, f"mutation {name!r} is not a network change: run PAIBox with "
                                    f"{run_options(name)} (case: [run] timing = \"flat\")")
    net = ir.Network([ir.copy_layer(l) for l in int_net.layers], int_net.input_shape, f"{int_net.name}-{name}",
                     int_net.input_scale)
    t = _pick(net, float_net, conversion, name, spec.get("layer"))
    factor = float(spec.get("factor", bug.factor if bug.factor is not None else conversion.input_scale))
    require(np.isfinite(factor) and factor > 0, f"mutation {name!r}: factor must be positive, got {factor}")
    require(factor != 1 or name not in ("bias_unscaled", "input_scale", "vthr_scale", "prenorm_weights"),
            f"mutation {name!r} with factor 1 changes nothing")
    bug.inject(t, factor)
    return net


def target(int_net: ir.Network, float_net: ir.Network, conversion: Conversion, name: str,
           layer: Optional[str] = None) -> str:
    """The spiking layer that mutation `name` (on `layer`, or the first applicable) lands on."""
    return _pick(int_net, float_net, conversion, name, layer).neuron.name


def applicable(int_net: ir.Network, float_net: ir.Network, conversion: Conversion) -> list:
    """The bug classes that apply somewhere in this network."""
    out = []
    for name in CATALOG:
        try:
            _pick(int_net, float_net, conversion, name, None)
            out.append(name)
        except InputError:
            pass
    return out


def _pick(net: ir.Network, float_net: ir.Network, conversion: Conversion, name: str, layer: Optional[str]):
    bug = CATALOG[name]
    targets = list(_targets(net, float_net, conversion))
    if layer is not None:
        chosen = [t for t in targets if layer in (t.neuron.name, t.synapse.name)]
        require(chosen, f"mutation {name!r}: no spiking layer or synapse named {layer!r}; "
                        f"spiking layers: {', '.join(t.neuron.name for t in targets)}")
        require(bug.applies(chosen[0]), f"mutation {name!r} does not apply to {layer!r}")
        return chosen[0]
    for t in targets:
        if bug.applies(t):
            return t
    raise InputError(f"mutation {name!r} applies to no layer of {net.name!r}")


def _targets(net: ir.Network, float_net: ir.Network, conversion: Conversion):
    folded = ir.fold_batchnorm(float_net)
    a_layers = {l.name: l for l in folded.layers}
    names = [l.name for l in float_net.layers]
    for i, (name, seg) in enumerate(ir.segments(net)):
        syn = next(l for l in seg if isinstance(l, ir.SYNAPSE_TYPES))
        j = names.index(syn.name)
        nxt = float_net.layers[j + 1] if j + 1 < len(names) else None
        yield Target(i, syn, seg[-1], a_layers[syn.name], float_net.layers[j],
                     nxt if isinstance(nxt, ir.BatchNorm) else None, flattened_shape(float_net, seg),
                     float(conversion.scales[syn.name]), conversion.input_scale if i == 0 else 1.0)
