"""Float graph -> integer graph for the chip: one layer scale per neuron, shared by every synapse into it.

A neuron's synaptic input is a sum of terms (`Graph.terms`), each a source (the input, a neuron's spikes) seen
through a linear path that carries one weight node (a Conv2d/Linear, or the Scale of an identity shortcut). The
source has an amplitude a: the input scale for the input (255 for 0-1 images fed as 0-255 pixels), 1 for spikes,
that of its input for a max pool. The neuron gets one layer scale k, and each term's weights the weight scale
s_w = k / a, so that every term arrives in the same units k:

    W_int = round(s_w * W) saturated to int8        (fields marked "weight" in `snncheck.graph.primitives`)
    b_int = round(k * b), theta_int = round(k * theta), v_reset, v_init, an additive leak: times k, rounded
                                                    (fields marked "layer")

k is chosen by a rule (`RULES`) per term, the smallest over the terms, so that no term's int8 weights overflow
(beyond what the rule clips on purpose). An identity shortcut (weight 1 in A) is deployed at the scale the merge
neuron's integer threshold implies, s = theta_int / theta_A (the deployed checkpoint format, `snncheck.checkpoint`),
and must fit int8. Bias and threshold carry the same factor as the weights, so the layer keeps its spikes up to
rounding; scaling only one of them moves every spike of the layer.

An average pool next to a synapse of its own becomes a sum pool, its 1/n folded into that synapse's weights
(`snncheck.graph.pooling`), so the 1/n lands in the layer's scale. A readout head (a Conv2d/Linear that feeds no
neuron, computed off-chip from the spikes) is converted like a layer with no neuron: W_int = round(s_w * W) in
int8, b_int = round(k * b) with k = s_w * amplitude, its values then k times A's (`Conversion.readout_scales`).

Refused with the node's name, with the message the PAIBox backend gives for the same construct: multiplicative
leaks (LIF, ParametricLIF: the chip adds its leak), an average pool with no synapse of its own, a readout of two
weight layers; and a neuron with no synapse, two weight layers with no neuron between, integers beyond the chip's
registers.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from .backends.paibox import compose, limits, lower
from .errors import InputError, require
from .graph import Graph, Term, fold_batchnorm
from .graph import primitives as P
from .graph.pooling import SUM_POOLS, sum_pools, why_not_sum

INT8_MIN, INT8_MAX = limits.WEIGHT                  # weights and shortcut factors
THRESHOLD_MAX = limits.THRESHOLD_MAX                # threshold 0 .. 2**29 - 1

CONVERTIBLE = (P.IF, P.AdditiveLIF)       # neurons whose leak (none, or additive) the chip computes exactly
WEIGHTED = P.SYNAPSES + (P.Scale,)        # nodes that carry a term's weights


def round_saturate(x, lo: int = INT8_MIN, hi: int = INT8_MAX) -> np.ndarray:
    """Round to nearest (ties to even, as NumPy does), then clip: never truncate, never wrap."""
    return np.clip(np.rint(x), lo, hi)


def fit_scale(int_w, float_w) -> float:
    """Least-squares s with int_w ~ s * float_w (1.0 when float_w is all zeros)."""
    a, b = np.asarray(float_w, np.float64).ravel(), np.asarray(int_w, np.float64).ravel()
    den = float(a @ a)
    return float(a @ b / den) if den > 0 else 1.0


# ------------------------------------------------------------------------------------------------- rules
def rule_seed(weight: np.ndarray, bias: Optional[np.ndarray], **_) -> float:
    """The seed project's rule: mult = int(127 / max(|w|, |b|)), an integer multiplier."""
    m = float(np.abs(weight).max())
    if bias is not None:
        m = max(m, float(np.abs(bias).max()))
    return float(max(1, int(INT8_MAX / m))) if m > 0 else 1.0


def rule_max(weight: np.ndarray, bias: Optional[np.ndarray], **_) -> float:
    """Full int8 range for the weights alone: s_w = 127 / max|w| (the bias lives in a 30-bit register)."""
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


def register_rule(name: str, fn: Callable, data_aware: bool = False) -> None:
    """A rule `fn(weight, bias, **context) -> s_w` for one synapse. Context: threshold (A's), s_in (the term's
    source amplitude), layer (the synapse), neuron, network (the folded float graph), calibration, and, for
    data-aware rules given calibration inputs, evaluate(s_w) -> spikes the layer misses at that scale."""
    RULES[name] = fn
    if data_aware:
        DATA_AWARE.add(name)


