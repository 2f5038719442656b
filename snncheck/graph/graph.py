"""A network as a graph: named primitives and the edges between them (NIR-like, torch-free).

    g = Graph({"input": Input((1, 8, 8)), "conv": Conv2d(w), "sn": IF(threshold=1.0)},
              [("input", "conv"), ("conv", "sn")], name="tiny")

Shapes are inferred along the edges when the graph is made; a node whose inputs do not fit is refused with its
name. The node order is a topological order that keeps the order the nodes were given in where edges allow, so a
chain lists its layers as written. The recorded layers of a run are the neurons, in that order.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property
from typing import Container, Iterable, Optional


from ..errors import InputError, require
from . import primitives as P


@dataclass(frozen=True, eq=False)
class Graph:
    nodes: dict                     # name -> primitive, one of them an Input
    edges: tuple                    # (source, target) pairs; a node's inputs are in edge order
    name: str = "network"
    input_scale: float = 1.0        # what the input was multiplied by (255 for 0-255 pixels); informational
    meta: dict = field(default_factory=dict, compare=False)   # where it came from (JSON-able)

    def __post_init__(self):
        object.__setattr__(self, "nodes", dict(self.nodes))
        object.__setattr__(self, "edges", tuple((str(a), str(b)) for a, b in self.edges))
        for a, b in self.edges:
            require(a in self.nodes and b in self.nodes, lambda: f"graph {self.name!r}: edge {a!r} -> {b!r} names "
                                                                 "an unknown node")
        inputs = [n for n, p in self.nodes.items() if isinstance(p, P.Input)]
        require(len(inputs) == 1, lambda: f"graph {self.name!r} needs exactly one Input node, has {len(inputs)}")
        self.shapes  # validates every shape once, naming the node

    # ------------------------------------------------------------------------------------------- structure
    @property
    def input(self) -> str:
        return next(n for n, p in self.nodes.items() if isinstance(p, P.Input))

    @property
    def input_shape(self) -> tuple:
        return tuple(self.nodes[self.input].shape)

    @cached_property
    def _preds(self) -> dict:
        return self._adjacency(reverse=True)

    @cached_property
    def _succs(self) -> dict:
        return self._adjacency(reverse=False)

    def _adjacency(self, reverse: bool) -> dict:
        out = {n: [] for n in self.nodes}
        for a, b in self.edges:
            out[a if not reverse else b].append(b if not reverse else a)
        return out

    def inputs_of(self, name: str) -> list:
        return list(self._preds[name])

    def consumers(self, name: str) -> list:
        return list(self._succs[name])

    def upstream(self, targets: Iterable, stop: Container = ()) -> set:
        """The nodes `targets` are computed from, targets included: the walk up the edges ends at a node in `stop`
        (kept in the set, its own inputs not), as evaluating from feeds needs nothing above them."""
        found, stack = set(), list(targets)
        while stack:
            n = stack.pop()
            if n not in found:
                found.add(n)
                if n not in stop:
                    stack.extend(self._preds[n])
        return found

    @cached_property
    def order(self) -> list:
        """Topological order; among nodes ready at the same time, the order in which they were given."""
        rank = {n: i for i, n in enumerate(self.nodes)}
        indeg = {n: len(p) for n, p in self._preds.items()}
        ready = sorted((n for n, d in indeg.items() if d == 0), key=rank.get)
        out = []
        while ready:
            n = ready.pop(0)
            out.append(n)
            for m in self._succs[n]:
                indeg[m] -= 1
                if indeg[m] == 0:
                    ready.append(m)
                    ready.sort(key=rank.get)
        require(len(out) == len(self.nodes), lambda: f"graph {self.name!r} has a cycle through "
                                                     f"{sorted(set(self.nodes) - set(out))}")
        return out

    @cached_property
    def shapes(self) -> dict:
        """Output shape (per sample) of every node."""
        out = {}
        for n in self.order:
            node = self.nodes[n]
            ins = [out[p] for p in self._preds[n]]
            arity = node.arity
            if arity is not None:
                require(len(ins) == arity, lambda: f"node {n!r} ({node.kind}) takes {arity} input(s), has {len(ins)}")
            try:
                out[n] = tuple(int(d) for d in node.out_shape(*ins))
            except InputError as exc:
                raise InputError(f"node {n!r} ({node.kind}): {exc}") from None
        return out

    # ------------------------------------------------------------------------------------------- views
    @property
    def neurons(self) -> list:
        """The spiking layers, in order: what every run records."""
        return [n for n in self.order if P.is_neuron(self.nodes[n])]

    @property
    def outputs(self) -> list:
        """Nodes nothing consumes."""
        return [n for n in self.order if not self._succs[n]]

    @cached_property
    def offchip(self) -> frozenset:
        """The nodes from which no neuron can be reached (the input aside): what is computed off-chip from the last
        spiking layers' spikes (a readout head, a vote, a rate, and what leads to them)."""
        feeds = set()
        for n in reversed(self.order):
            if P.is_neuron(self.nodes[n]) or any(c in feeds for c in self._succs[n]):
                feeds.add(n)
        return frozenset(n for n in self.order if n not in feeds and not isinstance(self.nodes[n], P.Input))

    @cached_property
    def readouts(self) -> list:
        """Outputs that are not spikes: what is computed off-chip from the last spiking layers (a rate, a
        Linear head, a vote over groups), in order. A run records their values beside the spikes."""
        return [n for n in self.outputs if n in self.offchip]

    def of_type(self, *types) -> list:
        return [n for n in self.order if isinstance(self.nodes[n], types)]

    def __getitem__(self, name: str):
        return self.nodes[name]

    @property
    def fractional(self) -> bool:
        """Some node makes fractions of integers (an average, a multiplicative leak)."""
        return any(self.nodes[n].fractional for n in self.order)

    @cached_property
    def is_integer(self) -> bool:
        """Every parameter integer-valued (asked at every run: computed once, the graph does not change)."""
        return all(P.is_integer_valued(a) for n in self.order for a in P.parameters(self.nodes[n]))

    def summary(self) -> dict:
        """JSON-able description for reports."""
        return {"name": self.name, "integer": self.is_integer, "input_shape": list(self.input_shape),
                "nodes": [f"{n}:{self.nodes[n].kind}" for n in self.order], "spiking_layers": self.neurons,
                "edges": [list(e) for e in self.edges if len(self._preds[e[1]]) > 1 or len(self._succs[e[0]]) > 1]}

    # ------------------------------------------------------------------------------------------- edits
    def replace(self, nodes: Optional[dict] = None, edges: Optional[Iterable] = None, **changes) -> "Graph":
        """A new graph; `nodes` maps names to replacement primitives (others kept)."""
        new_nodes = {n: (nodes or {}).get(n, p) for n, p in self.nodes.items()}
        return dataclasses.replace(self, nodes=new_nodes, edges=tuple(edges) if edges is not None else self.edges,
                                   **changes)

    def with_node(self, name: str, **changes) -> "Graph":
        """A copy with one node's fields changed."""
        return self.replace({name: dataclasses.replace(self.nodes[name], **changes)})

    # ------------------------------------------------------------------------------------------- synaptic terms
    def terms(self, neuron: str) -> list:
        """The synaptic input of a neuron (or of any node) as a sum of terms: [Term(source, path)], where `source`
        is a neuron, the input, or another non-linear node (a max pool), and `path` the linear nodes from it to
        here, in order. An Add splits into one term per input; a Flatten, Conv, Linear... extends the path."""
        out = []

        def walk(n: str, path: tuple):
            node = self.nodes[n]
            if isinstance(node, P.Add):
                for p in self._preds[n]:
                    walk(p, (n,) + path)
            elif isinstance(node, P.LINEAR_OPS):
                walk(self._preds[n][0], (n,) + path)
            else:
                out.append(Term(n, path))

        for p in self._preds[neuron]:
            walk(p, ())
        return out


@dataclass(frozen=True)
class Term:
    """One summand of a node's synaptic input: what `source` emits, through the linear `path` (in order)."""
    source: str
    path: tuple

    def synapses(self, graph: Graph) -> list:
        return [n for n in self.path if isinstance(graph.nodes[n], P.SYNAPSES)]


# ----------------------------------------------------------------------------------------------- building
def chain(layers: list, input_shape, name: str = "network", input_name: str = "input", **kwargs) -> Graph:
    """A graph from [(name, primitive)] applied in order to the input (a plain feed-forward chain)."""
    nodes = {input_name: P.Input(tuple(input_shape))}
    edges, prev = [], input_name
    for n, prim in layers:
        require(n not in nodes, lambda: f"duplicate node name {n!r}")
        nodes[n] = prim
        edges.append((prev, n))
        prev = n
    return Graph(nodes, tuple(edges), name=name, **kwargs)
