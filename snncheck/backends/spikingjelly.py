"""SpikingJelly: multi-step mode, eval, `reset_net` before every batch, plain torch hooks.

It runs the user's own module as trained (BatchNorm unfolded) when the subject has one, else the graph built as
SpikingJelly modules (`to_module`, from this backend's registry `OPS`: one builder per primitive). SpikingJelly keeps V after reset (`v_seq`); H is
reconstructed exactly as `charge(V[t-1], X[t])` with X captured by a forward pre-hook, using the graph's neuron
equations in float32, bit-exact with SpikingJelly's own update (tests/test_float_and_semantics.py keeps it so).
"""
from __future__ import annotations

import contextlib
import operator
import re
import time
import weakref
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.fx as fx
import torch.nn as nn
from spikingjelly.activation_based import functional, layer, neuron

from ..errors import require
from ..graph import Graph, fold_batchnorm
from ..graph import primitives as P
from .base import Backend, LayerRecord, OutputRecord, Registry, RunResult, check_inputs, rounding_bounds

CANNOT_BUILD = {"AdditiveLIF": "SpikingJelly has no neuron with an additive leak"}
OPS = Registry("spikingjelly", lambda kind: CANNOT_BUILD.get(kind, f"SpikingJelly has no twin of {kind} here"))


@dataclass(eq=False)
class TorchModel:
    """A torch module ready to run in multi-step mode (eval), with its neuron submodules by graph node name."""
    module: nn.Module
    neurons: dict                           # graph neuron name -> nn.Module (hooks on it see its input and spikes)
    timesteps: Optional[int] = None         # the model's own T, when its forward repeats its input over T itself
    sequence: Optional[nn.Module] = None    # its forward with the encoder cut out (same submodules)

    def forward_sequence(self, x_seq: torch.Tensor):
        """The model's output for inputs [T, N, *input_shape], any T."""
        return (self.module if self.sequence is None else self.sequence)(x_seq)

    def reset(self) -> None:
        functional.reset_net(self.module)


@contextlib.contextmanager
def recording(model: TorchModel, names: list):
    """Hooks on the named neurons; yields {name: {"x": input, "s": output}} as numpy [T, N, ...], refilled by every
    forward."""
    seen = {name: {} for name in names}
    hooks = []
    for name in names:
        node = model.neurons[name]
        hooks.append(node.register_forward_pre_hook(
            lambda m, args, rec=seen[name]: rec.__setitem__("x", args[0].detach().cpu().numpy().copy())))
        hooks.append(node.register_forward_hook(
            lambda m, args, out, rec=seen[name]: rec.__setitem__("s", out.detach().cpu().numpy().copy())))
    try:
        yield seen
    finally:
        for hook in hooks:
            hook.remove()




class SpikingJellyBackend(Backend):
    name = "spikingjelly"
    batch_size = 256

    def accepts(self, graph: Graph) -> list:
        return OPS.refusals(graph)

    def run(self, graph: Graph, inputs: np.ndarray, label: str = "spikingjelly", record_v: bool = True) -> RunResult:
        start = time.perf_counter()
        inputs = check_inputs(graph, inputs)
        model = self.module if self.module is not None else _built(graph)
        model.module.eval()
        require(all(n in model.neurons for n in graph.neurons),
                lambda: f"the module given for {graph.name!r} lacks neurons "
                        f"{[n for n in graph.neurons if n not in model.neurons]}")
        chunks = {name: [] for name in graph.neurons}
        outs = []
        with torch.no_grad(), recording(model, graph.neurons) as seen, _storing_v(model, graph.neurons, record_v):
            for lo in range(0, inputs.shape[0], self.batch_size):
                x = torch.from_numpy(np.ascontiguousarray(inputs[lo:lo + self.batch_size].swapaxes(0, 1),
                                                          dtype=np.float32))
                model.reset()
                outs.append(_readouts(graph, model.forward_sequence(x)))
                for name in graph.neurons:
                    chunks[name].append(_record(model.neurons[name], seen[name], record_v))
        bounds = rounding_bounds(fold_batchnorm(graph), float(np.abs(inputs).max()))
        layers = [_layer(name, graph.nodes[name], chunks[name], bounds[name]) for name in graph.neurons]
        outputs = [OutputRecord(name, np.concatenate([o[name] for o in outs])) for name in outs[0]]
        return RunResult(self.name, label, layers, {"seconds": time.perf_counter() - start}, outputs)


_BUILT = weakref.WeakKeyDictionary()


def _built(graph: Graph) -> TorchModel:
    """The graph's SpikingJelly module, built once per graph (graphs are frozen; a run resets the neurons): every
    chunk of a whole-set run would otherwise rebuild it, ~1 ms of a digits run's 5."""
    if graph not in _BUILT:
        _BUILT[graph] = to_module(graph)
    return _BUILT[graph]


