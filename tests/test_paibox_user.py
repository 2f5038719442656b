"""The PAIBox frontend and runner for a user's own network: stages in order from the input, matched to A's spiking
layers by order and size, the user's parameters carried into B's description, the user's timing left as written,
and fixes that name the user's nodes. (End-to-end diagnoses of the fixtures: test_user_paibox.py.)"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from snncheck import api, checkpoint, convert, zoo
from snncheck.cli import main
from snncheck.commands.diff import default_inputs, name_user_nodes
from snncheck.frontends import paibox as user_paibox
from snncheck.report import html
from snncheck.runners.paibox_user import PAIBoxUserRunner

FIXTURE = Path(__file__).parent / "fixtures" / "user_paibox.py"


@pytest.fixture(scope="module")
def digits():
    return checkpoint.load_float(zoo.DIGITS_CHECKPOINT, "digits_csnn")


def _load(digits, factory):
    return user_paibox.load(f"{FIXTURE}:{factory}", digits.network)


def test_stages_are_matched_in_order_by_size_with_the_recipe(digits):
    user = _load(digits, "digits_correct")
    rows = [(r["paibox"], r["layer"], r["tick_wait_start"], r["recipe_tick_wait_start"]) for r in user.matching]
    assert rows == [("LIF_0", "conv_fc.2", 1, 1), ("SpikingMaxPool2d_0", None, 2, 2), ("LIF_1", "conv_fc.6", 3, 3),
                    ("SpikingMaxPool2d_1", None, 4, 4), ("LIF_2", "conv_fc.10", 5, 5), ("LIF_3", "conv_fc.12", 6, 6)]
    flat = _load(digits, "digits_flat_timing")
    assert [r["tick_wait_start"] for r in flat.matching] == [1] * 6
    assert [r["recipe_tick_wait_start"] for r in flat.matching] == [1, 2, 3, 4, 5, 6]


def test_b_carries_exactly_the_users_parameters(digits):
    """The fixture builds the correct conversion by hand (LIF bias per neuron, FullConn weights transposed): B's
    description must be that conversion, parameter for parameter; the soft-reset variant only loses v_reset."""
    conv = convert.convert(digits.network, 255, "max").network
    for factory, soft in (("digits_correct", False), ("digits_soft_reset", True)):
        b = _load(digits, factory).int_net
        for la, lb in zip(conv.layers, b.layers):
            assert la.name == lb.name and type(la) is type(lb)
            if hasattr(la, "weight"):
                assert np.array_equal(la.weight, lb.weight) and np.array_equal(la.bias, lb.bias)
            if hasattr(la, "threshold"):
                assert lb.threshold == la.threshold and lb.v_reset == (None if soft else la.v_reset)


def test_runner_keeps_the_users_timing_and_records_under_as_names(digits):
    user = _load(digits, "digits_flat_timing")
    inputs, _ = default_inputs((1, 8, 8), 2, 3)
    run = PAIBoxUserRunner(user, "paibox:b").run(np.rint(inputs * 255))
    assert run.names == ["conv_fc.2", "conv_fc.6", "conv_fc.10", "conv_fc.12"]
    assert run.meta["expected_lag"] == {"conv_fc.2": 0, "conv_fc.6": 2, "conv_fc.10": 4, "conv_fc.12": 5}
    assert run.layer("conv_fc.6").spikes.shape == (2, 3 + 5 + 1, 16, 4, 4)  # long enough for any lag, plus one
    assert all(n.tick_wait_start == 1 for n in user.stages)                 # not re-timed
    assert run.meta["paibox_nodes"]["conv_fc.12"] == "LIF_3"


@pytest.mark.parametrize("factory, message", [
    ("digits_wrong_width", "spiking layer 'conv_fc.2' (8, 8, 8) has no PAIBox neuron layer of 512 neurons"),
    ("not_a_network", "returned a dict, not a pb.Network"),
    ("broken_factory", "PAIBox factory"),
    ("missing", "no callable named 'missing'"),
])
def test_unusable_user_networks_exit_2_with_one_line(capsys, factory, message):
    code = main(["diff", str(zoo.DIGITS_CHECKPOINT), "--paibox", f"{FIXTURE}:{factory}"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_fixes_name_the_users_nodes_and_the_report_shows_the_matching(digits):
    user = _load(digits, "digits_flat_timing")
    inputs, info = default_inputs((1, 8, 8), 3, 4)
    report = api.diff(digits.module, digits.network, user.int_net, inputs, 255.0, inputs_info=info,
                      factories={"paibox": lambda net, label: PAIBoxUserRunner(user, label)})
    report.extras["paibox_matching"] = user.matching
    name_user_nodes(report, user.matching)
    timing = {d.layer: d.fix for d in report.diagnoses if d.code == "timing"}
    assert "SpikingMaxPool2d_0 tick_wait_start=2 (has 1), LIF_1 tick_wait_start=3 (has 1)" in timing["conv_fc.6"]
    assert "LIF_2" not in timing["conv_fc.6"] and "LIF_3 tick_wait_start=6 (has 1)" in timing["conv_fc.12"]
    page = html.render(report)
    assert "<h2>PAIBox network matching" in page and "(recipe 3)" in page and "no counterpart" in page
