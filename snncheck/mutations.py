"""The bug catalog: functions that inject one known conversion bug into a correct conversion.

    int_graph = mutations.apply(conv.graph, float_graph, {"name": "bias_unscaled"}, conv)

Each bug class names the diagnosis code it should produce (`CATALOG[name].code`) and the spiking layer it lands on
(`target(...)`), so tests and case files can check that the top diagnosis names the right code and layer.
spec: {"name": <bug class>, "layer": <spiking layer or its Conv/Linear; default: the first applicable>,
"factor": <number, where the bug has one>}. A bug lands on a layer's main synapse (the one with the most weights)
and its neuron. Primitives are frozen: a mutation builds replaced nodes and a new graph, never edits one.
Mis-timing is not a network mutation: it is how PAIBox is built (`run_options("timing")` -> {"timing": "flat"},
i.e. tick_wait_start=1 everywhere).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from .convert import Conversion, prepare, primary, round_saturate, weighted_terms
from .diagnose.static import flattened_shape
from .errors import InputError, require
from .graph import Graph, folded_from
from .graph import primitives as P


@dataclass(frozen=True)
class Mutation:
    description: str
    code: str                          # the diagnosis code that names this bug
    applies: Callable                  # (Target) -> bool
    inject: Optional[Callable] = None  # (Target, factor) -> {node name: replaced primitive}
    factor: Optional[float] = None     # default factor, where the bug has one
    inputs: dict = field(default_factory=dict)   # how B is fed instead, for an input bug: {"input_scale": s}


@dataclass(frozen=True, eq=False)
class Target:
    """One spiking layer of B and what a mutation needs to know about it."""
    index: int                 # position among the spiking layers
    neuron: str
    synapse: str               # the layer's main Conv2d/Linear
    neuron_b: object           # B's neuron
    synapse_b: object          # B's synapse
    float_synapse: object      # A's synapse, BatchNorm folded
    unfolded: object           # A's synapse before folding
    batchnorm: Optional[str]   # the BatchNorm folded into it in A
    flatten_shape: Optional[tuple]
    s_w: float                 # the conversion's weight scale for the synapse
    s_in: float                # the amplitude of its source (the input scale for the input, 1 for spikes)
    first: bool                # fed by the input

    @property
    def k(self) -> float:
        return self.s_w * self.s_in

    def synapse_with(self, **changes) -> dict:
        return {self.synapse: dataclasses.replace(self.synapse_b, **changes)}

    def neuron_with(self, **changes) -> dict:
        return {self.neuron: dataclasses.replace(self.neuron_b, **changes)}


# --------------------------------------------------------------------------------------------- the bugs
def _times(threshold, f: float) -> int:
    return max(1, int(round(float(threshold) * f)))


def _vthr(t: Target, f: float) -> dict:
    return t.neuron_with(threshold=_times(t.neuron_b.threshold, f))


def _bias_unscaled(t: Target, f: float) -> dict:
    return t.synapse_with(bias=np.rint(np.asarray(t.synapse_b.bias) / f).astype(np.int64))


def _input_scale(t: Target, f: float) -> dict:
    out = _vthr(t, 1.0 / f)
    if t.synapse_b.bias is not None:
        out.update(_bias_unscaled(t, f))
    return out


def _wrap(t: Target, f: float) -> dict:
    """What `(w * s).to(torch.int8)` does with a scale f times too large: truncate, then wrap modulo 256."""
    w = np.trunc(np.asarray(t.float_synapse.weight, np.float64) * t.s_w * f).astype(np.int64)
    changes = {"weight": (((w + 128) % 256) - 128).astype(np.int8)}
    if t.synapse_b.bias is not None and t.float_synapse.bias is not None:
        changes["bias"] = np.rint(np.asarray(t.float_synapse.bias, np.float64) * t.k * f).astype(np.int64)
    return dict(t.synapse_with(**changes), **_vthr(t, f))


def _truncate(t: Target, f: float) -> dict:
    w = np.asarray(t.float_synapse.weight, np.float64) * t.s_w
    changes = {"weight": np.clip(np.trunc(w), -128, 127).astype(np.int8)}
    if t.synapse_b.bias is not None and t.float_synapse.bias is not None:
        changes["bias"] = np.trunc(np.asarray(t.float_synapse.bias, np.float64) * t.k).astype(np.int64)
    return t.synapse_with(**changes)


def _reset(t: Target, f: float) -> dict:
    return t.neuron_with(reset="soft" if t.neuron_b.reset == "hard" else "hard", v_init=None)


def _flatten(t: Target, f: float) -> dict:
    c, h, w = t.flatten_shape
    weight = np.asarray(t.synapse_b.weight)
    o = weight.shape[0]
    return t.synapse_with(weight=np.ascontiguousarray(weight.reshape(o, c, h, w).transpose(0, 2, 3, 1).reshape(o, -1)))


def _bn_unfolded(t: Target, f: float) -> dict:
    """Weights (and bias) quantized from the conv before folding its BatchNorm, at their own full-range scale."""
    w = np.asarray(t.unfolded.weight, np.float64)
    s = 127.0 / float(np.abs(w).max())
    b = t.unfolded.bias
    syn = t.synapse_with(weight=round_saturate(w * s).astype(np.int8),
                         bias=None if b is None else np.rint(np.asarray(b, np.float64) * s * t.s_in).astype(np.int64))
    return dict(syn, **t.neuron_with(threshold=_times(float(t.neuron_b.threshold) / t.k * s * t.s_in, 1.0)))


def _prenorm(t: Target, f: float) -> dict:
    w = np.asarray(t.float_synapse.weight, np.float64) * t.s_w * f
    return t.synapse_with(weight=round_saturate(w).astype(np.int8))


def _transpose(t: Target, f: float) -> dict:
    weight = np.asarray(t.synapse_b.weight)
    return t.synapse_with(weight=np.ascontiguousarray(weight.T.reshape(weight.shape)))


def _is_linear(t: Target) -> bool:
    return isinstance(t.synapse_b, P.Linear)


def channel(t: Target) -> int:
    """The output channel a one-channel bug lands on: the one with the most weight (its fault shows most)."""
    w = np.asarray(t.synapse_b.weight, np.float64)
    return int(np.argmax(np.abs(w.reshape(w.shape[0], -1)).sum(axis=1)))


def _negate_channel(t: Target, f: float) -> dict:
    c = channel(t)
    weight = np.array(t.synapse_b.weight, copy=True)
    weight[c] = -weight[c]
    return t.synapse_with(weight=weight)


def _scale_channel(t: Target, f: float) -> dict:
    c = channel(t)
    weight = np.array(t.synapse_b.weight, copy=True)
    weight[c] = round_saturate(np.asarray(t.float_synapse.weight[c], np.float64) * t.s_w * f)
    return t.synapse_with(weight=weight)


def _flip_kernel(t: Target, f: float) -> dict:
    return t.synapse_with(weight=np.ascontiguousarray(np.asarray(t.synapse_b.weight)[..., ::-1, ::-1]))


def _is_oriented(t: Target) -> bool:
    """A Conv2d whose kernels a rotation changes."""
    w = np.asarray(t.synapse_b.weight)
    return isinstance(t.synapse_b, P.Conv2d) and w.shape[-1] * w.shape[-2] > 1 and \
        not np.array_equal(w, w[..., ::-1, ::-1])


def _grid(t: Target, f: float) -> dict:
    """Weights truncated to multiples of f (an exporter that drops the low bits)."""
    w = np.asarray(t.float_synapse.weight, np.float64) * t.s_w
    return t.synapse_with(weight=(np.clip(np.trunc(w / f), -128 // f, 127 // f) * f).astype(np.int8))


CATALOG = {
    "vthr_scale": Mutation("the threshold multiplied by a factor that the weights and bias do not carry",
                           "vthr_scale", lambda t: True, _vthr, 2.0),
    "bias_unscaled": Mutation("the first layer's bias not multiplied by the input scale (the seed's 0-255 story: "
                              "only the threshold got x255)", "bias_scale",
                              lambda t: t.first and t.synapse_b.bias is not None and bool(np.any(t.synapse_b.bias))
                              and t.s_in != 1, _bias_unscaled, None),
    "input_scale": Mutation("the first layer converted as if the input were not scaled (bias and threshold miss "
                            "x input scale) while it is fed 0-255", "input_scale",
                            lambda t: t.first and t.s_in != 1, _input_scale, None),
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
    "channel_negated": Mutation("one output channel's weights negated (the one with the most weight)",
                                "channel_weights", lambda t: np.shape(t.synapse_b.weight)[0] > 1, _negate_channel,
                                None),
    "channel_scaled": Mutation("one output channel quantized at another scale (the one with the most weight)",
                               "channel_weights", lambda t: np.shape(t.synapse_b.weight)[0] > 1, _scale_channel,
                               0.8),
    "kernel_flipped": Mutation("a Conv2d's kernels rotated by 180 degrees (convolution taken for cross-correlation "
                               "on export)", "kernel_orientation", _is_oriented, _flip_kernel, None),
    "vthr_step": Mutation("the threshold a few percent too high (one step of a small integer multiplier)",
                          "vthr_scale", lambda t: True, _vthr, 1.03),
    "weight_grid": Mutation("weights truncated to multiples of 8 (the low bits dropped)", "weight_grid",
                            lambda t: True, _grid, 8.0),
    "binarised_input": Mutation("analog 0..1 inputs fed at input scale 1: B receives round(x), 0 or 1 "
                                "(not a network change: the conversion and B's input at scale 1)", "input_scale",
                                lambda t: t.first, None, None, {"input_scale": 1.0}),
    "timing": Mutation("PAIBox built with tick_wait_start=1 everywhere (not a network change: run option)",
                       "timing", lambda t: t.index == 1, None, None),
}


def run_options(name: str) -> dict:
    """Backend options a bug class needs instead of a network change (the mis-timed PAIBox build)."""
    return {"timing": "flat"} if name == "timing" else {}


# --------------------------------------------------------------------------------------------- applying
def apply(int_graph: Graph, float_graph: Graph, spec: dict, conversion: Conversion) -> Graph:
    """A new graph: `int_graph` (a correct conversion of `float_graph`) with the bug class `spec["name"]`
    injected. `int_graph` itself is left as it is."""
    name = spec.get("name")
    require(name in CATALOG, lambda: f"unknown mutation {name!r}; known: {', '.join(CATALOG)}")
    bug = CATALOG[name]
    require(bug.inject is not None, lambda: f"mutation {name!r} is not a network change: " + (
        f"convert and feed B with {bug.inputs}" if bug.inputs else
        f"run PAIBox with {run_options(name)} (case: [run] timing = \"flat\")"))
    t = _pick(int_graph, float_graph, conversion, name, spec.get("layer"))
    factor = float(spec.get("factor", bug.factor if bug.factor is not None else conversion.input_scale))
    require(bool(np.isfinite(factor)) and factor > 0,
            lambda: f"mutation {name!r}: factor must be positive, got {factor}")
    require(factor != 1 or name not in ("bias_unscaled", "input_scale", "vthr_scale", "prenorm_weights", "vthr_step",
                                        "weight_grid", "channel_scaled"),
            lambda: f"mutation {name!r} with factor 1 changes nothing")
    return int_graph.replace(bug.inject(t, factor), name=f"{int_graph.name}-{name}")


def target(int_graph: Graph, float_graph: Graph, conversion: Conversion, name: str,
           layer: Optional[str] = None) -> str:
    """The spiking layer that mutation `name` (on `layer`, or the first applicable) lands on."""
    return _pick(int_graph, float_graph, conversion, name, layer).neuron


def layers(int_graph: Graph, float_graph: Graph, conversion: Conversion, name: str) -> list:
    """The spiking layers bug class `name` applies to, in order."""
    bug = CATALOG[name]
    return [t.neuron for t in _targets(int_graph, float_graph, conversion) if bug.applies(t)]


def applicable(int_graph: Graph, float_graph: Graph, conversion: Conversion) -> list:
    """The bug classes that apply somewhere in this network."""
    out = []
    for name in CATALOG:
        try:
            _pick(int_graph, float_graph, conversion, name, None)
            out.append(name)
        except InputError:
            pass
    return out


def _pick(int_graph: Graph, float_graph: Graph, conversion: Conversion, name: str, layer: Optional[str]) -> Target:
    require(name in CATALOG, lambda: f"unknown mutation {name!r}; known: {', '.join(CATALOG)}")
    bug = CATALOG[name]
    targets = list(_targets(int_graph, float_graph, conversion))
    if layer is not None:
        chosen = [t for t in targets if layer in (t.neuron, t.synapse)]
        require(chosen, lambda: f"mutation {name!r}: no spiking layer or synapse named {layer!r}; "
                                f"spiking layers: {', '.join(t.neuron for t in targets)}")
        require(bug.applies(chosen[0]), lambda: f"mutation {name!r} does not apply to {layer!r}")
        return chosen[0]
    for t in targets:
        if bug.applies(t):
            return t
    raise InputError(f"mutation {name!r} applies to no layer of {int_graph.name!r}")


def _targets(int_graph: Graph, float_graph: Graph, conversion: Conversion):
    a = prepare(float_graph)
    bns = folded_from(float_graph)
    for i, n in enumerate(a.neurons):
        if n not in int_graph.nodes:
            continue
        try:
            terms = weighted_terms(a, n, conversion.input_scale)
        except InputError:
            continue
        main = primary(a, terms)
        syn = main.weight
        if syn not in int_graph.nodes or syn not in conversion.weight_scales:
            continue
        yield Target(i, n, syn, int_graph.nodes[n], int_graph.nodes[syn], a.nodes[syn], float_graph.nodes[syn],
                     bns.get(syn), flattened_shape(a, main), float(conversion.weight_scales[syn]), main.amplitude,
                     main.source == a.input)
