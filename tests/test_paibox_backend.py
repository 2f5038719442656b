"""The PAIBox backend on graphs: integer chains and residual networks (merges of currents, SEW's adds of spikes,
downsample shortcuts, max pooling) run bit-exactly against the reference, spikes and membranes, every stage at the
lag the recipe gives it; what it cannot run is refused naming the node and why.
"""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from snncheck import parallel
from snncheck.backends import get
from snncheck.backends.paibox import PAIBoxBackend, limits, lower
from snncheck.backends.paibox.build import GraphSource
from snncheck.backends.paibox.simulate import simulate
from snncheck.backends.reference import ReferenceBackend
from snncheck.errors import InputError
from snncheck.graph import Graph, chain
from snncheck.graph import primitives as P

from helpers import (T, assert_exact, assert_firing, digits_float_graph, found_lags, rand_conv,
                     int_csnn, pixel_inputs, resnet_graph, sew_graph)


# ----------------------------------------------------------------------------------------------- chains
@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_integer_csnn_is_bit_exact_at_the_recipes_lags(reset):
    """Catches: a wrong reset mapping (PAIBox resets softly unless reset_v is a Python int), a bias dropped or
    not spread over H*W, FullConn weights not transposed, a wrong stage count (pools are stages)."""
    g = int_csnn(seed=1, reset=reset)
    x = pixel_inputs(12, T, seed=2)
    ref = ReferenceBackend().run(g, x)
    raw = PAIBoxBackend().run(g, x, "paibox:b")
    assert raw.names == g.neurons and raw.label == "paibox:b" and raw.raw
    assert raw.meta["expected_lag"] == {"n1": 0, "n2": 2, "n3": 4, "n4": 5}       # stages n1 p1 n2 p2 n3 n4
    assert raw.meta["steps"] == T + 5 and raw.layer("n2").spikes.shape == (12, T + 5, 8, 4, 4)
    assert raw.meta["timing"] == "pipeline" and raw.meta["batch"] == 1 and raw.meta["seconds"] > 0
    assert_exact(raw, ref)
    assert found_lags(raw, ref) == raw.meta["expected_lag"]
    assert_firing(ref)


def test_backend_is_registered_and_pipelined():
    assert get("paibox") is PAIBoxBackend and PAIBoxBackend.pipelined and PAIBoxBackend.name == "paibox"


def test_leaks_and_the_strict_fire_rule_are_exact():
    """AdditiveLIF leaks (a scalar, a per-neuron array) go into pb.LIF, and fire rule '>' runs as threshold + 1.
    Catches: a leak ignored or added twice (bias and leak_v), '>' run as '>=' (equality is frequent with small
    integer inputs: the test asserts that it happens)."""
    rng = np.random.default_rng(7)
    g = chain([("c1", P.Conv2d(rng.integers(-3, 4, (4, 1, 3, 3)), rng.integers(-3, 3, 4), (1, 1), (1, 1))),
               ("n1", P.AdditiveLIF(6, reset="hard", v_reset=0, leak=rng.integers(-2, 3, (4, 6, 6)), fire_rule=">")),
               ("f", P.Flatten()), ("l1", P.Linear(rng.integers(-3, 4, (12, 4 * 36)))),
               ("n2", P.AdditiveLIF(4, reset="soft", leak=-1))],
              (1, 6, 6), name="leaky")
    x = pixel_inputs(6, T, (1, 6, 6), seed=3) % 3
    ref = ReferenceBackend().run(g, x)
    assert_exact(PAIBoxBackend().run(g, x), ref)
    assert_firing(ref, 0.02, 0.9)
    h = ref.layer("n1").h
    assert np.any(h == 6), "no charge equal to the threshold: the '>' rule is not exercised"


# ----------------------------------------------------------------------------------------------- residual
@pytest.mark.parametrize("build", [resnet_graph, sew_graph])
@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_residual_graphs_are_bit_exact_with_every_branch_on_time(build, reset):
    """Merges of currents (identity Scale(k), downsample conv) and SEW's adds of spikes (split into one synapse per
    summand, the shared conv's bias counted once) lower to several synapses into one PAIBox neuron; with the
    recipe every branch arrives on time. Catches: a bias counted once per term, a branch dropped, a skip between
    stages of different depths arriving a step early or late (the merge would then differ at every shift)."""
    g = build(reset=reset)
    x = pixel_inputs(8, T, (2, 8, 8), seed=5)
    ref = ReferenceBackend().run(g, x)
    raw = PAIBoxBackend().run(g, x)
    assert_exact(raw, ref)
    assert found_lags(raw, ref) == raw.meta["expected_lag"] == lower.expected_lags(g)
    assert_firing(ref)
    # not vacuous: every input of every merge changes the merge's spikes when it is removed
    merges = [n for n in g.neurons if len(g.terms(n)) > 1]
    assert merges
    for name in merges:
        for term in g.terms(name):
            cut = _without(g, term)
            assert not np.array_equal(ReferenceBackend().run(cut, x).layer(name).spikes, ref.layer(name).spikes), \
                (name, term)


