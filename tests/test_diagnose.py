"""Static and dynamic diagnosis of a conversion: correct conversions carry no error, the statistics measure what
they claim (RMSE per step 0.29 rounding / 0.58 truncation, sign flips of a wrap), the isolated mode tells a
layer's own error from what it inherits, and every diagnosis reads as a person would write it.

A runs in the reference (float32, SpikingJelly's operation order), B in the reference on round(x * 255)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from convert_nets import diagnose, model, pipeline_report, runs
from snncheck import convert, mutations
from snncheck.diagnose import Diagnosis, dynamic, rank, static
from snncheck.graph import chain, fold_batchnorm
from snncheck.graph import primitives as P

# Assertions on what only the full pipeline makes (the verdict, the pairs' counts, the JSON report, PAIBox runs)


@pytest.fixture(scope="module")
def models():
    return {(arch, reset): model(arch, reset) for arch in ("digits", "alexnet") for reset in ("hard", "soft")}


@pytest.fixture(scope="module")
def digits(models):
    net, inputs, _ = models[("digits", "hard")]
    return net, inputs, convert.convert(net, 255, "max")


def _errors(found):
    return [(d.code, d.layer, d.message) for d in found if d.severity == "error"]


# ------------------------------------------------------------------------------------------ correct conversions
@pytest.mark.parametrize("arch", ["digits", "alexnet"])
@pytest.mark.parametrize("reset", ["hard", "soft"])
@pytest.mark.parametrize("rule", ["seed", "max", "percentile", "search"])
def test_correct_conversions_have_no_error(models, arch, reset, rule):
    net, inputs, cal = models[(arch, reset)]
    conv = convert.convert(net, 255, rule, calibration=cal)
    stats, extras, found = diagnose(net, conv.graph, inputs, 255)
    assert not _errors(found)
    iso = extras["isolated"]
    assert set(iso) == set(net.neurons) and all(not st["beyond_quantization"] for st in iso.values())
    clips = rule in ("percentile", "search")        # saturated weights lower the membrane slope a little
    assert all(abs(st["slope_over_threshold_ratio"] - 1) < (0.05 if clips else 0.01) for st in iso.values()), iso
    assert all(0.2 < st["rmse_over_step"] < 0.4 for st in stats.values()), stats


@pytest.mark.parametrize("rule", ["seed", "max", "percentile", "search"])
def test_correct_conversions_are_consistent(models, rule):
    net, inputs, cal = models[("digits", "hard")]
    conv = convert.convert(net, 255, rule, calibration=cal)
    report = pipeline_report(net, conv.graph, inputs, 255, backends=("reference", "spikingjelly"))
    assert report.verdict == "consistent"


def test_correct_conversion_is_consistent_in_paibox_too(digits):
    net, inputs, conv = digits
    report = pipeline_report(net, conv.graph, inputs[:6], 255, backends=("reference", "spikingjelly", "paibox"))
    assert report.verdict == "consistent" and report.pair("paibox:b~reference:b").exact


# ------------------------------------------------------------------------------------------ statistics
def test_rmse_per_step_tells_truncation_from_rounding(digits):
    net, _, conv = digits
    good, _ = static.analyse(net, conv.graph, 255)
    trunc, found = static.analyse(net, mutations.apply(conv.graph, net, {"name": "truncation", "layer": "conv_fc.6"},
                                                       conv), 255)
    # uniform rounding error has RMS 1/sqrt(12) = 0.289 of a step; truncation sqrt(1/3) = 0.577 about the true scale
    assert abs(good["conv_fc.6"]["rmse_over_step"] - 0.289) < 0.03
    assert abs(good["conv_fc.6"]["rounding_offset"]) < 0.05
    assert abs(trunc["conv_fc.6"]["rounding_offset"] + 0.5) < 0.05
    assert trunc["conv_fc.6"]["rmse_over_step"] > 0.5
    assert trunc["conv_fc.6"]["sqnr_db"] < good["conv_fc.6"]["sqnr_db"] - 4
    assert [(d.code, d.layer) for d in found if d.severity == "error"] == [("rounding", "conv_fc.6")]


def test_scales_and_sqnr_are_measured(digits):
    net, _, conv = digits
    stats, _ = static.analyse(net, conv.graph, 255)
    folded = fold_batchnorm(net)
    assert list(stats) == net.neurons
    for layer, st in stats.items():
        syn = st["synapse"]
        b = conv.graph.nodes[syn]
        assert st["scale"] == pytest.approx(conv.weight_scales[syn], rel=2e-3)
        a = folded.nodes[syn].weight.astype(np.float64) * st["scale"]
        sqnr = 10 * np.log10(np.sum(a ** 2) / np.sum((b.weight - a) ** 2))
        assert st["sqnr_db"] == pytest.approx(sqnr, abs=1e-6)
    assert stats["conv_fc.2"]["expected_scale"] == pytest.approx(255 * stats["conv_fc.2"]["scale"])
    assert stats["conv_fc.2"]["expected_scale"] == pytest.approx(conv.layer_scales["conv_fc.2"], rel=2e-3)


def test_few_weights_many_scales_explain_them():
    """Found by `snncheck fuzz`: weights 1.0 and 0.5 at scale 127 give 127 and 64, which scale 128 fits just as
    well; the threshold 255*127 must not then look mis-scaled."""
    net = chain([("c", P.Conv2d(np.array([[[[1.0]]], [[[0.5]]]], np.float32))), ("n", P.IF(1.0))], (1, 3, 3))
    b = convert.convert(net, 255.0, "max").graph
    stats, found = static.analyse(net, b, 255.0)
    assert not found and stats["n"]["clipped"] == 0
    twice = b.with_node("n", threshold=2 * 255 * 127)
    assert [d.code for d in static.analyse(net, twice, 255.0)[1]] == ["vthr_scale"]


def test_wrap_counts_sign_flips(digits):
    net, _, conv = digits
    stats, _ = static.analyse(net, mutations.apply(conv.graph, net, {"name": "int8_wrap"}, conv), 255)
    w = np.trunc(fold_batchnorm(net).nodes["conv_fc.0"].weight.astype(np.float64) * conv.weight_scales["conv_fc.0"] * 2)
    wrapped = ((w + 128) % 256) - 128
    assert stats["conv_fc.2"]["sign_flips"] == int(np.sum((np.sign(wrapped) != np.sign(w)) & (w != 0))) > 0


# ------------------------------------------------------------------------------------------ the seed story
def test_seed_story_names_the_first_layer_bias_and_the_fix(digits):
    net, inputs, conv = digits
    buggy = mutations.apply(conv.graph, net, {"name": "bias_unscaled"}, conv)
    _, _, found = diagnose(net, buggy, inputs, 255)
    top = rank(found)[0]
    assert (top.code, top.layer, top.severity) == ("bias_scale", "conv_fc.2", "error")
    assert top.fix == "multiply the bias of conv_fc.0 by 255"
    assert "conv_fc.0" in top.message and "255" in top.message
    assert top.evidence["bias_ratio"] == pytest.approx(1 / 255, rel=0.02) and top.evidence["factor"] == 255
    fixed = buggy.with_node("conv_fc.0", bias=buggy.nodes["conv_fc.0"].bias * 255)
    assert not [d for d in static.analyse(net, fixed, 255)[1] if d.severity == "error"]


def test_input_scale_not_given_is_said_from_the_input_side(digits):
    """B converted for 0-255 but diffed as if the input were 0-1 (input scale inferred as 1)."""
    net, _, conv = digits
    _, found = static.analyse(net, conv.graph, 1.0)
    top = rank(found)[0]
    assert (top.code, top.layer) == ("input_scale", "conv_fc.2")
    assert top.evidence["implied_input_scale"] == pytest.approx(255, rel=0.01) and "--input-scale 255" in top.fix


# ------------------------------------------------------------------------------------------ dynamic
def test_isolated_mode_separates_own_error_from_inherited(digits):
    net, inputs, conv = digits
    broken = mutations.apply(conv.graph, net, {"name": "vthr_scale", "layer": "conv_fc.6"}, conv)
    _, extras, found = diagnose(net, broken, inputs, 255)
    iso = extras["isolated"]
    assert [n for n, st in iso.items() if st["beyond_quantization"]] == ["conv_fc.6"]
    assert extras["first_own_error"] == "conv_fc.6"
    # conv_fc.10 is wrong in the full run only because conv_fc.6 feeds it wrong spikes
    a, b = runs(net, broken, inputs, 255)
    full = float(np.mean(a.layer("conv_fc.10").spikes != b.layer("conv_fc.10").spikes))
    assert full > 5 * iso["conv_fc.10"]["rate"]
    assert iso["conv_fc.6"]["slope_over_threshold_ratio"] == pytest.approx(0.5, rel=0.05)
    vthr = next(d for d in found if d.code == "vthr_scale")
    assert vthr.evidence["runs"]["quantization_error"]["rate"] == iso["conv_fc.6"]["rate"]


def test_dynamic_diagnosis_alone_finds_the_layer(digits):
    """Without the static diagnosis (what a user's own PAIBox network may leave), the runs name the layer."""
    net, inputs, conv = digits
    broken = mutations.apply(conv.graph, net, {"name": "flatten_order"}, conv)
    stats, _ = static.analyse(net, broken, 255)
    a, b = runs(net, broken, inputs, 255)
    _, found = dynamic.analyse(net, broken, a, {b.label: b}, inputs, 255, {k: v["scale"] for k, v in stats.items()}, [])
    assert [(d.code, d.layer, d.severity) for d in found][0] == ("quantization_error", "conv_fc.10", "error")


def test_reset_signature_from_the_potentials(digits):
    net, inputs, conv = digits
    soft = mutations.apply(conv.graph, net, {"name": "reset_mode", "layer": "conv_fc.6"}, conv)
    a, b = runs(net, conv.graph, inputs, 255)
    _, quiet = runs(net, soft, inputs, 255)
    quiet = quiet.replace(backend="paibox", label="paibox:b")   # as if PAIBox had silently reset softly
    assert dynamic.reset_signature(a.layer("conv_fc.6"))[0] == "hard"
    assert dynamic.reset_signature(quiet.layer("conv_fc.6"))[0] == "soft"
    _, found = dynamic.analyse(net, conv.graph, a, {b.label: b, quiet.label: quiet}, inputs, 255, {}, [])
    assert [(d.code, d.layer) for d in found] == [("reset_mode", "conv_fc.6")]
    assert found[0].evidence["run_b"] == "paibox:b"


def test_silent_layer_and_samples_without_output(digits):
    net, inputs, conv = digits
    quiet = mutations.apply(conv.graph, net, {"name": "prenorm_weights", "layer": "conv_fc.12", "factor": 0.02}, conv)
    _, _, found = diagnose(net, quiet, inputs, 255)
    top = rank(found)[0]
    assert (top.code, top.layer) == ("weight_scale", "conv_fc.12")
    silent = top.evidence["runs"]["silent_layer"]
    assert silent["firing_rate_b"] < 0.05 * silent["firing_rate_a"]


def test_membranes_of_a_and_b_compare_in_a_units(digits):
    net, inputs, conv = digits
    stats, _ = static.analyse(net, conv.graph, 255)
    k = {name: st["expected_scale"] for name, st in stats.items()}
    a, b = runs(net, conv.graph, inputs, 255)
    diff = dynamic.scaled_membrane_diff(a, b, k)
    want = float(np.max(np.abs(b.layer("conv_fc.2").v / k["conv_fc.2"] - a.layer("conv_fc.2").v)))
    assert diff["conv_fc.2"] == pytest.approx(want) and want <= 1.5     # threshold 1: at most a flip's reset
    assert float(np.max(np.abs(b.layer("conv_fc.2").v - a.layer("conv_fc.2").v))) > 1000   # raw: meaningless


def test_combining_builds_new_diagnoses_and_edits_none():
    """A dynamic finding on a layer with a static error joins its evidence in a new object; a silent layer
    downstream of an error is a warning; the inputs are left as they were."""
    static_err = Diagnosis("vthr_scale", "l2", "error", "m", {"layer": "l2"}, "f")
    own = Diagnosis("quantization_error", "l2", "error", "own", {"layer": "l2", "rate": 0.3}, "f")
    silent = Diagnosis("silent_layer", "l3", "error", "quiet", {"layer": "l3"}, "f")
    out = dynamic.combine([static_err], [own, silent], ["l1", "l2", "l3"])
    assert [(d.code, d.layer, d.severity) for d in out] == [("vthr_scale", "l2", "error"),
                                                            ("silent_layer", "l3", "warning")]
    assert out[0].evidence["runs"]["quantization_error"]["rate"] == 0.3 and out[0] is not static_err
    assert static_err.evidence == {"layer": "l2"} and silent.severity == "error"
    with pytest.raises(dataclasses.FrozenInstanceError):
        out[0].severity = "warning"


def test_bn_not_folded_is_named_with_the_batchnorm_in_the_fix(digits):
    net, _, conv = digits
    broken = mutations.apply(conv.graph, net, {"name": "bn_not_folded"}, conv)
    stats, found = static.analyse(net, broken, 255)
    assert set(stats) == {"conv_fc.2", "conv_fc.6", "conv_fc.10", "conv_fc.12"}
    assert {"scale", "sqnr_db", "rmse_over_step", "clipped", "sign_flips"} <= set(stats["conv_fc.6"])
    first = rank(found)[0]
    assert (first.code, first.layer) == ("bn_not_folded", "conv_fc.2") and "conv_fc.1" in first.fix
    assert stats["conv_fc.2"]["synapse"] == "conv_fc.0"


def test_json_carries_weights_and_diagnoses(digits, tmp_path):
    import json
    from snncheck.report import io
    net, inputs, conv = digits
    broken = mutations.apply(conv.graph, net, {"name": "bn_not_folded"}, conv)
    report = pipeline_report(net, broken, inputs, 255)
    path = tmp_path / "r.json"
    io.write_json(report, path)
    rep = json.loads(path.read_text())
    assert set(rep["weights"]) == {"conv_fc.2", "conv_fc.6", "conv_fc.10", "conv_fc.12"}
    assert {"scale", "sqnr_db", "rmse_over_step", "clipped", "sign_flips"} <= set(rep["weights"]["conv_fc.6"])
    first = rep["diagnoses"][0]
    assert set(first) == {"code", "layer", "severity", "message", "evidence", "fix"}
    assert (first["code"], first["layer"]) == ("bn_not_folded", "conv_fc.2") and "conv_fc.1" in first["fix"]
    assert rep["layers"][0]["weights"]["synapse"] == "conv_fc.0"


def test_membranes_in_a_units_in_the_report(digits):
    net, inputs, conv = digits
    report = pipeline_report(net, conv.graph, inputs, 255, backends=("reference", "spikingjelly"))
    k = report.extras["membrane_units"]["k"]
    runs_ = report.evidence.runs
    a, b = runs_["spikingjelly:a"].layer("conv_fc.2"), runs_["reference:b"].layer("conv_fc.2")
    want = float(np.max(np.abs(b.v / k["conv_fc.2"] - a.v)))
    assert report.pair("spikingjelly:a~reference:b").layer("conv_fc.2").v_max_abs_diff == pytest.approx(want)
