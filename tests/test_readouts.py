"""Readouts (a vote over groups, a Linear head computed off-chip) compared end to end: recorded by the reference
and SpikingJelly, compared as numbers per pair in A's units (B's divided by the readout's scale), a readout
computed differently by two runs of one network is an error at the readout, a head written as zeros is
`readout_lost`, and the report's JSON carries them (docs/report.md: `readouts`)."""
from __future__ import annotations

import numpy as np
import pytest

from snncheck import pipeline, plan as plans
from snncheck.backends.reference import ReferenceBackend
from snncheck.backends.spikingjelly import SpikingJellyBackend
from snncheck.compare import compare
from snncheck.diagnose import readouts
from snncheck.graph import chain
from snncheck.graph import primitives as P
from snncheck.plan import Inputs, Role, Subject

RNG = np.random.default_rng(3)


def _voting(head_scale: float = 1.0, head=True):
    """Linear-IF, then a Linear head (weight x head_scale) and a vote over groups of 2: the head and vote are
    readouts computed off-chip."""
    rng = np.random.default_rng(1)
    layers = [("fc", P.Linear(rng.normal(0, 1, (12, 8)).astype(np.float32))), ("sn", P.IF(0.5))]
    if head:
        layers += [("head", P.Linear(rng.normal(0, 1, (6, 12)).astype(np.float32) * np.float32(head_scale)))]
    layers += [("vote", P.Vote(2))]
    return chain(layers, (8,), name="voting")


def _x(n=5, t=4):
    return RNG.random((n, t, 8)).astype(np.float32) * 2


def test_reference_and_spikingjelly_record_the_same_vote():
    """Catches a backend that drops or miscomputes a readout: the vote of SpikingJelly's VotingLayer equals the
    reference's mean over groups for every sample and step."""
    g, x = _voting(), _x()
    ref, sj = ReferenceBackend().run(g, x), SpikingJellyBackend().run(g, x)
    assert [o.name for o in ref.outputs] == [o.name for o in sj.outputs] == ["vote"]
    assert ref.output("vote").values.shape == (5, 4, 3)
    assert ref.layers[0].spikes.any()
    np.testing.assert_allclose(ref.output("vote").values, sj.output("vote").values, rtol=0, atol=1e-6)


def test_a_readout_computed_differently_is_named_at_the_readout():
    """Catches a readout that differs while every spike agrees (a head with a wrong bias or divisor computed
    off-chip): readout_mismatch at that readout, an error. Where spikes differ, the readout follows them: no
    readout diagnosis."""
    g, x = _voting(), _x()
    a, b = ReferenceBackend().run(g, x, "reference:a"), SpikingJellyBackend().run(g, x, "spikingjelly:a")
    assert readouts.disagreement(compare(b, a, "float_rounding")) == []
    wrong = b.replace(outputs=[o.replace(values=o.values * 0.5) for o in b.outputs])
    found = readouts.disagreement(compare(wrong, a, "float_rounding"))
    assert [(d.code, d.layer, d.severity) for d in found] == [("readout_mismatch", "vote", "error")]
    flipped = wrong.replace(layers=[r.replace(spikes=~r.spikes) for r in wrong.layers])
    assert readouts.disagreement(compare(flipped, a, "float_rounding")) == []


def test_readout_scale_between_a_and_b_and_a_zeroed_head():
    """Catches comparing B's readout in its own units (a head deployed at weight scale 3 would look 3x off) and a
    head written as zeros passing silently (issue 10: 0 non-zero of 40,960 weights, exit 0)."""
    a, b = _voting(1.0), _voting(3.0)
    assert readouts.scales(a, b)["vote"] == pytest.approx(3.0)
    x = _x()
    pc = compare(ReferenceBackend().run(a, x, "reference:a"), ReferenceBackend().run(b, x, "reference:b"),
                 "quantization", out_scales=readouts.scales(a, b))
    assert pc.output("vote").max_abs_diff < 1e-5 and pc.output("vote").scale == pytest.approx(3.0)
    zero = a.with_node("head", weight=np.zeros_like(a.nodes["head"].weight))
    found = readouts.zeroed(readouts.scales(a, zero))
    assert [(d.code, d.layer) for d in found] == [("readout_lost", "vote")]


