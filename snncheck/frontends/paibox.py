"""A user's own PAIBox network (`--paibox FILE.py:FACTORY`) as network B.

FACTORY() returns a fresh `pb.Network` with one `InputProj(input=None)`. Its neuron layers are ordered from the
input along the synapses and matched to A's spiking layers in order, by size; what does not match (pooling
stages, bypass neurons) stays in the PAIBox run but has no counterpart. B's description for the other runners
is A's architecture (BatchNorm folded) carrying the user's weights, biases (leaks), thresholds and reset modes,
so that the reference runs exactly what the user built. The user's timing is kept as written: it is what the
harness checks, not something it fixes.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .. import ir
from ..errors import InputError, require

NEG_FLOOR = -(2 ** 29 - 1)      # PAIBox's default negative threshold: no floor in practice


@dataclass
class UserNetwork:
    network: object               # the user's pb.Network (probes get added to it by the runner)
    inp: object                   # its InputProj
    matched: dict                 # {A's spiking layer: PAIBox neuron node}
    stages: list                  # every PAIBox neuron/module node reachable from the input, in order
    int_net: ir.Network           # B: A's architecture with the user's parameters
    matching: list                # rows for the report, one per PAIBox stage
    spec: str
    probes: dict = field(default_factory=dict)   # {A's layer: (spike probe, voltage probe)}, set by the runner

    @property
    def max_wait(self) -> int:
        return max((int(n.tick_wait_start) for n in self.stages), default=1)


def load(spec: str, float_net: ir.Network) -> UserNetwork:
    """Imports FACTORY from `spec`, builds the network and matches it to A (float_net, BatchNorm not folded)."""
    import paibox as pb
    from paibox.naming import clear_name_cache
    from ..checkpoint import build_module
    clear_name_cache(ignore_warn=True)
    net = build_module(spec, "PAIBox factory")
    require(isinstance(net, pb.Network), f"{spec}: the factory returned a {type(net).__name__}, not a pb.Network")
    inp, order = _graph_order(net, spec)
    folded = ir.fold_batchnorm(float_net)
    matched, matching = _match(folded, order, spec)
    int_net = _int_network(folded, matched, net, spec)
    return UserNetwork(net, inp, matched, [n for n, _ in order], int_net, matching, spec)


def _graph_order(net, spec: str):
    """(InputProj, [(node, pipeline depth)] for the neuron and module nodes in order from the input).

    The depth (1 for a node fed by the InputProj) is the tick_wait_start that PAIBox's recipe gives the node."""
    import paibox as pb
    from paibox.base import NeuDyn, SynSys
    comps = list(net.components.values())
    inputs = [c for c in comps if isinstance(c, pb.InputProj)]
    require(len(inputs) == 1, f"{spec}: the network must hold exactly one InputProj, found {len(inputs)}")
    succ: dict = {}
    for c in comps:
        if isinstance(c, SynSys):
            succ.setdefault(id(c.source), []).append(c.target)
        elif isinstance(c, NeuDyn) and hasattr(c, "module_intf"):
            for op in c.module_intf.operands:
                succ.setdefault(id(op), []).append(c)
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
    require(order, f"{spec}: nothing is connected to the InputProj")
    return inputs[0], [(node, depth[id(node)]) for node in order]


def _match(folded: ir.Network, order: list, spec: str):
    """A's spiking layers, in order, to the next PAIBox neuron layer of the same size."""
    from paibox.components import Neuron
    shapes = folded.neuron_shapes()
    matched, rows, pos = {}, [], 0
    for layer in folded.neurons:
        size = int(np.prod(shapes[layer.name]))
        while pos < len(order):
            node, depth = order[pos]
            pos += 1
            if isinstance(node, Neuron) and type(node).__name__ != "BypassNeuron" and int(node.num_out) == size:
                matched[layer.name] = node
                rows.append(_row(node, depth, layer.name, shapes[layer.name]))
                break
            rows.append(_row(node, depth))
        else:
            found = ", ".join(f"{n.name} {tuple(n.shape_out)}" for n, _ in order)
            raise InputError(f"{spec}: A's spiking layer {layer.name!r} {shapes[layer.name]} has no PAIBox neuron "
                             f"layer of {size} neurons after the ones matched so far (PAIBox layers: {found})")
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


