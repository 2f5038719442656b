"""Conversion: BatchNorm folded, int8 weights rounded to nearest and saturated, bias and threshold times
k = s_in * s_w (the first layer's s_in = 255), the seed's rule by name, the data-aware rule measured against it,
the deployed checkpoint written and read back, and one clear InputError for bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from convert_nets import DIGITS, digits_graph, digits_inputs, runs
from snncheck import checkpoint, convert
from snncheck.diagnose import dynamic
from snncheck.errors import InputError
from snncheck.graph import chain, fold_batchnorm
from snncheck.graph import primitives as P

# Assertions that need the full pipeline or the CLI on the new API (snncheck.pipeline, commands/convert) are in

SYNAPSES = ["conv_fc.0", "conv_fc.4", "conv_fc.9", "conv_fc.11"]
NEURONS = ["conv_fc.2", "conv_fc.6", "conv_fc.10", "conv_fc.12"]


@pytest.fixture(scope="module")
def digits():
    return digits_graph(), digits_inputs(48)


@pytest.mark.parametrize("rule", ["seed", "max", "percentile"])
def test_every_layer_scaled_by_s_in_times_s_w(digits, rule):
    g, _ = digits
    conv = convert.convert(g, 255, rule)
    folded = fold_batchnorm(g)
    assert list(conv.weight_scales) == SYNAPSES and list(conv.layer_scales) == NEURONS
    s_in = 255.0
    for syn, n in zip(SYNAPSES, NEURONS):
        s_w = conv.weight_scales[syn]
        a, b = folded.nodes[syn], conv.graph.nodes[syn]
        assert conv.layer_scales[n] == pytest.approx(s_in * s_w)
        want = np.clip(np.rint(a.weight.astype(np.float64) * s_w), -128, 127)
        assert b.weight.dtype == np.int8 and np.array_equal(b.weight, want)
        assert np.array_equal(b.bias, np.rint(a.bias.astype(np.float64) * s_w * s_in))   # folded bias, x s_in
        s_in = 1.0
    thresholds = [conv.graph.nodes[n].threshold for n in NEURONS]
    ks = np.array(list(conv.weight_scales.values())) * np.array([255.0, 1, 1, 1])
    assert thresholds == list(conv.vthr.values()) == [int(np.rint(k)) for k in ks]      # A's thresholds are 1.0
    assert conv.graph.is_integer and not conv.graph.of_type(P.BatchNorm)


def test_seed_rule_is_the_seeds_formula(digits):
    g, _ = digits
    conv = convert.convert(g, 255, "seed")
    folded = fold_batchnorm(g)
    for syn, s_w in conv.weight_scales.items():
        layer = folded.nodes[syn]
        assert s_w == int(127 / max(np.abs(layer.weight).max(), np.abs(layer.bias).max()))
    assert conv.vthr["conv_fc.2"] == conv.weight_scales["conv_fc.0"] * 255     # threshold = mult * theta * s_in


def test_rounding_is_to_nearest_with_saturation():
    x = np.array([-200.0, -128.6, -2.5, -0.5, 0.49, 1.5, 126.6, 300.0])
    assert convert.round_saturate(x).tolist() == [-128, -128, -2, -0, 0, 2, 127, 127]
    assert torch.from_numpy(x).to(torch.int8).tolist() != convert.round_saturate(x).tolist()   # what it replaces


def test_search_needs_calibration(digits):
    g, _ = digits
    with pytest.raises(InputError, match="calibration"):
        convert.convert(g, 255, "search")


def test_search_loses_fewer_spikes_than_the_seed_rule(digits):
    """Calibrated on train digits, measured on test digits: each layer fed the float run's own input spikes."""
    g, inputs = digits
    cal = digits_inputs(128, split="train")
    a, _ = runs(g, g, inputs, 1.0)
    misses = {}
    for rule in ("seed", "search"):
        conv = convert.convert(g, 255, rule, calibration=cal)
        iso = dynamic.isolated(g, conv.graph, a, inputs, 255, {})
        misses[rule] = {k: v["mismatches"] for k, v in iso.items()}
    print("isolated misses per layer", misses)
    assert sum(misses["search"].values()) < sum(misses["seed"].values())
    assert all(misses["search"][k] <= misses["seed"][k] * 1.1 + 2 for k in misses["seed"])


def test_bias_correction_never_loses_spikes(digits):
    g, inputs = digits
    cal = digits_inputs(64, split="train")
    a, _ = runs(g, g, inputs, 1.0)
    plain = convert.convert(g, 255, "max", calibration=cal, bias_correction=False)
    fixed = convert.convert(g, 255, "max", calibration=cal, bias_correction=True)
    iso = [dynamic.isolated(g, c.graph, a, inputs, 255, {}) for c in (plain, fixed)]
    assert sum(v["mismatches"] for v in iso[1].values()) <= sum(v["mismatches"] for v in iso[0].values()) * 1.2 + 5


