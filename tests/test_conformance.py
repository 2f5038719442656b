"""Every primitive in every backend: where a backend accepts a small integer graph built around the primitive, its
run equals the reference's bit for bit (spikes and membranes, at the expected lag for PAIBox); where it refuses,
the refusal names the node and says why, and running it anyway is one clean InputError. A primitive added to
snncheck.graph.primitives without an example here fails `test_every_primitive_has_an_example`."""
from __future__ import annotations

import numpy as np
import pytest

from snncheck import backends
from snncheck.align import align
from snncheck.backends.reference import ReferenceBackend
from snncheck.errors import InputError
from snncheck.graph import Graph, chain
from snncheck.graph import primitives as P

RNG = np.random.default_rng(0)


def _w(*shape, lo=-6, hi=7):
    return RNG.integers(lo, hi, shape)


def _conv_then(layer_name, node, shape=(2, 6, 6), threshold=8, **neuron):
    """input -> Conv2d -> node -> IF: the node sees integer currents or spikes, the IF records its effect."""
    return chain([("conv", P.Conv2d(_w(2, shape[0], 3, 3), _w(2), padding=(1, 1))), ("pre", P.IF(threshold)),
                  (layer_name, node), ("post_syn", P.Conv2d(_w(2, 2, 1, 1, lo=1, hi=4))),
                  ("post", P.IF(3, **neuron))], shape)


def _neuron(node):
    return chain([("fc", P.Linear(_w(6, 8), _w(6))), ("n", node)], (8,))


def _merge():
    nodes = {"input": P.Input((2, 6, 6)), "c1": P.Conv2d(_w(2, 2, 3, 3), None, padding=(1, 1)), "n1": P.IF(8),
             "c2": P.Conv2d(_w(2, 2, 3, 3), _w(2), padding=(1, 1)), "s": P.Scale(3), "add": P.Add(), "n2": P.IF(6)}
    edges = [("input", "c1"), ("c1", "n1"), ("n1", "c2"), ("c2", "add"), ("n1", "s"), ("s", "add"), ("add", "n2")]
    return Graph(nodes, edges, name="merge")


EXAMPLES = {
    "Input": lambda: _neuron(P.IF(5)),
    "Conv2d": lambda: chain([("c", P.Conv2d(_w(3, 2, 3, 3), _w(3), (2, 2), (1, 1))), ("n", P.IF(6))], (2, 6, 6)),
    "Linear": lambda: _neuron(P.IF(5)),
    "Scale": _merge,
    "Add": _merge,
    "Flatten": lambda: chain([("f", P.Flatten()), ("fc", P.Linear(_w(4, 72))), ("n", P.IF(9))], (2, 6, 6)),
    "MaxPool2d": lambda: _conv_then("pool", P.MaxPool2d()),
    "SumPool2d": lambda: _conv_then("pool", P.SumPool2d()),
    "AdaptiveSumPool2d": lambda: chain([("conv", P.Conv2d(_w(2, 2, 6, 6, lo=0, hi=3))), ("pre", P.IF(8)),
                                        ("pool", P.AdaptiveSumPool2d((3, 3))), ("f", P.Flatten()),
                                        ("fc", P.Linear(_w(4, 18, lo=0, hi=3))), ("post", P.IF(6))], (2, 6, 6)),
    "AdaptiveSumPool2d uneven": lambda: _conv_then("pool", P.AdaptiveSumPool2d((4, 3))),
    "SumPool2d padded": lambda: _conv_then("pool", P.SumPool2d((3, 3), (2, 2), (1, 1))),
    "AvgPool2d": lambda: _conv_then("pool", P.AvgPool2d()),
    "AvgPool2d padded": lambda: _conv_then("pool", P.AvgPool2d((3, 3), (2, 2), (1, 1))),
    "AvgPool2d padding not counted": lambda: _conv_then("pool", P.AvgPool2d((3, 3), (2, 2), (1, 1),
                                                                            count_include_pad=False)),
    "AdaptiveAvgPool2d": lambda: _conv_then("pool", P.AdaptiveAvgPool2d((4, 3))),
    "Vote": lambda: chain([("fc", P.Linear(_w(6, 8))), ("n", P.IF(5)), ("vote", P.Vote(3))], (8,)),
    "BatchNorm": lambda: chain([("fc", P.Linear(_w(4, 8))), ("bn", P.BatchNorm(np.zeros(4), np.ones(4) - 1e-5,
                                                                              np.full(4, 2.0), np.ones(4))),
                                ("n", P.IF(5))], (8,)),
    "MeanOverTime": lambda: chain([("fc", P.Linear(_w(6, 8))), ("n", P.IF(5)), ("rate", P.MeanOverTime())], (8,)),
    "IF": lambda: _neuron(P.IF(5)),
    "IF soft": lambda: _neuron(P.IF(5, reset="soft")),
    "IF v_reset": lambda: _neuron(P.IF(5, v_reset=-2)),
    "IF v_init": lambda: _neuron(P.IF(5, reset="soft", v_init=2)),
    "IF >": lambda: _neuron(P.IF(5, fire_rule=">")),
    "IF > soft": lambda: _neuron(P.IF(5, reset="soft", fire_rule=">")),
    "LIF": lambda: _neuron(P.LIF(2, tau=2.0)),
    "ParametricLIF": lambda: _neuron(P.ParametricLIF(2, w=0.0)),
    "AdditiveLIF": lambda: _neuron(P.AdditiveLIF(5, leak=-1)),
}
BACKENDS = [b for b in backends.BACKENDS if b != "reference" and getattr(backends.get(b), "conformance", True)]