def _without(g: Graph, term) -> Graph:
    """The graph with one term's contribution zeroed (its synapse's weights, or its shortcut's factor)."""
    syn = term.synapses(g)
    if syn:
        node = g.nodes[syn[0]]
        return g.with_node(syn[0], weight=np.zeros_like(node.weight))
    scale = next(n for n in term.path if isinstance(g.nodes[n], P.Scale))
    return g.with_node(scale, factor=0)


def test_expected_lags_of_the_residual_graphs():
    assert lower.expected_lags(resnet_graph()) == {"n0": 0, "n1": 1, "n2": 2, "n3": 3, "n4": 4, "n5": 6}
    assert lower.expected_lags(sew_graph()) == {"n0": 0, "n1": 1, "n2": 2, "n3": 3, "n4": 4, "n5": 5, "n6": 7}
    stages = {s.name: s for s in lower.stages(sew_graph())}
    # n3 = c3(n2 + n0): one conv synapse per summand; n5 = c5(a2) + 20 * a2 with a2 = n4 + n2 + n0
    assert [(l.source, l.kind) for l in stages["n3"].links] == [("n2", "conv"), ("n0", "conv")]
    assert sorted((l.source, l.kind, l.factor) for l in stages["n5"].links) == sorted(
        [(s, "conv", 1) for s in ("n4", "n2", "n0")] + [(s, "identity", 20) for s in ("n4", "n2", "n0")])
    assert stages["p5"].pool and stages["p5"].depth == 7


def test_the_conv_bias_of_a_shared_synapse_is_added_once():
    """SEW: c3 reads n2 + n0, two PAIBox synapses with c3's weights; c3's bias must be in n3's drive once."""
    g = sew_graph()
    bias, leak = lower.drive(g, "n3")
    assert leak == 0 and bias.shape == (4, 8, 8)
    assert np.array_equal(bias[:, 0, 0], g.nodes["c3"].bias)


def test_flat_timing_is_wrong_below_the_first_stage():
    """tick_wait_start=1 everywhere (the common mistake) is kept so the harness can show it: the stage fed by the
    InputProj is right, every deeper one reads its input at the wrong step."""
    for g, x in ((int_csnn(seed=1), pixel_inputs(6, T, seed=4)), (resnet_graph(), pixel_inputs(6, T, (2, 8, 8)))):
        ref = ReferenceBackend().run(g, x)
        raw = PAIBoxBackend(timing="flat").run(g, x)
        assert raw.meta["timing"] == "flat"
        lags = found_lags(raw, ref)
        first = g.neurons[0]
        assert lags[first] == 0
        assert all(lags[n] != raw.meta["expected_lag"][n] for n in g.neurons[1:]), lags


def input_skip_graph(input_scale: float = 1.0) -> Graph:
    """n0 -> n1 -> n2, and a skip from the input into n2 (pipeline stage 3) through a 1x1 conv."""
    rng = np.random.default_rng(3)
    nodes = {"input": P.Input((1, 6, 6)), "c0": rand_conv(rng, 2, 1, bias=False), "n0": P.IF(10, v_reset=0),
             "c1": rand_conv(rng, 2, 2, bias=False), "n1": P.IF(10, v_reset=0),
             "c2": rand_conv(rng, 2, 2, bias=False), "cs": P.Conv2d(np.array([[[[9]]], [[[-6]]]])), "add": P.Add(),
             "n2": P.IF(15, v_reset=0)}
    edges = [("input", "c0"), ("c0", "n0"), ("n0", "c1"), ("c1", "n1"), ("n1", "c2"), ("c2", "add"),
             ("input", "cs"), ("cs", "add"), ("add", "n2")]
    return Graph(nodes, edges, name="input_skip", input_scale=input_scale)