def test_thresholds_and_biases_beyond_paibox_are_refused(digits):
    g, _ = digits
    with pytest.raises(InputError, match="conv_fc.0.: integer bias reaches .* beyond PAIBox"):
        convert.convert(g, 1e8, "max")
    net = chain([("fc", P.Linear(np.full((2, 3), 0.5, np.float32))), ("n", P.IF(threshold=1.0))], (3,))
    assert convert.convert(net, 1e6).vthr == {"n": 254000000}
    with pytest.raises(InputError, match="'n': integer threshold 1016000000 is beyond PAIBox's maximum"):
        convert.convert(net, 4e6)


def test_non_if_neurons_are_refused():
    net = chain([("fc", P.Linear(np.ones((2, 3), np.float32))), ("lif", P.LIF(tau=2.0))], (3,))
    with pytest.raises(InputError, match="multiplicative leak"):
        convert.convert(net)


@pytest.mark.parametrize("kwargs,words", [(dict(input_scale=0), "input scale must be positive"),
                                          (dict(rule="floor"), "unknown conversion rule"),
                                          (dict(reset="medium"), "reset must be"),
                                          (dict(input_scale=1e8), "beyond PAIBox")])
def test_bad_conversion_arguments_say_why(digits, kwargs, words):
    g, _ = digits
    with pytest.raises(InputError, match=words):
        convert.convert(g, **kwargs)


def test_register_rule_is_used_by_name(digits):
    g, _ = digits
    convert.register_rule("half", lambda w, b, **_: 0.5 * convert.rule_max(w, b))
    try:
        conv = convert.convert(g, 255, "half")
    finally:
        del convert.RULES["half"]
    assert all(np.abs(conv.graph.nodes[s].weight).max() in (63, 64) for s in SYNAPSES)


# ------------------------------------------------------------------------------------------------ deployed
def test_deployed_checkpoint_round_trip(digits, tmp_path):
    g, _ = digits
    conv = convert.convert(g, 255, "max")
    out = tmp_path / "b.pth"
    checkpoint.save_deployed(conv, out)
    raw = torch.load(out, weights_only=True)
    assert raw["snncheck"]["input_scale"] == 255 and raw["snncheck"]["reset"] == "hard"
    assert raw["snncheck"]["vthr"] == {"conv_fc.2": 11262, "conv_fc.6": 68, "conv_fc.10": 225, "conv_fc.12": 156}
    assert raw["conv_fc.0.bias"].dtype == torch.int32 and raw["conv_fc.0.weight"].dtype == torch.int8
    dep = checkpoint.load_deployed(out, g)
    assert not dep.inferred and dep.input_scale == 255
    for n in conv.graph.order:
        a, b = dep.graph.nodes[n], conv.graph.nodes[n]
        if isinstance(b, P.SYNAPSES):
            assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)
        if P.is_neuron(b):
            assert (a.threshold, a.reset, a.v_reset) == (b.threshold, b.reset, b.v_reset)


def test_the_shipped_deployed_checkpoint_loads(digits):
    """The embedded B (vthr as a list in layer order, the format before names) is the `max` conversion."""
    g, _ = digits
    dep = checkpoint.load_deployed(DIGITS.with_name("digits_csnn_int8.pth"), g)
    conv = convert.convert(g, 255, "max")
    assert not dep.inferred and dep.input_scale == 255 and dep.reset == "hard"
    assert {n: dep.graph.nodes[n].threshold for n in NEURONS} == conv.vthr
    assert all(np.array_equal(dep.graph.nodes[s].weight, conv.graph.nodes[s].weight) for s in SYNAPSES)


def _bad_b(tmp_path, g, edit):
    """A correct deployed checkpoint with one thing broken by `edit(state)`."""
    path = tmp_path / "good.pth"
    checkpoint.save_deployed(convert.convert(g, 255, "max"), path)
    state = torch.load(path, weights_only=True)
    edit(state)
    torch.save(state, tmp_path / "bad.pth")
    return tmp_path / "bad.pth"


def _drop(state):
    del state["conv_fc.9.weight"]


def _fraction(state):
    state["conv_fc.4.weight"] = state["conv_fc.4.weight"].float() + 0.25


def _float_weights(state):
    for k in [k for k in state if k.endswith(".weight")]:
        state[k] = state[k].float() / 3 + 0.1


def _threshold(state):
    state["snncheck"]["vthr"]["conv_fc.6"] = 2 ** 29


def _rename(state):
    state["fc.9.weight"] = state.pop("conv_fc.9.weight")


def _shape(state):
    state["conv_fc.11.weight"] = state["conv_fc.11.weight"].T.contiguous()


@pytest.mark.parametrize("edit,words", [(_drop, "layers do not match"), (_rename, "layers do not match"),
                                        (_fraction, "non-integer"), (_threshold, "outside PAIBox's range"),
                                        (_shape, "has shape"), (_float_weights, "B holds float weights")])
