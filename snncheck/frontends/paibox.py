"""A user's own PAIBox network (`--paibox FILE.py:FACTORY`) as network B.

FACTORY() returns a fresh `pb.Network` with one `InputProj(input=None)`. Its neuron nodes are ordered from the
input along the synapses and matched to A's neurons in order, by size; what does not match (pooling stages,
bypass neurons) stays in the PAIBox run but has no counterpart. B's graph is A's graph (BatchNorm folded)
carrying the user's weights, biases (leaks), thresholds and reset modes, so that the reference runs exactly what
the user built. A matched neuron fed by several synapses (a residual merge) is matched term by term to A's terms
(`Graph.terms`), by where each synapse comes from; a relay (a BypassNeuron fed by one one-to-one synapse of
weight 1, what holds a skip from the InputProj back) is looked through. The user's timing is kept as written: it
is what the harness checks, not something it fixes; a synapse that brings the input to a merge before its other
inputs (the InputProj is not buffered) is named in the matching rows (`early_inputs`) so the `timing` fix can say
which of the user's synapses to delay and how.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..backends.paibox.limits import NEG_THRESHOLD_DEFAULT
from ..errors import InputError, require
from ..graph import Graph, fold_batchnorm
from ..graph import primitives as P
from .models import build_module

INPUT = ("input",)              # where a synapse from the InputProj comes from, whatever A calls its input


@dataclass(eq=False)
class UserNetwork:
    network: object               # the user's pb.Network (the PAIBox backend adds probes to it)
    inp: object                   # its InputProj
    matched: dict                 # {A's neuron: PAIBox neuron node}
    stages: list                  # every PAIBox neuron/module node reachable from the input, in order
    graph: Graph                  # B: A's graph with the user's parameters
    matching: list                # rows for the report, one per PAIBox stage
    spec: str
    float_graph: Graph            # A, as given to `load`
    probes: dict = field(default_factory=dict)   # {A's neuron: (spike probe, voltage probe)}, set by the backend

    @property
    def max_wait(self) -> int:
        return max((int(n.tick_wait_start) for n in self.stages), default=1)

    def __reduce__(self):
        """Pickled as its factory: a worker process builds its own copy (PAIBox objects are not shared)."""
        return load, (self.spec, self.float_graph)


def load(spec: str, float_graph: Graph) -> UserNetwork:
    """Imports FACTORY from `spec`, builds the network and matches it to A (`float_graph`, BatchNorm not folded)."""
    import paibox as pb
    from paibox.naming import clear_name_cache
    clear_name_cache(ignore_warn=True)
    net = build_module(spec, "PAIBox factory", returns=object)
    require(isinstance(net, pb.Network), lambda: f"{spec}: the factory returned a {type(net).__name__}, not a "
                                                 "pb.Network")
    inp, order = _graph_order(net, spec)
    folded = fold_batchnorm(float_graph)
    require(int(np.prod(inp.shape_out)) == int(np.prod(folded.input_shape)),
            lambda: f"{spec}: the InputProj takes {tuple(inp.shape_out)}, A takes {folded.input_shape}")
    matched, matching = _match(folded, order, spec)
    into = _synapses_into(net)
    graph = _deployed_graph(folded, matched, spec, into)
    _note_early_inputs(net, matched, matching, into)
    return UserNetwork(net, inp, matched, [n for n, _ in order], graph, matching, spec, float_graph)


def subject(spec: str, float_graph: Graph, inputs, input_scale: Optional[float] = None) -> tuple:
    """(B's Subject, report notes) for a user's own PAIBox network, as both `snncheck diff --paibox` and a case's
    [paibox] build it: B's input scale as given, else inferred; spikes and event counts are fed to B as they are
    (scale 1, noted when a scale was given)."""
    from ..inputs import deployed_scale, unscaled
    from ..plan import Role, Subject
    user = load(spec, float_graph)
    notes = {"paibox_matching": user.matching, "user_nodes": user_nodes(user.matching)}
    if input_scale is None and not unscaled(inputs):
        input_scale, reason = infer_input_scale(user, float_graph, inputs.chunk(0, 64))
        notes["inferred"] = [f"input_scale={input_scale:g} ({reason})"]
    declared = 1.0 if input_scale is None else float(input_scale)
    scale, note = deployed_scale(inputs, declared)
    notes.update(note)
    return Subject(Role.DEPLOYED, user.graph, input_scale=scale, source=user), notes


# ----------------------------------------------------------------------------------------------- the user's nodes
def _graph_order(net, spec: str):
    """(InputProj, [(node, pipeline depth)] for the neuron and module nodes in order from the input).

    The depth (1 for a node fed by the InputProj) is the tick_wait_start that PAIBox's recipe gives the node."""
    import paibox as pb
    comps = list(net.components.values())
    inputs = [c for c in comps if isinstance(c, pb.InputProj)]
    require(len(inputs) == 1, lambda: f"{spec}: the network must hold exactly one InputProj, found {len(inputs)}")
    succ: dict = {}
    for c in comps:
        for src in _sources(c):
            succ.setdefault(id(src), []).append(_target(c))
    indeg: dict = {}
    for targets in succ.values():
        for t in targets:
            indeg[id(t)] = indeg.get(id(t), 0) + 1
    order, ready, depth = [], [inputs[0]], {id(inputs[0]): 0}
    while ready:                                      # Kahn's algorithm, keeping registration order
        node = ready.pop(0)
        if node is not inputs[0]:
            order.append(node)
        for t in succ.get(id(node), []):
            depth[id(t)] = max(depth.get(id(t), 0), depth[id(node)] + 1)
            indeg[id(t)] -= 1
            if indeg[id(t)] == 0:
                ready.append(t)
    require(order, lambda: f"{spec}: nothing is connected to the InputProj")
    return inputs[0], [(node, depth[id(node)]) for node in order]


def _sources(component) -> list:
    """What a synapse or a module (SpikingMaxPool2d...) reads from."""
    from paibox.base import NeuDyn, SynSys
    if isinstance(component, SynSys):
        return [component.source]
    if isinstance(component, NeuDyn) and hasattr(component, "module_intf"):
        return list(component.module_intf.operands)
    return []


def _target(component):
    from paibox.base import SynSys
    return component.target if isinstance(component, SynSys) else component


def _match(folded: Graph, order: list, spec: str):
    """A's neurons, in order, to the next PAIBox neuron node of the same size."""
    from paibox.components import Neuron
    shapes = folded.shapes
    matched, rows, pos = {}, [], 0
    for name in folded.neurons:
        size = int(np.prod(shapes[name]))
        while pos < len(order):
            node, depth = order[pos]
            pos += 1
            if isinstance(node, Neuron) and type(node).__name__ != "BypassNeuron" and int(node.num_out) == size:
                matched[name] = node
                rows.append(_row(node, depth, name, shapes[name]))
                break
            rows.append(_row(node, depth))
        else:
            found = ", ".join(f"{n.name} {tuple(n.shape_out)}" for n, _ in order)
            raise InputError(f"{spec}: A's spiking layer {name!r} {shapes[name]} has no PAIBox neuron layer of "
                             f"{size} neurons after the ones matched so far (PAIBox layers: {found})")
    rows += [_row(n, d) for n, d in order[pos:]]
    return matched, rows


def _row(node, depth: int, layer: Optional[str] = None, shape=None) -> dict:
    soft = _is_soft(node)
    return {"paibox": node.name, "type": type(node).__name__, "shape": list(node.shape_out), "layer": layer,
            "layer_shape": None if shape is None else list(shape), "tick_wait_start": int(node.tick_wait_start),
            "delay": int(node.delay_relative), "recipe_tick_wait_start": depth,
            "reset": None if soft is None else ("soft" if soft else "hard"),
            "threshold": int(node.pos_threshold) if hasattr(node, "pos_threshold") else None}


def _is_soft(node) -> Optional[bool]:
    from paicorelib import RM
    mode = getattr(node, "reset_mode", None)
    return None if mode is None else mode is RM.MODE_LINEAR


# ----------------------------------------------------------------------------------------------- B's graph
def _synapses_into(net) -> dict:
    """{id(node): the user's synapses into it}."""
    from paibox.base import SynSys
    into: dict = {}
    for syn in net.components.subset(SynSys).values():
        into.setdefault(id(syn.target), []).append(syn)
    return into


def _deployed_graph(folded: Graph, matched: dict, spec: str, into: dict) -> Graph:
    """A's graph with, for each matched neuron, the user's threshold, reset and leak, and for each of its terms the
    weights of the user's synapse that carries it (`into`: `_synapses_into`)."""
    names = {id(node): name for name, node in matched.items()}
    nodes, edges, synapse_of = dict(folded.nodes), list(folded.edges), {}
    for name, node in matched.items():
        where = f"{spec}: PAIBox layer {node.name} (matched to {name!r})"
        _check_neuron(node, where)
        pairs = _pair_terms(folded, name, into.get(id(node), []), names, into, where)
        shape = folded.shapes[name]
        bias, leak = _bias(node, shape)
        first = next((s for t, _ in pairs for s in t.synapses(folded)), None)
        if bias is not None and first is None:         # nothing to carry a bias: it is the neuron's leak
            bias, leak = None, np.broadcast_to(bias.reshape((-1,) + (1,) * (len(shape) - 1)), shape).copy()
        shortcuts = {}
        for term, syn in pairs:
            synapses = term.synapses(folded)
            if synapses:       # a weight layer may carry several terms (SEW: a conv after an add of spikes)
                s = synapses[0]
                new = _synapse(folded.nodes[s], syn, bias if s == first else None, f"{where}: synapse {syn.name}")
                if s in synapse_of:
                    require(_same_weights(nodes[s], new), lambda: f"{where}: synapses {synapse_of[s]} and "
                            f"{syn.name} both carry A's {s!r} but with different weights")
                nodes[s], synapse_of[s] = new, syn.name
            else:              # so may a shortcut (the identity after an add of spikes)
                branch, factor = _shortcut(folded, name, term), _identity_factor(syn, where)
                if branch in shortcuts:
                    require(shortcuts[branch][0] == factor, lambda: f"{where}: synapses {shortcuts[branch][1]} and "
                            f"{syn.name} carry the same shortcut of A with different weights")
                shortcuts.setdefault(branch, (factor, syn.name))
        for (kind, spot), (factor, _) in shortcuts.items():
            if kind == "scale":
                nodes[spot] = P.Scale(factor)
            elif factor != 1:          # A's shortcut is a plain edge: a Scale on it carries the user's factor,
                scale, j = f"{spot[1]}.shortcut", 1      # named as snncheck.convert names the ones it makes
                while scale in nodes:
                    scale, j = f"{spot[1]}.shortcut{j}", j + 1
                nodes[scale] = P.Scale(factor)
                at = edges.index(spot)
                edges[at:at + 1] = [(spot[0], scale), (scale, spot[1])]
        nodes[name] = _neuron(node, leak)
    return dataclasses.replace(folded, nodes=nodes, edges=tuple(edges), name=f"paibox:{spec.rpartition(':')[2]}")


def _pair_terms(folded: Graph, name: str, synapses: list, names: dict, into: dict, where: str) -> list:
    """[(A's term, the user's synapse)] by where each comes from (the input, a matched neuron, or a pooling stage
    after one), in A's term order."""
    terms = folded.terms(name)
    require(len(synapses) == len(terms), lambda: f"{where} has {len(synapses)} incoming synapses; A's layer sums "
                                                 f"{len(terms)} term(s) ({_describe(terms)})")
    free = list(synapses)
    pairs = []
    for term in terms:
        key = _term_key(folded, term.source)
        syn = next((s for s in free if _origin(s.source, names, into) == key), None)
        require(syn is not None, lambda: f"{where}: no synapse from {_describe([term])}; the user's synapses come "
                f"from {', '.join(s.source.name for s in free)}")
        free.remove(syn)
        pairs.append((term, syn))
    return pairs


def _term_key(folded: Graph, source: str):
    if source == folded.input:
        return INPUT
    if isinstance(folded.nodes[source], P.MaxPool2d):
        return ("after", _term_key(folded, folded.inputs_of(source)[0]))
    return source


def _origin(pb_node, names: dict, into: dict):
    """What a user's synapse reads, in A's terms: INPUT, A's neuron, or ("after", that) for a pooling stage (a relay
    is looked through)."""
    import paibox as pb
    if isinstance(pb_node, pb.InputProj):
        return INPUT
    if id(pb_node) in names:
        return names[id(pb_node)]
    if _is_relay(pb_node, into):
        return _origin(into[id(pb_node)][0].source, names, into)
    upstream = _sources(pb_node) or [s.source for s in into.get(id(pb_node), [])]
    return ("after", _origin(upstream[0], names, into)) if upstream else None


def _is_relay(node, into: dict) -> bool:
    """A BypassNeuron fed by one one-to-one synapse of weight 1: it passes spikes on one step later."""
    syns = into.get(id(node), [])
    if type(node).__name__ != "BypassNeuron" or len(syns) != 1:
        return False
    conn = np.asarray(syns[0].connectivity, dtype=np.int64)
    return conn.ndim == 2 and conn.shape[0] == conn.shape[1] and np.array_equal(conn, np.eye(len(conn), dtype=np.int64))


def _input_lag(node, into: dict) -> Optional[int]:
    """Steps by which the InputProj's output (0) or a relay chain's from it lags the input frames; None for other
    nodes."""
    import paibox as pb
    if isinstance(node, pb.InputProj):
        return 0
    if not _is_relay(node, into):
        return None
    src = into[id(node)][0].source
    up = _input_lag(src, into)
    return None if up is None else up + _edge_delay(src, node)


def _edge_delay(src, dst) -> int:
    """e: `dst` at step t integrates what `src` sent at step t - e (0 from the InputProj, which is not buffered)."""
    import paibox as pb
    if isinstance(src, pb.InputProj):
        return 0
    return int(dst.tick_wait_start) - int(src.tick_wait_start) + int(src.delay_relative) - 1


def _note_early_inputs(net, matched: dict, matching: list, into: dict) -> None:
    """Adds `early_inputs` to the row of each matched merge that a synapse from the input (or a relay chain from it)
    reaches before the merge's own pipeline stage does: what the user must delay, and how."""
    for row in matching:
        node = matched.get(row["layer"]) if row["layer"] else None
        if node is None or len(into.get(id(node), [])) < 2:
            continue
        notes = []
        for syn in into[id(node)]:
            lag = _input_lag(syn.source, into)
            early = None if lag is None else int(node.tick_wait_start) - 1 - lag - _edge_delay(syn.source, node)
            if early and early > 0:
                notes.append(f"{_called(net, syn)} ({_called(net, syn.source)} -> {_called(net, node)}) brings the "
                             f"input {early} step(s) "
                             f"early: the InputProj is not buffered; route it through {early} more relay "
                             f"neuron(s) (pb.BypassNeuron, one-to-one weight 1, delay 1, each tick_wait_start one "
                             "more than the one before it)")
        if notes:
            row["early_inputs"] = notes


def _called(net, node) -> str:
    """How the user calls a node: its attribute name in the network, with PAIBox's name."""
    attr = next((k for k, v in vars(net).items() if v is node), None)
    return f"{attr} ({node.name})" if attr else node.name


def user_nodes(matching: list) -> dict:
    """{diagnosis code: {layer: the user's nodes to name in its fix}}: timing fixes name every node up to the layer
    whose tick_wait_start or delay differs from the recipe (a branch through it arrives at another step), and the
    synapses that bring the input to a merge early; reset and scale fixes name the layer's own node."""
    timing, own, upto = {}, {}, []
    for row in matching:
        if row["tick_wait_start"] != row["recipe_tick_wait_start"]:
            upto.append(f"{row['paibox']} tick_wait_start={row['recipe_tick_wait_start']} "
                        f"(has {row['tick_wait_start']})")
        if row["delay"] != 1:
            upto.append(f"{row['paibox']} delay=1 (has {row['delay']})")
        if row.get("layer"):
            if upto or row.get("early_inputs"):
                timing[row["layer"]] = list(upto) + row.get("early_inputs", [])
            own[row["layer"]] = row["paibox"]
    reset = {layer: own[layer] for layer in own
             if next(r for r in matching if r.get("layer") == layer).get("reset") == "soft"}
    return {"timing": timing, "reset_mode": reset, "bias_scale": own, "vthr_scale": own}


def _describe(terms: list) -> str:
    return ", ".join(f"from {t.source!r} through {'/'.join(t.path) or 'an identity'}" for t in terms)


def _check_neuron(node, where: str) -> None:
    from paicorelib import LCM
    require(hasattr(node, "pos_threshold"), lambda: f"{where} is a {type(node).__name__}, not an IF/LIF neuron")
    require(getattr(node, "leak_comparison", LCM.LEAK_BEFORE_COMP) is LCM.LEAK_BEFORE_COMP,
            lambda: f"{where} compares before its leak (LEAK_AFTER_COMP); snncheck models the default order only")
    require(int(node.neg_threshold) == NEG_THRESHOLD_DEFAULT,
            lambda: f"{where} has neg_threshold={int(node.neg_threshold)}, a floor on v that SpikingJelly cannot "
                    "express; leave it at its default")


def _neuron(node, leak) -> P.Neuron:
    """B's neuron: the user's threshold and reset; PAIBox starts at v = 0 (explicit when v_reset is not 0)."""
    soft = _is_soft(node)
    reset_v = 0 if soft else int(node.reset_v)
    common = {"threshold": int(node.pos_threshold), "reset": "soft" if soft else "hard", "v_reset": reset_v,
              "v_init": 0 if reset_v else None}
    return P.AdditiveLIF(leak=leak, **common) if leak is not None else P.IF(**common)


def _bias(node, shape):
    """The node's leak (leak_v + bias) as a per-channel synapse bias, or (None, per-neuron leak) if it varies
    inside a channel; (None, None) when there is none."""
    leak = np.asarray(node.leak_v, dtype=np.int64)
    if not leak.any():
        return None, None
    full = np.broadcast_to(leak, (int(np.prod(shape)),)).reshape(shape)
    per = full.reshape(shape[0], -1)
    if np.all(per == per[:, :1]):
        return per[:, 0].copy(), None
    return None, full.copy()


def _synapse(layer, syn, bias, where: str):
    from paibox.components.synapses.base import Conv2dSyn
    if isinstance(layer, P.Conv2d):
        require(isinstance(syn, Conv2dSyn), lambda: f"{where} is a {type(syn).__name__}; A's is a Conv2d")
        comm = syn.comm
        w = np.asarray(comm.weights, dtype=np.int64)
        require(w.shape == layer.weight.shape, lambda: f"{where}: kernel {w.shape}, A's is {layer.weight.shape}")
        return dataclasses.replace(layer, weight=w, bias=bias, stride=tuple(comm.stride),
                                   padding=tuple(comm.padding), groups=int(comm.groups))
    require(not isinstance(syn, Conv2dSyn), lambda: f"{where} is a Conv2d; A's is a Linear")
    conn = np.asarray(syn.connectivity, dtype=np.int64)
    require(conn.shape == layer.weight.T.shape, lambda: f"{where}: weights {conn.shape} (in, out), A's Linear is "
                                                         f"{layer.weight.T.shape}")
    return dataclasses.replace(layer, weight=conn.T.copy(), bias=bias)


def _same_weights(a, b) -> bool:
    return np.array_equal(np.asarray(a.weight), np.asarray(b.weight)) and \
        getattr(a, "stride", None) == getattr(b, "stride", None)


def _identity_factor(syn, where: str) -> int:
    """k of a synapse that is k times the identity (a residual shortcut), else an error."""
    from paibox.components.synapses.base import Conv2dSyn
    require(not isinstance(syn, Conv2dSyn), lambda: f"{where}: synapse {syn.name} is a Conv2d; A's term is an "
                                                    "identity shortcut")
    conn = np.asarray(syn.connectivity, dtype=np.int64)
    k = int(conn[0, 0]) if conn.size else 0
    require(conn.ndim == 2 and conn.shape[0] == conn.shape[1] and np.array_equal(conn, k * np.eye(len(conn),
                                                                                                   dtype=np.int64)),
            lambda: f"{where}: synapse {syn.name} is not k times the identity; A's term is an identity shortcut")
    return k


def _shortcut(folded: Graph, neuron: str, term) -> tuple:
    """Where an identity term's factor lives in A: ("scale", its Scale node), or ("edge", the edge into the last Add
    on its path, or into the neuron), the part of the path that no weighted term shares."""
    scales = [n for n in term.path if isinstance(folded.nodes[n], P.Scale)]
    if scales:
        return "scale", scales[-1]
    chain = (term.source,) + tuple(term.path) + (neuron,)
    adds = [i for i in range(1, len(chain) - 1) if isinstance(folded.nodes[chain[i]], P.Add)]
    j = adds[-1] if adds else len(chain) - 1
    return "edge", (chain[j - 1], chain[j])


# ----------------------------------------------------------------------------------------------- input scale
def infer_input_scale(user: UserNetwork, float_graph: Graph, inputs: np.ndarray) -> tuple:
    """(scale, reason) when nobody gives B's input scale: 1 for spike inputs (the chip's input is 1-bit); for
    analog inputs, 1 or 255, whichever is nearer (in ratio) to the first layer's theta_B / (theta_A * s_w)."""
    from ..checkpoint import fit_scale
    if np.isin(inputs, (0, 1)).all():
        return 1.0, "A's inputs are spikes"
    folded = fold_batchnorm(float_graph)
    first = folded.neurons[0]
    syn = next((s for t in folded.terms(first) for s in t.synapses(folded)), None)
    if syn is None:
        return 1.0, f"A's first layer {first!r} has no weights to compare"
    s_w = fit_scale(user.graph.nodes[syn].weight, folded.nodes[syn].weight)
    theta_a, theta_b = float(folded.nodes[first].threshold), float(user.graph.nodes[first].threshold)
    ratio = theta_b / (theta_a * s_w) if s_w > 0 else 1.0
    scale = 255.0 if ratio > 0 and abs(np.log(ratio / 255.0)) < abs(np.log(ratio)) else 1.0
    return scale, f"analog inputs; first layer's threshold ratio over its weight scale is {ratio:.3g}"