# ------------------------------------------------------------------------------------------------- terms
@dataclass(frozen=True)
class WeightedTerm:
    """One term of a neuron's synaptic input, ready to convert: the source (the input or a neuron), the path from
    it (max pools included), the node that carries its weights and the source's amplitude."""
    source: str
    path: tuple
    weight: str            # a Conv2d/Linear, or the Scale of an identity shortcut
    amplitude: float

    def is_shortcut(self, graph: Graph) -> bool:
        return isinstance(graph.nodes[self.weight], P.Scale)


def source_terms(graph: Graph, node: str) -> list:
    """`graph.terms(node)` with max pools looked through (max(k x) = k max(x) for k > 0): every source is a neuron,
    the input, or a node that is neither (refused by `weighted_terms`)."""
    out = []
    for t in graph.terms(node):
        if isinstance(graph.nodes[t.source], P.MaxPool2d):
            out += [Term(s.source, s.path + (t.source,) + t.path) for s in source_terms(graph, t.source)]
        else:
            out.append(t)
    return out


def weighted_terms(graph: Graph, neuron: str, input_scale: float = 1.0) -> list:
    """[WeightedTerm] of a neuron, or InputError naming it when it cannot be one integer layer."""
    out = []
    for t in source_terms(graph, neuron):
        src = graph.nodes[t.source]
        require(t.source == graph.input or P.is_neuron(src),
                lambda: f"{neuron!r} is fed by {t.source!r} ({src.kind}), which is neither the input nor a spiking "
                        "layer: it has no integer form")
        carriers = [n for n in t.path if isinstance(graph.nodes[n], WEIGHTED)]
        require(carriers, lambda: f"{neuron!r} receives {t.source!r} through no Conv2d/Linear (a neuron with no "
                                  "synapse): it cannot be an integer layer")
        require(len(carriers) == 1, lambda: f"layers {', '.join(carriers)} feed {neuron!r} without a neuron in "
                                            "between: they cannot become one integer layer")
        out.append(WeightedTerm(t.source, t.path, carriers[0],
                                float(input_scale) if t.source == graph.input else 1.0))
    require(any(isinstance(graph.nodes[t.weight], P.SYNAPSES) for t in out),
            lambda: f"{neuron!r} is not fed by a Conv2d/Linear (a neuron with no synapse): it cannot be an integer "
                    "layer")
    return out


def primary(graph: Graph, terms: list) -> WeightedTerm:
    """The term whose synapse has the most weights: the one that best tells a layer's scale."""
    return max((t for t in terms if isinstance(graph.nodes[t.weight], P.SYNAPSES)),
               key=lambda t: graph.nodes[t.weight].weight.size)


def prepare(graph: Graph) -> Graph:
    """A's graph as the integer network is built from it: BatchNorm folded, average pools as sum pools with their
    1/n in the synapse next to them, and an explicit Scale(1) (a one-to-one synapse) on every identity shortcut into
    a merge, named `<add>.shortcut`, that the conversion scales."""
    graph = fold_batchnorm(graph)
    inserts = {}                      # (source, add) edge -> Scale node name
    for n in graph.neurons:
        for t in source_terms(graph, n):
            if any(isinstance(graph.nodes[p], WEIGHTED) for p in t.path):
                continue
            adds = [i for i, p in enumerate(t.path) if isinstance(graph.nodes[p], P.Add)]
            if not adds:
                continue              # no merge: a neuron with no synapse, refused by convert
            i = adds[-1]              # the merge itself: earlier adds of spikes may also feed weighted terms
            edge = (t.path[i - 1] if i else t.source, t.path[i])
            if edge not in inserts:
                name, j = f"{t.path[i]}.shortcut", 1
                while name in graph.nodes or name in inserts.values():
                    name, j = f"{t.path[i]}.shortcut{j}", j + 1
                inserts[edge] = name
    if not inserts:
        return sum_pools(graph)
    nodes = {}
    for n, p in graph.nodes.items():          # each Scale just before its merge, so the order stays readable
        nodes.update({name: P.Scale(1.0) for (_, b), name in inserts.items() if b == n})
        nodes[n] = p
    edges = []
    for a, b in graph.edges:
        if (a, b) in inserts:
            edges += [(a, inserts[(a, b)]), (inserts[(a, b)], b)]
        else:
            edges.append((a, b))
    return sum_pools(dataclasses.replace(graph, nodes=nodes, edges=tuple(edges)))


