"""Importing by tracing what a module executes (torch.fx): SpikingJelly's own residual blocks and its
conv_fashion_mnist CSNN are read as they run and agree with the reference; every kind of misread is refused,
naming the node, instead of passing silently (issue 9: a residual network read as the chain of its children)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn as nn
from spikingjelly.activation_based import layer, neuron

from snncheck.backends.reference import ReferenceBackend
from snncheck.backends.spikingjelly import SpikingJellyBackend
from snncheck.errors import InputError
from snncheck.frontends import spikingjelly as sj
from snncheck.frontends.models import import_sj
from helpers import resnet, unexplained
from snncheck.graph import chain
from snncheck.graph import primitives as P


# ----------------------------------------------------------------------------------------------- flips
def both(graph, model, inputs):
    """(SpikingJelly running the user's module, the reference running the graph)."""
    return SpikingJellyBackend(module=model).run(graph, inputs), ReferenceBackend().run(graph, inputs)


# ----------------------------------------------------------------------------------------------- residual nets
MERGES = {   # add -> (its inputs in order, its consumers)
    "spiking_resnet": {"layer1.0.add": (["layer1.0.bn2", "pool"], ["layer1.0.sn2"]),
                       "layer2.0.add": (["layer2.0.bn2", "layer2.0.downsample.1"], ["layer2.0.sn2"])},
    "sew_resnet": {"layer1.0.add": (["pool", "layer1.0.sn2"], ["layer2.0.conv1", "layer2.0.downsample.0"]),
                   "layer2.0.add": (["layer2.0.downsample_sn", "layer2.0.sn2"], ["flatten"])},
}


@pytest.mark.parametrize("kind", list(MERGES))
def test_residual_blocks_are_read_as_they_run(kind):
    """Catches a residual block read as the chain of its children (the shortcut lost, issue 9): the graph has an
    Add where the block adds, with the right inputs and shapes, and every other node is named by its module path."""
    net = resnet(kind)
    graph, model = sj.import_module(net, (3, 32, 32), name=kind)       # the self-check runs here
    assert graph.of_type(P.Add) == list(MERGES[kind])
    for add, (inputs, consumers) in MERGES[kind].items():
        assert graph.inputs_of(add) == inputs and graph.consumers(add) == consumers
    assert graph.shapes["layer1.0.add"] == (8, 16, 16) and graph.shapes["layer2.0.add"] == (16, 8, 8)
    assert graph.shapes["flatten"] == (1024,) and isinstance(graph.nodes["mean"], P.MeanOverTime)
    paths = dict(net.named_modules())
    assert all(n in paths for n in graph.nodes if n not in ("input", "flatten", "mean") and ".add" not in n)
    assert [type(paths[n]) for n in graph.neurons] == [neuron.IFNode] * len(graph.neurons)
    assert graph.meta["output"] == "mean" and model.timesteps is None


@pytest.mark.parametrize("kind", list(MERGES))
def test_residual_nets_agree_in_spikingjelly_and_reference(kind):
    """Catches a graph that computes something else than the module (a misread merge, shortcut or BatchNorm):
    SpikingJelly on the user's own module (BatchNorm unfolded) and the reference on the graph differ only at
    flips that float32 rounding explains. The planted twin (one shortcut weight misread by 2%) must be caught."""
    graph, model = sj.import_module(resnet(kind), (3, 32, 32), name=kind)
    x = np.random.default_rng(2).random((16, 4, 3, 32, 32)).astype(np.float32)
    a, b = both(graph, model, x)
    assert a.names == b.names == graph.neurons
    assert all(0 < rec.spikes.mean() < 0.5 for rec in b.layers), [rec.spikes.mean() for rec in b.layers]
    assert unexplained(a, b) == {n: 0 for n in graph.neurons}
    shortcut = "layer2.0.downsample.0"
    planted = graph.with_node(shortcut, weight=graph.nodes[shortcut].weight * 1.02)
    assert sum(unexplained(a, ReferenceBackend().run(planted, x)).values()) > 0


def test_conv_fashion_mnist_csnn_imports_without_a_wrapper():
    """Catches a forward that repeats its input over T read as a layer, or a crash (issue 9): SpikingJelly's own
    examples.conv_fashion_mnist.CSNN imports as it is, its encoder recognised (T=4), and runs the same in
    SpikingJelly and the reference, at its own T and at another."""
    torch.manual_seed(0)
    net = import_sj("examples.conv_fashion_mnist").CSNN(T=4, channels=8)
    graph, model = sj.import_module(net, (1, 28, 28), name="csnn")
    assert model.timesteps == 4 and graph.meta["timesteps"] == 4
    assert graph.order[:2] == ["input", "conv_fc.0"] and graph.order[-1] == "mean"
    assert graph.neurons == ["conv_fc.2", "conv_fc.6", "conv_fc.10", "conv_fc.12"]
    for t in (4, 6):
        x = np.random.default_rng(t).random((8, t, 1, 28, 28)).astype(np.float32)
        a, b = both(graph, model, x)
        assert a.layers[0].steps == t and unexplained(a, b) == {n: 0 for n in graph.neurons}
    with torch.no_grad():
        model.reset()
        assert tuple(net(torch.rand(3, 1, 28, 28)).shape) == (3, 10)      # its own forward is untouched


# ----------------------------------------------------------------------------------------------- refusals
class Reordered(nn.Module):
    """Registers its layers in another order than its forward applies them (same shapes both ways)."""

    def __init__(self):
        super().__init__()
        self.flat = layer.Flatten()
        self.fc_b, self.sn_b = layer.Linear(64, 64), neuron.IFNode()
        self.fc_a, self.sn_a = layer.Linear(64, 64), neuron.IFNode()
        with torch.no_grad():
            self.fc_a.weight.mul_(6.0), self.fc_b.weight.mul_(6.0)

    def forward(self, x):
        return self.sn_b(self.fc_b(self.sn_a(self.fc_a(self.flat(x)))))


def test_forward_order_is_read_not_registration_order():
    """Catches a module read in registration order: the graph follows the forward, and the self-check proves
    it by refusing the registration-order chain, naming its first neuron."""
    torch.manual_seed(0)
    graph, model = sj.import_module(Reordered(), (1, 8, 8), name="reordered")
    assert graph.order == ["input", "flat", "fc_a", "sn_a", "fc_b", "sn_b"]
    wrong = chain([(n, graph.nodes[n]) for n in ("flat", "fc_b", "sn_b", "fc_a", "sn_a")], (1, 8, 8),
                  name="reordered", meta={"output": "sn_a"})
    with pytest.raises(InputError, match="does not reproduce its forward: first difference at node 'sn_b'"):
        sj._self_check(wrong, model, "reordered")


class WithOp(nn.Module):
    def __init__(self, op):
        super().__init__()
        self.block = Scaled(op)
        self.sn = neuron.IFNode()

    def forward(self, x):
        return self.sn(self.block(torch.flatten(x, 2)))


class Scaled(nn.Module):
    def __init__(self, op):
        super().__init__()
        self.fc, self.op = layer.Linear(64, 10), op

    def forward(self, x):
        return self.op(self.fc(x))


@pytest.mark.parametrize("op, node, target", [(lambda y: y * 2, "mul", "mul"),
                                              (torch.sigmoid, "sigmoid", "sigmoid"),
                                              (lambda y: y + 1.0, "add", "add"),
                                              (lambda y: y.mean(0), "mean", "mean")])
def test_op_without_graph_twin_is_refused_in_one_line_naming_the_node(op, node, target):
    """Catches an op silently dropped from the graph (x * 2 read as x; a constant added; a mean over time that is
    not the readout): refused in one line that names the fx node, its op and the module it runs in."""
    with pytest.raises(InputError) as exc:
        sj.import_module(WithOp(op), (1, 8, 8), name="net")
    message = str(exc.value)
    assert f"cannot import node '{node}' (call_" in message and f" {target})" in message
    assert "in module 'block'" in message and "\n" not in message


def test_untraceable_control_flow_is_refused_in_one_line():
    """Catches a traceback (exit 1) for a forward whose control flow depends on the data."""
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc, self.sn = layer.Linear(64, 10), neuron.IFNode()

        def forward(self, x):
            y = self.fc(torch.flatten(x, 2))
            return self.sn(-y if y.sum() > 0 else y)

    with pytest.raises(InputError, match=r"^cannot trace the forward of branchy \(Branchy\): TraceError: "
                                         r"symbolically traced variables cannot be used as inputs to control flow$"):
        sj.import_module(Branchy(), (1, 8, 8), name="branchy")


class Viewed(nn.Module):
    def __init__(self, swap: bool):
        super().__init__()
        self.fc, self.sn, self.swap = layer.Linear(64, 10), neuron.IFNode(), swap

    def forward(self, x):
        t, n = x.shape[:2]
        return self.sn(self.fc(x.view(n, t, -1) if self.swap else x.view(t, n, -1)))


def test_a_view_is_a_flatten_only_when_it_keeps_time_and_samples():
    """Catches a reshape that mixes steps and samples read as a Flatten: view(T, N, -1) is one, view(N, T, -1)
    is refused with the shapes seen on the probe."""
    graph, _ = sj.import_module(Viewed(swap=False), (1, 8, 8))
    assert graph.order == ["input", "flatten", "fc", "sn"] and graph.shapes["flatten"] == (64,)
    with pytest.raises(InputError, match=r"node 'flatten' makes \[2, 4, 64\] on a probe \[T=4, N=2, \.\.\.\] where "
                                         r"its graph twin \(Flatten\) makes \[4, 2, 64\]"):
        sj.import_module(Viewed(swap=True), (1, 8, 8))


def test_plain_torch_layer_and_unknown_module_are_refused_naming_them():
    """Catches a plain nn.Conv2d fed [T, N, ...] crashing with a torch traceback, and an unknown layer skipped."""
    with pytest.raises(InputError, match=r"fails at node '0': RuntimeError: .*SeqToANNContainer"):
        sj.import_module(nn.Sequential(nn.Conv2d(1, 4, 3), neuron.IFNode()), (1, 8, 8))
    with pytest.raises(InputError, match=r"module '1' \(ReLU\) cannot be imported: not a supported layer"):
        sj.import_module(nn.Sequential(layer.Flatten(), nn.ReLU(), layer.Linear(64, 4), neuron.IFNode()), (1, 8, 8))


def _no_bias(path, m):
    ((suffix, conv),) = sj._conv(path, m)
    return [(suffix, dataclasses.replace(conv, bias=None))]


def _threshold_x2(path, m):
    ((suffix, node),) = sj._if_node(path, m)
    return [(suffix, dataclasses.replace(node, threshold=node.threshold * 2))]


@pytest.mark.parametrize("cls, broken, first, detail", [
    (layer.Conv2d, _no_bias, "features.1", "its input differs by .* its input is input -> features.0"),
    (neuron.IFNode, _threshold_x2, "features.1", "a spike differs at step"),
])
def test_a_broken_importer_is_caught_by_the_self_check(monkeypatch, cls, broken, first, detail):
    """Catches a silent misread in the importer itself (a Conv2d's bias dropped, a threshold doubled): the
    module's own forward disagrees with the graph and the import is refused at the first node that differs."""
    from snncheck.frontends import models as zoo
    monkeypatch.setitem(sj.MODULES, cls, broken)
    torch.manual_seed(0)
    with pytest.raises(InputError, match=f"the graph read from alexnet does not reproduce its forward: first "
                                         f"difference at node '{first}' \\({detail}"):
        sj.import_module(zoo.alexnet_small(), (3, 16, 16), name="alexnet")


def test_register_module_teaches_a_class(monkeypatch):
    """Catches a registered class traced through (its insides read instead of its converter) or named wrongly:
    its primitives are named path.suffix, and the self-check holds them to the module's forward."""
    class Dense(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = layer.Linear(64, 10)

        def forward(self, x):
            return self.inner(x) * 1.0          # an op with no graph twin: it must not be traced

    net = nn.Sequential(layer.Flatten(), Dense(), neuron.IFNode())
    with pytest.raises(InputError, match="node 'mul'"):
        sj.import_module(net, (1, 8, 8))
    monkeypatch.setattr(sj, "MODULES", dict(sj.MODULES))
    sj.register_module(Dense, lambda path, m: [("inner", P.Linear(m.inner.weight.detach().numpy(),
                                                                  m.inner.bias.detach().numpy()))])
    graph, _ = sj.import_module(net, (1, 8, 8))
    assert graph.order == ["input", "0", "1.inner", "2"]
