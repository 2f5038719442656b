"""`snncheck diff A B`: exit codes, the JSON contract, flags overriding the checkpoint, default inputs, escaping of
names taken from checkpoints, refusal of pickled objects, and atomic report files."""
from __future__ import annotations

import dataclasses
import json
import os
import textwrap

import numpy as np
import pytest
import torch

from snncheck import checkpoint, convert, mutations
from snncheck.frontends import models as zoo
from snncheck.cli import main
from snncheck.commands import diff as diff_cmd

FAST = ["--samples", "6", "--timesteps", "4"]


@pytest.fixture(scope="module")
def digits():
    return checkpoint.load_float(zoo.DIGITS_CHECKPOINT, "digits_csnn")


@pytest.fixture(scope="module")
def deployed(tmp_path_factory, digits):
    """The correct int8 conversion and the seed-bug one, as deployed checkpoints."""
    root = tmp_path_factory.mktemp("deployed")
    conv = convert.convert(digits.graph, 255, "max")
    checkpoint.save_deployed(conv, root / "int8.pth")
    bug = mutations.apply(conv.graph, digits.graph, {"name": "bias_unscaled"}, conv)
    checkpoint.save_deployed(dataclasses.replace(conv, graph=bug), root / "seed_bug.pth")
    return root, conv


@pytest.fixture(scope="module")
def correct_run(tmp_path_factory, deployed):
    root, _ = deployed
    out = tmp_path_factory.mktemp("correct")
    code = main(["diff", str(zoo.DIGITS_CHECKPOINT), str(root / "int8.pth"), *FAST,
                 "--out", str(out / "r.html"), "--json", str(out / "r.json")])
    return code, out


def test_correct_conversion_exits_0_and_writes_both_reports(correct_run):
    code, out = correct_run
    assert code == 0
    rep = json.loads((out / "r.json").read_text())
    assert rep["verdict"] == "consistent"
    assert [l["name"] for l in rep["layers"]] == ["conv_fc.2", "conv_fc.6", "conv_fc.10", "conv_fc.12"]
    for layer in rep["layers"]:
        assert layer["expected_lag"] == layer["detected_lag"]
        assert layer["paibox:b~reference:b"]["mismatches"] == 0
        assert layer["paibox:b~reference:b"]["total"] == 6 * 4 * int(np.prod(digits_shape(layer["name"])))
    assert rep["inputs"]["source"] == "digits" and "test split" in rep["inputs"]["description"]
    assert rep["inputs"]["input_scale"] == 255
    page = (out / "r.html").read_text()
    assert "CONSISTENT" in page and page.count("<img ") >= 4 * 3


def digits_shape(name):
    return {"conv_fc.2": (8, 8, 8), "conv_fc.6": (16, 4, 4), "conv_fc.10": (32,), "conv_fc.12": (10,)}[name]


def test_seed_bug_exits_1_with_diagnosis_at_first_layer(tmp_path, deployed, capsys):
    root, _ = deployed
    code = main(["diff", str(zoo.DIGITS_CHECKPOINT), str(root / "seed_bug.pth"), *FAST,
                 "--out", str(tmp_path / "r.html"), "--json", str(tmp_path / "r.json")])
    assert code == 1, capsys.readouterr().out
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["verdict"] == "inconsistent"
    top = rep["diagnoses"][0]
    assert top["code"] in ("bias_scale", "input_scale") and top["layer"] == "conv_fc.2", top
    assert rep["layers"][0]["paibox:b~reference:b"]["mismatches"] == 0      # the simulators agree: B is wrong
    assert rep["layers"][0]["spikingjelly:a~reference:b"]["rate"] > 0.02


def test_flags_override_the_checkpoint(tmp_path, deployed, capsys):
    """--vthr by name doubles one threshold: that layer's spikes move against A, the diagnosis names it."""
    root, conv = deployed
    vthr = ",".join(f"{n}={v * (2 if n == 'conv_fc.6' else 1)}" for n, v in conv.vthr.items())
    code = main(["diff", str(zoo.DIGITS_CHECKPOINT), str(root / "int8.pth"), *FAST, "--vthr", vthr,
                 "--out", str(tmp_path / "r.html"), "--json", str(tmp_path / "r.json")])
    rep = json.loads((tmp_path / "r.json").read_text())
    assert code == 1
    assert any(d["code"] == "vthr_scale" and d["layer"] == "conv_fc.6" for d in rep["diagnoses"]), rep["diagnoses"]