# ------------------------------------------------------------------------------------------------- convert
@dataclass(frozen=True, eq=False)
class Conversion:
    """An integer network plus what was done to get it."""
    graph: Graph               # the integer network (BatchNorm folded, shortcuts explicit)
    layer_scales: dict         # {neuron: k}
    weight_scales: dict        # {synapse (Conv2d/Linear): s_w = k / amplitude of its source}
    input_scale: float
    rule: str
    vthr: dict                 # {neuron: integer threshold}, in the graph's neuron order
    reset: str                 # "hard", "soft" or "mixed"
    readout_scales: dict = dataclasses.field(default_factory=dict)   # {readout head: k, B's value / A's value}


def convert(graph: Graph, input_scale: float = 1.0, rule: str = "max", reset: Optional[str] = None,
            calibration: Optional[np.ndarray] = None, bias_correction: Optional[bool] = None) -> Conversion:
    """Folds BatchNorm, then scales every neuron with its terms to integers (see the module docstring).

    reset: "hard"/"soft" overrides the float network's reset modes (None keeps them).
    calibration: float inputs [N, T, ...] in A's range that data-aware rules ("search") use.
    bias_correction: with calibration, add to each integer bias the mean rounding error of its layer's input
    where that loses fewer spikes (default: on for the data-aware rules).
    """
    require(rule in RULES, lambda: f"unknown conversion rule {rule!r}; known: {', '.join(sorted(RULES))}")
    require(reset in (None, "hard", "soft"), lambda: f"reset must be 'hard' or 'soft', got {reset!r}")
    require(bool(np.isfinite(input_scale)) and input_scale > 0,
            lambda: f"input scale must be positive, got {input_scale}")
    input_scale = float(input_scale)
    g = prepare(graph)
    plans = _plans(g, input_scale)
    correct = bias_correction if bias_correction is not None else rule in DATA_AWARE
    probe = _Calibration(g, calibration, input_scale, reset) \
        if calibration is not None and (rule in DATA_AWARE or correct) else None
    nodes, layer_scales, weight_scales, vthr = {}, {}, {}, {}
    for n in g.neurons:
        terms = plans[n]
        k = _layer_scale(g, n, terms, rule, calibration, probe, reset)
        new = scale_layer(g, n, terms, k, reset)
        if probe is not None and correct:
            new = probe.correct_bias(n, terms, new, k)
        nodes.update(new)
        layer_scales[n] = k
        weight_scales.update({t.weight: k / t.amplitude for t in terms if isinstance(g.nodes[t.weight], P.SYNAPSES)})
        vthr[n] = int(new[n].threshold)
    heads, readout_scales = _readouts(g, input_scale, rule)
    nodes.update(heads)
    weight_scales.update({h: readout_scales[h] / _amplitude(g, h, input_scale) for h in heads})
    out = g.replace(nodes, name=f"{g.name}-int", input_scale=input_scale,
                    meta=dict(g.meta, conversion={"rule": rule, "input_scale": input_scale},
                              **({"readout_scale": readout_scales} if readout_scales else {})))
    _check_ranges(out, nodes, input_scale)
    modes = {out.nodes[n].reset for n in out.neurons}
    return Conversion(out, layer_scales, weight_scales, input_scale, rule, vthr,
                      modes.pop() if len(modes) == 1 else "mixed", readout_scales)


def _readouts(g: Graph, input_scale: float, rule: str) -> tuple:
    """({head: integer node}, {head: k}) for the readout heads (weight nodes computed off-chip): s_w by the rule
    (the full-range rule for data-aware ones), k = s_w * the amplitude of what it reads."""
    out, scales = {}, {}
    for h in readout_heads(g):
        node = g.nodes[h]
        a = _amplitude(g, h, input_scale)
        weights = np.abs([float(node.factor)]) if isinstance(node, P.Scale) else np.asarray(node.weight)
        bias = getattr(node, "bias", None)
        s_w = (rule_max if rule in DATA_AWARE else RULES[rule])(weights, None if bias is None else np.asarray(bias))
        out[h], scales[h] = scaled(node, s_w, s_w * a), float(s_w * a)
    return out, scales