@contextlib.contextmanager
def _storing_v(model: TorchModel, names: list, on: bool):
    """`store_v_seq` on the neurons while running (so that `v_seq` holds V after reset); as it was afterwards."""
    nodes = [model.neurons[n] for n in names]
    before = [getattr(node, "store_v_seq", False) for node in nodes]
    for node in nodes:
        node.store_v_seq = on
    try:
        yield
    finally:
        for node, value in zip(nodes, before):
            node.store_v_seq = value


def _readouts(graph: Graph, out) -> dict:
    """{readout: [N, T, ...] values} from what the forward returned: one tensor (the graph's output node, from the
    import, else its only output) or a tuple in `graph.outputs` order; a mean over time gives [N, 1, ...]."""
    outs = out if isinstance(out, (tuple, list)) else [out]
    names = graph.outputs if len(outs) > 1 else [graph.meta.get("output") or graph.outputs[-1]]
    found = {}
    for name, value in zip(names, outs):
        if name in graph.readouts and isinstance(value, torch.Tensor):
            a = value.detach().cpu().numpy()
            found[name] = a[:, None] if isinstance(graph.nodes[name], P.MeanOverTime) else a.swapaxes(0, 1).copy()
    return found


def _record(node, seen: dict, record_v: bool) -> tuple:
    """(spikes, X, V) of one batch as [N, T, ...]; X and V only when membranes are recorded (H needs both)."""
    v = getattr(node, "v_seq", None) if record_v else None
    if v is None:
        return seen["s"].swapaxes(0, 1) > 0, None, None
    return seen["s"].swapaxes(0, 1) > 0, seen["x"].swapaxes(0, 1), v.detach().cpu().numpy().swapaxes(0, 1).copy()


def _layer(name: str, node: P.Neuron, chunks: list, bound: float) -> LayerRecord:
    spikes = np.concatenate([c[0] for c in chunks])
    v = h = None
    if all(c[2] is not None for c in chunks):
        v = np.concatenate([c[2] for c in chunks])
        h = charged_potential(node, np.concatenate([c[1] for c in chunks]), v)
    return LayerRecord(name, spikes, v, h, float(node.threshold), bound)