@pytest.mark.parametrize("argv, message", [
    (["--vthr", "1,2"], "vthr has 2 values for 4 spiking layers"),
    (["--vthr", "conv_fc.2=5,7"], "mixes name=value pairs"),
    (["--vthr", "nope=3,conv_fc.6=1,conv_fc.10=1,conv_fc.12=1"], "unknown spiking layers"),
    (["--samples", "0"], "--samples: expected a positive integer, got 0"),
    (["--paibox", "x.py:f"], "not both"),
])
def test_bad_flags_exit_2_with_one_line(deployed, capsys, argv, message):
    root, _ = deployed
    code = main(["diff", str(zoo.DIGITS_CHECKPOINT), str(root / "int8.pth"), *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_both_b_and_paibox_exits_2(capsys):
    assert main(["diff", str(zoo.DIGITS_CHECKPOINT), str(zoo.DIGITS_DEPLOYED), "--paibox", "net.py:build"]) == 2
    assert "either B" in capsys.readouterr().err


def test_pickled_object_in_pth_is_refused(tmp_path, deployed, capsys):
    class Payload:                       # a pickled object: torch.load(weights_only=True) must refuse it
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "pwned"),))
    torch.save({"conv_fc.0.weight": torch.zeros(1), "x": Payload()}, tmp_path / "evil.pth")
    root, _ = deployed
    for argv in (["diff", str(tmp_path / "evil.pth"), str(root / "int8.pth")],
                 ["diff", str(zoo.DIGITS_CHECKPOINT), str(tmp_path / "evil.pth")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "refused" in err and "pickled" in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "pwned").exists()


SCRIPT_MODEL = '''
import torch.nn as nn
from spikingjelly.activation_based import layer, neuron

NAME = "<script>alert(1)</script>"

def factory():
    class Net(nn.Module):
        input_shape = (64,)
        def __init__(self):
            super().__init__()
            self.add_module(NAME, nn.Sequential(layer.Linear(64, 24), neuron.IFNode(), layer.Linear(24, 10),
                                                neuron.IFNode()))
        def forward(self, x):
            return getattr(self, NAME)(x)
    return Net()
'''


def test_layer_name_with_script_tag_appears_as_text(tmp_path, capsys):
    """A model (and checkpoint) whose layer names carry HTML: the report shows them as text, never as markup."""
    (tmp_path / "evil_model.py").write_text(textwrap.dedent(SCRIPT_MODEL))
    spec = f"{tmp_path / 'evil_model.py'}:factory"
    module = checkpoint.build_module(spec)
    torch.manual_seed(0)
    for m in module.modules():
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.uniform_(m.weight, -0.2, 0.6)
    torch.save(module.state_dict(), tmp_path / "a.pth")
    float_net = checkpoint.load_float(tmp_path / "a.pth", spec).graph
    checkpoint.save_deployed(convert.convert(float_net, 1, "max"), tmp_path / "b.pth")
    html_path, json_path = tmp_path / "r.html", tmp_path / "r.json"
    code = main(["diff", str(tmp_path / "a.pth"), str(tmp_path / "b.pth"), "--model", spec, *FAST,
                 "--out", str(html_path), "--json", str(json_path)])
    assert code in (0, 1), capsys.readouterr().err
    page = html_path.read_text()
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.1" in page          # the spiking layer's name, as text
    rep = json.loads(json_path.read_text())
    assert rep["layers"][0]["name"] == "<script>alert(1)</script>.1"
    assert rep["inputs"]["source"] == "random_spikes"                   # a 1-d input: seeded random spikes


def test_interrupted_run_leaves_no_half_written_report(tmp_path, deployed, monkeypatch, capsys):
    """Ctrl-C while the report is being written: the old report stays whole and no temporary file is left."""
    from snncheck import files as report_io
    root, _ = deployed
    target = tmp_path / "r.html"
    target.write_text("previous report")
    real_fdopen = os.fdopen

    class Interrupting:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, text):
            self.f.write(text[:len(text) // 2])
            self.f.flush()
            raise KeyboardInterrupt

    monkeypatch.setattr(report_io.os, "fdopen", lambda fd, *a, **k: Interrupting(real_fdopen(fd, *a, **k)))
    code = main(["diff", str(zoo.DIGITS_CHECKPOINT), str(root / "int8.pth"), *FAST, "--out", str(target)])
    assert code == 130 and "interrupted" in capsys.readouterr().err
    assert target.read_text() == "previous report"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]


def test_default_inputs_say_what_they_are():
    inputs = diff_cmd.default_inputs((3, 16, 16), 5, 3)
    x, info = inputs.chunk(), inputs.describe()
    assert x.shape == (5, 3, 3, 16, 16) and info["source"] == "digits" and "resized to 3x16x16" in info["description"]
    assert np.array_equal(x[:, 0, 0, ::2, ::2], x[:, 2, 1, ::2, ::2])     # channels tiled, frames repeated
    spikes = diff_cmd.default_inputs((40,), 5, 3)
    s, info = spikes.chunk(), spikes.describe()
    assert s.shape == (5, 3, 40) and info["source"] == "random_spikes" and set(np.unique(s)) <= {0.0, 1.0}
    assert np.array_equal(s, diff_cmd.default_inputs((40,), 5, 3).chunk())      # seeded


def test_inputs_file_is_used_and_reported(tmp_path, deployed):
    root, _ = deployed
    frames = np.random.default_rng(1).random((3, 1, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", frames)
    code = main(["diff", str(zoo.DIGITS_CHECKPOINT), str(root / "int8.pth"), "--inputs", str(tmp_path / "x.npy"),
                 "--timesteps", "3", "--json", str(tmp_path / "r.json"), "--out", str(tmp_path / "r.html")])
    rep = json.loads((tmp_path / "r.json").read_text())
    assert code == 0 and rep["inputs"]["source"] == "file:x.npy"
    assert rep["inputs"]["samples"] == 3 and rep["inputs"]["timesteps"] == 3


FASHION = '''
from spikingjelly.activation_based.examples.conv_fashion_mnist import CSNN

def csnn():
    return CSNN(T=4, channels=8)
'''


def test_spikingjellys_own_csnn_with_its_own_forward_converts_and_diffs(tmp_path, capsys):
    """SpikingJelly's examples.conv_fashion_mnist.CSNN repeats its input over T in its own forward: it is read as
    it runs (the repeat is its encoder), converted, and diffed against its conversion in the three simulators,
    with a factory file and no wrapper around the model."""
    (tmp_path / "fashion.py").write_text(FASHION)
    spec = f"{tmp_path / 'fashion.py'}:csnn"
    torch.manual_seed(0)
    module = checkpoint.build_module(spec)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.Linear):
                m.weight.mul_(6.0)               # seeded weights: make the deep layers fire
    torch.save(module.state_dict(), tmp_path / "a.pth")
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((4, 1, 28, 28)).astype(np.float32))
    assert main(["convert", str(tmp_path / "a.pth"), "--model", spec, "--out", str(tmp_path / "b.pth"),
                 "--input-scale", "255", "--input-shape", "1,28,28"]) == 0, capsys.readouterr()
    code = main(["diff", str(tmp_path / "a.pth"), str(tmp_path / "b.pth"), "--model", spec, "--inputs",
                 str(tmp_path / "x.npy"), "--timesteps", "4", "--json", str(tmp_path / "r.json"),
                 "--out", str(tmp_path / "r.html")])
    rep = json.loads((tmp_path / "r.json").read_text())
    assert code == 0, [d["message"] for d in rep["diagnoses"]]
    assert [l["name"] for l in rep["layers"]] == ["conv_fc.2", "conv_fc.6", "conv_fc.10", "conv_fc.12"]
    assert rep["pairs"]["paibox:b~reference:b"]["exact"] and rep["pairs"]["spikingjelly:b~reference:b"]["exact"]
    assert rep["pairs"]["spikingjelly:a~reference:a"]["unexplained_flips"] == 0
