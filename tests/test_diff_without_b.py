"""`snncheck diff A` without B: against A's own conversion where A has one, and where A has no integer form (LIFNode,
ParametricLIFNode: a multiplicative leak) A alone, SpikingJelly against the reference with the explained-flip
semantics, B left out with the reason said."""
from __future__ import annotations

import json

import pytest
import torch

from snncheck.cli import main
from snncheck.frontends import models

FAST = ["--samples", "4", "--timesteps", "4"]


@pytest.mark.parametrize("kind", ["LIFNode", "ParametricLIFNode"])
def test_lif_family_is_checked_float_only_and_b_refused_saying_why(tmp_path, kind):
    """Catches a LIF model refused outright (no B to diff against), or checked against a B it cannot have, or a
    B left out silently."""
    (tmp_path / "net.py").write_text(
        "import torch, torch.nn as nn\nfrom spikingjelly.activation_based import layer, neuron\n"
        "def build():\n    torch.manual_seed(0)\n"
        f"    return nn.Sequential(layer.Flatten(), layer.Linear(64, 24), neuron.{kind}(v_threshold=0.3),\n"
        f"                         layer.Linear(24, 10), neuron.{kind}(v_threshold=0.3, decay_input=False))\n")
    torch.save(models._import_file(str(tmp_path / "net.py")).build().state_dict(), tmp_path / "a.pth")
    code = main(["diff", str(tmp_path / "a.pth"), "--model", f"{tmp_path / 'net.py'}:build", "--input-shape", "1,8,8",
                 *FAST, "--json", str(tmp_path / "r.json"), "--out", str(tmp_path / "r.html")])
    rep = json.loads((tmp_path / "r.json").read_text())
    assert code == 0 and rep["verdict"] == "consistent"
    assert list(rep["pairs"]) == ["spikingjelly:a~reference:a"]
    assert rep["pairs"]["spikingjelly:a~reference:a"]["expect"] == "float_rounding"
    assert "multiplicative leak" in rep["extras"]["unsupported"]["paibox"]
    assert any(d["code"] == "unsupported" for d in rep["diagnoses"])
    assert any(l["spikingjelly:a~reference:a"]["firing_rate_a"] > 0 for l in rep["layers"])


def test_if_model_is_diffed_against_its_own_conversion(tmp_path):
    """Catches `diff A` dropping B where A converts: A against its conversion, PAIBox bit-exact with the
    reference."""
    code = main(["diff", str(models.DIGITS_CHECKPOINT), "--model", "digits_csnn", "--input-scale", "255", *FAST,
                 "--runners", "reference,paibox", "--json", str(tmp_path / "r.json"), "--out", str(tmp_path / "r.html")])
    rep = json.loads((tmp_path / "r.json").read_text())
    assert code == 0 and rep["title"].endswith("-vs-converted")
    assert rep["pairs"]["paibox:b~reference:b"]["exact"]
    assert "reference:a~reference:b" in rep["pairs"] or "spikingjelly:a~reference:b" in rep["pairs"]
