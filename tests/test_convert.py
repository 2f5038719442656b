"""Conversion: BatchNorm folded, int8 weights rounded to nearest and saturated, bias and threshold times
s_in * s_w (the first layer's s_in = 255), the seed's rule by name, the data-aware rule measured against it,
the deployed checkpoint written by `snncheck convert`, and one line with exit 2 for bad input."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from snncheck import api, checkpoint, convert, data, ir, zoo
from snncheck.cli import main
from snncheck.diagnose import dynamic
from snncheck.errors import InputError

A = str(zoo.DIGITS_CHECKPOINT)


@pytest.fixture(scope="module")
def digits():
    fm = checkpoint.load_float(zoo.DIGITS_CHECKPOINT)
    x, _ = data.digits("test")
    return fm, data.direct(x[:48], 4)


@pytest.mark.parametrize("rule", ["seed", "max", "percentile"])
def test_every_layer_scaled_by_s_in_times_s_w(digits, rule):
    fm, _ = digits
    conv = convert.convert(fm.network, 255, rule)
    folded = ir.fold_batchnorm(fm.network)
    s_in = 255.0
    for syn, s_w in conv.scales.items():
        a, b = folded.layer(syn), conv.network.layer(syn)
        want = np.clip(np.rint(a.weight.astype(np.float64) * s_w), -128, 127)
        assert b.weight.dtype == np.int8 and np.array_equal(b.weight, want)
        assert np.array_equal(b.bias, np.rint(a.bias.astype(np.float64) * s_w * s_in))   # folded bias, x s_in
        s_in = 1.0
    thresholds = [n.threshold for n in conv.network.neurons]
    ks = np.array(list(conv.scales.values())) * np.array([255.0, 1, 1, 1])
    assert thresholds == conv.vthr == [int(np.rint(k)) for k in ks]      # A's thresholds are 1.0
    assert conv.network.is_integer and not any(isinstance(l, ir.BatchNorm) for l in conv.network.layers)


def test_seed_rule_is_the_seeds_formula(digits):
    fm, _ = digits
    conv = convert.convert(fm.network, 255, "seed")
    folded = ir.fold_batchnorm(fm.network)
    for syn, s_w in conv.scales.items():
        layer = folded.layer(syn)
        assert s_w == int(127 / max(np.abs(layer.weight).max(), np.abs(layer.bias).max()))
    assert conv.vthr[0] == conv.scales["conv_fc.0"] * 255          # threshold = mult * theta (* input scale)


def test_rounding_is_to_nearest_with_saturation():
    x = np.array([-200.0, -128.6, -2.5, -0.5, 0.49, 1.5, 126.6, 300.0])
    assert convert.round_saturate(x).tolist() == [-128, -128, -2, -0, 0, 2, 127, 127]
    assert torch.from_numpy(x).to(torch.int8).tolist() != convert.round_saturate(x).tolist()   # what it replaces


def test_search_needs_calibration(digits):
    fm, _ = digits
    with pytest.raises(InputError, match="calibration"):
        convert.convert(fm.network, 255, "search")


def test_search_loses_fewer_spikes_than_the_seed_rule(digits):
    """Calibrated on train digits, measured on test digits: each layer fed the float run's own input spikes."""
    fm, inputs = digits
    xtr, _ = data.digits("train")
    cal = data.direct(xtr[:128], 4)
    run = api.run_network(fm.network, inputs, ["spikingjelly"], "a", fm.module)["spikingjelly:a"]
    misses = {}
    for rule in ("seed", "search"):
        conv = convert.convert(fm.network, 255, rule, calibration=cal)
        iso = dynamic.isolated(fm.network, conv.network, run, inputs, 255, {})
        misses[rule] = {k: v["mismatches"] for k, v in iso.items()}
    print("isolated misses per layer", misses)
    assert sum(misses["search"].values()) < sum(misses["seed"].values())
    assert all(misses["search"][k] <= misses["seed"][k] * 1.1 + 2 for k in misses["seed"])


def test_thresholds_and_biases_beyond_paibox_are_refused(digits):
    fm, _ = digits
    with pytest.raises(InputError, match="conv_fc.0.: integer bias reaches .* beyond PAIBox"):
        convert.convert(fm.network, 1e8, "max")
    net = ir.Network([ir.Linear("fc", np.full((2, 3), 0.5, np.float32)), ir.IF("n", 1.0)], (3,))
    assert convert.convert(net, 1e6).vthr == [254000000]
    with pytest.raises(InputError, match="'n': integer threshold 1016000000 is beyond PAIBox's maximum"):
        convert.convert(net, 4e6)


