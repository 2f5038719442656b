"""Static and dynamic diagnosis of a conversion: correct conversions carry no error, the statistics measure what
they claim (RMSE per step 0.29 rounding / 0.58 truncation, sign flips of a wrap), the isolated mode tells a
layer's own error from what it inherits, and every diagnosis reads as a person would write it."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from snncheck import api, case, checkpoint, convert, data, ir, mutations, zoo
from snncheck.diagnose import dynamic, rank, static
from snncheck.frontends.spikingjelly import from_module
from snncheck.report import io

RUNNERS = ["reference", "spikingjelly"]


def _model(arch: str, reset: str):
    """(module, float network, inputs, calibration) for the trained digits CSNN or a seeded AlexNet stack."""
    if arch == "digits":
        module = zoo.digits_csnn(reset=reset)
        checkpoint.load_into(module, checkpoint.load_state_dict(zoo.DIGITS_CHECKPOINT), zoo.DIGITS_CHECKPOINT)
        x, _ = data.digits("test")
        xtr, _ = data.digits("train")
        net = from_module(module, (1, 8, 8), name="digits")
        return module.eval(), net, data.direct(x[:16], 4), data.direct(xtr[:64], 4)
    torch.manual_seed(0)
    module = zoo.alexnet_small(reset=reset)
    x, _ = data.digits("test")
    xtr, _ = data.digits("train")
    cal = data.direct(data.resize(xtr[:32], (3, 16, 16)), 4)
    net = case.calibrate_thresholds(module, from_module(module, (3, 16, 16), name="alexnet"), cal, 0.9)
    return module.eval(), net, data.direct(data.resize(x[:12], (3, 16, 16)), 4), cal


@pytest.fixture(scope="module")
def models():
    return {(arch, reset): _model(arch, reset) for arch in ("digits", "alexnet") for reset in ("hard", "soft")}


@pytest.fixture(scope="module")
def digits(models):
    module, net, inputs, _ = models[("digits", "hard")]
    return module, net, inputs, convert.convert(net, 255, "max")


# ------------------------------------------------------------------------------------------ correct conversions
@pytest.mark.parametrize("arch", ["digits", "alexnet"])
@pytest.mark.parametrize("reset", ["hard", "soft"])
@pytest.mark.parametrize("rule", ["seed", "max", "percentile", "search"])
def test_correct_conversions_have_no_error(models, arch, reset, rule):
    module, net, inputs, cal = models[(arch, reset)]
    conv = convert.convert(net, 255, rule, calibration=cal)
    report = api.diff(module, net, conv.network, inputs, 255, runners=RUNNERS, keep_runs=False)
    errors = [(d.code, d.layer, d.message) for d in report.diagnoses if d.severity == "error"]
    assert not errors and report.verdict == "consistent"
    iso = report.extras["isolated"]
    assert all(not st["beyond_quantization"] for st in iso.values())
    clips = rule in ("percentile", "search")        # saturated weights lower the membrane slope a little
    assert all(abs(st["slope_over_threshold_ratio"] - 1) < (0.05 if clips else 0.01) for st in iso.values()), iso
    assert all(0.2 < st["rmse_over_step"] < 0.4 for st in report.weights.values()), report.weights


def test_correct_conversion_is_consistent_in_paibox_too(digits):
    module, net, inputs, conv = digits
    report = api.diff(module, net, conv.network, inputs[:6], 255, keep_runs=False)
    assert report.verdict == "consistent" and report.pair("paibox:b~reference:b").exact


# ------------------------------------------------------------------------------------------ statistics
def test_rmse_per_step_tells_truncation_from_rounding(digits):
    _, net, _, conv = digits
    good, _ = static.analyse(net, conv.network, 255)
    trunc, found = static.analyse(net, mutations.apply(conv.network, net, {"name": "truncation", "layer": "conv_fc.6"},
                                                       conv), 255)
    # uniform rounding error has RMS 1/sqrt(12) = 0.289 of a step; truncation sqrt(1/3) = 0.577 about the true scale
    assert abs(good["conv_fc.6"]["rmse_over_step"] - 0.289) < 0.03
    assert abs(good["conv_fc.6"]["rounding_offset"]) < 0.05
    assert abs(trunc["conv_fc.6"]["rounding_offset"] + 0.5) < 0.05
    assert trunc["conv_fc.6"]["rmse_over_step"] > 0.5
    assert trunc["conv_fc.6"]["sqnr_db"] < good["conv_fc.6"]["sqnr_db"] - 4
    assert [(d.code, d.layer) for d in found if d.severity == "error"] == [("rounding", "conv_fc.6")]


def test_scales_and_sqnr_are_measured(digits):
    _, net, _, conv = digits
    stats, _ = static.analyse(net, conv.network, 255)
    folded = ir.fold_batchnorm(net)
    for layer, st in stats.items():
        syn = conv.network.layer(st["synapse"])
        assert st["scale"] == pytest.approx(conv.scales[syn.name], rel=2e-3)
        a = folded.layer(syn.name).weight.astype(np.float64) * st["scale"]
        sqnr = 10 * np.log10(np.sum(a ** 2) / np.sum((syn.weight - a) ** 2))
        assert st["sqnr_db"] == pytest.approx(sqnr, abs=1e-6)
    assert stats["conv_fc.2"]["expected_scale"] == pytest.approx(255 * stats["conv_fc.2"]["scale"])


def test_few_weights_many_scales_explain_them():
    """Found by `snncheck fuzz`: weights 1.0 and 0.5 at scale 127 give 127 and 64, which scale 128 fits just as
    well; the threshold 255*127 must not then look mis-scaled."""
    net = ir.Network([ir.Conv2d("c", np.array([[[[1.0]]], [[[0.5]]]], np.float32)), ir.IF("n", 1.0, 0.0)], (1, 3, 3))
    stats, found = static.analyse(net, convert.convert(net, 255.0, "max").network, 255.0)
    assert not found and stats["n"]["clipped"] == 0
    twice = convert.convert(net, 255.0, "max").network.with_layer("n", threshold=2 * 255 * 127)
    assert [d.code for d in static.analyse(net, twice, 255.0)[1]] == ["vthr_scale"]


def test_wrap_counts_sign_flips(digits):
    _, net, _, conv = digits
    stats, _ = static.analyse(net, mutations.apply(conv.network, net, {"name": "int8_wrap"}, conv), 255)
    w = np.trunc(ir.fold_batchnorm(net).layer("conv_fc.0").weight.astype(np.float64) * conv.scales["conv_fc.0"] * 2)
    wrapped = ((w + 128) % 256) - 128
    assert stats["conv_fc.2"]["sign_flips"] == int(np.sum((np.sign(wrapped) != np.sign(w)) & (w != 0))) > 0


# ------------------------------------------------------------------------------------------ the seed story
def test_seed_story_names_the_first_layer_bias_and_the_fix(digits):
    module, net, inputs, conv = digits
    buggy = mutations.apply(conv.network, net, {"name": "bias_unscaled"}, conv)
    report = api.diff(module, net, buggy, inputs, 255, runners=RUNNERS, keep_runs=False)
    top = rank(report.diagnoses)[0]
    assert (top.code, top.layer, top.severity) == ("bias_scale", "conv_fc.2", "error")
    assert top.fix == "multiply the bias of conv_fc.0 by 255"
    assert "conv_fc.0" in top.message and "255" in top.message
    assert top.evidence["bias_ratio"] == pytest.approx(1 / 255, rel=0.02) and top.evidence["factor"] == 255
    fixed = buggy.with_layer("conv_fc.0", bias=buggy.layer("conv_fc.0").bias * 255)
    assert not [d for d in static.analyse(net, fixed, 255)[1] if d.severity == "error"]


def test_input_scale_not_given_is_said_from_the_input_side(digits):
    """B converted for 0-255 but diffed as if the input were 0-1 (input scale inferred as 1)."""
    _, net, _, conv = digits
    _, found = static.analyse(net, conv.network, 1.0)
    top = rank(found)[0]
    assert (top.code, top.layer) == ("input_scale", "conv_fc.2")
    assert top.evidence["implied_input_scale"] == pytest.approx(255, rel=0.01) and "--input-scale 255" in top.fix


# ------------------------------------------------------------------------------------------ dynamic
def test_isolated_mode_separates_own_error_from_inherited(digits):
    module, net, inputs, conv = digits
    broken = mutations.apply(conv.network, net, {"name": "vthr_scale", "layer": "conv_fc.6"}, conv)
    report = api.diff(module, net, broken, inputs, 255, runners=RUNNERS, keep_runs=False)
    iso, full = report.extras["isolated"], report.pair("spikingjelly:a~reference:b")
    assert [n for n, st in iso.items() if st["beyond_quantization"]] == ["conv_fc.6"]
    assert report.extras["first_own_error"] == "conv_fc.6"
    # conv_fc.10 is wrong in the full run only because conv_fc.6 feeds it wrong spikes
    assert full.layer("conv_fc.10").rate > 5 * iso["conv_fc.10"]["rate"]
    assert iso["conv_fc.6"]["slope_over_threshold_ratio"] == pytest.approx(0.5, rel=0.05)
    vthr = next(d for d in report.diagnoses if d.code == "vthr_scale")
    assert vthr.evidence["runs"]["quantization_error"]["rate"] == iso["conv_fc.6"]["rate"]


def test_dynamic_diagnosis_alone_finds_the_layer(digits):
    """Without the static diagnosis (what a user's own PAIBox network may leave), the runs name the layer."""
    module, net, inputs, conv = digits
    broken = mutations.apply(conv.network, net, {"name": "flatten_order"}, conv)
    report = api.diff(module, net, broken, inputs, 255, runners=RUNNERS, keep_runs=False, diagnose=False)
    stats, _ = static.analyse(net, broken, 255)
    _, found = dynamic.analyse(net, broken, report.figures.get("runs") or _runs(module, net, broken, inputs),
                               inputs, 255, {k: v["scale"] for k, v in stats.items()})
    assert [(d.code, d.layer, d.severity) for d in found][0] == ("quantization_error", "conv_fc.10", "error")


def test_reset_signature_from_the_potentials(digits):
    module, net, inputs, conv = digits
    soft = mutations.apply(conv.network, net, {"name": "reset_mode", "layer": "conv_fc.6"}, conv)
    runs = _runs(module, net, conv.network, inputs)
    runs["paibox:b"] = api.run_network(soft, api.deployed_inputs(inputs, 255), ["reference"], "x")["reference:x"]
    runs["paibox:b"].label = "paibox:b"        # as if PAIBox had silently reset softly (np.int64 reset_v)
    assert dynamic.reset_signature(runs["spikingjelly:a"].layer("conv_fc.6"))[0] == "hard"
    assert dynamic.reset_signature(runs["paibox:b"].layer("conv_fc.6"))[0] == "soft"
    _, found = dynamic.analyse(net, conv.network, runs, inputs, 255, {})
    assert [(d.code, d.layer) for d in found] == [("reset_mode", "conv_fc.6")]
    assert found[0].evidence["run_b"] == "paibox:b"


def test_silent_layer_and_samples_without_output(digits):
    module, net, inputs, conv = digits
    quiet = mutations.apply(conv.network, net, {"name": "prenorm_weights", "layer": "conv_fc.12", "factor": 0.02}, conv)
    report = api.diff(module, net, quiet, inputs, 255, runners=RUNNERS, keep_runs=False)
    top = rank(report.diagnoses)[0]
    assert (top.code, top.layer) == ("weight_scale", "conv_fc.12")
    silent = top.evidence["runs"]["silent_layer"]
    assert silent["firing_rate_b"] < 0.05 * silent["firing_rate_a"]


def test_membranes_of_a_and_b_compare_in_a_units(digits):
    module, net, inputs, conv = digits
    report = api.diff(module, net, conv.network, inputs, 255, runners=RUNNERS)
    runs, k = report.figures["runs"], report.extras["membrane_units"]["k"]
    a, b = runs["spikingjelly:a"].layer("conv_fc.2"), runs["reference:b"].layer("conv_fc.2")
    want = float(np.max(np.abs(b.v / k["conv_fc.2"] - a.v)))
    lc = report.pair("spikingjelly:a~reference:b").layer("conv_fc.2")
    assert lc.v_max_abs_diff == pytest.approx(want) and want <= 1.5     # threshold 1: at most a flip's reset
    assert float(np.max(np.abs(b.v - a.v))) > 1000                      # raw integer-vs-float: meaningless


def test_json_carries_weights_and_diagnoses(digits, tmp_path):
    module, net, inputs, conv = digits
    broken = mutations.apply(conv.network, net, {"name": "bn_not_folded"}, conv)
    report = api.diff(module, net, broken, inputs, 255, runners=RUNNERS, keep_runs=False)
    path = tmp_path / "r.json"
    io.write_json(report, path)
    rep = json.loads(path.read_text())
    assert set(rep["weights"]) == {"conv_fc.2", "conv_fc.6", "conv_fc.10", "conv_fc.12"}
    assert {"scale", "sqnr_db", "rmse_over_step", "clipped", "sign_flips"} <= set(rep["weights"]["conv_fc.6"])
    first = rep["diagnoses"][0]
    assert set(first) == {"code", "layer", "severity", "message", "evidence", "fix"}
    assert (first["code"], first["layer"]) == ("bn_not_folded", "conv_fc.2") and "conv_fc.1" in first["fix"]
    assert rep["layers"][0]["weights"]["synapse"] == "conv_fc.0"


def _runs(module, net, int_net, inputs):
    runs = api.run_network(net, inputs, ["spikingjelly"], "a", module)
    runs.update(api.run_network(int_net, api.deployed_inputs(inputs, 255), ["reference"], "b"))
    return runs
