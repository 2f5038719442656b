"""Where the simulated pb.Network comes from, as loaders (Polygraphy's): a source is a picklable callable that
returns a `Built` network, so a worker process can rebuild it.

- `GraphSource(graph, timing, layout)`: the network an accepted integer graph lowers to (`lower.stages`), laid
  out by `layout`, timed by the recipe ("pipeline": tick_wait_start = stage depth, delay 1) or by the common mistake
  kept so the harness can show it ("flat": tick_wait_start = 1 everywhere).
- `UserSource(user, lag_steps)`: a user's own network (`snncheck.frontends.paibox.UserNetwork`) with its timing as
  written, probes added on the neuron nodes matched to the graph's neurons.

Both find the network's components once: PAIBox walks its whole object graph to find them at every step
(`DynSysGroup.components`), though the graph does not change after it is built: 40% of the simulation time of the
small residual graph of tests/test_paibox_backend.py (1.3 -> 0.8 ms a step), 7% of a 3x32x32 one whose convolutions
dominate. The update order stays PAIBox's own.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...errors import require
from ...graph import Graph
from . import lower, reuse
from .layouts import OneSample

TIMINGS = ("pipeline", "flat")


@dataclass(eq=False)
class Built:
    """A pb.Network ready to simulate: its InputProj, {neuron: (spike probe, voltage probe)}, the layout that
    feeds it and reads its probes, and how many steps beyond the T frames a run lasts."""
    network: object
    inp: object
    probes: dict
    layout: object
    lag_steps: int
    sim: object = None           # its pb.Simulator, made by the first `simulate` and kept with the network
    fast: bool = False           # the fast path is installed (`fastpath.Fast`): `simulate` records directly


class GraphSource:
    def __init__(self, graph: Graph, timing: str = "pipeline", layout=None, cache_components: bool = True):
        """`cache_components=False` keeps PAIBox's own graph walk at every step (the baseline of benchmarks)."""
        require(timing in TIMINGS, lambda: f"unknown timing {timing!r}; known: {', '.join(TIMINGS)}")
        self.graph, self.timing, self.layout = graph, timing, layout or OneSample(graph)
        self.cache_components = cache_components

    @property
    def reuse_key(self) -> tuple:
        """What the built network depends on: `fastpath.Fast` keeps its built networks by it (`reuse`); without
        the fast path a network is built for every run, as PAIBox's examples do."""
        layout = self.layout
        return (reuse.fingerprint(self.graph), self.timing, self.cache_components, type(layout).__name__,
                layout.batch, tuple(layout.input_shape))

    def __call__(self) -> Built:
        import paibox as pb
        from paibox.naming import clear_name_cache
        clear_name_cache(ignore_warn=True)            # node names must be unique per process
        graph, layout = self.graph, self.layout
        net = (cached_network_class(pb) if self.cache_components else pb.Network)()
        net.inp = pb.InputProj(input=None, shape_out=layout.input_shape)
        nodes, synapses, probes = {graph.input: net.inp}, [], {}
        stages = lower.stages(graph)
        for stage in stages:
            tick = {"tick_wait_start": stage.depth if self.timing == "pipeline" else 1, "delay": 1}
            if stage.pool:
                node = pb.BypassNeuron(stage.shape or layout.shape(stage.name), **tick)
            else:
                node = make_neuron(pb, graph.nodes[stage.name], layout.shape(stage.name),
                                   *layout.drive(stage.name), tick)
                probes[stage.name] = (pb.Probe(node, "spike"), pb.Probe(node, "voltage"))
            synapses += [layout.synapse(pb, nodes[link.source], node, link) for link in stage.links]
            nodes[stage.name] = node
        # PAIBox finds nodes and probes as network attributes or inside NodeList/NodeDict, not in plain lists
        net.stage_nodes = pb.NodeList([nodes[s.name] for s in stages])
        net.synapse_nodes = pb.NodeList(synapses)
        net.probe_nodes = pb.NodeList([p for pair in probes.values() for p in pair])
        return Built(net, net.inp, probes, layout, max((s.depth for s in stages), default=1) - 1)


class UserSource:
    def __init__(self, user, lag_steps: int):
        """`user`: a `snncheck.frontends.paibox.UserNetwork` (it pickles as its factory spec, so a worker loads
        its own copy); `lag_steps`: how long to run past the last frame."""
        self.user, self.lag_steps = user, int(lag_steps)

    def __call__(self) -> Built:
        import paibox as pb
        user = self.user
        if not user.probes:
            user.probes = {name: (pb.Probe(node, "spike"), pb.Probe(node, "voltage"))
                           for name, node in user.matched.items()}
            user.network.snncheck_probes = pb.NodeList([p for pair in user.probes.values() for p in pair])
            cache_components(pb, user.network)
        layout = OneSample(user.graph, tuple(user.inp.shape_out))
        return Built(user.network, user.inp, user.probes, layout, self.lag_steps)


def make_neuron(pb, node, shape, bias, leak: int, tick: dict):
    """pb.IF, or pb.LIF when something is added every step (see `lower`)."""
    params = lower.neuron_params(node)
    if bias is not None and np.size(bias) == 1:   # PAIBox int()s a one-element bias, which NumPy 2 refuses for 1-d
        bias, leak = None, leak + int(np.asarray(bias).reshape(-1)[0])
    if bias is None and leak == 0:
        return pb.IF(shape, **params, **tick)
    return pb.LIF(shape, leak_v=int(leak), bias=0 if bias is None else bias, **params, **tick)


_CACHED = {}


def found_collector(pb):
    """A `Collector` that also keeps its `subset`s by type: PAIBox's update takes four of the components at every
    step, each a loop over every node in Python (0.4 ms a step on the digits CSNN)."""
    if "collector" not in _CACHED:
        from paibox.collector import Collector

        def subset(self, obj_type):
            kept = self.__dict__.setdefault("_snncheck_subsets", {})
            if obj_type not in kept:
                kept[obj_type] = Collector.subset(self, obj_type)
            return kept[obj_type]
        _CACHED["collector"] = type("Collector", (Collector,), {"subset": subset, "__module__": __name__})
    return _CACHED["collector"]


def cached_network_class(pb, base=None):
    """A subclass of `base` (pb.Network) whose `components` are collected once per instance (and their subsets by
    type, `found_collector`)."""
    base = base or pb.Network
    if base not in _CACHED:
        def components(self):
            found = self.__dict__.get("_snncheck_components")
            if found is None:
                found = found_collector(pb)(base.components.fget(self))
                self.__dict__["_snncheck_components"] = found
            return found
        _CACHED[base] = type(base.__name__, (base,), {"components": property(components),
                                                      "__module__": base.__module__})
    return _CACHED[base]


def cache_components(pb, network) -> None:
    """Makes an existing network (a user's) collect its components once, unless its class redefines them."""
    if type(network).components is pb.Network.components:
        network.__class__ = cached_network_class(pb, type(network))
