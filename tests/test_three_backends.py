"""Three simulators, one network, through the pipeline: the trained digits CSNN's int8 conversion runs bit-exactly
in PAIBox, SpikingJelly and the reference at the lags PAIBox's pipeline predicts; the shipped deployed checkpoint
is the conversion of the shipped float one; a mis-timed PAIBox build is named at the layers it makes late, and a
layer one step later than expected is found as such."""
from __future__ import annotations

import numpy as np
import pytest

from snncheck import api, checkpoint, convert, data
from snncheck.align import align
from snncheck.backends.base import RunResult
from snncheck.backends.reference import ReferenceBackend
from snncheck.frontends.models import DIGITS_DEPLOYED
from snncheck.plan import Inputs

from helpers import digits_float_graph, int_csnn, pixel_inputs

N, T = 24, 8


@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_trained_digits_int8_runs_bit_exact_in_three_backends(reset):
    conv = convert.convert(digits_float_graph(), input_scale=255, rule="max", reset=reset)
    x, _ = data.digits("test")
    report = api.check(conv.graph, Inputs.frames(np.rint(x[:N] * 255), T))
    assert report.verdict == "consistent", [d.message for d in report.diagnoses]
    for key in ("paibox:b~reference:b", "spikingjelly:b~reference:b"):
        pair = report.pair(key)
        assert pair.exact and pair.output_agreement == 1.0, (key, pair.first_divergence)
    (lags,) = report.lags.values()
    assert [lags[n]["expected"] for n in report.layers] == [0, 2, 4, 5]
    assert all(v["detected"] == v["expected"] for v in lags.values())
    assert all(0.01 < lc.rate_b.mean() < 0.9 for lc in report.pair("paibox:b~reference:b").layers)


def test_deployed_checkpoint_in_repo_matches_the_float_one():
    """The shipped int8 checkpoint is the conversion of the shipped float checkpoint (reproducible)."""
    deployed = checkpoint.load_deployed(DIGITS_DEPLOYED, digits_float_graph())
    fresh = convert.convert(digits_float_graph(), input_scale=255, rule="max").graph
    assert deployed.input_scale == 255 and deployed.reset == "hard" and not deployed.inferred
    assert list(deployed.graph.nodes) == list(fresh.nodes)
    for name, node in fresh.nodes.items():
        for field in ("weight", "bias", "threshold"):
            if getattr(node, field, None) is not None:
                np.testing.assert_array_equal(np.asarray(getattr(deployed.graph.nodes[name], field)),
                                              np.asarray(getattr(node, field)), err_msg=f"{name}.{field}")


def test_mistimed_paibox_is_reported_at_the_right_layers():
    net = int_csnn(seed=1)
    report = api.check(net, pixel_inputs(16, T, seed=2), ["reference", "paibox"],
                       backend_options={"paibox": {"timing": "flat"}})
    lags = report.lags["paibox:b"]
    assert not lags["n1"]["anomaly"]                  # fed by InputProj: e = 0 is right for the first stage
    assert all(lags[n]["anomaly"] for n in ("n2", "n3", "n4")), lags
    assert [d.layer for d in report.diagnoses if d.code == "timing"] == ["n2", "n3", "n4"]
    assert report.verdict == "inconsistent"
    # the deeper layers' mismatches are explained by timing, not reported as a second cause
    assert not [d for d in report.diagnoses if d.code == "simulator_mismatch"]


def test_lag_detection_finds_a_shifted_layer():
    """A pipeline one step later than expected (as a too-large tick_wait_start would give) is found as such."""
    net = int_csnn(seed=3)
    ref = ReferenceBackend().run(net, pixel_inputs(8, T, seed=4))
    raw_layers = []
    for rec, lag in zip(ref.layers, (0, 3, 4, 5)):    # n2 one step later than its expected 2
        n = rec.spikes.shape[0]
        pad = lambda a, k: np.zeros((n, k) + rec.shape, a.dtype)       # noqa: E731
        raw_layers.append(rec.replace(spikes=np.concatenate([pad(rec.spikes, lag), rec.spikes,
                                                             pad(rec.spikes, 6 - lag)], 1),
                                      v=np.concatenate([pad(rec.v, lag), rec.v, pad(rec.v, 6 - lag)], 1), h=None))
    raw = RunResult("paibox", "paibox:b", raw_layers, {"expected_lag": {"n1": 0, "n2": 2, "n3": 4, "n4": 5}})
    _, lags = align(raw, ref)
    verdicts = lags.verdicts()
    assert verdicts["n2"]["detected"] == 3 and verdicts["n2"]["anomaly"]
    assert verdicts["n3"]["detected"] == 4 and not verdicts["n3"]["anomaly"]
