"""Average pooling and readout heads on integers and on PAIBox: the sum-pool rewrite keeps the float function, a
sum pool composed into its synapse is that path exactly, what has no exact form is refused with one message by
`convert` and by PAIBox, and a readout head is converted to integers (never zeros)."""
from __future__ import annotations

import numpy as np
import pytest

from snncheck import checkpoint, convert
from snncheck.backends.paibox import PAIBoxBackend
from snncheck.backends.paibox.compose import path_synapse
from snncheck.backends.reference import ReferenceBackend, evaluate
from snncheck.errors import InputError
from snncheck.graph import Graph, chain
from snncheck.graph import primitives as P
from snncheck.graph.pooling import sum_pools

RNG = np.random.default_rng(3)


def _dyadic(*shape):
    """Float weights that are multiples of 1/4: divided by 4 or 16 they stay exact in float32."""
    return (RNG.integers(-12, 13, shape) / 4.0).astype(np.float32)


def pooled_net() -> Graph:
    """An average pool after a neuron (before a conv), one between a conv (with bias) and its neuron, and a global
    one before a Linear head."""
    return chain([("c1", P.Conv2d(_dyadic(4, 1, 3, 3), _dyadic(4), padding=(1, 1))), ("n1", P.IF(1.0)),
                  ("a1", P.AvgPool2d()), ("c2", P.Conv2d(_dyadic(4, 4, 3, 3), _dyadic(4), padding=(1, 1))),
                  ("a2", P.AvgPool2d()), ("n2", P.IF(0.5)), ("a3", P.AvgPool2d((2, 2), (2, 2))),
                  ("f", P.Flatten()), ("head", P.Linear(_dyadic(3, 4), _dyadic(3)))], (1, 8, 8))


def test_sum_pools_keep_the_float_function():
    """Every average pool becomes a SumPool2d with its 1/n in the synapse next to it; the float network computes the
    same spikes and the same head. Catches: the 1/n not folded (a layer sees n times its input), the bias of a
    synapse before the pool not divided (it is summed n times), the head's weights left as they were."""
    g = pooled_net()
    s = sum_pools(g)
    assert [s.nodes[n].kind for n in ("a1", "a2", "a3")] == ["SumPool2d"] * 3 and not s.fractional
    x = RNG.integers(0, 2, (4, 5, 1, 8, 8)).astype(np.float32)
    a = evaluate(g, {"input": x}, exact=False, keep=["head"])
    b = evaluate(s, {"input": x}, exact=False, keep=["head"])
    for n in ("n1", "n2"):
        assert a[n][0].any() and np.array_equal(a[n][0], b[n][0]), n
    assert np.allclose(a["head"], b["head"], atol=1e-5)


