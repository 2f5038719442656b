"""Float networks: SpikingJelly and the reference differ only at spikes within float32 rounding of the threshold,
and the comparison says so flip by flip. Also keeps the neuron equations of graph/primitives.py true against
SpikingJelly, bit for bit."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from snncheck import api
from snncheck.backends.reference import ReferenceBackend, run_neuron
from snncheck.backends.spikingjelly import SpikingJellyBackend
from snncheck.backends.spikingjelly import to_module
from snncheck.frontends.spikingjelly import import_module
from snncheck.graph import chain, fold_batchnorm
from snncheck.graph import primitives as P
from helpers import flips, unexplained


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


def _runs(module, inputs):
    graph, model = import_module(module, (1, 8, 8))
    return graph, SpikingJellyBackend(module=model).run(graph, inputs), ReferenceBackend().run(graph, inputs)


def test_float_flips_are_reported_with_their_margin():
    inputs = _spikes()
    module = _bn_mlp()
    _, sj, ref = _runs(module, inputs)
    ref3, sj3 = ref.layer("3"), sj.layer("3")
    # put the threshold exactly on a reference H at t=0 where SpikingJelly's H is a rounding error below it
    below = (sj3.h[:, 0] < ref3.h[:, 0]) & (ref3.h[:, 0] > 0.3)
    assert below.any(), "BatchNorm folding should change some H in the last bits"
    sample, neuron = np.argwhere(below)[0]
    module[3].v_threshold = float(ref3.h[sample, 0, neuron])
    _, sj, ref = _runs(module, inputs)
    listed = flips(sj, ref)["3"]
    first = {"t": 0, "sample": int(sample), "neuron": [int(neuron)]}
    assert any({k: f[k] for k in ("t", "sample", "neuron")} == first for f in listed)
    assert sum(f["explained"] for f in listed) >= 1
    for f in listed:
        assert f["explained"] and 0 <= f["margin"] <= f["bound"] < 1e-4
    assert unexplained(sj, ref) == {"3": 0, "5": 0}
    graph, model = import_module(module, (1, 8, 8))
    report = api.check(graph, inputs, ["reference", "spikingjelly"], module=model)
    assert report.verdict == "consistent"                            # consistent: float rounding at layer 3
    assert [(d.code, d.layer, d.severity) for d in report.diagnoses] == [("float_rounding", "3", "info")]


def test_a_real_float_difference_is_not_hidden_by_the_tolerance():
    inputs = _spikes()
    module = _bn_mlp()
    graph, model = import_module(module, (1, 8, 8))
    with torch.no_grad():
        module[1].weight[:, :] *= 1.01          # the SpikingJelly model now computes something else
    sj, ref = SpikingJellyBackend(module=model).run(graph, inputs), ReferenceBackend().run(graph, inputs)
    counts = unexplained(sj, ref)
    assert counts["3"] > 0                      # inconsistent, and the simulators' mismatch is at layer 3
    assert next(n for n, c in counts.items() if c) == "3"
    report = api.check(graph, inputs, ["reference", "spikingjelly"], module=model)
    assert report.verdict == "inconsistent"
    assert report.diagnoses[0].code == "simulator_mismatch" and report.diagnoses[0].layer == "3"


NEURONS = [
    P.IF(threshold=0.7), P.IF(threshold=0.7, reset="soft"), P.IF(threshold=0.7, reset="soft", v_init=0.35),
    P.LIF(threshold=0.7, tau=2.0), P.LIF(threshold=0.7, reset="soft", tau=3.0, decay_input=False),
    P.LIF(threshold=0.7, v_reset=-0.1, tau=1.7),
    P.ParametricLIF(threshold=0.7, w=0.3), P.ParametricLIF(threshold=0.7, reset="soft", w=-0.2, decay_input=False),
] + [  # the LIF family both ways: decay_input, and hard reset to 0, hard to v_reset != 0, soft
    cls(threshold=0.4, reset=reset, v_reset=v_reset, decay_input=decay, **leak)
    for cls, leak in ((P.LIF, {"tau": 2.5}), (P.ParametricLIF, {"w": 0.4}))
    for decay in (True, False) for reset, v_reset in (("hard", 0.0), ("hard", -0.2), ("soft", 0.0))
]


@pytest.mark.parametrize("neuron", NEURONS, ids=lambda n: f"{n.kind}-{n.reset}-{n.v_reset}-{n.v_init}")
def test_neuron_equations_bit_exact_with_spikingjelly(neuron):
    """The primitives' charge/fire/reset in float32 equal SpikingJelly's node output and v_seq bit for bit."""
    from spikingjelly.activation_based import functional
    rng = np.random.default_rng(0)
    x = rng.normal(0.3, 0.5, (16, 12, 50)).astype(np.float32)          # [N, T, F]
    node = to_module(chain([("n", neuron)], (50,))).neurons["n"]
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
    graph, _ = import_module(m, (4,))
    n = graph.nodes[graph.neurons[0]]
    assert isinstance(n, P.IF) and n.soft_reset and n.initial_v == 1.0


def test_batchnorm_folding_matches_torch():
    from torch.nn.utils.fusion import fuse_conv_bn_eval
    import torch.nn as nn
    from spikingjelly.activation_based import layer, neuron
    torch.manual_seed(0)
    conv, bn = nn.Conv2d(3, 5, 3, bias=True).eval(), nn.BatchNorm2d(5).eval()
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1), bn.running_var.uniform_(0.5, 2), bn.weight.uniform_(0.5, 2)
        bn.bias.uniform_(-1, 1)
    fused = fuse_conv_bn_eval(conv, bn)
    graph, _ = import_module(nn.Sequential(layer.SeqToANNContainer(conv, bn), neuron.IFNode()), (3, 6, 6))
    folded = fold_batchnorm(graph)
    assert folded.order == ["input", "0.0", "1"]
    np.testing.assert_allclose(folded.nodes["0.0"].weight, fused.weight.detach().numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(folded.nodes["0.0"].bias, fused.bias.detach().numpy(), rtol=1e-6, atol=1e-6)


def test_batchnorm_folding_is_done_once_per_graph():
    """Catches every run folding its graph anew (a new graph and new synapse nodes each time, so nothing a backend
    prepares per node is ever found again): the same graph folds to the same object."""
    import torch.nn as nn
    from spikingjelly.activation_based import layer, neuron
    graph, _ = import_module(nn.Sequential(layer.SeqToANNContainer(nn.Conv2d(3, 5, 3).eval(), nn.BatchNorm2d(5).eval()),
                                           neuron.IFNode()), (3, 6, 6))
    assert fold_batchnorm(graph) is fold_batchnorm(graph) and fold_batchnorm(graph) is not graph
