"""SpikingJelly -> Graph: a torch module read by tracing what its forward executes (the graph built back as
SpikingJelly modules is the backend's business: snncheck.backends.spikingjelly.to_module).

Import (`import_module`) traces the forward with torch.fx, as SpikingJelly's own ann2snn converter does: spiking
neurons, SpikingJelly's `layer.*` modules, torch's own modules and the classes given to `register_module` are
leaves; each leaf becomes the primitives its converter says (`MODULES`), and the functional ops that have a graph
twin become graph nodes (`+` -> Add, a per-sample flatten -> Flatten, `.mean(0)` at the output -> MeanOverTime).
A forward that repeats its input over T itself (`x.unsqueeze(0).repeat(T, 1, ...)`, or `expand`) is the model's
encoder, not a layer: the graph starts after it and `TorchModel.timesteps` is its T. Anything else is refused,
naming the node. Node names are module paths as in the state_dict (`layer1.0.sn1`); a functional op is named
after the module it runs in (`layer1.0.add`).

Then two checks, so that a misread cannot pass silently: a probe run gives every node's shape, which must equal
the graph's inferred shape; and the module's own forward, run on a seeded probe, must be reproduced by the graph
in the reference (see `_self_check`).
"""
from __future__ import annotations

import contextlib
import io
import operator
import os
from typing import Callable, Optional

import numpy as np
import torch
import torch.fx as fx
import torch.nn as nn
from spikingjelly.activation_based import base, functional, layer, neuron
from torch.fx.passes.shape_prop import ShapeProp

from ..backends.base import rounding_bounds
from ..backends.spikingjelly import TorchModel, recording
from ..backends.reference import evaluate
from ..errors import InputError, require
from ..graph import Graph, fold_batchnorm, folded_from
from ..graph import primitives as P

PROBE_SAMPLES, PROBE_STEPS = 2, 4


# ----------------------------------------------------------------------------------------------- module registry
MODULES: dict = {}     # module class (exact) -> fn(path, module) -> [(suffix, primitive)]
SHAPED: set = set()    # converters that also take the per-sample input shape: fn(path, module, in_shape)


def register_module(cls: type, fn: Callable, shaped: bool = False) -> None:
    """Teaches the importer a module class (matched exactly, never its subclasses, which may compute something
    else). `fn(path, module)` returns the module's primitives in the order they apply, as [(suffix, primitive)]:
    suffix "" names the node `path`, "x" names it `path.x`; or it raises InputError saying why it cannot. With
    `shaped`, it is called `fn(path, module, in_shape)` with the module's per-sample input shape."""
    MODULES[cls] = fn
    if shaped:
        SHAPED.add(fn)


BY_SOURCE: dict = {}   # (defining file, qualified name) -> fn, for classes registered by a user's plugin


def source_key(cls: type) -> Optional[tuple]:
    """Where a class is defined: a user's file imported twice (as a plugin and as a model file) defines two class
    objects that are the same class."""
    import inspect
    try:
        return os.path.abspath(inspect.getfile(cls)), cls.__qualname__
    except (TypeError, OSError):
        return None


def _converts(*classes, shaped: bool = False):
    def deco(fn):
        for cls in classes:
            register_module(cls, fn, shaped)
        return fn
    return deco


def _refuse(path: str, m, reason: str):
    raise InputError(f"module {path!r} ({type(m).__name__}) cannot be imported: {reason}")


def _registered(m) -> Optional[Callable]:
    """The converter registered for the module's class: a built-in one, else a plugin's (by defining source)."""
    return MODULES.get(type(m)) or (BY_SOURCE.get(source_key(type(m))) if BY_SOURCE else None)


def _converter(path: str, m) -> Callable:
    fn = _registered(m)
    if fn is None:
        _refuse(path, m, "not a supported layer (Conv2d, Linear, BatchNorm1d/2d, Flatten, MaxPool2d, AvgPool2d, "
                         "AdaptiveAvgPool2d, VotingLayer, Dropout, Identity, IFNode, LIFNode, ParametricLIFNode, "
                         "HalfThresholdIFNode, SeqToANNContainer; others can be taught with register_module, "
                         "neurons with snncheck.register_neuron)")
    return fn