def readout_heads(g: Graph) -> list:
    """The weight nodes of the off-chip readouts, in order (refused, as PAIBox refuses them, where a readout has no
    deployed form)."""
    off = g.offchip
    heads = [n for n in g.order if n in off and isinstance(g.nodes[n], WEIGHTED)]
    for h in heads:
        reason = lower.readout_problem(g, h)
        require(reason is None, lambda: f"{g.nodes[h].kind} {h!r}: {reason}")
    return heads


def _amplitude(g: Graph, node: str, input_scale: float) -> float:
    """The amplitude of what a readout head reads: the input scale for the input, 1 for spikes (the same for all)."""
    amps = {float(input_scale) if t.source == g.input else 1.0 for t in source_terms(g, node)}
    require(len(amps) == 1, lambda: f"readout {node!r} sums the input and spikes: their scales differ, so it has no "
                                    "single integer form")
    return amps.pop()


def _plans(g: Graph, input_scale: float) -> dict:
    """{neuron: [WeightedTerm]}, refusing what has no integer form, each weight node feeding one neuron."""
    plans, owner = {}, {}
    for n in g.of_type(P.AvgPool2d, P.AdaptiveAvgPool2d):
        reason = why_not_sum(g, n)
        require(reason is None, lambda: reason)
    for n in g.neurons:
        node = g.nodes[n]
        why = lower.neuron_problem(g, n, node)
        require(isinstance(node, CONVERTIBLE) and why is None,
                lambda: f"layer {n!r}: {why or f'{node.kind} does not convert to PAIBox integers'}")
        plans[n] = weighted_terms(g, n, input_scale)
        for t in plans[n]:
            other = owner.setdefault(t.weight, (n, t.amplitude))
            require(other[0] == n, lambda: f"{t.weight!r} feeds both {other[0]!r} and {n!r}: one synapse cannot "
                                           "carry two layer scales")
            require(other[1] == t.amplitude, lambda: f"{t.weight!r} sums the input and spikes into {n!r}: their "
                                                     "scales differ, so it has no single integer form")
    heads = set(readout_heads(g))
    stray = [n for n in g.order if isinstance(g.nodes[n], WEIGHTED) and n not in owner and n not in heads]
    require(not stray, lambda: f"{g.nodes[stray[0]].kind} {stray[0]!r} feeds no spiking neuron the conversion can "
                               "reach: it has no integer form")
    return plans


def _layer_scale(g: Graph, n: str, terms: list, rule: str, calibration, probe, reset) -> float:
    """k: per term, the rule's weight scale times the source amplitude; the smallest over the terms. A shortcut's
    bound is the full int8 range (it must fit, it cannot clip)."""
    ks = []
    for t in terms:
        node = g.nodes[t.weight]
        if isinstance(node, P.Scale):
            if float(node.factor):
                ks.append(rule_max(np.abs([float(node.factor)]), None) * t.amplitude)
            continue
        evaluate = None
        if probe is not None and rule in DATA_AWARE:
            def evaluate(s_w, t=t):
                return probe.misses(n, terms, requantize(g, n, terms, s_w * t.amplitude, reset))
        s_w = RULES[rule](np.asarray(node.weight), None if node.bias is None else np.asarray(node.bias),
                          threshold=float(g.nodes[n].threshold), s_in=t.amplitude, layer=t.weight, neuron=n,
                          network=g, calibration=calibration, evaluate=evaluate)
        require(bool(np.isfinite(s_w)) and s_w > 0, lambda: f"rule {rule!r} gave {t.weight!r} the weight scale "
                                                             f"{s_w}; a scale must be positive")
        ks.append(float(s_w) * t.amplitude)
    return _pool_cap(g, n, terms, _shortcut_cap(g, n, terms, min(ks)))


def _pool_cap(g: Graph, n: str, terms: list, k: float) -> float:
    """k lowered, if need be, so that a synapse composed with a sum pool whose windows overlap its own (a pool after
    a 3x3 conv adds up neighbouring weights) still has int8 weights: PAIBox deploys the composition."""
    amplitude = {t.weight: t.amplitude for t in terms}
    for t in g.terms(n):
        carrier = [p for p in t.path if isinstance(g.nodes[p], P.SYNAPSES)]
        if not carrier or not any(isinstance(g.nodes[p], SUM_POOLS) for p in t.path):
            continue
        node = g.nodes[carrier[0]]
        for _ in range(8):
            w = round_saturate(np.asarray(node.weight, np.float64) * k / amplitude.get(carrier[0], 1.0))
            trial = g.replace({carrier[0]: dataclasses.replace(node, weight=w, bias=None)})
            try:
                top = float(np.abs(compose.path_synapse(trial, g.shapes[t.source], t.path).weight).max())
            except InputError:          # no single-synapse form: PAIBox refuses it, saying why
                break
            if top <= INT8_MAX:
                break
            k *= INT8_MAX / top * (1 - 1e-6)
    return k