def _paths():
    """Random pool/conv/linear paths: (graph, source shape, path)."""
    for _ in range(300):
        c, h = int(RNG.integers(1, 3)), int(RNG.integers(4, 11))
        kp, sp, kc, sc = (int(v) for v in RNG.integers(1, 4, 4))
        pool = P.SumPool2d((kp, kp), (sp, sp), (int(RNG.integers(0, kp // 2 + 1)),) * 2)
        conv = P.Conv2d(RNG.integers(-5, 6, (2, c, kc, kc)), None, (min(sc, 2),) * 2, (int(RNG.integers(0, 2)),) * 2)
        order = int(RNG.integers(0, 3))
        try:
            if order == 2:
                f = int(np.prod(chain([("p", pool)], (c, h, h)).shapes["p"]))
                g = chain([("p", pool), ("f", P.Flatten()), ("fc", P.Linear(RNG.integers(-5, 6, (3, f))))], (c, h, h))
            else:
                g = chain([("p", pool), ("c", conv)] if order == 0 else [("c", conv), ("p", pool)], (c, h, h))
        except InputError:
            continue
        yield g


def test_a_composed_synapse_is_its_path_exactly():
    """A sum pool composed with the conv after it, the conv before it, or the Linear after its Flatten gives one
    synapse whose output equals the path's on integer inputs; a composition that is not exact (windows reading past
    the edge) is refused, never run. Catches: a wrong offset or stride in the composed kernel, the padding not
    cut away from a dense matrix, an inexact edge accepted."""
    exact = refused = 0
    for g in _paths():
        shape, last = g.input_shape, g.order[-1]
        x = RNG.integers(0, 3, (2, 1) + shape)
        want = evaluate(g, {"input": x}, exact=True, targets=[], keep=[last])[last]
        try:
            op = path_synapse(g, shape, tuple(g.order[1:]))
        except InputError:
            refused += 1
            continue
        one = chain(([("f", P.Flatten())] if isinstance(op, P.Linear) else []) + [("s", op)], shape)
        got = evaluate(one, {"input": x}, exact=True, targets=[], keep=["s"])["s"]
        assert got.shape == want.shape and np.array_equal(got, want), g.nodes
        exact += 1
    assert exact > 150 and refused > 0, (exact, refused)


def test_an_average_pool_merged_through_a_shortcut_is_deployed_exactly():
    """An average pool feeding a merge through an identity shortcut: the shortcut's factor carries the 1/4 and PAIBox
    composes the sum pool into that one-to-one synapse. Catches: the shortcut deployed without the pool (a
    one-to-one synapse of the wrong shape), the pool's 1/4 lost (the merge sees 4x the pooled spikes)."""
    nodes = {"input": P.Input((1, 8, 8)), "c1": P.Conv2d(_dyadic(2, 1, 3, 3), padding=(1, 1)), "n1": P.IF(0.5),
             "p": P.AvgPool2d(),
             "c3": P.Conv2d(_dyadic(2, 1, 2, 2), stride=(2, 2)), "n3": P.IF(0.5),
             "c4": P.Conv2d(_dyadic(2, 2, 1, 1)), "add": P.Add(), "n4": P.IF(0.25)}
    edges = [("input", "c1"), ("c1", "n1"), ("n1", "p"), ("p", "add"), ("input", "c3"), ("c3", "n3"),
             ("n3", "c4"), ("c4", "add"), ("add", "n4")]
    g = Graph(nodes, edges, name="pool-merge")
    conv = convert.convert(g, 1.0)
    b = conv.graph
    assert b.nodes["p"].kind == "SumPool2d" and PAIBoxBackend().accepts(b) == []
    x = RNG.integers(0, 2, (3, 6, 1, 8, 8))
    ref, raw = ReferenceBackend().run(b, x), PAIBoxBackend().run(b, x)
    assert ref.layer("n4").spikes.any()
    for rec in ref.layers:
        lag = raw.meta["expected_lag"][rec.name]
        assert np.array_equal(raw.layer(rec.name).spikes[:, lag:lag + 6], rec.spikes), rec.name
    a = evaluate(sum_pools(g), {"input": x.astype(np.float32)}, exact=False)["n4"][0]
    assert (a != ref.layer("n4").spikes).mean() < 0.1


def test_an_average_pool_with_no_synapse_of_its_own_is_refused_alike_by_convert_and_paibox():
    """Catches: convert writing a network with a fraction left in it (or dropping the 1/n), and the two refusals
    drifting apart (the user reads the same reason in `convert` and in `diff`)."""
    g = chain([("c", P.Conv2d(_dyadic(2, 1, 3, 3))), ("n", P.IF(1.0)), ("p", P.AvgPool2d()), ("n2", P.IF(1.0))],
              (1, 8, 8))
    with pytest.raises(InputError) as info:
        convert.convert(g, 1.0)
    refusal = next(r for r in PAIBoxBackend().accepts(g) if r.node == "p")
    assert "no Conv2d/Linear of its own" in refusal.reason and refusal.reason in str(info.value)


def test_convert_writes_a_readout_head_as_integers(tmp_path):
    """The head (a Linear after the last spiking layer) is converted at its own scale and saved: int8 weights with
    non-zero entries, its scale in the checkpoint, loaded back as the same integers; PAIBox then computes it
    off-chip equal to the reference. Catches: a head written as zeros (the issue's 0 of 40,960), a head refused,
    its scale lost on the way through the checkpoint."""
    g = pooled_net()
    conv = convert.convert(g, 1.0)
    head = conv.graph.nodes["head"]
    assert head.weight.dtype == np.int8 and np.abs(head.weight).max() == 127 and conv.readout_scales["head"] > 0
    path = tmp_path / "b.pth"
    checkpoint.save_deployed(conv, path)
    back = checkpoint.load_deployed(path, g).graph
    assert np.array_equal(back.nodes["head"].weight, head.weight)
    assert back.meta["readout_scale"] == pytest.approx(conv.readout_scales)
    x = RNG.integers(0, 2, (2, 4, 1, 8, 8))
    ref, pai = ReferenceBackend().run(back, x), PAIBoxBackend().run(back, x)
    assert np.array_equal(ref.output("head").values, pai.output("head").values)


def test_a_readout_of_two_weight_layers_is_refused_alike_by_convert_and_paibox():
    g = chain([("c", P.Conv2d(_dyadic(2, 1, 3, 3))), ("n", P.IF(1.0)), ("f", P.Flatten()),
               ("l1", P.Linear(_dyadic(4, 72))), ("l2", P.Linear(_dyadic(3, 4)))], (1, 8, 8))
    with pytest.raises(InputError) as info:
        convert.convert(g, 1.0)
    (refusal,) = [r for r in PAIBoxBackend().accepts(g) if r.node == "l2"]
    assert "two weight layers ('l1', 'l2')" in refusal.reason and refusal.reason in str(info.value)


def test_composed_synapses_stack_for_batched_paibox():
    """Samples stacked along the rows (PAIBoxBackend(batch=3)) run the composed pool synapses exactly as one sample
    at a time does, spikes, voltages and the head. Catches: the stacked layout reading the graph's own synapse
    instead of the composed one (a kernel of the wrong size: samples bleed into each other, or no pool at all)."""
    b = convert.convert(pooled_net(), 1.0).graph
    x = RNG.integers(0, 2, (5, 4, 1, 8, 8))
    one, stacked = PAIBoxBackend().run(b, x), PAIBoxBackend(batch=3).run(b, x)
    assert stacked.meta["batch"] == 3 and "batch_fallback" not in stacked.meta
    for a, s in zip(one.layers, stacked.layers):
        assert np.array_equal(a.spikes, s.spikes) and np.array_equal(a.v, s.v), a.name
    assert one.layers[-1].spikes.any() and np.array_equal(one.output("head").values, stacked.output("head").values)


def test_the_readout_scale_found_from_the_weights_is_the_conversions():
    """B's head values are k x A's; the comparison fits k from the two graphs' weights. Catches: the head's own
    weights left out of the fit (k = 1), A's head taken before the pool's 1/4 was folded into it (k off by 4)."""
    from snncheck.diagnose import readouts
    g = pooled_net()
    conv = convert.convert(g, 1.0)
    assert readouts.scales(g, conv.graph)["head"] == pytest.approx(conv.readout_scales["head"], rel=0.02)


def test_spiking_vggs_adaptive_head_is_deployed_exactly():
    """SpikingVGG on 32x32 inputs ends its features in a 1x1 map that AdaptiveAvgPool2d((7, 7)) spreads to 7x7 (one
    cell per window), then a Linear: converted, the pool is an AdaptiveSumPool2d composed into that Linear (each
    weight of a channel summed over the 49 copies, k lowered so the sums fit int8), and PAIBox equals the reference.
    An adaptive pool with windows of different sizes is refused by both, alike. Catches: the composed Linear not
    summing over the windows, its int8 overflow, the head refused."""
    g = chain([("c", P.Conv2d(_dyadic(4, 1, 3, 3), padding=(1, 1))), ("n", P.IF(0.5)),
               ("m", P.MaxPool2d((4, 4), (4, 4))), ("a", P.AdaptiveAvgPool2d((7, 7))), ("f", P.Flatten()),
               ("fc", P.Linear(_dyadic(6, 4 * 49))), ("n2", P.IF(2.0)), ("head", P.Linear(_dyadic(3, 6)))], (1, 4, 4))
    conv = convert.convert(g, 1.0)
    b = conv.graph
    assert b.nodes["a"].kind == "AdaptiveSumPool2d" and PAIBoxBackend().accepts(b) == []
    x = RNG.integers(0, 2, (4, 6, 1, 4, 4))
    ref, raw = ReferenceBackend().run(b, x), PAIBoxBackend().run(b, x)
    assert ref.layer("n2").spikes.any() and not ref.layer("n2").spikes.all()
    lag = raw.meta["expected_lag"]["n2"]
    assert np.array_equal(raw.layer("n2").spikes[:, lag:lag + 6], ref.layer("n2").spikes)
    assert np.array_equal(raw.output("head").values, ref.output("head").values)
    uneven = chain([("c", P.Conv2d(_dyadic(2, 1, 3, 3))), ("n", P.IF(0.5)), ("a", P.AdaptiveAvgPool2d((3, 3))),
                    ("f", P.Flatten()), ("fc", P.Linear(_dyadic(3, 18))), ("n2", P.IF(1.0))], (1, 7, 7))
    with pytest.raises(InputError) as info:
        convert.convert(uneven, 1.0)
    refusal = next(r for r in PAIBoxBackend().accepts(uneven) if r.node == "a")
    assert "windows of different sizes" in refusal.reason and refusal.reason in str(info.value)


@pytest.mark.parametrize("neuron", [P.LIF(1.0, tau=2.0), P.ParametricLIF(1.0, w=0.5, decay_input=False)])
def test_a_multiplicative_leak_is_refused_alike_by_convert_and_paibox(neuron):
    """SpikingJelly's LIF/PLIF have no PAIBox twin: both refusals say why and what would have to change. Catches:
    convert and diff explaining the same construct differently, a refusal that does not say what to do."""
    g = chain([("fc", P.Linear(_dyadic(4, 8))), ("n", neuron)], (8,))
    with pytest.raises(InputError) as info:
        convert.convert(g, 1.0)
    refusal = next(r for r in PAIBoxBackend().accepts(g) if r.node == "n")
    assert "multiplicative leak" in refusal.reason and "train with IFNode" in refusal.reason
    assert refusal.reason in str(info.value)