def test_bad_deployed_checkpoints_say_why(digits, tmp_path, edit, words):
    """Catches a broken B read as if sound; among them float weights with no BatchNorm statistics to give them away
    (no weight integer-valued), which must be named as the float checkpoint."""
    g, _ = digits
    with pytest.raises(InputError, match=words) as err:
        checkpoint.load_deployed(_bad_b(tmp_path, g, edit), g)
    assert "\n" not in str(err.value)


def test_a_checkpoint_that_does_not_fit_the_model_is_refused(tmp_path):
    state = {"fc.weight": np.zeros((2, 3), np.float32)}
    module = torch.nn.Sequential(torch.nn.Linear(3, 2))
    with pytest.raises(InputError, match="layers do not match the model: missing 0.weight, 0.bias; unexpected fc"):
        checkpoint.load_into(module, state, "a.pth")


def test_a_deployed_checkpoint_is_refused_as_a(digits, tmp_path):
    g, _ = digits
    b = tmp_path / "b.pth"
    checkpoint.save_deployed(convert.convert(g, 255), b)
    with pytest.raises(InputError, match="deployed"):
        checkpoint.load_float(b, "digits_csnn")


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_convert_writes_the_deployed_checkpoint(tmp_path, capsys):
    from snncheck.cli import main
    a = str(DIGITS)
    out = tmp_path / "b.pth"
    code = main(["convert", a, "--model", "digits_csnn", "--out", str(out), "--input-scale", "255"])
    text = capsys.readouterr().out
    assert code == 0 and "conv_fc.0" in text and "RMSE/step" in text, text
    # the same B diffed against A from the command line: consistent, exit 0
    code = main(["diff", a, str(out), "--samples", "4", "--timesteps", "2", "--runners", "reference,spikingjelly",
                 "--out", str(tmp_path / "r.html")])
    assert code == 0, capsys.readouterr().out


def test_cli_convert_search_uses_calibration_file(tmp_path, capsys):
    from snncheck import data
    from snncheck.cli import main
    xtr, _ = data.digits("train")
    np.save(tmp_path / "cal.npy", xtr[:32])
    code = main(["convert", str(DIGITS), "--out", str(tmp_path / "b.pth"), "--input-scale", "255", "--rule",
                 "search", "--calibration", str(tmp_path / "cal.npy"), "--timesteps", "4"])
    assert code == 0 and "rule search" in capsys.readouterr().out
    assert torch.load(tmp_path / "b.pth", weights_only=True)["snncheck"]["rule"] == "search"


@pytest.mark.parametrize("edit,words", [(_drop, "layers do not match"), (_rename, "layers do not match"),
                                        (_fraction, "non-integer"), (_threshold, "outside PAIBox's range")])
def test_cli_diff_bad_b_exits_2_with_one_line(digits, tmp_path, capsys, edit, words):
    from snncheck.cli import main
    g, _ = digits
    code = main(["diff", str(DIGITS), str(_bad_b(tmp_path, g, edit)), "--samples", "2", "--runners", "reference"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and words in err[0], err


@pytest.mark.parametrize("args,words", [(["--input-scale", "1e8"], "beyond PAIBox"),
                                        (["--input-scale", "0"], "expected a positive number"),
                                        (["--rule", "floor"], "unknown conversion rule"),
                                        (["--reset", "medium"], "invalid choice"),
                                        (["--model", "alexnet_small"], "do not match")])
def test_cli_convert_bad_input_exits_2_with_one_line(tmp_path, capsys, args, words):
    from snncheck.cli import main
    code = main(["convert", str(DIGITS), "--out", str(tmp_path / "b.pth")] + args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and words in err[0], err
    assert not (tmp_path / "b.pth").exists()


def test_cli_convert_refuses_a_deployed_checkpoint_as_a(tmp_path, capsys):
    from snncheck.cli import main
    b = tmp_path / "b.pth"
    assert main(["convert", str(DIGITS), "--out", str(b)]) == 0
    code = main(["convert", str(b), "--model", "digits_csnn", "--out", str(tmp_path / "c.pth")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "deployed" in err[0]


def test_load_float_reads_the_checkpoint_into_the_graph():
    """The float model A: architecture inferred from the parameter names, imported by tracing its forward; it is
    the graph the other tests build by hand."""
    fm = checkpoint.load_float(DIGITS)
    want = digits_graph()
    assert fm.spec == "digits_csnn" and fm.graph.order == want.order and set(fm.graph.edges) == set(want.edges)
    for n in want.order:
        a, b = fm.graph.nodes[n], want.nodes[n]
        assert type(a) is type(b) and all(np.array_equal(getattr(a, f), getattr(b, f)) for f in vars(b)), n
    assert checkpoint.infer_model(checkpoint.load_state_dict(DIGITS)) == "digits_csnn"
