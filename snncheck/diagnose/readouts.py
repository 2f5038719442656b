"""Readouts (`Graph.readouts`: a rate, a vote over groups, a Linear head computed off-chip from the last spiking
layers): the scale that brings B's readout values to A's units, and what a comparison of readouts shows.

B's readout is A's readout times the product of the weight scales on its path (spikes carry amplitude 1 in both
networks): a Vote or a mean over time keeps the units, a Linear head deployed at weight scale s_w multiplies them by
s_w. Each scale is fitted from the two networks' weights, as the conversion would have chosen it.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from ..convert import fit_scale, prepare
from ..graph import Graph
from ..graph import primitives as P
from . import Diagnosis


def scales(a: Graph, b: Graph) -> dict:
    """{readout: k} with B's readout = k x A's, for the readouts both graphs have; 0 where B's weights on the path
    are all zero while A's are not (a head written as zeros)."""
    a, b = prepare(a), prepare(b)        # as converted: an average pool's 1/n is in the weights after it
    return {r: _scale(a, b, r) for r in b.readouts if r in a.nodes}


def _scale(a: Graph, b: Graph, name: str) -> float:
    k = 1.0
    for term in b.terms(name)[:1]:          # every term of a sum carries the same scale
        for n in tuple(term.path) + (name,):        # the readout itself may be the weight layer (a Linear head)
            nb, na = b.nodes[n], a.nodes.get(n)
            if isinstance(nb, P.SYNAPSES) and na is not None:
                k *= fit_scale(nb.weight, na.weight) if np.any(na.weight) else 1.0
            elif isinstance(nb, P.Scale) and isinstance(na, P.Scale) and float(na.factor):
                k *= float(nb.factor) / float(na.factor)
        source = b.nodes[term.source]
        if not P.is_neuron(source) and not isinstance(source, P.Input):
            k *= _scale(a, b, term.source)          # a readout of a readout (a rate of a vote)
    return k


def zeroed(found: dict) -> list:
    """A readout of B whose weights are all zero where A's are not: written as zeros, never compared."""
    return [Diagnosis("readout_lost", r, "error",
                      f"readout {r!r} of B is all zeros where A's is not: its weights were not converted",
                      evidence={"scale": k}, fix="convert the readout's weights with its layer's scale (or keep it "
                                                 "in float: it is computed off-chip)")
            for r, k in found.items() if k == 0]


def disagreement(pair, skip: bool = False) -> list:
    """Two runs of one network whose spikes agree everywhere but whose readouts differ beyond rounding: the
    readout is computed differently (an error); nothing when spikes already differ (the readout follows them)."""
    if skip or pair.expect == "quantization" or any(lc.mismatches for lc in pair.layers):
        return []
    return [Diagnosis("readout_mismatch", oc.name, "error",
                      f"{pair.a} and {pair.b} agree on every spike but readout {oc.name!r} differs at {oc.differing} "
                      f"of {oc.total} values (up to {oc.max_abs_diff:.3g}, tolerance {oc.tolerance:.2g})",
                      evidence={"pair": pair.key, **oc.to_dict()},
                      fix="compute the readout the same way in both (weights, bias, the mean's divisor)")
            for oc in pair.outputs if not oc.exact]


def units(found: dict) -> Optional[dict]:
    """What the report says of readout units, or None without readouts."""
    return {"readouts": "A's units: B's values / k", "k": found} if found else None