def charged_potential(neuron: P.Neuron, x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """H[t] = charge(V[t-1], X[t]) over [N, T, ...] arrays, V[-1] = the neuron's initial potential."""
    prev = np.concatenate([np.full_like(v[:, :1], neuron.initial_v), v[:, :-1]], axis=1)
    return neuron.charge(prev, x.astype(v.dtype))


# ----------------------------------------------------------------------------------------------- graph -> module
def _neuron_refusal(node) -> Optional[str]:
    """Why a neuron has no SpikingJelly twin (None: it has one)."""
    if node.fire_rule != ">=":
        return f"SpikingJelly fires on H >= threshold; this neuron fires on H {node.fire_rule} threshold"
    if isinstance(node, P.LIF) and not node.tau > 1:
        return f"SpikingJelly's LIFNode needs tau > 1, got {node.tau}"
    return None


def to_module(graph: Graph) -> TorchModel:
    """The graph as SpikingJelly modules (multi-step, eval) in a torch.fx GraphModule, merges included: for
    networks that have no module of their own (a deployed integer network)."""
    builder = _Builder()
    values = {}
    refused = OPS.refusals(graph)
    require(not refused, lambda: "; ".join(map(str, refused)))
    for name in graph.order:
        node = graph.nodes[name]
        ins = [values[p] for p in graph.inputs_of(name)]
        in_shape = graph.shapes[graph.inputs_of(name)[0]] if ins else ()
        values[name] = OPS.lookup(node)(builder, name, node, ins, in_shape)
    outs = [values[n] for n in graph.outputs]
    builder.graph.output(outs[0] if len(outs) == 1 else tuple(outs))
    module = fx.GraphModule(builder.root, builder.graph).eval()
    functional.set_step_mode(module, "m")
    return TorchModel(module, {n: builder.modules[n] for n in graph.neurons})


class _Builder:
    """An fx graph being written, and the root module holding its submodules (keys made from node names)."""

    def __init__(self):
        self.graph, self.root, self.modules = fx.Graph(), nn.Module(), {}

    def module(self, name: str, m: nn.Module, x: fx.Node) -> fx.Node:
        key = re.sub(r"\W", "_", name)
        key = key if key[0].isalpha() else f"n_{key}"
        while hasattr(self.root, key):
            key += "_"
        self.root.add_module(key, m)
        self.modules[name] = m
        return self.graph.call_module(key, (x,))


def _tensor(a) -> nn.Parameter:
    return nn.Parameter(torch.tensor(np.asarray(a), dtype=torch.float32), requires_grad=False)


def _with_weights(m: nn.Module, node) -> nn.Module:
    m.weight = _tensor(node.weight)
    if node.bias is not None:
        m.bias = _tensor(node.bias)
    return m


def _build_conv(b, name, node: P.Conv2d, ins, in_shape):
    o, cg, kh, kw = node.weight.shape
    m = layer.Conv2d(cg * node.groups, o, (kh, kw), node.stride, node.padding, groups=node.groups,
                     bias=node.bias is not None)
    return b.module(name, _with_weights(m, node), ins[0])


def _build_linear(b, name, node: P.Linear, ins, in_shape):
    m = layer.Linear(node.weight.shape[1], node.weight.shape[0], bias=node.bias is not None)
    return b.module(name, _with_weights(m, node), ins[0])


def _build_batchnorm(b, name, node: P.BatchNorm, ins, in_shape):
    m = (layer.BatchNorm2d if len(in_shape) == 3 else layer.BatchNorm1d)(len(node.mean), eps=node.eps)
    m.weight, m.bias = _tensor(node.gamma), _tensor(node.beta)
    m.running_mean.copy_(torch.tensor(node.mean)), m.running_var.copy_(torch.tensor(node.var))
    return b.module(name, m, ins[0])


def _build_neuron(b, name, node: P.Neuron, ins, in_shape):
    common = dict(v_threshold=float(node.threshold), v_reset=None if node.soft_reset else float(node.v_reset))
    if isinstance(node, P.LIF):
        m = neuron.LIFNode(tau=float(node.tau), decay_input=node.decay_input, **common)
    elif isinstance(node, P.ParametricLIF):
        m = neuron.ParametricLIFNode(decay_input=node.decay_input, **common)
        m.w.data.fill_(node.w)
    else:
        m = neuron.IFNode(**common)
    if node.v_init is not None:
        m.set_reset_value("v", float(node.v_init))
    return b.module(name, m, ins[0])


def _build_add(b, name, node, ins, in_shape):
    out = ins[0]
    for x in ins[1:]:
        out = b.graph.call_function(operator.add, (out, x))
    return out


def _pool_refusal(graph, name, node) -> Optional[str]:
    if any(2 * p > k for p, k in zip(node.padding, node.kernel)):
        return f"torch pads at most half the pooling window; padding {node.padding}, window {node.kernel}"
    return None


OPS.register(P.Input)(lambda b, name, node, ins, in_shape: b.graph.placeholder("input"))
OPS.register(P.Conv2d)(_build_conv)
OPS.register(P.Linear)(_build_linear)
OPS.register(P.BatchNorm)(_build_batchnorm)
OPS.register(P.IF, P.LIF, P.ParametricLIF, check=lambda graph, name, node: _neuron_refusal(node))(_build_neuron)
OPS.register(P.Add)(_build_add)
OPS.register(P.Scale)(lambda b, name, node, ins, in_shape: b.graph.call_function(operator.mul,
                                                                                  (ins[0], float(node.factor))))
OPS.register(P.Flatten)(lambda b, name, node, ins, in_shape: b.graph.call_function(torch.flatten, (ins[0], 2)))
OPS.register(P.MaxPool2d, check=_pool_refusal)(lambda b, name, node, ins, in_shape: b.module(
    name, layer.MaxPool2d(node.kernel, node.stride, node.padding), ins[0]))
OPS.register(P.SumPool2d, check=_pool_refusal)(lambda b, name, node, ins, in_shape: b.module(
    name, layer.AvgPool2d(node.kernel, node.stride, node.padding, divisor_override=1), ins[0]))
OPS.register(P.AvgPool2d, check=_pool_refusal)(lambda b, name, node, ins, in_shape: b.module(
    name, layer.AvgPool2d(node.kernel, node.stride, node.padding, count_include_pad=node.count_include_pad), ins[0]))
OPS.register(P.AdaptiveAvgPool2d)(lambda b, name, node, ins, in_shape: b.module(
    name, layer.AdaptiveAvgPool2d(tuple(node.size)), ins[0]))
OPS.register(P.AdaptiveSumPool2d, check=lambda graph, name, node: None if node.cells(
    graph.shapes[graph.inputs_of(name)[0]]) else "its windows differ in size: no mean times one count sums them")(
    lambda b, name, node, ins, in_shape: b.graph.call_function(operator.mul, (
    b.module(name, layer.AdaptiveAvgPool2d(tuple(node.size)), ins[0]), float(node.cells(in_shape)))))
OPS.register(P.Vote)(lambda b, name, node, ins, in_shape: b.module(name, layer.VotingLayer(node.size), ins[0]))
OPS.register(P.MeanOverTime)(lambda b, name, node, ins, in_shape: b.graph.call_method("mean", (ins[0], 0)))