def convert_module(path: str, m, in_shape: Callable) -> list:
    """The module's [(suffix, primitive)]; `in_shape()` gives its per-sample input shape, asked only by the
    converters that need it."""
    fn = _converter(path, m)
    return fn(path, m, tuple(in_shape())) if fn in SHAPED else fn(path, m)


def _np(t) -> Optional[np.ndarray]:
    return None if t is None else t.detach().cpu().numpy().copy()


def _pair(v) -> tuple:
    return tuple(int(x) for x in v) if isinstance(v, (tuple, list)) else (int(v), int(v))


@_converts(nn.Conv2d, layer.Conv2d)
def _conv(path, m):
    if isinstance(m.padding, str) or m.padding_mode != "zeros":
        _refuse(path, m, "only explicit zero padding is supported")
    if _pair(m.dilation) != (1, 1):
        _refuse(path, m, "dilation > 1 is not supported (PAIBox simulates it wrongly)")
    return [("", P.Conv2d(_np(m.weight), _np(m.bias), _pair(m.stride), _pair(m.padding), m.groups))]


@_converts(nn.Linear, layer.Linear)
def _linear(path, m):
    return [("", P.Linear(_np(m.weight), _np(m.bias)))]


@_converts(nn.BatchNorm1d, nn.BatchNorm2d, layer.BatchNorm1d, layer.BatchNorm2d)
def _batchnorm(path, m):
    if m.running_mean is None:
        _refuse(path, m, "BatchNorm without running statistics cannot be folded")
    ones, zeros = np.ones(m.num_features, np.float32), np.zeros(m.num_features, np.float32)
    return [("", P.BatchNorm(_np(m.running_mean), _np(m.running_var), _np(m.weight) if m.affine else ones,
                             _np(m.bias) if m.affine else zeros, float(m.eps)))]


@_converts(nn.Flatten, layer.Flatten)
def _flatten(path, m):
    if m.end_dim != -1:
        _refuse(path, m, "only flattening every dimension of a sample is supported")
    return [("", P.Flatten())]      # which dimensions it flattens in multi-step mode is checked on the probe


@_converts(nn.MaxPool2d, layer.MaxPool2d)
def _max_pool(path, m):
    if _pair(m.dilation) != (1, 1) or m.ceil_mode or m.return_indices:
        _refuse(path, m, "dilation, ceil_mode and return_indices are not supported")
    return [("", P.MaxPool2d(_pair(m.kernel_size), _pair(m.stride or m.kernel_size), _pair(m.padding)))]


@_converts(nn.AvgPool2d, layer.AvgPool2d)
def _avg_pool(path, m):
    if m.ceil_mode or m.divisor_override is not None:
        _refuse(path, m, "ceil_mode and divisor_override are not supported")
    return [("", P.AvgPool2d(_pair(m.kernel_size), _pair(m.stride or m.kernel_size), _pair(m.padding),
                             count_include_pad=bool(m.count_include_pad)))]


