"""What an integer graph becomes in PAIBox, and what PAIBox cannot run (the registry of primitives, with reasons).

Stages. PAIBox is a pipeline: every neuron layer is a stage, and so is max pooling of a neuron's spikes, which
becomes a depthwise ones-kernel `pb.Conv2d` into a `pb.BypassNeuron` (it fires when any spike of its window is in:
the same spikes as `pb.SpikingMaxPool2d`, 15-30x faster, and mappable). A stage's depth is 1 + the largest depth
of the stages it reads (the input is depth 0); stage k answers k-1 steps late, its `expected lag`.

Synapses. A neuron's input is a sum of terms (`Graph.terms`), each becoming one PAIBox synapse from the stage (or
the InputProj) it starts at: a path through a Conv2d -> `pb.Conv2d`, through a Linear (after a Flatten) ->
`pb.FullConn` with weights W.T, through nothing or a Scale (a residual identity shortcut) -> a one-to-one
`pb.FullConn` of integer weight `factor`. Several terms into one neuron (a merge) are several synapses into one
PAIBox neuron; an Add of spikes (SEW ResNet) before a synapse splits into one synapse per summand.

Neurons. IF -> `pb.IF`; the biases of the Conv2d/Linear nodes in its terms and an AdditiveLIF's leak -> `pb.LIF`
(which adds leak_v + bias every step, before comparing). Hard reset -> `reset_v` as a Python int: PAIBox resets
softly unless `reset_v` is an int, and silently so for np.int64(0) or 0.0. An integer neuron firing on `>` with a
hard reset is run with threshold + 1 (H > t <=> H >= t + 1 for integers); with a soft reset it is refused, since
the spike would then subtract threshold + 1.

Timing (the recipe of PAIBox's own examples): every stage gets tick_wait_start = its depth and delay = 1. A
branch from stage a into stage b then integrates a's output of step t - (depth_b - depth_a): skips between stages
line up by themselves, whatever their depths. The InputProj is not buffered (its edges have no delay), so a skip
from the input into a stage at depth d would arrive d - 1 steps early: it is held back by a delay chain of d - 1
relay stages (`pb.BypassNeuron`s at depths 1..d-1, one-to-one weight 1, named `<input>.delay<k>`, shared by every
such skip), which pass spikes on unchanged. A relay carries one bit: a multi-valued input (0-255 pixels) has no
such chain and is refused (the graph's input scale says so; `run` checks the inputs themselves).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ...errors import InputError
from ...graph import Graph
from ...graph import primitives as P
from ...graph.pooling import SUM_POOLS, why_not_sum
from ..base import Refusal, Registry
from . import compose, limits

NOT_DEPLOYED = {
    "BatchNorm": "BatchNorm must be folded into the Conv2d/Linear before it and converted to integers first",
}
NON_SPIKING = (P.Add, P.Scale) + P.SYNAPSES       # what makes a value that is not spikes
NON_SPIKING_OUTPUT = ("a non-spiking value that is an output and also feeds a spiking layer: PAIBox computes "
                      "spikes only on the chip, and a readout is computed off-chip from spikes")

OPS = Registry("paibox", lambda kind: NOT_DEPLOYED.get(kind, f"PAIBox has no counterpart of {kind}"))


# ----------------------------------------------------------------------------------------------- what gets built
@dataclass(frozen=True, eq=False)
class Link:
    """One PAIBox synapse into a stage, from `source` (a stage, or the graph's input):
    "conv" (pb.Conv2d of `op`, a Conv2d), "full" (pb.FullConn of `op`, a Linear), "identity" (one-to-one
    pb.FullConn of weight `factor`) or "pool" (depthwise ones kernel of MaxPool2d `node`). `op` is the term's
    path composed into one synapse (`compose`: sum pools folded in); `node` names the graph's synapse it carries."""
    source: str
    kind: str
    node: Optional[str] = None
    factor: int = 1
    op: Optional[P.Primitive] = None


@dataclass(frozen=True)
class Stage:
    """One PAIBox neuron node: a graph neuron, or a max pooling (`pool`), at pipeline `depth`."""
    name: str
    depth: int
    links: tuple
    pool: bool = False
    shape: Optional[tuple] = None      # a relay's (not a graph node)


def stages(graph: Graph) -> list:
    """The stages of an accepted graph (see `refusals`), in topological order: the input's relays first."""
    depth = depths(graph)
    relays = [Stage(relay(graph, k), k, (Link(relay(graph, k - 1), "identity"),), pool=True, shape=graph.input_shape)
              for k in range(1, input_delay(graph) + 1)]
    return relays + [OPS.lookup(graph.nodes[n])(graph, n, graph.nodes[n], depth[n])
                     for n in graph.order if n in depth]


def relay(graph: Graph, k: int) -> str:
    """The k-th relay stage of the input's delay chain (the input itself for k = 0)."""
    return graph.input if k == 0 else f"{graph.input}.delay{k}"


def input_delay(graph: Graph) -> int:
    """How many relay stages the deepest skip from the input needs (0: none reaches past stage 1)."""
    depth = depths(graph)
    return max((depth[n] - 1 for n in graph.neurons for t in graph.terms(n) if t.source == graph.input), default=0)


def is_stage(node) -> bool:
    return P.is_neuron(node) or isinstance(node, P.MaxPool2d)


def depths(graph: Graph) -> dict:
    """{stage: pipeline depth}; works on any graph (also on one PAIBox refuses, e.g. to say what a user's own
    network should have done)."""
    out = {}
    for n in graph.order:
        if is_stage(graph.nodes[n]):
            out[n] = 1 + max((out.get(t.source, 0) for t in graph.terms(n)), default=0)
    return out


def expected_lags(graph: Graph) -> dict:
    """{neuron: steps its raw PAIBox record lags the reference}, built with the recipe."""
    depth = depths(graph)
    return {n: depth[n] - 1 for n in graph.neurons}


def pipeline_length(graph: Graph) -> int:
    """L, the deepest stage: a run of T frames lasts T + L - 1 steps."""
    return max(depths(graph).values(), default=1)


# ----------------------------------------------------------------------------------------------- parameters
def neuron_params(node: P.Neuron) -> dict:
    """pb.IF/pb.LIF keyword arguments for threshold and reset (Python ints; no reset_v: soft reset)."""
    threshold = int(node.threshold) + (1 if node.fire_rule == ">" else 0)
    return {"threshold": threshold} if node.soft_reset else {"threshold": threshold, "reset_v": int(node.v_reset)}


def drive(graph: Graph, name: str) -> tuple:
    """(bias, leak) that PAIBox adds to neuron `name`'s membrane every step: `bias` a per-neuron int64 array of the
    neuron's shape (the biases of every Conv2d/Linear in its terms, each once, plus an array leak) or None, and
    `leak` a scalar int."""
    shape = graph.shapes[name]
    bias, seen = None, set()
    for term in graph.terms(name):
        for syn in term.synapses(graph):
            b = graph.nodes[syn].bias
            if b is not None and syn not in seen:
                seen.add(syn)
                bias = (0 if bias is None else bias) + bias_at(graph, term, syn, shape)
    leak = getattr(graph.nodes[name], "leak", 0)
    if np.ndim(leak) > 0:
        bias = (0 if bias is None else bias) + per_neuron(leak, shape)
        leak = 0
    return bias, int(leak)


def bias_at(graph: Graph, term, syn: str, shape) -> np.ndarray:
    """Synapse `syn`'s bias as the neuron receives it: through the sum pools after it on the term's path, a border
    neuron of a padded pool sums fewer copies."""
    pools = [n for n in term.path[term.path.index(syn) + 1:] if isinstance(graph.nodes[n], SUM_POOLS)]
    if not pools:
        return per_neuron(graph.nodes[syn].bias, shape)
    from ..reference import OPS as REFERENCE
    x = per_neuron(graph.nodes[syn].bias, graph.shapes[syn])[None, None]
    for n in pools:
        x = REFERENCE.lookup(graph.nodes[n])(graph.nodes[n], [x], True, np.int64)
    return x[0, 0].reshape(shape)


def per_neuron(value, shape) -> np.ndarray:
    """A per-channel (C,) value spread to every neuron of a (C, H, W) layer, or a value of the layer's shape."""
    a = np.asarray(value).astype(np.int64)
    if a.size == int(np.prod(shape)):
        return a.reshape(shape)
    return np.broadcast_to(a.reshape((-1,) + (1,) * (len(shape) - 1)), shape).copy()


def pool_kernel(channels: int, node: P.MaxPool2d) -> dict:
    """pb.Conv2d keyword arguments of max pooling on spikes: a depthwise ones kernel (into a BypassNeuron)."""
    return {"kernel": np.ones((channels, 1) + tuple(node.kernel), dtype=np.int8), "stride": tuple(node.stride),
            "padding": tuple(node.padding), "groups": channels}


# ----------------------------------------------------------------------------------------------- lowering
def _neuron_stage(graph: Graph, name: str, node, depth: int) -> Stage:
    links = []
    for term in graph.terms(name):
        op = compose.path_synapse(graph, graph.shapes[term.source], term.path)
        source = relay(graph, depth - 1) if term.source == graph.input else term.source
        if op is not None:
            carrier = (term.synapses(graph) or [n for n in term.path if isinstance(graph.nodes[n], SUM_POOLS)])[0]
            links.append(Link(source, "conv" if isinstance(op, P.Conv2d) else "full", carrier, op=op))
        else:
            factor = 1
            for n in term.path:
                if isinstance(graph.nodes[n], P.Scale):
                    factor *= int(graph.nodes[n].factor)
            links.append(Link(source, "identity", factor=factor))
    return Stage(name, depth, tuple(links))


def _pool_stage(graph: Graph, name: str, node, depth: int) -> Stage:
    return Stage(name, depth, (Link(graph.inputs_of(name)[0], "pool", name),), pool=True)


def _check_neuron(graph: Graph, name: str, node: P.Neuron) -> Optional[str]:
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if f.metadata.get("scale") is None or value is None or (f.name == "v_reset" and node.soft_reset):
            continue
        reason = limits.problem(f.name, value, limits.FIELD_LIMITS.get(f.name, limits.VALUE))
        if reason:
            return reason
    if node.initial_v != 0:
        return (f"PAIBox neurons always start at v = 0; an initial membrane of {node.initial_v:g} (e.g. QCFS's "
                "threshold/2) cannot be expressed")
    if node.fire_rule == ">":
        if node.soft_reset:
            return ("fire rule '>' with soft reset: PAIBox fires on '>=', and threshold + 1 would also be what a "
                    "spike subtracts; only a hard reset runs '>' exactly")
        reason = limits.problem("threshold + 1 (fire rule '>')", int(node.threshold) + 1, limits.THRESHOLD)
        if reason:
            return reason
    depth = depths(graph)[name]
    for term in graph.terms(name):
        if term.source == graph.input and depth > 1 and graph.input_scale != 1:
            return (f"a skip from the input reaches it at pipeline stage {depth}: InputProj is not buffered, so it "
                    f"must be held back {depth - 1} step(s) by a delay chain of relay neurons, which carry spikes "
                    f"(0/1) only; this input is scaled by {graph.input_scale:g} (multi-valued): feed spikes, or "
                    "start the skip from a spiking layer")
    reason = _check_composed(graph, name)
    if reason:
        return reason
    biases = [graph.nodes[s].bias for t in graph.terms(name) for s in t.synapses(graph)]
    if all(b is None or P.is_integer_valued(b) for b in biases):     # else refused at the synapse itself
        bias, leak = drive(graph, name)
        return limits.problem("bias + leak", leak if bias is None else bias + leak, limits.VALUE)
    return None


def _check_composed(graph: Graph, name: str) -> Optional[str]:
    """Each term of neuron `name` through a sum pool must compose into one synapse whose weights fit int8."""
    for term in graph.terms(name):
        pools = [n for n in term.path if isinstance(graph.nodes[n], SUM_POOLS)]
        if not pools:
            continue
        try:
            op = compose.path_synapse(graph, graph.shapes[term.source], term.path)
        except InputError as exc:
            return str(exc)
        reason = limits.problem(f"the weights of {'/'.join(term.path)} composed into one synapse", op.weight,
                                limits.WEIGHT)
        if reason:
            return reason + " (overlapping pooling windows add weights up)"
    return None


def _check_avg_pool(graph: Graph, name: str, node) -> Optional[str]:
    return why_not_sum(graph, name) or (
        "average pooling emits fractions; PAIBox runs it as a sum pool composed into the next synapse, its 1/n "
        "folded into that layer's scale: convert the network first (snncheck convert); "
        "PAIBox's own SpikingAvgPool2d is a majority vote, not an average")


def neuron_problem(graph: Graph, name: str, node) -> Optional[str]:
    """Why a neuron type has no PAIBox twin, saying what would have to change (None: IF and AdditiveLIF deploy)."""
    if isinstance(node, (P.LIF, P.ParametricLIF)):
        decay = f"1/tau = 1/{node.tau:g}" if isinstance(node, P.LIF) else f"sigmoid(w) = {float(node.decay):.4g}"
        return (f"{node.kind} has a multiplicative leak (v moves toward v_reset by {decay} of the way each step, "
                f"decay_input={node.decay_input}): PAIBox's leak adds a constant (pb.LIF leak_v), so no PAIBox "
                "neuron computes it exactly, for any tau. To deploy, train with IFNode (no leak) or an additive "
                "leak (snncheck's AdditiveLIF: v += leak every step)")
    return None


def _check_pool(graph: Graph, name: str, node: P.MaxPool2d) -> Optional[str]:
    (src,) = graph.inputs_of(name)
    if not P.is_neuron(graph.nodes[src]):
        return (f"max pooling of {src!r} ({graph.nodes[src].kind}): PAIBox max-pools spikes only, so it must "
                "follow a spiking layer directly")
    return None


def _check_synapse(graph: Graph, name: str, node) -> Optional[str]:
    reason = limits.problem("weight", node.weight, limits.WEIGHT)
    if reason is None and node.bias is not None:        # its range is checked where it is added: at the neuron
        reason = limits.integer_problem("bias", node.bias)
    if reason:
        return reason
    before = [s for t in graph.terms(name) for s in t.synapses(graph)]
    if before:
        return (f"two weight layers ({before[0]!r}, {name!r}) with no spiking layer between: PAIBox needs a "
                "neuron after every Conv2d/Linear")
    return _check_output(graph, name, node)


def _check_scale(graph: Graph, name: str, node: P.Scale) -> Optional[str]:
    reason = limits.problem("factor", node.factor, limits.WEIGHT)
    if reason:
        return reason
    before = [n for t in graph.terms(name) for n in t.path if isinstance(graph.nodes[n], (P.Scale,) + P.SYNAPSES)]
    after = [n for n in _downstream(graph, name) if isinstance(graph.nodes[n], P.SYNAPSES)]
    if before or after:
        other = (before or after)[0]
        return (f"a Scale next to {other!r} ({graph.nodes[other].kind}) on the same path: PAIBox deploys a Scale "
                "only as a residual identity shortcut of its own; fold the factor into the weights")
    return _check_output(graph, name, node)


def _check_flatten(graph: Graph, name: str, node) -> Optional[str]:
    bad = [c for c in graph.consumers(name) if not isinstance(graph.nodes[c], (P.Linear, P.Flatten) + P.READOUTS)]
    if bad and len(graph.shapes[graph.inputs_of(name)[0]]) > 1:
        return (f"a Flatten feeding {bad[0]!r} ({graph.nodes[bad[0]].kind}): PAIBox flattens only into a "
                "FullConn (a Linear)")
    return None


def _check_output(graph: Graph, name: str, node) -> Optional[str]:
    """A weighted sum (Conv2d, Linear, Scale, Add) whose value reaches the network's output or a readout without a
    neuron after it is not spikes: refused at the last such node on the way (spikes reshaped by a Flatten are
    still spikes)."""
    below = _downstream(graph, name)
    ends = [n for n in [name] + below if not graph.consumers(n) or
            any(isinstance(graph.nodes[c], P.READOUTS) for c in graph.consumers(n))]
    if ends and not any(isinstance(graph.nodes[n], NON_SPIKING) for n in below):
        return NON_SPIKING_OUTPUT
    return None


def _check_readout(graph: Graph, name: str, node) -> Optional[str]:
    used = [c for c in graph.consumers(name) if not isinstance(graph.nodes[c], P.READOUTS)]
    if used:
        return f"a readout (computed off-chip) that feeds {used[0]!r}: PAIBox cannot compute on it"
    return None


def _downstream(graph: Graph, name: str) -> list:
    """The linear nodes reached from `name` before any neuron (or other non-linear node)."""
    out, stack = [], list(graph.consumers(name))
    while stack:
        n = stack.pop()
        if n not in out and isinstance(graph.nodes[n], P.LINEAR_OPS):
            out.append(n)
            stack.extend(graph.consumers(n))
    return out


OPS.register(P.IF, P.AdditiveLIF, check=_check_neuron)(_neuron_stage)
OPS.register(P.MaxPool2d, check=_check_pool)(_pool_stage)
OPS.allow(P.Conv2d, P.Linear, check=_check_synapse)            # lowered as the links of the neurons they feed
OPS.allow(P.Scale, check=_check_scale)
OPS.allow(P.Flatten, check=_check_flatten)
OPS.allow(P.Add, check=_check_output)
OPS.allow(P.MeanOverTime, P.Vote, check=_check_readout)        # a readout is computed off-chip: not built
OPS.allow(*SUM_POOLS)                                           # composed into the synapse next to it
OPS.allow(P.AvgPool2d, P.AdaptiveAvgPool2d, check=_check_avg_pool)   # refused, saying why (graph/pooling.py)
OPS.allow(P.LIF, P.ParametricLIF, check=neuron_problem)         # refused, saying what would have to change
OPS.allow(P.Input)


def readout_problem(graph: Graph, name: str) -> Optional[str]:
    """Why an off-chip node cannot be a deployed readout (shared by the PAIBox backend and `snncheck convert`): a
    readout is at most one Conv2d/Linear over the spikes, computed off-chip."""
    node = graph.nodes[name]
    if name not in graph.offchip or not isinstance(node, P.SYNAPSES + (P.Scale,)):
        return None
    before = [n for t in graph.terms(name) for n in t.path if isinstance(graph.nodes[n], P.SYNAPSES + (P.Scale,))]
    if before:
        return (f"a readout head of two weight layers ({before[0]!r}, {name!r}) with no spiking layer between: a "
                "deployed readout is one Conv2d/Linear over the last spiking layer's spikes, computed off-chip; end "
                f"the model with a spiking layer after {before[0]!r}")
    return None


def refusals(graph: Graph) -> list:
    """[Refusal] for a graph whose BatchNorms are folded. Off-chip nodes are computed by the reference from PAIBox's
    spikes: refused only by `readout_problem`."""
    off = graph.offchip
    out = [r for r in OPS.refusals(graph) if r.node not in off]
    out += [Refusal(OPS.backend, n, reason) for n in graph.order if n in off
            for reason in [readout_problem(graph, n)] if reason]
    return out
