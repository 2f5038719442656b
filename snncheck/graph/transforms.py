"""Graph transforms that keep a network's function: BatchNorm folding."""
from __future__ import annotations

import dataclasses
import weakref

import numpy as np

from ..errors import require
from . import primitives as P
from .graph import Graph


def fold_batchnorm(graph: Graph) -> Graph:
    """Every BatchNorm merged into the Conv2d/Linear right before it (float64 arithmetic, then float32):
    k = gamma / sqrt(var + eps), W' = W * k, b' = (b - mean) * k + beta. A BatchNorm that does not follow a
    synapse of its own (one consumed by nothing else) is refused, naming it."""
    if not graph.of_type(P.BatchNorm):
        return graph
    folded = _FOLDED.get(graph)
    if folded is None:          # once per graph (graphs are frozen): every run of a chunked set folds the same one,
        folded = _FOLDED[graph] = _fold(graph)      # and what backends prepare per node is then prepared once
    return folded


_FOLDED = weakref.WeakKeyDictionary()


def _fold(graph: Graph) -> Graph:
    nodes, edges = dict(graph.nodes), list(graph.edges)
    for bn_name in graph.of_type(P.BatchNorm):
        bn = graph.nodes[bn_name]
        (syn_name,) = graph.inputs_of(bn_name)
        syn = nodes[syn_name]
        require(isinstance(syn, P.SYNAPSES) and graph.consumers(syn_name) == [bn_name],
                lambda: f"BatchNorm {bn_name!r} does not follow a Conv2d/Linear of its own, so it cannot be folded")
        require(bool(np.all(np.asarray(bn.var, np.float64) + bn.eps > 0)),
                lambda: f"BatchNorm {bn_name!r}: running variance {float(np.min(bn.var)):.4g} is negative; a "
                        "trained BatchNorm's variance is never below zero")
        k = bn.gamma.astype(np.float64) / np.sqrt(bn.var.astype(np.float64) + bn.eps)
        bias = syn.bias if syn.bias is not None else np.zeros(syn.weight.shape[0])
        w = syn.weight.astype(np.float64) * k.reshape((-1,) + (1,) * (syn.weight.ndim - 1))
        b = (np.asarray(bias, np.float64) - bn.mean) * k + bn.beta
        nodes[syn_name] = dataclasses.replace(syn, weight=w.astype(np.float32), bias=b.astype(np.float32))
        del nodes[bn_name]
        edges = [(syn_name if a == bn_name else a, b_) for a, b_ in edges if b_ != bn_name]
    return dataclasses.replace(graph, nodes=nodes, edges=tuple(edges))


def folded_from(graph: Graph) -> dict:
    """{synapse name: its BatchNorm's name} for the BatchNorms that `fold_batchnorm` merges."""
    return {graph.inputs_of(bn)[0]: bn for bn in graph.of_type(P.BatchNorm)}