@_converts(nn.AdaptiveAvgPool2d, layer.AdaptiveAvgPool2d, shaped=True)
def _adaptive_avg_pool(path, m, in_shape):
    """An AvgPool2d with kernel = stride = input // output where the input size is a multiple of the output's
    (torch's windows are then that pool's); else the general AdaptiveAvgPool2d, whose windows vary."""
    _, h, w = _rank_of(path, m, in_shape, 3)
    size = m.output_size if isinstance(m.output_size, (tuple, list)) else (m.output_size, m.output_size)
    oh, ow = (h if size[0] is None else int(size[0])), (w if size[1] is None else int(size[1]))
    if h % oh or w % ow:
        return [("", P.AdaptiveAvgPool2d((oh, ow)))]
    k = (h // oh, w // ow)
    return [("", P.AvgPool2d(k, k))]


@_converts(layer.VotingLayer)
def _voting(path, m):
    return [("", P.Vote(int(m.voting_size)))]


def _rank_of(path, m, in_shape, rank: int) -> tuple:
    if len(in_shape) != rank:
        _refuse(path, m, f"expects a {rank}-d input per sample, gets {list(in_shape)}")
    return tuple(in_shape)


@_converts(nn.Dropout, nn.Dropout2d, layer.Dropout, layer.Dropout2d, nn.Identity)
def _identity(path, m):
    return []           # identity at inference


def _neuron_fields(path, m) -> dict:
    v0 = m.get_reset_value("v")
    if not isinstance(v0, (int, float)):
        _refuse(path, m, "a tensor-valued initial membrane potential is not supported")
    soft = m.v_reset is None
    v_reset = 0.0 if soft else float(m.v_reset)
    return dict(threshold=float(m.v_threshold), reset="soft" if soft else "hard", v_reset=v_reset,
                v_init=None if float(v0) == v_reset else float(v0))


@_converts(neuron.IFNode, neuron.HalfThresholdIFNode)
def _if_node(path, m):
    return [("", P.IF(**_neuron_fields(path, m)))]


@_converts(neuron.LIFNode)
def _lif_node(path, m):
    return [("", P.LIF(**_neuron_fields(path, m), tau=float(m.tau), decay_input=bool(m.decay_input)))]


@_converts(neuron.ParametricLIFNode)
def _plif_node(path, m):
    return [("", P.ParametricLIF(**_neuron_fields(path, m), w=float(m.w.item()), decay_input=bool(m.decay_input)))]


@_converts(layer.SeqToANNContainer, shaped=True)
def _seq_to_ann(path, m, in_shape):
    out, shape = [], in_shape
    for key, child in m.named_children():
        for suffix, prim in convert_module(f"{path}.{key}", child, lambda: shape):
            if prim.stateful:
                _refuse(path, m, f"its child {key!r} is a neuron, which would see T*N samples as one step")
            out.append((f"{key}.{suffix}" if suffix else key, prim))
            try:
                shape = prim.out_shape(shape)
            except InputError as exc:
                _refuse(path, m, f"its child {key!r}: {exc}")
    return out


# ----------------------------------------------------------------------------------------------- import
class _Tracer(fx.Tracer):
    failed_in = None           # (path, class name) of the innermost module whose forward failed to trace

    def call_module(self, m, forward, args, kwargs):
        try:
            return super().call_module(m, forward, args, kwargs)
        except Exception:
            if self.failed_in is None:
                self.failed_in = (self.path_of_module(m), type(m).__name__)
            raise

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return (_registered(m) is not None or isinstance(m, base.MemoryModule)
                or type(m).__module__.startswith("spikingjelly.activation_based.layer")
                or super().is_leaf_module(m, qualname))


def import_module(module: nn.Module, input_shape, name: str = "network",
                  self_check: bool = True) -> tuple:
    """(Graph, TorchModel) of a SpikingJelly/torch module, BatchNorm kept (fold it later). The module is put in
    eval mode and in multi-step mode (a forward that repeats its input over T itself feeds its layers [T, N, ...]
    too), before it is traced: SpikingVGG's forward flattens by its pool's step mode."""
    input_shape = tuple(int(d) for d in input_shape)
    module.eval()
    functional.set_step_mode(module, "m")     # before tracing: a forward may branch on its layers' step mode
    traced = _trace(module, name)
    encoder, timesteps = _encoder(traced.graph, len(input_shape))
    try:
        reading = _Reading(traced, encoder, input_shape, name)
        graph = Graph(reading.nodes, reading.edges, name=name,
                      meta={"source": "torch.fx", "module": type(module).__name__, "output": reading.output,
                            "timesteps": timesteps})
    except InputError as exc:
        takes = shape_taken(traced, encoder, input_shape)
        if takes is None or takes == input_shape:
            raise
        raise ShapeError(f"{name} takes [N, {_dims(takes)}] or [N, T, {_dims(takes)}], not [N, {_dims(input_shape)}] "
                         f"({exc})", takes) from None
    require(graph.neurons, lambda: f"model {name!r} has no spiking neuron layer")
    model = TorchModel(module, _neuron_modules(module, graph), timesteps,
                       None if timesteps is None else _without_encoder(module, traced.graph, encoder))
    _check_shapes(traced, graph, reading.value_of, timesteps, name)
    if self_check:
        _self_check(graph, model, name)
    return graph, model


class ShapeError(InputError):
    """The model does not take inputs of the shape given; `takes` is a per-sample shape it does take."""

    def __init__(self, message: str, takes: tuple):
        super().__init__(message)
        self.takes = takes


def shape_taken(traced: fx.GraphModule, encoder: list, like: tuple, largest: int = 256) -> Optional[tuple]:
    """A per-sample input shape the traced model takes: (C, s, s) with C its first Conv2d's input channels (else
    `like`'s) and the first size s (`like`'s first, then 1 .. largest) whose reading has consistent shapes; None
    when none fits or the input is not an image."""
    if len(like) != 3:
        return None
    convs = (traced.get_submodule(n.target) for n in traced.graph.nodes if n.op == "call_module")
    c = next((m.in_channels for m in convs if isinstance(m, nn.Conv2d)), like[0])
    for s in dict.fromkeys([like[1]] + list(range(1, largest + 1))):
        try:
            reading = _Reading(traced, encoder, (c, s, s), "probe")
            Graph(reading.nodes, reading.edges)
            return (c, s, s)
        except InputError:
            continue
    return None


def _dims(shape) -> str:
    return ", ".join(map(str, shape))


def _trace(module: nn.Module, name: str) -> fx.GraphModule:
    tracer = _Tracer()
    try:
        return fx.GraphModule(module, tracer.trace(module))
    except Exception as exc:    # the user's forward raised while traced: data-dependent control flow, mostly
        where = ""
        if tracer.failed_in:
            where = (f" in module {tracer.failed_in[0]!r} ({tracer.failed_in[1]}; a neuron class of your own is "
                     "taught with snncheck.register_neuron in a plugin, --plugin FILE.py)")
        raise InputError(f"cannot trace the forward of {name} ({type(module).__name__}){where}: "
                         f"{type(exc).__name__}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [""])[0]


def _encoder(graph: fx.Graph, rank: int) -> tuple:
    """([unsqueeze, repeat], T) when the forward starts with x.unsqueeze(0).repeat(T, 1, ...) or
    .expand(T, -1, ...) on its input, else ([], None)."""
    x = next((n for n in graph.nodes if n.op == "placeholder"), None)
    first = next(iter(x.users), None) if x is not None and len(x.users) == 1 else None
    if first is None or not (_is_call(first, "unsqueeze", torch.unsqueeze) and first.args[1:] == (0,)
                             and len(first.users) == 1):
        return [], None
    rep = next(iter(first.users))
    sizes = rep.args[1:]
    if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)):
        sizes = tuple(sizes[0])
    fill = {"repeat": 1, "expand": -1}.get(rep.target) if rep.op == "call_method" else None
    if (fill is None or rep.kwargs or len(sizes) != rank + 2 or not all(isinstance(s, int) for s in sizes)
            or sizes[0] < 1 or any(s != fill for s in sizes[1:])):
        return [], None
    return [first, rep], int(sizes[0])


