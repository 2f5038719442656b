"""Diagnoses that miss nothing a user would notice (issue 12): one-channel faults, flipped kernels, weights on a
coarse grid, small threshold errors, binarised inputs, empty checks, and the messages of a float checkpoint given
as B and of a bias rounded away. The fast twin of scripts/confusion_table.py runs two architectures."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from convert_nets import diagnose, model
from snncheck import convert
from snncheck.cli import main
from snncheck.compare import LayerComparison, PairComparison
from snncheck.diagnose import Diagnosis, dynamic, inputs, rank, vacuity, verdict
from snncheck.frontends import models as zoo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import confusion_table  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    net, x, _ = model("digits")
    return net, x, convert.convert(net, 255, "max")


# ----------------------------------------------------------------------------------------------- the table, small
@pytest.mark.parametrize("arch,reset", [("digits", "hard"), pytest.param("alexnet", "soft", marks=pytest.mark.slow)])
def test_confusion_twin_names_every_class_and_no_correct_conversion_errs(arch, reset):
    """Catches any catalog class (the new ones included) named with the wrong code or at the wrong layer, at the
    first or the deepest layer it applies to, and any error on a correct conversion under any conversion rule: the
    confusion table's own measurement on the trained digits CSNN and on a stack with biases and soft reset."""
    a = next(a for a in confusion_table.ARCHS if a.name == arch)
    found = confusion_table.measure([a], resets=(reset,), log=lambda m: None)
    planted = [o for o in found if not o.bug.startswith("correct:")]
    assert {o.bug for o in planted} >= {"channel_negated", "kernel_flipped", "vthr_step", "weight_grid",
                                        "binarised_input"}
    assert [o for o in planted if not confusion_table.hit(o)] == []
    assert [o for o in found if o.bug.startswith("correct:") and o.errors] == []


@pytest.mark.slow
def test_confusion_table_meets_its_targets_on_every_architecture():
    """Catches the issue's targets missed (the whole table, minutes): top-1 code and layer >= 95% of the planted
    bugs over every architecture, and no error on any correct conversion (every rule, both resets)."""
    found = confusion_table.measure(confusion_table.ARCHS, log=lambda m: None)
    planted = [o for o in found if not o.bug.startswith("correct:")]
    assert sum(map(confusion_table.hit, planted)) >= 0.95 * len(planted)
    assert sum(o.errors for o in found if o.bug.startswith("correct:")) == 0


def test_confusion_table_renders_rates_and_misses():
    """Catches a table that hides its misses or miscounts: one hit, one miss, one correct run with an error."""
    O = confusion_table.Outcome
    rows = [O("x", "hard", "vthr_scale", ("vthr_scale", "n1"), ("vthr_scale", "n1", "error"), "inconsistent", 1),
            O("x", "hard", "truncation", ("rounding", "n1"), ("vthr_scale", "n1", "error"), "inconsistent", 1),
            O("x", "hard", "correct:max", ("", ""), ("vthr_scale", "n2", "error"), "inconsistent", 1)]
    text = confusion_table.render(rows, [confusion_table.Arch("x", None, "note")])
    assert "1 / 2 (50.0%)" in text and "Error-severity diagnoses on correct conversions: 1 over 1" in text
    assert "x (hard) truncation: expected ('rounding', 'n1')" in text and "correct:max" in text


# ----------------------------------------------------------------------------------------------- per channel
def test_one_negated_channel_is_named_with_its_index(digits):
    """Catches a one-channel fault passed as consistent: channel 3 of conv_fc.4 negated (of 16) is named
    `channel_weights` at conv_fc.6 with index 3, and nothing else is blamed."""
    net, x, conv = digits
    w = np.array(conv.graph.nodes["conv_fc.4"].weight, copy=True)
    w[3] = -w[3]
    broken = conv.graph.with_node("conv_fc.4", weight=w)
    _, _, found = diagnose(net, broken, x, 255)
    top = rank(found)[0]
    assert (top.code, top.layer, top.evidence["channels"]) == ("channel_weights", "conv_fc.6", [3])
    assert "channel 3: negated" in top.message


