"""`snncheck diff A --paibox FILE.py:FACTORY`: a user's own PAIBox network, matched to A's spiking layers, run with
its own timing; its mistakes are diagnosed at the right layers."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from snncheck import zoo
from snncheck.cli import main

FIXTURE = Path(__file__).parent / "fixtures" / "user_paibox.py"
LAYERS = ["conv_fc.2", "conv_fc.6", "conv_fc.10", "conv_fc.12"]


def _diff(tmp_path, factory):
    out = tmp_path / "r.json"
    code = main(["diff", str(zoo.DIGITS_CHECKPOINT), "--paibox", f"{FIXTURE}:{factory}", "--samples", "8",
                 "--timesteps", "6", "--json", str(out), "--out", str(tmp_path / "r.html")])
    return code, json.loads(out.read_text())


def _errors(rep, code):
    return sorted((d["layer"] for d in rep["diagnoses"] if d["code"] == code and d["severity"] == "error"),
                  key=LAYERS.index)


def test_correct_user_network_is_consistent_and_bit_exact(tmp_path):
    code, rep = _diff(tmp_path, "digits_correct")
    assert code == 0 and rep["verdict"] == "consistent"
    assert [l["detected_lag"] for l in rep["layers"]] == [l["expected_lag"] for l in rep["layers"]] == [0, 2, 4, 5]
    assert all(l["paibox:b~reference:b"]["mismatches"] == 0 for l in rep["layers"])


def test_tick_wait_start_one_everywhere_is_a_timing_error_at_the_deeper_layers(tmp_path):
    code, rep = _diff(tmp_path, "digits_flat_timing")
    assert code == 1
    assert _errors(rep, "timing") == LAYERS[1:]          # the first layer, fed by InputProj, is on time


def test_paibox_default_soft_reset_against_hard_reset_is_a_reset_mode_error(tmp_path):
    code, rep = _diff(tmp_path, "digits_soft_reset")
    assert code == 1
    assert _errors(rep, "reset_mode") == LAYERS
    assert not _errors(rep, "timing")