def _is_call(node: fx.Node, method: str, *functions) -> bool:
    return (node.op == "call_method" and node.target == method) or \
           (node.op == "call_function" and node.target in functions)


_ADDS = (operator.add, operator.iadd, torch.add)


class _Reading:
    """The walk over the traced nodes that builds the graph's nodes and edges."""

    def __init__(self, traced: fx.GraphModule, encoder: list, input_shape: tuple, name: str):
        self.traced, self.input_shape, self.name = traced, input_shape, name
        self.nodes, self.edges = {}, []
        self.value_of = {}          # fx node -> the graph node holding its value
        self.shape_reads = set()    # x.shape / x.size(i) nodes: allowed only as the sizes of a flatten
        self.output = None
        skip = set(encoder)
        for node in traced.graph.nodes:
            if node in skip:
                if node is encoder[-1]:
                    self.value_of[node] = "input"
                continue
            self._read(node, len(encoder) > 0)

    def _read(self, node: fx.Node, encoded: bool):
        if node.op == "placeholder":
            require(not self.nodes, lambda: f"{self.name}: its forward takes more than one input ({node.name!r})")
            self.nodes["input"] = P.Input(self.input_shape)
            if not encoded:
                self.value_of[node] = "input"
        elif node.op == "call_module":
            self._module(node)
        elif node.op == "output":
            (value,) = node.args
            require(isinstance(value, fx.Node) and value in self.value_of,
                    lambda: f"{self.name}: its forward must return one tensor, it returns {value!r}")
            self.output = self.value_of[value]
        elif self._is_shape_read(node):
            self.shape_reads.add(node)
        else:
            self._function(node)

    def _module(self, node: fx.Node):
        path, m = str(node.target), self.traced.get_submodule(str(node.target))
        require(len(node.args) == 1 and not node.kwargs,
                lambda: f"{self.name}: module {path!r} is called with {len(node.args) + len(node.kwargs)} "
                        "arguments; one tensor is supported")
        prev = self._tensor(node, node.args[0])
        for suffix, prim in convert_module(path, m, lambda: Graph(self.nodes, self.edges, name=self.name).shapes[prev]):
            name = f"{path}.{suffix}" if suffix else path
            require(name not in self.nodes, lambda: f"{self.name}: module {name!r} runs more than once in its "
                                                    "forward (or clashes with another node's name)")
            self._add(name, prim, [prev])
            prev = name
        self.value_of[node] = prev

    def _function(self, node: fx.Node):
        args = [a for a in node.args if isinstance(a, fx.Node) and a not in self.shape_reads]
        if _is_call(node, "add", *_ADDS) or _is_call(node, "add_"):
            require(len(node.args) == 2 and len(args) == 2 and not node.kwargs,
                    lambda: self._refusal(node, "only the sum of two tensors has a graph twin (Add)"))
            self._op(node, "add", P.Add(), args)
        elif node.op in ("call_method", "call_function") and _flatten_like(node):
            require(len(args) == 1, lambda: self._refusal(node, "a flatten takes one tensor"))
            self._op(node, "flatten", P.Flatten(), args)
        elif _is_call(node, "mean", torch.mean) and _mean_over_time(node):
            require(all(user.op == "output" for user in node.users),
                    lambda: self._refusal(node, "a mean over time is a readout: only the output may use it"))
            self._op(node, "mean", P.MeanOverTime(), args)
        else:
            raise InputError(self._refusal(node, "no graph primitive computes it (supported: a + b, torch.add, "
                                                 "a per-sample flatten/view/reshape, .mean(0) at the output)"))

    def _op(self, node: fx.Node, op: str, prim, args: list):
        scope = _scope(node)
        base_name = f"{scope}.{op}" if scope else op
        name, k = base_name, 0
        while name in self.nodes:
            k += 1
            name = f"{base_name}_{k}"
        self._add(name, prim, [self._tensor(node, a) for a in args])
        self.value_of[node] = name

    def _add(self, name: str, prim, sources: list):
        self.nodes[name] = prim
        self.edges += [(s, name) for s in sources]

    def _tensor(self, node: fx.Node, arg) -> str:
        require(isinstance(arg, fx.Node) and arg in self.value_of,
                lambda: self._refusal(node, f"its input {arg} is not a value of the graph"))
        return self.value_of[arg]

    def _is_shape_read(self, node: fx.Node) -> bool:
        if node.op == "call_function" and node.target is getattr and node.args[1] == "shape":
            return True
        if node.op == "call_function" and node.target is operator.getitem:
            return node.args[0] in self.shape_reads
        return node.op == "call_method" and node.target == "size"

    def _refusal(self, node: fx.Node, why: str) -> str:
        target = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", node.target)
        where = f"module {_scope(node)!r}" if _scope(node) else "the top-level forward"
        return f"{self.name}: cannot import node {node.name!r} ({node.op} {target}) in {where}: {why}"