def test_binary_weights_are_not_a_coarse_grid():
    """Catches the grid check firing on weights that are all one magnitude in A (binary weights round to +-127:
    a common divisor of 127 that no bit dropping made), while spread weights truncated to multiples of 8 are
    named with their grid."""
    from snncheck.diagnose import channels
    a = np.where(np.random.default_rng(0).random((4, 8)) < 0.5, -0.3, 0.3)
    assert channels.grid_diagnosis("n", "fc", np.rint(a / 0.3 * 127), a, {}) == []
    spread = a * np.random.default_rng(1).random(a.shape)
    dropped = np.trunc(spread / 0.3 * 127 / 8) * 8
    assert [d.evidence["grid"] for d in channels.grid_diagnosis("n", "fc", dropped, spread, {})] == [8]


# ----------------------------------------------------------------------------------------------- thresholds
def test_a_suspect_threshold_becomes_the_error_when_the_runs_confirm_it():
    """Catches the combined rule lost: a static suspicion (warning) on a layer whose own spikes move beyond
    quantization becomes the error (vthr_scale, with the run evidence) in place of a generic quantization_error;
    without that run finding it stays a warning."""
    suspect = Diagnosis("vthr_scale", "n1", "warning", "threshold 2.1 standard errors off", {"suspect": True}, "fix")
    own = Diagnosis("quantization_error", "n1", "error", "n1, fed A's own input spikes, misses 3%: ...",
                    {"rate": 0.03}, "fix")
    out = dynamic.combine([suspect], [own], ["n1"])
    assert [(d.code, d.severity) for d in out] == [("vthr_scale", "error")]
    assert out[0].evidence["runs"]["quantization_error"] == {"rate": 0.03}
    assert dynamic.combine([suspect], [], ["n1"]) == [suspect]


def test_a_threshold_one_step_of_a_small_multiplier_off_is_an_error(digits):
    """Catches a tolerance wider than the resolution: the seed rule's integer multiplier one step too high on
    conv_fc.10 (its threshold (m+1)/m times too high) is named vthr_scale there, while the correct seed conversion
    raises nothing."""
    net, x, _ = digits
    conv = convert.convert(net, 255, "seed")
    _, _, clean = diagnose(net, conv.graph, x, 255)
    assert not [d for d in clean if d.severity == "error"]
    m = conv.weight_scales["conv_fc.9"]
    theta = conv.graph.nodes["conv_fc.10"].threshold
    broken = conv.graph.with_node("conv_fc.10", threshold=int(round(theta * (m + 1) / m)))
    _, _, found = diagnose(net, broken, x, 255)
    assert (rank(found)[0].code, rank(found)[0].layer) == ("vthr_scale", "conv_fc.10"), (m, found)


# ----------------------------------------------------------------------------------------------- inputs
def test_input_error_tells_binarised_from_usable():
    """Catches the input check missing binarisation or blaming a usable encoding: 0..1 images at scale 1 are an
    error with the fix --input-scale 255; at 255 nothing; values beyond uint8 are a warning."""
    x = np.random.default_rng(0).random((4, 2, 1, 8, 8))
    bad = inputs.check(x, 1.0, "n1")
    assert [(d.code, d.severity) for d in bad] == [("input_scale", "error")]
    assert "binarised" in bad[0].message and bad[0].fix.startswith("--input-scale 255")
    assert inputs.check(x, 255.0, "n1") == []
    assert [d.severity for d in inputs.check(x, 400.0, "n1")] == ["warning"]
    assert inputs.check(np.round(x), 1.0, "n1") == []         # spikes at scale 1: nothing lost


def test_binarised_input_from_the_command_line(tmp_path, capsys):
    """Catches the issue's binarised-input case passed as consistent: a conversion at input scale 1 diffed on the
    0..1 digits (B receives round(x)) reports input_scale at the first layer with the fix, exit 1."""
    b = tmp_path / "b1.pth"
    assert main(["convert", str(zoo.DIGITS_CHECKPOINT), "--model", "digits_csnn", "--input-scale", "1",
                 "--out", str(b)]) == 0
    code = main(["diff", str(zoo.DIGITS_CHECKPOINT), str(b), "--samples", "8", "--timesteps", "4", "--runners",
                 "reference", "--json", str(tmp_path / "r.json"), "--out", str(tmp_path / "r.html")])
    rep = json.loads((tmp_path / "r.json").read_text())
    top = rep["diagnoses"][0]
    assert code == 1 and (top["code"], top["layer"]) == ("input_scale", "conv_fc.2"), capsys.readouterr().out
    assert "--input-scale 255" in top["fix"]