def test_non_if_neurons_are_refused():
    net = ir.Network([ir.Linear("fc", np.ones((2, 3), np.float32)), ir.LIF("lif", 1.0, tau=2.0)], (3,))
    with pytest.raises(InputError, match="multiplicative leak"):
        convert.convert(net)


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_convert_writes_the_deployed_checkpoint(digits, tmp_path, capsys):
    fm, inputs = digits
    out = tmp_path / "b.pth"
    code = main(["convert", A, "--model", "digits_csnn", "--out", str(out), "--input-scale", "255"])
    text = capsys.readouterr().out
    assert code == 0 and "conv_fc.0" in text and "RMSE/step" in text, text
    raw = torch.load(out, weights_only=True)
    assert raw["snncheck"]["input_scale"] == 255 and raw["snncheck"]["reset"] == "hard"
    assert raw["conv_fc.0.bias"].dtype == torch.int32 and raw["conv_fc.0.weight"].dtype == torch.int8
    dep = checkpoint.load_deployed(out, fm.network)
    want = convert.convert(fm.network, 255, "max").network
    assert not dep.inferred and dep.input_scale == 255
    for a, b in zip(dep.network.layers, want.layers):
        if isinstance(b, ir.SYNAPSE_TYPES):
            assert np.array_equal(a.weight, b.weight) and np.array_equal(a.bias, b.bias)
        if isinstance(b, ir.NEURON_TYPES):
            assert (a.threshold, a.v_reset) == (b.threshold, b.v_reset)
    # the same B diffed against A from the command line: consistent, exit 0
    code = main(["diff", A, str(out), "--samples", "4", "--timesteps", "2", "--runners", "reference,spikingjelly",
                 "--out", str(tmp_path / "r.html")])
    assert code == 0, capsys.readouterr().out


def test_cli_convert_search_uses_calibration_file(tmp_path, capsys):
    xtr, _ = data.digits("train")
    np.save(tmp_path / "cal.npy", xtr[:32])
    code = main(["convert", A, "--out", str(tmp_path / "b.pth"), "--input-scale", "255", "--rule", "search",
                 "--calibration", str(tmp_path / "cal.npy"), "--timesteps", "4"])
    assert code == 0 and "rule search" in capsys.readouterr().out
    assert torch.load(tmp_path / "b.pth", weights_only=True)["snncheck"]["rule"] == "search"


def _bad_b(tmp_path, edit):
    """A correct deployed checkpoint with one thing broken by `edit(state)`."""
    fm = checkpoint.load_float(zoo.DIGITS_CHECKPOINT)
    path = tmp_path / "good.pth"
    checkpoint.save_deployed(convert.convert(fm.network, 255, "max"), path)
    state = torch.load(path, weights_only=True)
    edit(state)
    torch.save(state, tmp_path / "bad.pth")
    return str(tmp_path / "bad.pth")


def _drop(state):
    del state["conv_fc.9.weight"]


def _fraction(state):
    state["conv_fc.4.weight"] = state["conv_fc.4.weight"].float() + 0.25


def _threshold(state):
    state["snncheck"]["vthr"][1] = 2 ** 29


def _rename(state):
    state["fc.9.weight"] = state.pop("conv_fc.9.weight")


@pytest.mark.parametrize("edit,words", [(_drop, "layers do not match"), (_rename, "layers do not match"),
                                        (_fraction, "non-integer"), (_threshold, "outside PAIBox's range")])
def test_cli_diff_bad_b_exits_2_with_one_line(tmp_path, capsys, edit, words):
    code = main(["diff", A, _bad_b(tmp_path, edit), "--samples", "2", "--runners", "reference"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and words in err[0], err


@pytest.mark.parametrize("args,words", [(["--input-scale", "1e8"], "beyond PAIBox"),
                                        (["--input-scale", "0"], "input scale must be positive"),
                                        (["--rule", "floor"], "unknown conversion rule"),
                                        (["--reset", "medium"], "reset must be"),
                                        (["--model", "alexnet_small"], "do not match")])
def test_cli_convert_bad_input_exits_2_with_one_line(tmp_path, capsys, args, words):
    code = main(["convert", A, "--out", str(tmp_path / "b.pth")] + args)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and words in err[0], err
    assert not (tmp_path / "b.pth").exists()


def test_cli_convert_refuses_a_deployed_checkpoint_as_a(tmp_path, capsys):
    b = tmp_path / "b.pth"
    assert main(["convert", A, "--out", str(b)]) == 0
    code = main(["convert", str(b), "--model", "digits_csnn", "--out", str(tmp_path / "c.pth")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "deployed" in err[0]