def test_a_skip_from_the_input_into_a_deep_stage_is_held_back_by_a_relay_chain(monkeypatch):
    """The InputProj is not buffered: a skip from it into stage 3 goes through two relay BypassNeurons (stages 1
    and 2), and PAIBox then equals the reference on every layer. Catches: the skip wired straight from the
    InputProj (the merge then matches the reference at no shift: shown by building it so), a chain one stage
    short or long; and a multi-valued input sent through relays that carry one bit (refused)."""
    g = input_skip_graph()
    stages = {s.name: s for s in lower.stages(g)}
    assert [(n, s.depth) for n, s in stages.items() if s.shape] == [("input.delay1", 1), ("input.delay2", 2)]
    assert sorted(link.source for link in stages["n2"].links) == ["input.delay2", "n1"]
    x = (np.random.default_rng(5).random((6, T, 1, 6, 6)) < 0.4).astype(np.float64)
    ref = ReferenceBackend().run(g, x)
    assert ref.layer("n2").spikes.any() and PAIBoxBackend().accepts(g) == []
    assert_exact(PAIBoxBackend().run(g, x), ref)
    monkeypatch.setattr(lower, "input_delay", lambda graph: 0)          # wired straight from the InputProj
    monkeypatch.setattr(lower, "relay", lambda graph, k: graph.input)
    s, v = simulate(GraphSource(g)(), x.astype(np.uint8))["n2"]
    n2 = ref.layer("n2")
    assert not any(np.array_equal(s[:, d:d + T], n2.spikes) and np.array_equal(v[:, d:d + T], n2.v)
                   for d in range(s.shape[1] - T + 1))
    monkeypatch.undo()
    (refusal,) = PAIBoxBackend().accepts(input_skip_graph(255.0))
    assert refusal.node == "n2" and "InputProj is not buffered" in refusal.reason and "(0/1) only" in refusal.reason
    with pytest.raises(InputError, match="carry spikes"):
        PAIBoxBackend().run(g, pixel_inputs(2, T, (1, 6, 6)))


# ----------------------------------------------------------------------------------------------- refusals
def _one(layers, shape=(1, 6, 6)):
    return chain(layers, shape, name="refused")


_W = np.ones((2, 1, 3, 3), np.int64)
REFUSED = {
    "lif": (lambda: _one([("c", P.Conv2d(_W)), ("n", P.LIF(10.0, tau=2.0))]), "n",
            "multiplicative leak (v moves toward v_reset by 1/tau = 1/2"),
    "plif": (lambda: _one([("c", P.Conv2d(_W)), ("n", P.ParametricLIF(10))]), "n", "train with IFNode"),
    "v_init": (lambda: _one([("c", P.Conv2d(_W)), ("n", P.IF(10, v_init=5))]), "n",
               "always start at v = 0; an initial membrane of 5"),
    "v_reset start": (lambda: _one([("c", P.Conv2d(_W)), ("n", P.IF(10, v_reset=3))]), "n", "start at v = 0"),
    "float weight": (lambda: _one([("c", P.Conv2d(_W * 0.5)), ("n", P.IF(10))]), "c", "convert first"),
    "float threshold": (lambda: _one([("c", P.Conv2d(_W)), ("n", P.IF(10.5))]), "n", "convert first"),
    "float leak": (lambda: _one([("c", P.Conv2d(_W)), ("n", P.AdditiveLIF(10, leak=0.3))]), "n", "convert first"),
    "int8": (lambda: _one([("c", P.Conv2d(_W * 200)), ("n", P.IF(10))]), "c", "[-128, 127]"),
    "threshold range": (lambda: _one([("c", P.Conv2d(_W)), ("n", P.IF(2 ** 29))]), "n", str(limits.THRESHOLD_MAX)),
    "strict rule range": (lambda: _one([("c", P.Conv2d(_W)), ("n", P.IF(limits.THRESHOLD_MAX, fire_rule=">"))]),
                          "n", "fire rule '>'"),
    "strict rule soft reset": (lambda: _one([("c", P.Conv2d(_W)), ("n", P.IF(10, reset="soft", fire_rule=">"))]),
                               "n", "only a hard reset runs '>' exactly"),
    "bias range": (lambda: _one([("c", P.Conv2d(_W, np.array([2 ** 29, 0]))), ("n", P.AdditiveLIF(10, leak=1))]),
                   "n", "bias + leak ranges over [1, 536870913]"),
    "two weight layers": (lambda: _one([("c", P.Conv2d(_W)), ("f", P.Flatten()), ("l", P.Linear(np.ones((3, 32)))),
                                        ("n", P.IF(10))]), "l", "two weight layers ('c', 'l')"),
    "avg pool": (lambda: _one([("c", P.Conv2d(_W)), ("n", P.IF(10)), ("a", P.AvgPool2d()),
                               ("c2", P.Conv2d(np.ones((2, 2, 1, 1)))), ("n2", P.IF(2))]), "a", "majority vote"),
    "max pool of currents": (lambda: _one([("c", P.Conv2d(_W)), ("p", P.MaxPool2d()), ("n", P.IF(10))]), "p",
                             "max-pools spikes only"),
    "scale after conv": (lambda: _one([("c", P.Conv2d(_W)), ("s", P.Scale(2)), ("n", P.IF(10))]), "s",
                         "fold the factor into the weights"),
    "flatten into a neuron": (lambda: _one([("c", P.Conv2d(_W)), ("f", P.Flatten()), ("n", P.IF(10))]), "f",
                              "only into a FullConn"),
    "readout of two layers": (lambda: _one(_DEEP + [("f", P.Flatten()), ("l", P.Linear(np.ones((3, 32)))),
                                                  ("l2", P.Linear(np.ones((2, 3))))]), "l2",
                              "a readout head of two weight layers ('l', 'l2')"),
    "float batchnorm": (lambda: _one([("c", P.Conv2d(_W)), ("bn", P.BatchNorm(np.zeros(2), np.ones(2) * 2,
                                                                              np.ones(2), np.zeros(2))),
                                      ("n", P.IF(10))]), "c", "convert first"),
}