# ----------------------------------------------------------------------------------------------- vacuity
def _pair(key_a, counts: list, rows: int = 40, expect: str = "quantization") -> PairComparison:
    layers = tuple(LayerComparison(f"n{i}", i, (10,), 0, rows * 10, None, np.full(10, c / 10), np.full(10, c / 10),
                                   rows) for i, c in enumerate(counts))
    return PairComparison(key_a, "reference:b", expect, layers, 1, 1, 4)


def test_quiet_layers_make_the_verdict_inconclusive():
    """Catches an empty check reported consistent, or a small but firing layer called quiet: a layer with no spike
    is quiet (verdict inconclusive), 9 spikes at 2% are not; an A~B pair planned but not run is said too; an error
    still makes the verdict inconsistent."""
    found = vacuity.check([_pair("reference:a", [50, 0, 9])], ["n0", "n1", "n2"], True, True, 4)
    assert [(d.code, d.layer) for d in found] == [("vacuous", "n1")] and verdict(found) == "inconclusive"
    assert vacuity.check([_pair("reference:a", [50, 20, 9])], ["n0", "n1", "n2"], True, True, 4) == []
    missing = vacuity.check([_pair("paibox:b", [50, 20, 9], expect="exact")], ["n0", "n1", "n2"], True, False, 4)
    assert [d.code for d in missing] == ["vacuous"] and "not run against each other" in missing[0].message
    error = Diagnosis("vthr_scale", "n0", "error", "m", {}, "f")
    assert verdict(found + [error]) == "inconsistent" and verdict([]) == "consistent"


def test_a_network_that_barely_fires_exits_3(tmp_path, capsys):
    """Catches the issue's empty check: random MLP weights (a tenth of torch's initialisation) fire almost never;
    its correct conversion is INCONCLUSIVE with exit 3 and a `vacuous` warning naming the quiet layers, never
    CONSISTENT."""
    torch.manual_seed(0)
    net = zoo.get("mlp")()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(0.1)
    torch.save(net.state_dict(), tmp_path / "a.pth")
    assert main(["convert", str(tmp_path / "a.pth"), "--model", "mlp", "--input-scale", "255",
                 "--out", str(tmp_path / "b.pth")]) == 0
    code = main(["diff", str(tmp_path / "a.pth"), str(tmp_path / "b.pth"), "--model", "mlp", "--samples", "8",
                 "--runners", "reference", "--json", str(tmp_path / "r.json"), "--out", str(tmp_path / "r.html")])
    rep = json.loads((tmp_path / "r.json").read_text())
    assert code == 3 and rep["verdict"] == "inconclusive", capsys.readouterr().out
    assert [d["code"] for d in rep["diagnoses"]] == ["vacuous"]


# ----------------------------------------------------------------------------------------------- messages
def test_a_float_checkpoint_given_as_b_is_named_so(tmp_path, capsys):
    """Catches the old message ("unexpected conv_fc.1.bias, ...num_batches_tracked"): A given as B says that B
    holds float weights and looks like the float checkpoint, exit 2."""
    code = main(["diff", str(zoo.DIGITS_CHECKPOINT), str(zoo.DIGITS_CHECKPOINT), "--runners", "reference"])
    err = capsys.readouterr().err
    assert code == 2 and "B holds float weights: it looks like the float checkpoint" in err


def test_a_bias_rounded_to_zeros_is_not_called_missing():
    """Catches "has no bias in B" for a bias that B has but rounded (or scaled) to zeros."""
    net, x, _ = model("alexnet")
    conv = convert.convert(net, 255, "max")
    zeroed = conv.graph.with_node("features.3", bias=np.zeros_like(conv.graph.nodes["features.3"].bias))
    _, _, found = diagnose(net, zeroed, x, 255)
    top = rank(found)[0]
    assert (top.code, top.layer) == ("bias_scale", "features.4")
    assert "all zeros in B" in top.message and "has no bias" not in top.message


def test_the_bias_fix_names_the_users_paibox_node():
    """Catches a --paibox bias fix that does not name the user's node (the timing and reset fixes do)."""
    from snncheck.frontends.paibox import user_nodes
    from snncheck.diagnose import phrase_for_user
    matching = [{"layer": "conv_fc.2", "paibox": "n1", "tick_wait_start": 1, "recipe_tick_wait_start": 1, "delay": 1,
                 "reset": "hard"}]
    d = Diagnosis("bias_scale", "conv_fc.2", "error", "m", {}, "multiply the bias of conv_fc.0 by 255")
    assert phrase_for_user([d], user_nodes(matching))[0].fix.endswith("in your network: the bias (leak_v/bias) of n1")