def _scope(node: fx.Node) -> str:
    """The path of the innermost module whose forward runs `node` ('' at the top level)."""
    stack = node.meta.get("nn_module_stack") or {}
    return list(stack.values())[-1][0] if stack else ""


def _flatten_like(node: fx.Node) -> bool:
    """A flatten of the trailing dimensions, a view or a reshape: which dimensions it keeps is checked on the
    probe (`_check_shapes`)."""
    if node.target in ("view", "reshape") or node.target is torch.reshape:
        return True
    if node.target == "flatten" or node.target is torch.flatten:
        end = node.kwargs.get("end_dim", node.args[2] if len(node.args) > 2 else -1)
        return end == -1
    return False


def _mean_over_time(node: fx.Node) -> bool:
    dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else None)
    keep = node.kwargs.get("keepdim", node.args[2] if len(node.args) > 2 else False)
    return dim in (0, (0,), [0]) and not keep and set(node.kwargs) <= {"dim", "keepdim"}


def _neuron_modules(module: nn.Module, graph: Graph) -> dict:
    out = {}
    for name in graph.neurons:
        try:
            out[name] = module.get_submodule(name)
        except AttributeError:
            raise InputError(f"neuron {name!r} is not a submodule of the model, so its runs cannot be "
                             "recorded") from None
    return out


