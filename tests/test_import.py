"""Importing SpikingJelly modules: every zoo model imports, and runs the same in SpikingJelly and the reference."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from snncheck import api, data, ir, zoo
from snncheck.frontends.spikingjelly import from_module


@pytest.mark.parametrize("name", ["digits_csnn", "alexnet_small", "mlp"])
@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_zoo_models_agree_in_spikingjelly_and_reference(name, reset):
    torch.manual_seed(0)
    module = zoo.get(name)(reset=reset)
    net = from_module(module, zoo.INPUT_SHAPES[name], name=name)
    assert not any(type(l).__name__ == "Dropout" for l in net.layers)     # dropout is identity at inference
    inputs = data.random_spikes(16, 6, zoo.INPUT_SHAPES[name], rate=0.5, seed=1) * 3.0
    report = api.check(net, inputs, runners=("reference", "spikingjelly"), module=module)
    pair = report.pair("spikingjelly:a~reference:a")
    assert pair.unexplained == 0, report.diagnoses
    assert report.verdict == "consistent"
    assert report.networks["a"]["spiking_layers"] == [n.name for n in net.neurons]


def test_names_are_state_dict_paths():
    net = from_module(zoo.digits_csnn(), (1, 8, 8))
    assert [l.name for l in net.layers][:3] == ["conv_fc.0", "conv_fc.1", "conv_fc.2"]
    assert ir.stages(ir.fold_batchnorm(net)) == ["conv_fc.2", "conv_fc.3", "conv_fc.6", "conv_fc.7",
                                                 "conv_fc.10", "conv_fc.12"]


def test_shape_mismatch_in_network_names_the_layer():
    from snncheck.errors import InputError
    with pytest.raises(InputError, match="conv_fc.9.*expects 64 input features"):
        from_module(zoo.digits_csnn(), (1, 12, 12))


def test_run_result_roundtrips_through_npz(tmp_path):
    from snncheck.runners.base import RunResult
    net = ir.fold_batchnorm(from_module(zoo.digits_csnn(), (1, 8, 8)))
    res = api.run_network(net, data.random_spikes(4, 3, (1, 8, 8), seed=0), ("reference",), "a")["reference:a"]
    res.save(tmp_path / "r.npz")
    back = RunResult.load(tmp_path / "r.npz")
    assert back.label == res.label and back.names == res.names
    for a, b in zip(res.layers, back.layers):
        np.testing.assert_array_equal(a.spikes, b.spikes)
        np.testing.assert_array_equal(a.v, b.v)
        assert a.threshold == b.threshold
