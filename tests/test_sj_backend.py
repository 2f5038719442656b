"""SpikingJelly running a graph that has no module of its own (`to_module`, a deployed integer network): residual
merges bit-exact with the reference, spikes and membranes; and what SpikingJelly cannot express is refused by
`accepts`, saying why."""
from __future__ import annotations

import numpy as np
import pytest

from snncheck import backends
from snncheck.backends.reference import ReferenceBackend
from snncheck.backends.spikingjelly import OPS, SpikingJellyBackend, to_module
from snncheck.errors import InputError
from snncheck.graph import Graph, chain
from snncheck.graph import primitives as P


def _conv(rng, o, c, bias=True):
    return P.Conv2d(rng.integers(-20, 21, (o, c, 3, 3)).astype(np.int8),
                    rng.integers(-30, 31, o) if bias else None, padding=(1, 1))


def current_merge(seed=0) -> Graph:
    """conv-IF, then a neuron fed by two synapses: conv(n1) + 3 * n1 (an identity shortcut carrying the layer
    scale), soft reset; max pool, linear-IF with an initial membrane."""
    rng = np.random.default_rng(seed)
    nodes = {"input": P.Input((1, 8, 8)), "c1": _conv(rng, 4, 1), "n1": P.IF(threshold=60),
             "c2": _conv(rng, 4, 4, bias=False), "short": P.Scale(3), "add": P.Add(),
             "n2": P.IF(threshold=40, reset="soft"), "pool": P.MaxPool2d(), "flat": P.Flatten(),
             "fc": P.Linear(rng.integers(-30, 31, (10, 64)).astype(np.int8), rng.integers(-5, 6, 10)),
             "n3": P.IF(threshold=30, v_init=7)}
    edges = [("input", "c1"), ("c1", "n1"), ("n1", "c2"), ("c2", "add"), ("n1", "short"), ("short", "add"),
             ("add", "n2"), ("n2", "pool"), ("pool", "flat"), ("flat", "fc"), ("fc", "n3")]
    return Graph(nodes, edges, name="current_merge")


def spike_sum(seed=0) -> Graph:
    """SEW-style: n1 -> conv -> n2, then n1 + n2 (spike counts 0..2) feeds a conv and a linear readout."""
    rng = np.random.default_rng(seed)
    nodes = {"input": P.Input((1, 8, 8)), "c1": _conv(rng, 4, 1), "n1": P.IF(threshold=60),
             "c2": _conv(rng, 4, 4), "n2": P.IF(threshold=40), "add": P.Add(), "c3": _conv(rng, 4, 4),
             "n3": P.IF(threshold=50, reset="soft"), "flat": P.Flatten(),
             "fc": P.Linear(rng.integers(-30, 31, (10, 256)).astype(np.int8)), "n4": P.IF(threshold=40),
             "rate": P.MeanOverTime()}
    edges = [("input", "c1"), ("c1", "n1"), ("n1", "c2"), ("c2", "n2"), ("n1", "add"), ("n2", "add"),
             ("add", "c3"), ("c3", "n3"), ("n3", "flat"), ("flat", "fc"), ("fc", "n4"), ("n4", "rate")]
    return Graph(nodes, edges, name="spike_sum")


def _inputs(n=24, t=6, seed=1):
    return np.random.default_rng(seed).integers(0, 4, (n, t, 1, 8, 8)).astype(np.float32)


def _assert_bit_exact(a, b):
    assert a.names == b.names
    for ra, rb in zip(a.layers, b.layers):
        np.testing.assert_array_equal(ra.spikes, rb.spikes, err_msg=ra.name)
        np.testing.assert_array_equal(ra.v, rb.v, err_msg=ra.name)
        np.testing.assert_array_equal(ra.h, rb.h, err_msg=ra.name)


@pytest.mark.parametrize("make", [current_merge, spike_sum])
def test_integer_merges_run_bit_exact_in_spikingjelly(make):
    """Catches a merge built wrong in SpikingJelly (an input dropped, a shortcut's scale ignored, spikes OR-ed
    instead of summed, soft reset or the initial membrane lost): spikes, V and H equal the reference's."""
    graph = make()
    assert graph.is_integer and SpikingJellyBackend().accepts(graph) == []
    x = _inputs()
    a, b = SpikingJellyBackend().run(graph, x, "spikingjelly:b"), ReferenceBackend().run(graph, x, "reference:b")
    assert b.meta["exact"] and all(rec.rounding_bound == 0 for rec in a.layers)
    assert all(0.02 < rec.spikes.mean() < 0.8 for rec in b.layers), [rec.spikes.mean() for rec in b.layers]
    _assert_bit_exact(a, b)


@pytest.mark.parametrize("node, builder", [
    (P.Scale, lambda b, name, node, ins, in_shape: ins[0]),                      # the shortcut's factor lost
    (P.Add, lambda b, name, node, ins, in_shape: ins[0]),                        # the merge's second input lost
])
def test_the_comparison_catches_a_wrong_build(monkeypatch, node, builder):
    """The planted twin of the test above: with a builder that drops the Scale's factor or the Add's second input,
    SpikingJelly no longer equals the reference."""
    monkeypatch.setitem(OPS._impl, node, builder)
    graph = current_merge()
    x = _inputs()
    a, b = SpikingJellyBackend().run(graph, x), ReferenceBackend().run(graph, x)
    assert not np.array_equal(a.layer("n2").spikes, b.layer("n2").spikes)


def test_a_run_without_membranes_and_in_batches():
    """Catches state carried from one batch to the next (reset_net before every batch) and v recorded when not
    asked for."""
    graph, x = current_merge(), _inputs(n=10)
    whole = SpikingJellyBackend().run(graph, x)
    backend = SpikingJellyBackend()
    backend.batch_size = 3
    batched = backend.run(graph, x, record_v=False)
    assert all(rec.v is None and rec.h is None for rec in batched.layers)
    for ra, rb in zip(whole.layers, batched.layers):
        np.testing.assert_array_equal(ra.spikes, rb.spikes)


@pytest.mark.parametrize("node, reason", [
    (P.AdditiveLIF(threshold=5, leak=-1), "SpikingJelly has no neuron with an additive leak"),
    (P.IF(threshold=5, fire_rule=">"), "SpikingJelly fires on H >= threshold; this neuron fires on H > threshold"),
    (P.LIF(threshold=5, tau=1.0), "SpikingJelly's LIFNode needs tau > 1"),
])
def test_what_spikingjelly_cannot_express_is_refused_with_the_reason(node, reason):
    """Catches a neuron built as the nearest SpikingJelly node (a '>' rule run as '>=', an additive leak
    dropped): `accepts` names the node and the reason, and to_module refuses too."""
    graph = chain([("fc", P.Linear(np.ones((3, 4), np.int8))), ("n", node)], (4,))
    (refusal,) = SpikingJellyBackend().accepts(graph)
    assert refusal.node == "n" and reason in refusal.reason
    assert ReferenceBackend().accepts(graph) == []
    with pytest.raises(InputError, match=f"node 'n': {reason}"):
        to_module(graph)


def test_registered_under_its_name():
    assert backends.get("spikingjelly") is SpikingJellyBackend