def _without_encoder(module: nn.Module, graph: fx.Graph, encoder: list) -> fx.GraphModule:
    """The traced forward taking [T, N, ...] directly: the encoder's output replaced by the input."""
    copy, mapping = fx.Graph(), {}
    copy.output(copy.graph_copy(graph, mapping))
    x = next(n for n in copy.nodes if n.op == "placeholder")
    mapping[encoder[-1]].replace_all_uses_with(x)
    for node in reversed(encoder):
        copy.erase_node(mapping[node])
    return fx.GraphModule(module, copy)


# ----------------------------------------------------------------------------------------------- checks
def _probe_size(timesteps: Optional[int]) -> tuple:
    """(T, N) of the probes; N != T, so that a view swapping them is caught."""
    t = timesteps or PROBE_STEPS
    return t, PROBE_SAMPLES if t != PROBE_SAMPLES else PROBE_SAMPLES + 1


def _probe(graph: Graph, timesteps: Optional[int]) -> tuple:
    """(what the module's own forward takes, the same as [N, T, ...] for the graph): seeded uniform [0, 1)."""
    t, n = _probe_size(timesteps)
    gen = torch.Generator().manual_seed(0)
    if timesteps is not None:
        frames = torch.rand((n,) + graph.input_shape, generator=gen)
        return frames, np.repeat(frames.numpy()[:, None], t, axis=1)
    seq = torch.rand((t, n) + graph.input_shape, generator=gen)
    return seq, np.ascontiguousarray(seq.numpy().swapaxes(0, 1))


