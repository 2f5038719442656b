"""The PAIBox frontend and backend for a user's own network: stages in order from the input, matched to A's neurons
by order and size, a merge matched term by term, the user's parameters carried into B's graph, the user's timing
left as written. (What runs then show about the fixtures: test_user_paibox.py.)"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from snncheck import data
from snncheck.backends.paibox import PAIBoxBackend
from snncheck.backends.paibox.build import UserSource
from snncheck.backends.paibox.simulate import simulate
from snncheck.backends.reference import ReferenceBackend
from snncheck.errors import InputError
from snncheck.frontends import paibox as user_paibox
from snncheck.graph import Graph
from snncheck.graph import primitives as P

from helpers import assert_exact, assert_firing, digits_float_graph, digits_int_graph, found_lags

FIXTURE = Path(__file__).parent / "fixtures" / "user_paibox.py"


@pytest.fixture(scope="module")
def digits():
    return digits_float_graph()


def _load(a: Graph, factory: str):
    return user_paibox.load(f"{FIXTURE}:{factory}", a)


def digit_inputs(n: int, t: int) -> np.ndarray:
    x, _ = data.digits("test")
    return np.rint(data.direct(x[:n], t) * 255.0)


def test_stages_are_matched_in_order_by_size_with_the_recipe(digits):
    user = _load(digits, "digits_correct")
    rows = [(r["paibox"], r["layer"], r["tick_wait_start"], r["recipe_tick_wait_start"]) for r in user.matching]
    assert rows == [("LIF_0", "conv_fc.2", 1, 1), ("SpikingMaxPool2d_0", None, 2, 2), ("LIF_1", "conv_fc.6", 3, 3),
                    ("SpikingMaxPool2d_1", None, 4, 4), ("LIF_2", "conv_fc.10", 5, 5), ("LIF_3", "conv_fc.12", 6, 6)]
    assert [r["reset"] for r in user.matching if r["layer"]] == ["hard"] * 4
    flat = _load(digits, "digits_flat_timing")
    assert [r["tick_wait_start"] for r in flat.matching] == [1] * 6
    assert [r["recipe_tick_wait_start"] for r in flat.matching] == [1, 2, 3, 4, 5, 6]


def test_b_carries_exactly_the_users_parameters(digits):
    """The fixture builds the correct conversion by hand (LIF bias per neuron, FullConn weights transposed): B's
    graph must be that conversion, parameter for parameter; the soft-reset variant only changes the reset.
    Catches: FullConn weights read untransposed, the leak not turned back into a per-channel bias, a reset mode
    misread (PAIBox's soft reset is the default when reset_v is omitted)."""
    conv = digits_int_graph()
    for factory, soft in (("digits_correct", False), ("digits_soft_reset", True)):
        b = _load(digits, factory).graph
        assert b.is_integer and b.neurons == conv.neurons and b.name == f"paibox:{factory}"
        for name, la in conv.nodes.items():
            lb = b.nodes[name]
            assert type(la) is type(lb), name
            if isinstance(la, P.SYNAPSES):
                assert np.array_equal(la.weight, lb.weight) and np.array_equal(la.bias, lb.bias), name
            if P.is_neuron(la):
                assert lb.threshold == la.threshold and lb.reset == ("soft" if soft else "hard"), name
                assert lb.initial_v == 0 and lb.fire_rule == ">=", name


def test_backend_keeps_the_users_timing_and_records_under_as_names(digits):
    user = _load(digits, "digits_flat_timing")
    run = PAIBoxBackend(source=user).run(user.graph, digit_inputs(2, 3), "paibox:b")
    assert PAIBoxBackend(source=user).accepts(user.graph) == []
    assert run.names == ["conv_fc.2", "conv_fc.6", "conv_fc.10", "conv_fc.12"] and run.raw
    assert run.meta["expected_lag"] == {"conv_fc.2": 0, "conv_fc.6": 2, "conv_fc.10": 4, "conv_fc.12": 5}
    assert run.meta["timing"] == "user" and run.meta["batch"] == 1
    assert run.layer("conv_fc.6").spikes.shape == (2, 3 + 5 + 1, 16, 4, 4)   # long enough for any lag, plus one
    assert all(n.tick_wait_start == 1 for n in user.stages)                 # not re-timed
    assert run.meta["paibox_nodes"]["conv_fc.12"] == "LIF_3"


@pytest.mark.parametrize("factory, message", [
    ("digits_wrong_width", "spiking layer 'conv_fc.2' (8, 8, 8) has no PAIBox neuron layer of 512 neurons"),
    ("not_a_network", "returned a dict, not a pb.Network"),
    ("broken_factory", "PAIBox factory"),
    ("missing", "no callable named 'missing'"),
])
def test_unusable_user_networks_are_one_line_input_errors(digits, factory, message):
    with pytest.raises(InputError) as info:
        _load(digits, factory)
    assert message in str(info.value) and "\n" not in str(info.value), str(info.value)


def test_the_matching_rows_show_what_has_no_counterpart(digits):
    user = _load(digits, "digits_correct")
    pools = [r for r in user.matching if r["layer"] is None]
    assert [r["type"] for r in pools] == ["SpikingMaxPool2d", "SpikingMaxPool2d"]
    row = next(r for r in user.matching if r["layer"] == "conv_fc.6")
    assert row["shape"] == [16, 4, 4] and row["layer_shape"] == [16, 4, 4] and row["threshold"] == 68


def test_input_scale_is_inferred_from_the_first_layer(digits):
    user = _load(digits, "digits_correct")
    scale, why = user_paibox.infer_input_scale(user, digits, digit_inputs(4, 2) / 255.0)
    assert scale == 255.0 and "threshold ratio" in why
    assert user_paibox.infer_input_scale(user, digits, np.ones((2, 2, 1, 8, 8)))[0] == 1.0


def test_a_user_network_pickles_as_its_factory_for_worker_processes(digits):
    """A worker receives the UserNetwork, loads the factory again and gets the same records."""
    user = _load(digits, "digits_correct")
    x = digit_inputs(2, 3).astype(np.uint8)
    here = simulate(UserSource(user, 6)(), x)
    copy = pickle.loads(pickle.dumps(user))
    assert copy is not user and list(copy.matched) == list(user.matched)
    there = simulate(UserSource(copy, 6)(), x)
    for name in here:
        assert np.array_equal(here[name][0], there[name][0]) and np.array_equal(here[name][1], there[name][1])


# ----------------------------------------------------------------------------------------------- residual
def residual_float_graph() -> tuple:
    """(A, the fixture's integer parameters) for the fixture's Residual network: A has the same structure with float
    parameters; its shortcut is a plain add (no Scale), so B gets a Scale inserted carrying the user's factor."""
    fixture = _fixture()
    p = fixture.residual_params()
    f = lambda a: None if a is None else np.asarray(a, np.float32) / 50.0      # noqa: E731
    nodes = {"input": P.Input(fixture.RESIDUAL_SHAPE),
             "stem": P.Conv2d(f(p["stem"][0]), f(p["stem"][1]), (1, 1), (1, 1)), "n0": P.IF(1.0),
             "a": P.Conv2d(f(p["a"][0]), None, (1, 1), (1, 1)), "n1": P.IF(1.0),
             "b": P.Conv2d(f(p["b"][0]), f(p["b"][1]), (1, 1), (1, 1)), "add": P.Add(), "n2": P.IF(1.0),
             "pool": P.MaxPool2d(), "flat": P.Flatten(), "fc": P.Linear(f(p["fc"][0])), "n3": P.IF(1.0)}
    edges = [("input", "stem"), ("stem", "n0"), ("n0", "a"), ("a", "n1"), ("n1", "b"), ("b", "add"), ("n0", "add"),
             ("add", "n2"), ("n2", "pool"), ("pool", "flat"), ("flat", "fc"), ("fc", "n3")]
    return Graph(nodes, edges, name="residual"), p


def test_a_merge_is_matched_term_by_term_and_runs_bit_exact():
    """The user's n2 has two incoming synapses (a conv from n1, a one-to-one of weight 3 from n0): each is matched
    to A's term with the same source; B carries the user's factor as a Scale on the shortcut. Catches: synapses
    paired by order instead of by source, the shortcut's factor lost, the merge's bias given to both terms."""
    a, p = residual_float_graph()
    user = user_paibox.load(f"{FIXTURE}:residual_correct", a)
    b = user.graph
    assert b.is_integer and b.nodes["add.shortcut"].factor == 3 and ("n0", "add.shortcut") in b.edges
    terms = b.terms("n2")
    assert [(t.source, t.synapses(b)) for t in terms] == [("n1", ["b"]), ("n0", [])]
    assert np.array_equal(b.nodes["b"].bias, p["b"][1]) and np.array_equal(b.nodes["stem"].bias, p["stem"][1])
    assert b.nodes["a"].bias is None and np.array_equal(b.nodes["fc"].weight, p["fc"][0])
    x = np.repeat(np.random.default_rng(0).integers(0, 256, (6, 1, 1, 6, 6)), 5, axis=1)
    ref = ReferenceBackend().run(b, x)
    raw = PAIBoxBackend(source=user).run(b, x)
    assert raw.meta["expected_lag"] == {"n0": 0, "n1": 1, "n2": 2, "n3": 4}
    assert_exact(raw, ref, 5)
    assert found_lags(raw, ref) == raw.meta["expected_lag"]
    assert_firing(ref)
    # the shortcut matters: without it n2 fires differently
    cut = ReferenceBackend().run(b.with_node("add.shortcut", factor=0), x)
    assert not np.array_equal(cut.layer("n2").spikes, ref.layer("n2").spikes)


def test_a_flat_timed_residual_user_network_misses_its_lags():
    a, _ = residual_float_graph()
    user = user_paibox.load(f"{FIXTURE}:residual_flat_timing", a)
    x = np.repeat(np.random.default_rng(0).integers(0, 256, (4, 1, 1, 6, 6)), 5, axis=1)
    lags = found_lags(PAIBoxBackend(source=user).run(user.graph, x), ReferenceBackend().run(user.graph, x))
    assert lags["n0"] == 0 and all(lags[n] is None for n in ("n1", "n2", "n3")), lags


def test_a_merge_with_a_missing_branch_is_refused_naming_it():
    """A's n2 sums two terms; a user network whose n2 has only the conv synapse cannot be B."""
    a, _ = residual_float_graph()
    nodes = {k: v for k, v in a.nodes.items() if k != "add"}
    edges = [e for e in a.edges if "add" not in e] + [("b", "n2")]
    chain_a = Graph(nodes, edges, name="no_shortcut")
    with pytest.raises(InputError, match="n2.*has 2 incoming synapses; A's layer sums 1 term"):
        user_paibox.load(f"{FIXTURE}:residual_correct", chain_a)


def sew_float_graph() -> tuple:
    """(A, integer parameters) for the fixture's Sew network: a1 = n1 + n0 feeds conv b and a plain shortcut into
    the add before n2."""
    fixture = _fixture()
    p = fixture.sew_params()
    f = lambda a: np.asarray(a, np.float32) / 50.0      # noqa: E731
    nodes = {"input": P.Input(fixture.RESIDUAL_SHAPE),
             "stem": P.Conv2d(f(p["stem"][0]), f(p["stem"][1]), (1, 1), (1, 1)), "n0": P.IF(1.0),
             "a": P.Conv2d(f(p["a"]), None, (1, 1), (1, 1)), "n1": P.IF(1.0), "a1": P.Add(),
             "b": P.Conv2d(f(p["b"][0]), f(p["b"][1]), (1, 1), (1, 1)), "m": P.Add(), "n2": P.IF(1.0)}
    edges = [("input", "stem"), ("stem", "n0"), ("n0", "a"), ("a", "n1"), ("n1", "a1"), ("n0", "a1"),
             ("a1", "b"), ("b", "m"), ("a1", "m"), ("m", "n2")]
    return Graph(nodes, edges, name="sew"), p


def _fixture():
    import importlib.util
    spec = importlib.util.spec_from_file_location("user_paibox_fixture", FIXTURE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_add_of_spikes_is_matched_as_shared_weights_and_one_shortcut():
    """A's conv b and its shortcut each carry two terms (from n1 and from n0); the user wrote four synapses. B gets
    b's weights and bias once and one Scale on the shortcut edge, and runs as the user's network does. Catches: the
    bias of a shared conv given twice, a Scale inserted on the edge into the spike add (it would scale conv b's
    input too)."""
    a, p = sew_float_graph()
    user = user_paibox.load(f"{FIXTURE}:sew_correct", a)
    b = user.graph
    scales = {n: node.factor for n, node in b.nodes.items() if isinstance(node, P.Scale)}
    assert scales == {"m.shortcut": 2} and ("a1", "m.shortcut") in b.edges and ("m.shortcut", "m") in b.edges
    assert np.array_equal(b.nodes["b"].weight, p["b"][0]) and np.array_equal(b.nodes["b"].bias, p["b"][1])
    x = np.repeat(np.random.default_rng(1).integers(0, 256, (6, 1, 1, 6, 6)), 5, axis=1)
    ref = ReferenceBackend().run(b, x)
    raw = PAIBoxBackend(source=user).run(b, x)
    assert_exact(raw, ref, 5)
    assert found_lags(raw, ref) == raw.meta["expected_lag"] == {"n0": 0, "n1": 1, "n2": 2}
    assert_firing(ref)


@pytest.mark.parametrize("factory, message", [
    ("sew_unequal_shortcuts", "carry the same shortcut of A with different weights"),
    ("sew_unequal_kernels", "both carry A's 'b' but with different weights"),
])
def test_what_one_graph_node_cannot_hold_is_refused(factory, message):
    a, _ = sew_float_graph()
    with pytest.raises(InputError, match=message):
        user_paibox.load(f"{FIXTURE}:{factory}", a)


# ----------------------------------------------------------------------------------------------- a skip from the input
EXAMPLE = Path(__file__).parent.parent / "examples" / "residual_paibox.py"


@pytest.fixture(scope="module")
def residual_a():
    from snncheck.frontends.spikingjelly import import_module
    from snncheck.frontends.models import build_module
    return import_module(build_module(f"{EXAMPLE}:model"), (1, 8, 8), "residual")[0]


def test_relays_are_looked_through_and_an_undelayed_input_skip_is_named_with_its_fix(residual_a):
    """The example's skip from the InputProj reaches the merge sn2 (stage 3) through two relay BypassNeurons, which
    match A's input term and are no layer of their own; wired straight from the InputProj it is named, with the
    two relays it needs, in the `timing` fix of sn2 (and nowhere else). Catches: a relay taken for a pooling stage
    (the skip then has no term of A to match), a correct skip flagged, the early count off by the relays."""
    right = user_paibox.load(f"{EXAMPLE}:paibox_correct", residual_a)
    assert [r["layer"] for r in right.matching if r["type"] == "BypassNeuron"] == [None, None]
    assert not any(r.get("early_inputs") for r in right.matching)
    assert user_paibox.user_nodes(right.matching)["timing"] == {}
    wrong = user_paibox.load(f"{EXAMPLE}:paibox_undelayed", residual_a)
    timing = user_paibox.user_nodes(wrong.matching)["timing"]
    assert list(timing) == ["sn2"] and len(timing["sn2"]) == 1
    assert timing["sn2"][0].startswith("skip (") and "2 step(s) early" in timing["sn2"][0] and \
        "2 more relay neuron(s)" in timing["sn2"][0]
    x = (np.random.default_rng(2).random((4, 6, 1, 8, 8)) < 0.3).astype(np.float64)
    for user, exact in ((right, True), (wrong, False)):
        raw = PAIBoxBackend(source=user).run(user.graph, x)
        ref = ReferenceBackend().run(user.graph, x)
        lag = raw.meta["expected_lag"]["sn2"]
        same = np.array_equal(raw.layer("sn2").spikes[:, lag:lag + 6], ref.layer("sn2").spikes)
        assert same is exact


def test_timing_fixes_name_a_delay_off_the_recipe():
    """A node with delay=2 makes every branch through it one step late: the timing fix of every layer from it on
    names it. Catches: only tick_wait_start checked (a wrong delay left unnamed)."""
    def row(name, layer, tws, delay=1):
        return {"paibox": name, "layer": layer, "tick_wait_start": tws, "recipe_tick_wait_start": tws,
                "delay": delay, "reset": "hard"}
    timing = user_paibox.user_nodes([row("LIF_0", "a", 1, delay=2), row("LIF_1", "b", 2)])["timing"]
    assert timing == {"a": ["LIF_0 delay=1 (has 2)"], "b": ["LIF_0 delay=1 (has 2)"]}