_DEEP = [("c", P.Conv2d(_W)), ("n", P.IF(10)), ("c2", P.Conv2d(np.ones((2, 2, 1, 1)))), ("n2", P.IF(1))]
HEADS = {
    "linear head": lambda: _one(_DEEP + [("f", P.Flatten()), ("l", P.Linear(np.arange(-48, 48).reshape(3, 32)))]),
    "linear readout": lambda: _one(_DEEP + [("f", P.Flatten()), ("l", P.Linear(np.ones((3, 32)))),
                                            ("m", P.MeanOverTime())]),
    "vote": lambda: _one(_DEEP + [("f", P.Flatten()), ("v", P.Vote(8))]),
    "avg pool head": lambda: _one(_DEEP + [("a", P.AvgPool2d()), ("f", P.Flatten()), ("l", P.Linear(np.ones((3, 8))))]),
    "spike add output": lambda: Graph({"input": P.Input((1, 6, 6)), "c": P.Conv2d(_W), "n": P.IF(10),
                                       "c2": P.Conv2d(np.ones((2, 2, 1, 1))), "n2": P.IF(1), "a": P.Add()},
                                      [("input", "c"), ("c", "n"), ("n", "c2"), ("c2", "n2"), ("n2", "a"), ("n", "a")]),
    "head after a spike add": lambda: Graph({"input": P.Input((1, 6, 6)), "c": P.Conv2d(_W), "n": P.IF(10),
                                             "c2": P.Conv2d(np.ones((2, 2, 1, 1))), "n2": P.IF(1), "a": P.Add(),
                                             "f": P.Flatten(), "l": P.Linear(np.ones((3, 32)))},
                                            [("input", "c"), ("c", "n"), ("n", "c2"), ("c2", "n2"), ("n2", "a"),
                                             ("n", "a"), ("a", "f"), ("f", "l")]),
}


@pytest.mark.parametrize("case", sorted(HEADS))
def test_readout_heads_are_computed_off_chip_from_paiboxs_own_spikes(case):
    """A non-spiking head (Linear, vote, rate, an add of spikes, an average pool before a Linear) is accepted and its
    value computed off-chip from PAIBox's spikes, equal to the reference's. Catches: a head refused or left out of the
    run (no OutputRecord), and a head fed PAIBox's raw records (n2 lags one step: unaligned, its values differ)."""
    g = HEADS[case]()
    assert PAIBoxBackend().accepts(g) == []
    x = pixel_inputs(3, T, (1, 6, 6))
    run, ref = PAIBoxBackend().run(g, x), ReferenceBackend().run(g, x)
    assert [o.name for o in run.outputs] == g.readouts == [o.name for o in ref.outputs] != []
    assert any(rec.spikes[:, :-1].any() for rec in ref.layers[1:])
    for a, b in zip(run.outputs, ref.outputs):
        assert a.values.shape == b.values.shape and np.array_equal(a.values, b.values), a.name


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refusals_name_the_node_and_why(case):
    """Each construct PAIBox cannot run exactly gives one Refusal naming its node; `run` raises it."""
    make, node, why = REFUSED[case]
    g = make()
    refusals = PAIBoxBackend().accepts(g)
    assert [(r.node, r.backend) for r in refusals] == [(node, "paibox")], refusals
    assert why in refusals[0].reason, refusals[0].reason
    with pytest.raises(InputError, match=f"node '{node}'"):
        PAIBoxBackend().run(g, np.zeros((1, 2) + g.input_shape))


