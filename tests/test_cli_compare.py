"""`snncheck compare`: the per-layer table, the JSON contract, and exit code 2 with one line on bad input."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np

from snncheck.cli import main


def _case(tmp_path, body: str, name="case.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def test_compare_default_case_json_contract(tmp_path, capsys):
    out = tmp_path / "r.json"
    code = main(["compare", "--samples", "8", "--timesteps", "4", "--json", str(out)])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "conv_fc.2" in text and "paibox:b~reference:b" in text
    rep = json.loads(out.read_text())
    assert rep["verdict"] == "consistent"
    assert [l["name"] for l in rep["layers"]] == ["conv_fc.2", "conv_fc.6", "conv_fc.10", "conv_fc.12"]
    first = rep["layers"][1]
    assert first["expected_lag"] == 2 and first["detected_lag"] == 2 and first["index"] == 1
    pair = first["paibox:b~reference:b"]
    assert pair["mismatches"] == 0 and pair["total"] == 8 * 4 * 16 * 4 * 4 and pair["first_divergence"] is None
    assert set(rep["layers"][0]["spikingjelly:a~reference:b"]) >= {"mismatches", "total", "rate", "first_divergence"}
    assert isinstance(rep["diagnoses"], list)


def test_compare_flat_timing_exits_1_with_timing_diagnoses(tmp_path, capsys):
    out = tmp_path / "r.json"
    code = main(["compare", "--samples", "4", "--timesteps", "4", "--timing", "flat", "--json", str(out)])
    assert code == 1
    rep = json.loads(out.read_text())
    assert rep["verdict"] == "inconsistent"
    assert sorted(d["layer"] for d in rep["diagnoses"] if d["code"] == "timing") == ["conv_fc.10", "conv_fc.12", "conv_fc.6"]


def _expect_usage_error(capsys, argv, *needles):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


def test_missing_case_file(capsys, tmp_path):
    _expect_usage_error(capsys, ["compare", str(tmp_path / "nope.toml")], "not found")


def test_invalid_toml(capsys, tmp_path):
    _expect_usage_error(capsys, ["compare", str(_case(tmp_path, "name = [\n"))], "not valid TOML")


MODELS = '''
import torch.nn as nn
from spikingjelly.activation_based import layer, neuron

def with_relu():
    return nn.Sequential(layer.Conv2d(1, 4, 3), nn.ReLU(), layer.Flatten(), layer.Linear(144, 4), neuron.IFNode())

def tiny():
    return nn.Sequential(layer.Flatten(), layer.Linear(64, 8), neuron.IFNode())
'''


def _model_case(tmp_path, factory: str, rest: str = ""):
    """A case on a factory of MODELS with seeded weights and 1x8x8 input, plus `rest` (TOML tables)."""
    (tmp_path / "models.py").write_text(MODELS)
    return _case(tmp_path, f"""
        [model]
        name = "models.py:{factory}"
        weights = "seed:0"
        input_shape = [1, 8, 8]
    """ + textwrap.dedent(rest))


def test_unknown_module_type_names_the_module(capsys, tmp_path):
    case = _model_case(tmp_path, "with_relu")
    _expect_usage_error(capsys, ["compare", str(case)], "'1'", "ReLU")


def test_input_shape_mismatch(capsys, tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((4, 1, 7, 7), np.float32))
    case = _model_case(tmp_path, "tiny", """
        [inputs]
        source = "file:x.npy"
    """)
    _expect_usage_error(capsys, ["compare", str(case)], "x.npy", "(4, 1, 7, 7)")


def test_float_parameters_refused_by_paibox(capsys, tmp_path):
    case = _model_case(tmp_path, "tiny", """
        [inputs]
        source = "random_spikes"
        samples = 4
        timesteps = 2
        [run]
        runners = ["reference", "paibox"]
    """)
    _expect_usage_error(capsys, ["compare", str(case)], "node '1'", "not integer-valued")


def test_cli_process_prints_one_line_and_exit_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "snncheck.cli", "compare", str(tmp_path / "missing.toml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = [l for l in proc.stderr.splitlines() if l.startswith("snncheck")]
    assert lines == [f"snncheck: error: case file not found: {tmp_path / 'missing.toml'}"], proc.stderr
    assert "Traceback" not in proc.stderr


def test_an_op_with_no_graph_twin_is_one_line_naming_the_node(capsys, tmp_path):
    (tmp_path / "models.py").write_text(MODELS + '''
class Doubling(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.sn = layer.Linear(64, 8), neuron.IFNode()

    def forward(self, x):
        return self.sn(self.fc(x.flatten(2)) * 2)

def doubling():
    return Doubling()
''')
    case = _case(tmp_path, """
        [model]
        name = "models.py:doubling"
        weights = "seed:0"
        input_shape = [1, 8, 8]
    """)
    _expect_usage_error(capsys, ["compare", str(case)], "mul", "no graph")