def _check_shapes(traced: fx.GraphModule, graph: Graph, value_of: dict, timesteps: Optional[int], name: str):
    """Every traced node's shape on a probe is [T, N, *its graph node's shape] ([N, ...] after a mean over time)."""
    t, n = _probe_size(timesteps)
    probe, _ = _probe(graph, timesteps)
    _propagate(traced, probe, name)
    for node, gname in value_of.items():
        lead = (n,) if isinstance(graph.nodes[gname], P.MeanOverTime) else (t, n)
        actual = getattr(node.meta.get("tensor_meta"), "shape", None)
        require(actual is not None, lambda: f"{name}: node {_label(node)!r} does not make one tensor")
        actual, expected = tuple(actual), lead + graph.shapes[gname]
        require(actual == expected, lambda: f"{name}: node {gname!r} makes {list(actual)} on a probe "
                                            f"[T={t}, N={n}, ...] where its graph twin ({graph.nodes[gname].kind}) "
                                            f"makes {list(expected)}; a flatten, view or reshape must keep [T, N] "
                                            "and flatten each sample")


def _propagate(traced: fx.GraphModule, probe: torch.Tensor, name: str):
    at = {}

    class Prop(ShapeProp):
        def run_node(self, n):
            at["node"] = n
            return super().run_node(n)

    try:    # ShapeProp prints the traceback of a failing node to stderr before raising: the user gets one line
        with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):
            Prop(traced).propagate(probe)
    except RuntimeError as exc:
        cause = exc.__cause__ or exc
        raise InputError(f"{name}: a probe input {list(probe.shape)} fails at node {_label(at['node'])!r}: "
                         f"{type(cause).__name__}: {_first_line(cause)} (in multi-step mode every layer receives "
                         "[T, N, ...]: a plain torch layer needs layer.SeqToANNContainer or its twin in "
                         "SpikingJelly's layer.*)") from None
    finally:
        functional.reset_net(traced)


def _label(node: fx.Node) -> str:
    return str(node.target) if node.op == "call_module" else node.name


def _self_check(graph: Graph, model: TorchModel, name: str):
    """The module's own forward, run as the user calls it (frames when it has its own encoder, else a [T, N, ...]
    sequence) on a seeded probe, against the graph in the reference (BatchNorm folded). In graph order, the first
    neuron whose input differs beyond float32 rounding, or whose spikes flip where |H - threshold| exceeds the
    rounding bound (x (t+1) steps), while every neuron before it agreed in that sample, is named; with no flip at
    all, the module's output must match the graph's output node."""
    module_input, x = _probe(graph, model.timesteps)
    folded = fold_batchnorm(graph)
    output = _folded_name(graph, graph.meta["output"])
    with torch.no_grad(), recording(model, graph.neurons) as seen:
        model.reset()
        out = model.module(module_input)
        model.reset()
    require(all("s" in seen[n] for n in graph.neurons),
            lambda: f"{name}: neuron {next(n for n in graph.neurons if 's' not in seen[n])!r} does not run in "
                    "its own forward")
    keep = {folded.inputs_of(n)[0] for n in folded.neurons} | {output}
    ref = evaluate(folded, {folded.input: x}, exact=False, record_v=True,
                   keep=[n for n in keep if not P.is_neuron(folded.nodes[n])])      # a neuron's entry is its record
    bounds = rounding_bounds(folded, float(x.max()), exact=False)      # the probe is float
    where, flipped = _first_difference(folded, seen, ref, bounds)
    if where is None and not flipped:
        where = _output_difference(folded, output, out, _value(folded, ref, output))
    if where is not None:
        raise InputError(f"the graph read from {name} does not reproduce its forward: first difference at node "
                         f"{where[0]!r} ({where[1]})")


def _folded_name(graph: Graph, name: str) -> str:
    """The node of the folded graph that holds `name`'s value (a BatchNorm's is its synapse)."""
    return next((syn for syn, bn in folded_from(graph).items() if bn == name), name)