def test_report_json_carries_readouts_per_pair():
    """The JSON contract: `readouts` lists each readout with, per pair, its comparison in A's units."""
    g = _voting()
    plan = plans.check(g, Inputs.sequences(_x(6, 4)), ["reference", "spikingjelly"])
    rep = pipeline.execute(plan).to_dict()
    (entry,) = rep["readouts"]
    pair = entry["spikingjelly:a~reference:a"]
    assert entry["name"] == "vote" and pair["differing"] == 0 and pair["class_agreement"] == 1.0
    assert set(pair) >= {"max_abs_diff", "mean_abs_diff", "scale", "tolerance", "total", "shape"}
    assert rep["pairs"]["spikingjelly:a~reference:a"]["readouts"][0]["name"] == "vote"


def test_paibox_readout_after_a_spike_add():
    """Catches the off-chip readout of PAIBox failing (KeyError) or differing when what feeds it is not a spiking
    layer but SEW ResNet's spike ADD of an earlier block (on the chip, feeding the next block too): recomputed
    from PAIBox's own spikes, it equals the reference's."""
    from snncheck.align import align
    from snncheck.backends.paibox import PAIBoxBackend
    from snncheck.graph import Graph
    rng = np.random.default_rng(0)
    nodes = {"input": P.Input((1, 6, 6)), "c1": P.Conv2d(rng.integers(-9, 10, (2, 1, 3, 3)), None, padding=(1, 1)),
             "n1": P.IF(12), "c2": P.Conv2d(rng.integers(-9, 10, (2, 2, 3, 3)), None, padding=(1, 1)),
             "n2": P.IF(6), "add": P.Add(), "c3": P.Conv2d(rng.integers(-9, 10, (2, 2, 3, 3)), None, padding=(1, 1)),
             "n3": P.IF(6), "add2": P.Add(), "flat": P.Flatten(), "head": P.Linear(rng.integers(-5, 6, (3, 72)))}
    edges = [("input", "c1"), ("c1", "n1"), ("n1", "c2"), ("c2", "n2"), ("n1", "add"), ("n2", "add"),
             ("add", "c3"), ("c3", "n3"), ("add", "add2"), ("n3", "add2"), ("add2", "flat"), ("flat", "head")]
    g = Graph(nodes, edges, name="sew_head")
    x = rng.integers(0, 4, (3, 5, 1, 6, 6)).astype(np.float64)
    ref = ReferenceBackend().run(g, x, "reference:b")
    raw = PAIBoxBackend().run(g, x, "paibox:b")
    run, _ = align(raw, ref)
    assert ref.layers[0].spikes.any() and ref.output("head").values.any()
    np.testing.assert_array_equal(run.output("head").values, ref.output("head").values)


def test_a_readout_constant_over_time_has_one_value_per_step_in_every_backend():
    """Catches a readout fed only by direct-encoded inputs (computed once, [N, 1, ...]) stretched to the run's steps
    by PAIBox but not by the reference, whose records then could not be compared (shapes differ): both give
    [N, T, ...], equal; a rate (MeanOverTime) stays one value per run."""
    from snncheck.backends.paibox import PAIBoxBackend
    from snncheck.backends.reference import ReferenceBackend
    from snncheck.graph import Graph
    rng = np.random.default_rng(5)
    nodes = {"input": P.Input((1, 4, 4)), "f": P.Flatten(), "l": P.Linear(rng.integers(-9, 10, (6, 16))),
             "n": P.IF(400, v_reset=0), "side": P.Linear(rng.integers(-9, 10, (3, 16))), "rate": P.MeanOverTime()}
    edges = [("input", "f"), ("f", "l"), ("l", "n"), ("f", "side"), ("n", "rate")]
    g = Graph(nodes, tuple(edges), "side_head")
    x = np.repeat(rng.integers(0, 256, (2, 1, 1, 4, 4)), 3, axis=1).astype(np.float64)
    ref, pb = ReferenceBackend().run(g, x), PAIBoxBackend().run(g, x)
    for name, shape in (("side", (2, 3, 3)), ("rate", (2, 1, 6))):
        a, b = ref.output(name).values, pb.output(name).values
        assert a.shape == b.shape == shape and np.array_equal(a, b), name