def _shortcut_cap(g: Graph, n: str, terms: list, k: float) -> float:
    """k lowered, if need be, so that every shortcut's deployed factor round(f * theta_int / theta_A / a) fits int8."""
    theta = float(g.nodes[n].threshold)
    for t in terms:
        if t.is_shortcut(g) and theta > 0:
            f = abs(float(g.nodes[t.weight].factor))
            top = int(np.floor((INT8_MAX + 0.5) * theta * t.amplitude / f - 1e-9)) if f else None
            if top is not None and max(1, int(np.rint(theta * k))) > top:
                require(top >= 1, lambda: f"shortcut {t.weight!r} into {n!r}: no integer threshold keeps its factor "
                                          "within int8")
                k = top / theta
    return k


def layer_scale(g: Graph, n: str, terms: list, rule: str = "max") -> float:
    """The layer scale k that a calibration-free `rule` gives neuron `n` of the prepared float graph `g`."""
    return _layer_scale(g, n, terms, rule, None, None, None)


def requantize(g: Graph, n: str, terms: list, k: float, reset: Optional[str] = None) -> dict:
    """`scale_layer` at k, lowered first if a shortcut's factor would not fit int8: a correct conversion of one
    layer at (about) a given scale, whatever the scale."""
    return scale_layer(g, n, terms, _pool_cap(g, n, terms, _shortcut_cap(g, n, terms, k)), reset)


def scale_layer(g: Graph, n: str, terms: list, k: float, reset: Optional[str] = None) -> dict:
    """{node: integer primitive} for neuron `n` at layer scale k and the weight nodes of its terms: every field
    scaled as its metadata says ("weight" x s_w, rounded and saturated to int8; "layer" x k, rounded)."""
    neuron = g.nodes[n]
    if reset is not None:
        neuron = dataclasses.replace(neuron, reset=reset)
    neuron = scaled(neuron, None, k)
    theta = max(1, int(neuron.threshold))
    neuron = dataclasses.replace(neuron, threshold=theta)
    out = {n: neuron}
    theta_a = float(g.nodes[n].threshold)
    for t in terms:
        node = g.nodes[t.weight]
        if isinstance(node, P.Scale):
            s = shortcut_scale(theta, theta_a, k) / t.amplitude
            value = float(node.factor) * s
            require(abs(np.rint(value)) <= INT8_MAX,
                    lambda: f"shortcut {t.weight!r} into {n!r}: its factor {float(node.factor):g} at the layer's "
                            f"scale is {value:.4g}, beyond int8; use a smaller input scale or weight scale")
            require(np.rint(value) != 0 or not float(node.factor),
                    lambda: f"shortcut {t.weight!r} into {n!r}: its factor {float(node.factor):g} at the layer's "
                            f"scale is {value:.4g}, which rounds to 0: the shortcut would vanish (a shortcut from "
                            "the input needs the layer's scale to exceed the input scale)")
            out[t.weight] = scaled(node, s, k)
        else:
            out[t.weight] = scaled(node, k / t.amplitude, k)
    return out


def shortcut_scale(theta_int: float, theta_a: float, k: float) -> float:
    """The scale an identity shortcut is deployed at: theta_int / theta_A of the neuron it feeds (k when A's
    threshold is not positive)."""
    return float(theta_int) / theta_a if theta_a > 0 else k


def scaled(node, s_w: Optional[float], k: float):
    """`node` with its "weight" fields times s_w (rounded, saturated to int8) and its "layer" fields times k
    (rounded); hyper-parameters kept. Integer arrays come out as int8 (weights) and int64 (the rest)."""
    changes = {}
    for f in dataclasses.fields(node):
        role, value = f.metadata.get("scale"), getattr(node, f.name)
        if role is None or value is None:
            continue
        if role == "weight":
            changes[f.name] = _integers(round_saturate(np.asarray(value, np.float64) * s_w), np.int8)
        else:
            changes[f.name] = _integers(np.rint(np.asarray(value, np.float64) * k), np.int64)
    return dataclasses.replace(node, **changes)


def _integers(a: np.ndarray, dtype):
    return a.astype(dtype) if a.ndim else int(a)