def _first_difference(folded: Graph, seen: dict, ref: dict, bounds: dict) -> tuple:
    """((neuron, what differs) or None, whether any spike differs at all)."""
    upstream, flipped = None, False
    for name in folded.neurons:
        x = np.swapaxes(seen[name]["x"], 0, 1).astype(np.float64)
        n, t = x.shape[:2]
        upstream = np.full(n, t) if upstream is None else upstream
        agreed = (np.arange(t)[None, :] < upstream[:, None]).reshape((n, t) + (1,) * (x.ndim - 2))
        x_ref = np.broadcast_to(_value(folded, ref, folded.inputs_of(name)[0]), x.shape)
        differ = (np.swapaxes(seen[name]["s"], 0, 1) > 0) != ref[name][0]
        what = _input_difference(folded, name, np.where(agreed, np.abs(x - x_ref), 0.0), bounds[name]) or \
            _unexplained_flip(folded.nodes[name], differ & agreed, ref[name][2], bounds[name])
        if what:
            return (name, what), True
        any_t = differ.reshape(n, t, -1).any(axis=2)
        upstream = np.minimum(upstream, np.where(any_t.any(axis=1), any_t.argmax(axis=1), t))
        flipped |= bool(any_t.any())
    return None, flipped


def _input_difference(folded: Graph, name: str, dx: np.ndarray, bound: float) -> Optional[str]:
    if dx.max() <= bound:
        return None
    step, sample, idx = _first(dx > bound)
    return (f"its input differs by {dx[sample, step][idx]:.3g} at step {step}, sample {sample}, neuron {idx}, beyond "
            f"float32 rounding ({bound:.2g}); its input is {_terms(folded, name)}")


def _unexplained_flip(node: P.Neuron, differ: np.ndarray, h_ref: np.ndarray, bound: float) -> Optional[str]:
    """A neuron's first flip in a sample whose margin |H - threshold| exceeds the bound of its step."""
    t = differ.shape[1]
    allowed = bound * (np.arange(t) + 1).reshape((1, t) + (1,) * (differ.ndim - 2))
    margin = np.abs(h_ref.astype(np.float64) - float(node.threshold))
    bad = differ & (np.cumsum(differ, axis=1) == 1) & (margin > allowed)
    if not bad.any():
        return None
    step, sample, idx = _first(bad)
    return (f"a spike differs at step {step}, sample {sample}, neuron {idx} where |H - threshold| = "
            f"{margin[sample, step][idx]:.3g}, beyond float32 rounding ({bound * (step + 1):.2g})")


def _value(graph: Graph, ref: dict, name: str) -> np.ndarray:
    return ref[name][0] if P.is_neuron(graph.nodes[name]) else ref[name]


def _first(mask: np.ndarray) -> tuple:
    """(step, sample, neuron index) of the earliest True of [N, T, ...], then the lowest sample and neuron."""
    n, t = mask.shape[:2]
    step, sample, flat = (int(v) for v in np.argwhere(mask.reshape(n, t, -1).transpose(1, 0, 2))[0])
    return step, sample, tuple(int(i) for i in np.unravel_index(flat, mask.shape[2:]))


def _terms(graph: Graph, name: str) -> str:
    return " + ".join(" -> ".join((term.source,) + term.path) for term in graph.terms(name))


def _output_difference(folded: Graph, output: str, out: torch.Tensor, ref: np.ndarray) -> Optional[tuple]:
    """(output, what differs) unless the module's output equals the graph's within float32 tolerance."""
    mine = out.detach().cpu().numpy().astype(np.float64)
    if isinstance(folded.nodes[output], P.MeanOverTime):
        theirs = ref[:, 0]
    else:
        theirs = np.swapaxes(np.broadcast_to(ref, (ref.shape[0], mine.shape[0]) + ref.shape[2:]), 0, 1)
    if mine.shape != theirs.shape:
        return output, f"the module returns shape {list(mine.shape)}, the graph {list(theirs.shape)}"
    tol = 1e-4 * (1.0 + float(np.abs(theirs).max(initial=0.0)))
    diff = float(np.abs(mine - theirs).max(initial=0.0))
    return None if diff <= tol else (output, f"the module's output differs from the graph's by {diff:.3g} "
                                             f"(float32 tolerance {tol:.2g})")
