"""Issue "three simulators, one network": bit-exact agreement of integer networks, lags, timing anomalies."""
from __future__ import annotations

import numpy as np
import pytest

from snncheck import api, checkpoint, convert, data, ir, zoo
from snncheck.compare import compare

from helpers import int_csnn, pixel_inputs

N, T = 32, 8


@pytest.fixture(scope="module")
def digits_int8():
    model = checkpoint.load_float(zoo.DIGITS_CHECKPOINT)
    return model


@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_integer_csnn_three_runners_bit_exact(reset):
    net = int_csnn(seed=1, reset=reset)
    runs = api.run_network(net, pixel_inputs(N, T, seed=2))
    ref = runs["reference:b"]
    for label in ("paibox:b", "spikingjelly:b"):
        pair = compare(runs[label], ref)
        for lc in pair.layers:
            assert lc.mismatches == 0, (label, lc.name, lc.first_divergence)
            assert lc.v_mismatches == 0 and lc.v_max_abs_diff == 0.0, (label, lc.name)
    for rec in ref.layers:   # the comparison is not vacuous: every layer fires, and not always
        assert 0.02 < rec.spikes.mean() < 0.9, (rec.name, rec.spikes.mean())
    # stage k lags k-1 steps: stages are n1, p1, n2, p2, n3, n4
    lags = runs["paibox:b"].meta["lags"]
    assert {k: v["expected"] for k, v in lags.items()} == {"n1": 0, "n2": 2, "n3": 4, "n4": 5}
    assert {k: v["detected"] for k, v in lags.items()} == {"n1": 0, "n2": 2, "n3": 4, "n4": 5}
    assert not any(v["anomaly"] for v in lags.values())


@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_trained_digits_int8_three_runners(digits_int8, reset):
    conv = convert.convert(digits_int8.network, input_scale=255, rule="max", reset=reset)
    x, _ = data.digits("test")
    inputs = api.deployed_inputs(data.direct(x[:N], T), 255)
    report = api.check(conv.network, inputs)
    assert report.verdict == "consistent", [d.message for d in report.diagnoses]
    for key in ("paibox:b~reference:b", "spikingjelly:b~reference:b"):
        pair = report.pair(key)
        assert pair.exact, (key, pair.first_divergence)
        assert pair.output_agreement == 1.0
    assert all(v["detected"] == v["expected"] for v in report.lags.values())
    assert [report.lags[n]["expected"] for n in report.layers] == [0, 2, 4, 5]


def test_deployed_checkpoint_in_repo_matches_the_float_one(digits_int8):
    """The shipped int8 checkpoint is the conversion of the shipped float checkpoint (reproducible)."""
    deployed = checkpoint.load_deployed(zoo.DIGITS_DEPLOYED, digits_int8.network)
    fresh = convert.convert(digits_int8.network, input_scale=255, rule="max").network
    assert deployed.input_scale == 255 and deployed.reset == "hard" and not deployed.inferred
    for a, b in zip(deployed.network.layers, fresh.layers):
        for field in ("weight", "bias", "threshold"):
            if getattr(a, field, None) is not None:
                np.testing.assert_array_equal(np.asarray(getattr(a, field)), np.asarray(getattr(b, field)))


def test_mistimed_paibox_is_reported_at_the_right_layers():
    net = int_csnn(seed=1)
    runs = api.run_network(net, pixel_inputs(16, T, seed=2), timing="flat")
    lags = runs["paibox:b"].meta["lags"]
    assert not lags["n1"]["anomaly"]                  # fed by InputProj: e = 0 is right for the first stage
    assert all(lags[n]["anomaly"] for n in ("n2", "n3", "n4")), lags
    report = api.report_from_runs(runs, "flat", {}, {"b": api.summary(net)})
    timing = [d for d in report.diagnoses if d.code == "timing"]
    assert [d.layer for d in timing] == ["n2", "n3", "n4"]
    assert report.verdict == "inconsistent"
    # the deeper layers' mismatches are explained by timing, not reported as a second cause
    assert not [d for d in report.diagnoses if d.code == "simulator_mismatch"]


def test_lag_detection_finds_a_shifted_layer():
    """A pipeline one step later than expected (as a too-large tick_wait_start would give) is found as such."""
    from snncheck.align import align
    net = int_csnn(seed=3)
    runs = api.run_network(net, pixel_inputs(8, T, seed=4), runners=("reference",))
    ref = runs["reference:b"]
    raw_layers = []
    for rec, lag in zip(ref.layers, (0, 3, 4, 5)):    # n2 one step later than its expected 2
        pad = np.zeros((rec.spikes.shape[0], lag) + rec.shape, bool)
        tail = np.zeros((rec.spikes.shape[0], 6 - lag) + rec.shape, bool)
        vpad = np.zeros(pad.shape, rec.v.dtype)
        vtail = np.zeros(tail.shape, rec.v.dtype)
        raw_layers.append(type(rec)(rec.name, np.concatenate([pad, rec.spikes, tail], 1),
                                    np.concatenate([vpad, rec.v, vtail], 1)))
    from snncheck.runners.base import RunResult
    raw = RunResult("paibox", "paibox:b", raw_layers, {"raw": True, "expected_lag": ir.expected_lags(net)})
    lags = align(raw, ref).meta["lags"]
    assert lags["n2"]["detected"] == 3 and lags["n2"]["anomaly"]
    assert lags["n3"]["detected"] == 4 and not lags["n3"]["anomaly"]