def _check_ranges(g: Graph, converted: dict, input_scale: float) -> None:
    """Thresholds, biases, leaks and reset values must fit the chip's registers (`backends/paibox/limits.py`:
    threshold 0..2**29-1, the others 30-bit signed)."""
    for name in (n for n in g.order if n in converted):
        node = converted[name]
        if P.is_neuron(node):
            require(0 <= node.threshold <= THRESHOLD_MAX,
                    lambda: f"layer {name!r}: integer threshold {int(node.threshold)} is beyond PAIBox's maximum "
                            f"{THRESHOLD_MAX} (input scale {input_scale:g}); use a smaller input scale or weight "
                            "scale")
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            if f.metadata.get("scale") != "layer" or f.name == "threshold" or value is None:
                continue
            lo, hi = limits.FIELD_LIMITS.get(f.name, limits.VALUE)
            a = np.asarray(value)
            big = float(np.abs(a).max(initial=0))
            require(a.size == 0 or (a.min() >= lo and a.max() <= hi),
                    lambda: f"layer {name!r}: integer {f.name.replace('_', ' ')} reaches {big:.0f}, beyond PAIBox's "
                            f"30-bit range (input scale {input_scale:g}); use a smaller input scale or weight scale")


# ------------------------------------------------------------------------------------------------- calibration
class _Calibration:
    """The float network's run on calibration inputs, to score one integer layer in isolation: fed the float run's
    own spikes at its term sources (the deployed input for the input), how many of the float layer's spikes does
    it miss?"""

    def __init__(self, g: Graph, inputs: np.ndarray, input_scale: float, reset: Optional[str]):
        from .backends.base import check_inputs
        from .backends.reference import evaluate
        inputs = check_inputs(g, inputs)
        self.g, self.reset = g, reset
        self.x_float = inputs
        self.x_int = np.rint(np.asarray(inputs, np.float64) * input_scale)
        self.runs = evaluate(g, {g.input: inputs}, exact=False, record_v=False)
        self.exact = not g.fractional

    def feeds(self, terms: list, integer: bool) -> dict:
        out = {}
        for t in terms:
            if t.source == self.g.input:
                out[t.source] = self.x_int if integer else self.x_float
            else:
                out[t.source] = self.runs[t.source][0]
        return out

    def misses(self, n: str, terms: list, nodes: dict) -> int:
        from .backends.reference import evaluate
        trial = self.g.replace(nodes)
        spikes = evaluate(trial, self.feeds(terms, True), exact=self.exact, record_v=False, targets=[n])[n][0]
        return int(np.sum(spikes != self.runs[n][0]))

    def correct_bias(self, n: str, terms: list, nodes: dict, k: float) -> dict:
        """Bias correction: shift the integer bias of the layer's main synapse by the mean error of its synaptic
        input, k * X_float - X_int, over the calibration data (per output channel), if that misses fewer spikes."""
        from .backends.reference import evaluate
        syn = _correctable(self.g, n, terms)
        if syn is None:
            return nodes
        inp = self.g.inputs_of(n)[0]
        x_float = evaluate(self.g, self.feeds(terms, False), exact=False, targets=[], keep=[inp])[inp]
        x_int = evaluate(self.g.replace(nodes), self.feeds(terms, True), exact=self.exact, targets=[],
                         keep=[inp])[inp]
        err = k * np.asarray(x_float, np.float64) - np.asarray(x_int, np.float64)
        err = err.mean(axis=(0, 1) + tuple(range(3, err.ndim)))        # per channel / per output neuron
        node = nodes[syn]
        bias = (np.zeros(len(err), np.int64) if node.bias is None else node.bias) + np.rint(err).astype(np.int64)
        fixed = dict(nodes, **{syn: dataclasses.replace(node, bias=bias)})
        return fixed if self.misses(n, terms, fixed) < self.misses(n, terms, nodes) else nodes


def _correctable(g: Graph, n: str, terms: list) -> Optional[str]:
    """The synapse whose bias can carry a per-channel correction of `n`'s input: the main one, if its output
    channels are the neuron's (no Flatten between them)."""
    t = primary(g, terms)
    after = t.path[t.path.index(t.weight) + 1:]
    channels = g.shapes[g.inputs_of(n)[0]][0]
    if any(isinstance(g.nodes[p], P.Flatten) for p in after) or g.nodes[t.weight].weight.shape[0] != channels:
        return None
    return t.weight
