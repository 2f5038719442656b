"""Float networks: SpikingJelly and the reference differ only at spikes within float32 rounding of the threshold,
and the comparison says so flip by flip. Also keeps SEMANTICS.md's neuron equations true."""
from __future__ import annotations


import numpy as np
import pytest
import torch

from snncheck import api, ir
from snncheck.compare import compare
from snncheck.frontends.spikingjelly import from_module
from snncheck.runners.reference import run_neuron


def _bn_mlp(seed=0, threshold=1.0):
    """Linear -> BatchNorm1d -> IF -> Linear -> IF: BatchNorm is unfolded in SpikingJelly, folded in the reference,
    so the synaptic input differs by float32 rounding."""
    import torch.nn as nn
    from spikingjelly.activation_based import layer, neuron
    torch.manual_seed(seed)
    m = nn.Sequential(layer.Flatten(), layer.Linear(64, 256), layer.BatchNorm1d(256),
                      neuron.IFNode(v_threshold=threshold), layer.Linear(256, 10), neuron.IFNode())
    with torch.no_grad():
        m[2].running_mean.uniform_(-0.3, 0.3)
        m[2].running_var.uniform_(0.5, 2.0)
        m[2].weight.uniform_(0.5, 1.5)
    return m.eval()


def _spikes(n=64, t=4, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.random((n, t, 1, 8, 8)) < 0.3).astype(np.float32)


def test_float_flips_are_reported_with_their_margin():
    inputs = _spikes()
    module = _bn_mlp()
    net = from_module(module, (1, 8, 8))
    runs = api.run_network(net, inputs, ("reference", "spikingjelly"), "a", module=module)
    ref, sj = runs["reference:a"].layer("3"), runs["spikingjelly:a"].layer("3")
    # put the threshold exactly on a reference H at t=0 where SpikingJelly's H is a rounding error below it
    below = (sj.h[:, 0] < ref.h[:, 0]) & (ref.h[:, 0] > 0.3)
    assert below.any(), "BatchNorm folding should change some H in the last bits"
    sample, neuron = np.argwhere(below)[0]
    theta = float(ref.h[sample, 0, neuron])
    module[3].v_threshold = theta
    net = from_module(module, (1, 8, 8))
    runs = api.run_network(net, inputs, ("reference", "spikingjelly"), "a", module=module)
    pair = compare(runs["spikingjelly:a"], runs["reference:a"])
    lc = pair.layer("3")
    first = {"t": 0, "sample": int(sample), "neuron": [int(neuron)]}
    assert any({k: f[k] for k in ("t", "sample", "neuron")} == first for f in lc.flips)
    assert lc.primary_unexplained == 0 and lc.primary_explained >= 1
    for f in lc.flips:
        assert f["explained"] and 0 <= f["margin"] <= f["bound"] < 1e-4
    assert pair.unexplained == 0
    report = api.report_from_runs(runs, "float", {}, {"a": api.summary(net)})
    assert report.verdict == "consistent"
    assert any(d.code == "float_rounding" and d.layer == "3" for d in report.diagnoses)


def test_a_real_float_difference_is_not_hidden_by_the_tolerance():
    inputs = _spikes()
    module = _bn_mlp()
    net = from_module(module, (1, 8, 8))
    with torch.no_grad():
        module[1].weight[:, :] *= 1.01          # the SpikingJelly model now computes something else
    runs = api.run_network(net, inputs, ("reference", "spikingjelly"), "a", module=module)
    report = api.report_from_runs(runs, "float", {}, {"a": api.summary(net)})
    assert report.pair("spikingjelly:a~reference:a").unexplained > 0
    assert report.verdict == "inconsistent"
    assert any(d.code == "simulator_mismatch" and d.layer == "3" for d in report.diagnoses)


NEURONS = [
    ir.IF("n", 0.7, 0.0), ir.IF("n", 0.7, None), ir.IF("n", 0.7, None, v_init=0.35),
    ir.LIF("n", 0.7, 0.0, tau=2.0), ir.LIF("n", 0.7, None, tau=3.0, decay_input=False),
    ir.LIF("n", 0.7, -0.1, tau=1.7),
    ir.ParametricLIF("n", 0.7, 0.0, w=0.3), ir.ParametricLIF("n", 0.7, None, w=-0.2, decay_input=False),
]


@pytest.mark.parametrize("neuron", NEURONS, ids=lambda n: f"{type(n).__name__}-{n.v_reset}-{n.v_init}")
def test_neuron_equations_bit_exact_with_spikingjelly(neuron):
    """ir's charge/fire/reset in float32 equal SpikingJelly's node output and v_seq bit for bit."""
    from snncheck.frontends.spikingjelly import _make_neuron
    from spikingjelly.activation_based import functional
    rng = np.random.default_rng(0)
    x = rng.normal(0.3, 0.5, (16, 12, 50)).astype(np.float32)          # [N, T, F]
    node = _make_neuron(neuron)
    node.step_mode, node.store_v_seq = "m", True
    functional.reset_net(node)
    with torch.no_grad():
        s = node(torch.from_numpy(x.swapaxes(0, 1).copy())).numpy().swapaxes(0, 1)
    v = node.v_seq.numpy().swapaxes(0, 1)
    spikes, vs, _ = run_neuron(neuron, x)
    np.testing.assert_array_equal(spikes, s > 0)
    np.testing.assert_array_equal(vs, v)
    assert 0.01 < spikes.mean() < 0.95


def test_halfthreshold_node_imports_as_soft_if_with_half_initial_membrane():
    from spikingjelly.activation_based import layer, neuron
    import torch.nn as nn
    m = nn.Sequential(layer.Flatten(), layer.Linear(4, 3), neuron.HalfThresholdIFNode(v_threshold=2.0))
    net = from_module(m, (4,))
    n = net.neurons[0]
    assert isinstance(n, ir.IF) and n.v_reset is None and n.initial_v == 1.0


def test_batchnorm_folding_matches_torch():
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    import torch.nn as nn
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(3, 5, 3, bias=True).eval(), nn.BatchNorm2d(5).eval()
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2), bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    fused = fuse_conv_bn_eval(conv, bn)
    from spikingjelly.activation_based import neuron
    net = ir.fold_batchnorm(from_module(nn.Sequential(conv, bn, neuron.IFNode()), (3, 6, 6)))
    np.testing.assert_allclose(net.layers[0].weight, fused.weight.detach().numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(net.layers[0].bias, fused.bias.detach().numpy(), rtol=1e-6, atol=1e-6)