def _int_network(folded: ir.Network, matched: dict, net, spec: str) -> ir.Network:
    """A's layers with each matched neuron's threshold/reset and its incoming synapse's weights and bias."""
    from paibox.base import SynSys
    into = {}
    for syn in net.components.subset(SynSys).values():
        into.setdefault(id(syn.target), []).append(syn)
    changes = {}
    for name, node in matched.items():
        syns = into.get(id(node), [])
        require(len(syns) == 1, f"{spec}: PAIBox layer {node.name} (matched to {name!r}) has {len(syns)} incoming "
                                "synapses; one is supported")
        _check_neuron(node, name, spec)
        synapse = folded.input_of(name)
        require(synapse is not None, f"{spec}: A's layer {name!r} is not fed by a Conv2d/Linear")
        shape = folded.neuron_shapes()[name]
        bias, leak = _bias(node, shape)
        changes[synapse.name] = _synapse(synapse, syns[0], bias, spec)
        changes[name] = ir.AdditiveLIF(name, int(node.pos_threshold), None if _is_soft(node) else int(node.reset_v),
                                       leak=leak) if leak is not None else \
            ir.IF(name, int(node.pos_threshold), None if _is_soft(node) else int(node.reset_v))
    layers = [changes.get(l.name, l) for l in folded.layers]
    return dataclasses.replace(folded, layers=layers, name=f"paibox:{spec.rpartition(':')[2]}")


def _check_neuron(node, name: str, spec: str) -> None:
    from paicorelib import LCM
    where = f"{spec}: PAIBox layer {node.name} (matched to {name!r})"
    require(hasattr(node, "pos_threshold"), f"{where} is a {type(node).__name__}, not an IF/LIF neuron")
    require(getattr(node, "leak_comparison", LCM.LEAK_BEFORE_COMP) is LCM.LEAK_BEFORE_COMP,
            f"{where} compares before its leak (LEAK_AFTER_COMP); snncheck models the default order only")
    require(int(node.neg_threshold) == NEG_FLOOR, f"{where} has neg_threshold={int(node.neg_threshold)}, a floor "
                                                  "on v that SpikingJelly cannot express; leave it at its default")


def _bias(node, shape):
    """The node's leak as a synapse bias per channel/feature, or (None, per-neuron leak) if it varies inside a
    channel; (None, None) when there is none."""
    leak = np.asarray(node.leak_v, dtype=np.int64)
    if not leak.any():
        return None, None
    full = np.broadcast_to(leak, (int(np.prod(shape)),)).reshape(shape)
    per = full.reshape(shape[0], -1)
    if np.all(per == per[:, :1]):
        return per[:, 0].copy(), None
    return None, full.copy()


def _synapse(layer, syn, bias, spec: str):
    from paibox.components.synapses.base import Conv2dSyn
    where = f"{spec}: PAIBox synapse {syn.name} (into A's {layer.name!r})"
    if isinstance(layer, ir.Conv2d):
        require(isinstance(syn, Conv2dSyn), f"{where} is a {type(syn).__name__}; A's layer is a Conv2d")
        comm = syn.comm
        w = np.asarray(comm.weights, dtype=np.int64)
        require(w.shape == layer.weight.shape, f"{where}: kernel {w.shape}, A's is {layer.weight.shape}")
        return dataclasses.replace(layer, weight=w, bias=bias, stride=tuple(comm.stride),
                                   padding=tuple(comm.padding), groups=int(comm.groups))
    conn = np.asarray(syn.connectivity, dtype=np.int64)
    require(conn.shape == layer.weight.T.shape, f"{where}: weights {conn.shape} (in, out), A's Linear is "
                                                 f"{layer.weight.T.shape}")
    return dataclasses.replace(layer, weight=conn.T.copy(), bias=bias)


def infer_input_scale(user: UserNetwork, float_net: ir.Network, inputs: np.ndarray) -> tuple:
    """(scale, reason) when nobody gives B's input scale: 1 for spike inputs (the chip's input is 1-bit); for
    analog inputs, 1 or 255, whichever is nearer (in ratio) to the first layer's theta_B / (theta_A * s_w)."""
    from ..checkpoint import fit_scale
    if np.isin(inputs, (0, 1)).all():
        return 1.0, "A's inputs are spikes"
    folded = ir.fold_batchnorm(float_net)
    first = folded.neurons[0]
    syn_a, syn_b = folded.input_of(first.name), user.int_net.input_of(first.name)
    s_w = fit_scale(syn_b.weight, syn_a.weight)
    ratio = float(user.int_net.layer(first.name).threshold) / (float(first.threshold) * s_w) if s_w > 0 else 1.0
    scale = 255.0 if ratio > 0 and abs(np.log(ratio / 255.0)) < abs(np.log(ratio)) else 1.0
    return scale, f"analog inputs; first layer's threshold ratio over its weight scale is {ratio:.3g}"
