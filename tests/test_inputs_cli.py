"""The input flags on the command line: diff with Poisson spikes against a network converted for spikes, the same
seed giving the same JSON, compare overriding a case's encoding, and usage errors as one line with exit 2."""
from __future__ import annotations

import json

import numpy as np
import pytest

from snncheck import checkpoint, convert
from snncheck.cli import main
from snncheck.frontends import models as zoo

from helpers import timeless

FAST = ["--samples", "6", "--timesteps", "4", "--runners", "reference,spikingjelly"]


@pytest.fixture(scope="module")
def spike_b(tmp_path_factory):
    """The digits CSNN converted for 0/1 spike input (input scale 1)."""
    root = tmp_path_factory.mktemp("spikes")
    digits = checkpoint.load_float(zoo.DIGITS_CHECKPOINT, "digits_csnn")
    checkpoint.save_deployed(convert.convert(digits.graph, 1, "max"), root / "b1.pth")
    return root / "b1.pth"


def _diff(tmp_path, b, *flags, name="r"):
    code = main(["diff", str(zoo.DIGITS_CHECKPOINT), str(b), "--model", "digits_csnn", *FAST, *flags,
                 "--json", str(tmp_path / f"{name}.json"), "--out", str(tmp_path / f"{name}.html")])
    return code, json.loads((tmp_path / f"{name}.json").read_text()) if code != 2 else None


def test_poisson_diff_same_seed_same_json_other_seed_same_verdict(tmp_path, spike_b):
    """Catches --encoding-seed ignored, spikes drawn again per run, or B's scale applied to spikes (it would
    receive 0/255 where its first layer expects 0/1)."""
    code0, r0 = _diff(tmp_path, spike_b, "--encoding", "poisson", "--encoding-seed", "5", name="a")
    code1, again = _diff(tmp_path, spike_b, "--encoding", "poisson", "--encoding-seed", "5", name="b")
    code2, other = _diff(tmp_path, spike_b, "--encoding", "poisson", "--encoding-seed", "6", name="c")
    assert code0 == code1 == code2 == 0
    assert timeless(r0) == timeless(again)
    assert r0["runs"]["reference:b"]["input_received"] != other["runs"]["reference:b"]["input_received"]
    assert r0["inputs"]["encoding"] == "poisson" and r0["inputs"]["encoding_seed"] == 5
    assert r0["inputs"]["description"] == "scikit-learn digits (test split), Poisson-encoded (seed 5)"
    assert r0["inputs"]["input_scale"] == 1.0 and r0["extras"]["input_stats"]["binary"]


def test_compare_flags_override_the_cases_encoding(tmp_path):
    """`compare --encoding poisson` re-encodes a latency case's frames; the report says poisson and its seed."""
    out = tmp_path / "c.json"
    code = main(["compare", "cases/latency_digits.toml", "--encoding", "poisson", "--encoding-seed", "2",
                 "--samples", "4", "--runners", "reference,spikingjelly", "--json", str(out)])
    report = json.loads(out.read_text())
    assert code == 0 and report["inputs"]["encoding"] == "poisson" and report["inputs"]["encoding_seed"] == 2


@pytest.mark.parametrize("flags,message", [
    (["--frames", "8"], "events file"),
    (["--inputs", "EVENTS", "--frames", "4"], "one channel per polarity"),
    (["--inputs", "EVENTS"], "--frames N"),
    (["--inputs", "EVENTS", "--frames", "4", "--frame-ms", "10"], "either"),
    (["--encoding-seed", "3"], "goes with --encoding poisson"),
    (["--inputs", "EVENTS", "--frame-ms", "nan"], "argument --frame-ms"),
])
def test_input_flag_misuse_is_a_one_line_usage_error(tmp_path, capsys, spike_b, flags, message):
    """Frames of a non-events input, events for a model that does not take two polarity channels, an events file
    with no framing, two framings, a seed for an encoding that draws nothing, a frame length that is not a positive
    number (caught as the flag is read, before any file is)."""
    ev = tmp_path / "ev.npz"
    rng = np.random.default_rng(0)
    np.savez(ev, t=np.arange(500), x=rng.integers(0, 8, 500), y=rng.integers(0, 8, 500), p=rng.integers(0, 2, 500))
    flags = [str(ev) if f == "EVENTS" else f for f in flags]
    code = main(["diff", str(zoo.DIGITS_CHECKPOINT), str(spike_b), "--model", "digits_csnn", *FAST, *flags])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
