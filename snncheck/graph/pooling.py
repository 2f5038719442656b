"""Average pooling on integers: a sum pooling, its 1/n folded into the synapse next to it.

An adaptive average pool whose windows all hold n cells (SpikingVGG's 1x1 -> 7x7 head on 32x32 inputs: one cell
each) is treated the same way, as an AdaptiveSumPool2d.

An average over n cells feeding a Conv2d/Linear (through Flatten nodes only) is that synapse with weights W/n after
a sum pool; a Conv2d/Linear that feeds only an average pool is that synapse with weights and bias W/n, b/n before a
sum pool. The float network computes the same function either way (up to float32 rounding), and the integer one
then has no fraction left: the conversion scales W/n like any weights (the 1/n lands in the layer's scale), and
PAIBox composes the sum pool into the synapse (`snncheck.backends.paibox.compose`). An identity shortcut (a Scale) after the pool
carries the 1/n in its factor. An average pool with no synapse of its own next to it (one feeding a neuron
directly, or a readout with no weights), or whose divisor varies at the
borders (count_include_pad=False with padding), has no such form: `why_not_sum` says why.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import numpy as np

from . import primitives as P
from .graph import Graph


SUM_POOLS = (P.SumPool2d, P.AdaptiveSumPool2d)


def sum_pools(graph: Graph) -> Graph:
    """`graph` with every average pool that has an integer form rewritten as a SumPool2d and its 1/n folded into
    its synapse (see the module docstring); the others are left as they are."""
    nodes = dict(graph.nodes)
    for name in graph.of_type(P.AvgPool2d, P.AdaptiveAvgPool2d):
        if why_not_sum(graph, name):
            continue
        pool = graph.nodes[name]
        n = float(_cells(graph, name))
        after, before = _carrier_after(graph, name), _carrier_before(graph, name)
        syn = after or before
        node = nodes[syn]
        nodes[name] = P.AdaptiveSumPool2d(pool.size) if isinstance(pool, P.AdaptiveAvgPool2d) else \
            P.SumPool2d(pool.kernel, pool.stride, pool.padding)
        if isinstance(node, P.Scale):          # an identity shortcut after the pool: its factor carries the 1/n
            nodes[syn] = P.Scale(float(node.factor) / n)
            continue
        changes = {"weight": (np.asarray(node.weight, np.float64) / n).astype(np.float32)}
        if syn == before and node.bias is not None:
            changes["bias"] = (np.asarray(node.bias, np.float64) / n).astype(np.float32)
        nodes[syn] = dataclasses.replace(node, **changes)
    return graph if nodes == graph.nodes else dataclasses.replace(graph, nodes=nodes)


def why_not_sum(graph: Graph, name: str) -> Optional[str]:
    """Why average pool `name` has no integer form (None if it has one)."""
    pool = graph.nodes[name]
    if _cells(graph, name) is None:
        return (f"adaptive average pooling {name!r} to {tuple(pool.size)} from {graph.shapes[graph.inputs_of(name)[0]]} "
                "averages windows of different sizes: no single scale of the next layer absorbs its divisors")
    if getattr(pool, "count_include_pad", True) is False and any(pool.padding):
        return (f"average pooling {name!r} divides by the cells inside the input (count_include_pad=False with "
                f"padding {tuple(pool.padding)}): its divisor varies at the borders, so no single scale of the "
                "next layer absorbs it; use count_include_pad=True or no padding")
    if _carrier_after(graph, name) or _carrier_before(graph, name):
        return None
    used = ", ".join(f"{c!r} ({graph.nodes[c].kind})" for c in graph.consumers(name)) or "nothing"
    return (f"average pooling {name!r} has no Conv2d/Linear of its own next to it (it feeds {used}): its "
            f"1/{_cells(graph, name)} cannot be folded into a synapse's scale, so it has no integer form "
            "(PAIBox's SpikingAvgPool2d is a majority vote, not an average); put it right before a Conv2d/Linear")


def _cells(graph: Graph, name: str) -> Optional[int]:
    """n, the cells every window of pool `name` averages (the kernel's, padding counted), or None when they differ
    (an adaptive pool whose input is not a multiple of its output, but for one cell per window)."""
    pool = graph.nodes[name]
    if isinstance(pool, P.AvgPool2d):
        return int(np.prod(pool.kernel))
    return pool.cells(graph.shapes[graph.inputs_of(name)[0]])


def _carrier_after(graph: Graph, name: str) -> Optional[str]:
    """The Conv2d/Linear (or the Scale of an identity shortcut) that `name` feeds alone, through Flatten nodes
    only."""
    n = name
    while True:
        used = graph.consumers(n)
        if len(used) != 1:
            return None
        n = used[0]
        node = graph.nodes[n]
        if isinstance(node, P.SYNAPSES + (P.Scale,)):
            return n
        if not isinstance(node, P.Flatten):
            return None


def _carrier_before(graph: Graph, name: str) -> Optional[str]:
    """The Conv2d/Linear that feeds only `name`."""
    (src,) = graph.inputs_of(name)
    ok = isinstance(graph.nodes[src], P.SYNAPSES) and graph.consumers(src) == [name]
    return src if ok else None
