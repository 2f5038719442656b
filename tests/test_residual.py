"""Issue 9's residual networks end to end: SpikingJelly's own spiking_resnet and sew_resnet (ADD) BasicBlocks, with
identity and downsample shortcuts, on 3x32x32 at small width. Imported as a graph, they agree with the reference in
float (flips only where float32 rounding explains them); their integer conversion runs bit-exactly in PAIBox, the
reference and SpikingJelly, every layer at the lag PAIBox's pipeline predicts, and every merge reads each of its
inputs at the step a same-step simulator would."""
from __future__ import annotations

import numpy as np
import pytest

from snncheck import api, convert
from snncheck.frontends.spikingjelly import import_module
from snncheck.plan import Inputs

from helpers import resnet

N, T = 6, 4


@pytest.fixture(scope="module", params=["spiking_resnet", "sew_resnet"])
def report(request):
    graph, model = import_module(resnet(request.param), (3, 32, 32), name=request.param)
    conv = convert.convert(graph, 255, "max")
    x = np.random.default_rng(3).random((N, 3, 32, 32)).astype(np.float32)
    return api.diff(graph, conv.graph, Inputs.frames(x, T), 255, module=model, title=request.param)


def test_float_runs_agree_up_to_rounding_and_integer_runs_exactly(report):
    assert report.pair("spikingjelly:a~reference:a").unexplained == 0
    for key in ("paibox:b~reference:b", "spikingjelly:b~reference:b"):
        assert report.pair(key).exact, (key, report.pair(key).first_divergence)
    assert report.verdict == "consistent", [(d.code, d.layer, d.message) for d in report.diagnoses]
    rates = {lc.name: lc.rate_b.mean() for lc in report.pair("paibox:b~reference:b").layers}
    assert all(0.01 < r < 0.7 for r in rates.values()), rates       # not vacuous: every layer fires


def test_every_layer_and_both_inputs_of_every_merge_arrive_on_time(report):
    (lags,) = report.lags.values()
    assert {n: v["detected"] for n, v in lags.items()} == {n: v["expected"] for n, v in lags.items()}
    (merges,) = report.edge_lags.values()
    assert len(merges) >= 2 and all(len(inputs) >= 2 for inputs in merges.values()), merges
    for merge, inputs in merges.items():
        for e in inputs:
            assert e["offset"] == 0, (merge, e["source"], e["scores"])
            assert e["scores"][0] == 0 < min(s for d, s in e["scores"].items() if d), (merge, e)