def test_every_primitive_has_an_example():
    kinds = {cls.__name__ for cls in _subclasses(P.Primitive) if cls is not P.Neuron and not cls.__name__.startswith("_")}
    assert kinds <= {k.split()[0] for k in EXAMPLES}, sorted(kinds - {k.split()[0] for k in EXAMPLES})


def _subclasses(cls):
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("example", list(EXAMPLES))
def test_exact_where_supported_and_a_clean_refusal_otherwise(example, backend):
    graph = EXAMPLES[example]()
    x = RNG.integers(0, 4, (3, 5) + graph.input_shape).astype(np.float64)
    runner = backends.get(backend)()
    refusals = runner.accepts(graph)
    if refusals:
        for r in refusals:
            assert r.backend == backend and r.reason and (r.node is None or r.node in graph.nodes), r
        with pytest.raises(InputError):
            runner.run(graph, x, f"{backend}:b")
        return
    ref = ReferenceBackend().run(graph, x, "reference:b")
    run = runner.run(graph, x, f"{backend}:b")
    if run.raw:
        run, _ = align(run, ref)
    assert ref.layers and any(rec.spikes.any() for rec in ref.layers), "the example must fire"
    for a, b in zip(run.layers, ref.layers):
        assert np.array_equal(a.spikes, b.spikes), (example, backend, a.name, int((a.spikes != b.spikes).sum()))
        assert np.array_equal(a.v, b.v), (example, backend, a.name)
    for out in run.outputs:                 # readouts computed off-chip, where the backend gives them
        assert np.array_equal(out.values, ref.output(out.name).values), (example, backend, out.name)
    for a, b in zip(run.outputs, ref.outputs):      # readouts computed off-chip (PAIBox) equal the reference's
        assert a.name == b.name and np.array_equal(a.values, b.values), (example, backend, a.name)


def test_the_refusals_that_matter_say_why():
    """What users meet: PAIBox refuses multiplicative leaks, a non-zero initial membrane and an average pool not yet
    converted (its sum pool runs); SpikingJelly refuses the additive leak and NIR's strict firing rule."""
    said = {(ex, b): " ".join(r.reason for r in backends.get(b)().accepts(EXAMPLES[ex]()))
            for ex in EXAMPLES for b in BACKENDS}
    assert "multiplicative leak" in said["LIF", "paibox"] and "multiplicative leak" in said["ParametricLIF", "paibox"]
    assert "v = 0" in said["IF v_init", "paibox"]
    assert "convert the network first" in said["AvgPool2d", "paibox"] and said["SumPool2d", "paibox"] == ""
    assert "additive leak" in said["AdditiveLIF", "spikingjelly"] and ">=" in said["IF >", "spikingjelly"]
    assert said["IF >", "paibox"] == ""                               # run exactly as H >= threshold + 1