@pytest.mark.parametrize("tail", [[("m", P.MeanOverTime())], [("f", P.Flatten())],
                                  [("f", P.Flatten()), ("m", P.MeanOverTime())]])
def test_spikes_as_the_output_or_a_readout_are_accepted_and_not_built(tail):
    g = _one([("c", P.Conv2d(_W)), ("n", P.IF(10))] + tail)
    assert PAIBoxBackend().accepts(g) == []
    x = pixel_inputs(2, T, (1, 6, 6))
    assert_exact(PAIBoxBackend().run(g, x), ReferenceBackend().run(g, x))


@pytest.mark.parametrize("bad", [0.5, 256, -1])
def test_inputs_must_be_uint8_integers(bad):
    """InputProj casts to uint8 (256 -> 0, -1 -> 255, 0.5 -> 0): such inputs are refused, not run."""
    g = int_csnn()
    x = np.zeros((1, 2, 1, 8, 8))
    x[0, 0, 0, 0, 0] = bad
    with pytest.raises(InputError, match="InputProj casts its input to uint8"):
        PAIBoxBackend().run(g, x)


def test_unknown_options_are_input_errors():
    with pytest.raises(InputError, match="unknown timing"):
        PAIBoxBackend(timing="fast")
    with pytest.raises(InputError, match="at least 1"):
        PAIBoxBackend(batch=0)


# ----------------------------------------------------------------------------------------------- sources, workers
def test_sources_pickle_for_worker_processes_and_executors_give_the_same_records():
    """A worker rebuilds the network from the source it is sent; the spread path joins pieces in order."""
    g = int_csnn(seed=1)
    x = pixel_inputs(5, 3, seed=2)
    one = PAIBoxBackend().run(g, x)
    source = pickle.loads(pickle.dumps(GraphSource(g)))
    again = simulate(source(), x.astype(np.uint8))
    spread = PAIBoxBackend(executor=parallel.LocalExecutor()).run(g, x)
    assert spread.meta["workers"] == 1
    for rec in one.layers:
        assert np.array_equal(rec.spikes, again[rec.name][0]) and np.array_equal(rec.v, again[rec.name][1])
        assert np.array_equal(rec.spikes, spread.layer(rec.name).spikes)
        assert np.array_equal(rec.v, spread.layer(rec.name).v)


def test_record_v_false_records_spikes_only():
    g = int_csnn(seed=1)
    x = pixel_inputs(2, 3)
    run = PAIBoxBackend().run(g, x, record_v=False)
    assert all(r.v is None and r.spikes.dtype == bool for r in run.layers)


def test_worker_processes_give_the_records_of_one_process():
    """Two spawned workers, stacked samples in each, for a graph and for a user's own network (which a worker
    loads again from its factory)."""
    from pathlib import Path
    from snncheck.frontends import paibox as user_paibox
    g = int_csnn(seed=1)
    x = pixel_inputs(6, 3, seed=2)
    user = user_paibox.load(f"{Path(__file__).parent / 'fixtures' / 'user_paibox.py'}:digits_correct",
                            digits_float_graph())
    with parallel.ProcessExecutor(2) as ex:
        pairs = [(PAIBoxBackend().run(g, x), PAIBoxBackend(executor=ex, batch=2).run(g, x)),
                 (PAIBoxBackend(source=user).run(user.graph, x),
                  PAIBoxBackend(source=user, executor=ex).run(user.graph, x))]
    for one, two in pairs:
        assert two.meta["workers"] == 2
        for a, b in zip(one.layers, two.layers):
            assert np.array_equal(a.spikes, b.spikes) and np.array_equal(a.v, b.v), a.name
        assert any(rec.spikes.any() for rec in one.layers)
    assert pairs[0][1].meta["batch"] == 2
