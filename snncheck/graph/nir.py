"""NIR graphs (the `nir` package, 1.0.8) <-> snncheck graphs, each parameter mapped by NIR's own equations.

NIR defines continuous dynamics; a simulator steps them with a time step dt (SpikingJelly and snnTorch assume
dt = 1e-4 s). Forward Euler with dt gives, per step:
    IF:   v <- v + dt*r * I                      fire when v > v_threshold, then v <- v_reset
    LIF:  v <- v + dt/tau * (v_leak - v + r*I)   (the same firing and reset)
so an `IF` is snncheck's IF (fire rule ">", hard reset to v_reset) after a `Scale(dt*r)` (left out when dt*r = 1),
and a `LIF` with v_leak = v_reset is snncheck's LIF with tau = tau_NIR/dt: decay_input when r = 1, not when
r = tau_NIR/dt (SpikingJelly's two forms), else after a `Scale(r)`. NIR sums every edge into a node: a node with
several inputs gets an `Add` before it. `SumPool2d` becomes a depthwise ones-kernel Conv2d (exact). What has no
exact twin (CubaLIF, LI, I, Delay, Threshold, Conv1d, dilation, non-uniform neuron parameters, v_leak != v_reset)
is refused naming the node.

Export writes the graph (BatchNorm folded) back: IF and LIF with hard reset, Conv2d, Linear/Affine, Flatten,
AvgPool2d, Scale; Adds become several edges. NIR cannot say `>=`, soft reset, an initial membrane or max pooling:
a soft reset, a v_init or a MaxPool2d is refused naming the node; a `>=` neuron is written with NIR's `>` and
listed in `Exported.ties` (its spikes at H == threshold will differ in any NIR reader).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import require
from . import primitives as P
from .graph import Graph
from .transforms import fold_batchnorm

DT = 1e-4           # SpikingJelly's and snnTorch's assumption


# ----------------------------------------------------------------------------------------------- reading
def to_graph(g, dt: float = DT, name: str = "nir") -> Graph:
    """A `nir.NIRGraph` as a snncheck Graph (see the module docstring for the mapping)."""
    import nir
    require(dt > 0, lambda: f"dt must be positive, got {dt}")
    inputs = [n for n, node in g.nodes.items() if isinstance(node, nir.Input)]
    require(len(inputs) == 1, lambda: f"NIR graph {name!r} has {len(inputs)} Input nodes; snncheck takes one")
    preds = {n: [a for a, b in g.edges if b == n] for n in g.nodes}
    nodes, edges, first, last = {}, [], {}, {}
    for n, node in g.nodes.items():
        if isinstance(node, nir.Output):
            continue
        mapper = _imports().get(type(node))
        require(mapper is not None, lambda: f"NIR node {n!r} ({type(node).__name__}): snncheck has no exact "
                                            "primitive for it")
        chain = mapper(n, node, dt)
        if len(preds[n]) > 1:
            chain = [(f"{n}.sum", P.Add())] + chain
        for (a, _), (b, _) in zip(chain, chain[1:]):
            edges.append((a, b))
        nodes.update(chain)
        first[n], last[n] = chain[0][0], chain[-1][0]
    edges += [(last[a], first[b]) for a, b in g.edges if a in last and b in first]
    return Graph(nodes, tuple(edges), name=name, meta={"source": "nir", "dt": dt})


def _uniform(name: str, node, field: str) -> float:
    values = np.unique(np.asarray(getattr(node, field), np.float64))
    require(values.size == 1, lambda: f"NIR node {name!r}: {field} differs across neurons; snncheck's neurons take "
                                      "one value per layer")
    return float(values[0])


def _number(x: float):
    """An integer-valued parameter as an int (so an integer network stays integer), else the float."""
    return int(x) if float(x).is_integer() else float(x)


def _pair(x) -> tuple:
    a = np.broadcast_to(np.asarray(x).reshape(-1), (2,))
    return int(a[0]), int(a[1])


def _arr(x) -> np.ndarray:
    a = np.asarray(x)
    return a if P.is_integer_valued(a) else a.astype(np.float32)


def _input(name, node, dt):
    return [(name, P.Input(tuple(int(d) for d in node.input_type["input"])))]


def _conv(name, node, dt):
    require(not isinstance(node.padding, str) or node.padding == "valid",
            lambda: f"NIR node {name!r}: padding {node.padding!r} is not supported; give it in numbers")
    require(_pair(node.dilation) == (1, 1), lambda: f"NIR node {name!r}: dilation {node.dilation} is not supported")
    padding = (0, 0) if isinstance(node.padding, str) else _pair(node.padding)
    bias = None if node.bias is None or not np.any(node.bias) else _arr(node.bias)
    return [(name, P.Conv2d(_arr(node.weight), bias, _pair(node.stride), padding, int(node.groups)))]


def _affine(name, node, dt):
    return [(name, P.Linear(_arr(node.weight), _arr(node.bias)))]


def _linear(name, node, dt):
    return [(name, P.Linear(_arr(node.weight)))]


def _flatten(name, node, dt):
    rank = len(node.input_type["input"])
    require(node.start_dim in (0, -rank) and node.end_dim in (-1, rank - 1),
            lambda: f"NIR node {name!r}: flattens dims {node.start_dim}..{node.end_dim}; snncheck flattens all")
    return [(name, P.Flatten())]


def _sumpool(name, node, dt):
    kernel, stride, padding = _pair(node.kernel_size), _pair(node.stride), _pair(node.padding)
    channels = int(np.asarray(node.input_type["input"])[0]) if "input" in node.input_type and \
        np.asarray(node.input_type["input"]).size else None
    require(channels, lambda: f"NIR node {name!r} (SumPool2d): its input shape is not given")
    return [(name, P.Conv2d(np.ones((channels, 1) + kernel, np.int64), None, stride, padding, channels))]


def _avgpool(name, node, dt):
    return [(name, P.AvgPool2d(_pair(node.kernel_size), _pair(node.stride), _pair(node.padding)))]


def _scale(name, node, dt):
    return [(name, P.Scale(_number(_uniform(name, node, "scale"))))]


def _if(name, node, dt):
    gain = dt * _uniform(name, node, "r")
    neuron = P.IF(_number(_uniform(name, node, "v_threshold")), "hard", _number(_uniform(name, node, "v_reset")),
                  fire_rule=">")
    return ([] if np.isclose(gain, 1.0, rtol=1e-6) else [(f"{name}.r", P.Scale(_number(gain)))]) + [(name, neuron)]


def _lif(name, node, dt):
    tau, r = _uniform(name, node, "tau") / dt, _uniform(name, node, "r")
    v_reset, v_leak = _uniform(name, node, "v_reset"), _uniform(name, node, "v_leak")
    require(np.isclose(v_leak, v_reset), lambda: f"NIR node {name!r}: v_leak {v_leak:g} differs from v_reset "
                                                 f"{v_reset:g}; snncheck's LIF leaks toward v_reset")
    decay_input = not np.isclose(r, tau, rtol=1e-6)
    neuron = P.LIF(_number(_uniform(name, node, "v_threshold")), "hard", _number(v_reset), fire_rule=">",
                   tau=float(tau), decay_input=decay_input)
    scaled = decay_input and not np.isclose(r, 1.0, rtol=1e-6)
    return ([(f"{name}.r", P.Scale(_number(r)))] if scaled else []) + [(name, neuron)]


@functools.cache
def _imports() -> dict:
    """{NIR type: mapper}; built on first use, so `nir` (and h5py) load only when a NIR file is read."""
    import nir
    return {nir.Input: _input, nir.Conv2d: _conv, nir.Affine: _affine, nir.Linear: _linear, nir.Flatten: _flatten,
            nir.SumPool2d: _sumpool, nir.AvgPool2d: _avgpool, nir.Scale: _scale, nir.IF: _if, nir.LIF: _lif}


# ----------------------------------------------------------------------------------------------- writing
@dataclass(frozen=True, eq=False)
class Exported:
    graph: object           # nir.NIRGraph
    ties: tuple             # neurons written with NIR's ">" though they fire on ">=" here


def export(graph: Graph, dt: float = DT, if_r: Optional[float] = None) -> Exported:
    """The graph as a `nir.NIRGraph` (BatchNorm folded); see the module docstring for what is refused. `if_r`: the
    r written for IF neurons (default 1/dt, NIR's meaning; snnTorch reads r as a per-step gain and takes only 1)."""
    import nir
    g = fold_batchnorm(graph)
    nodes, ties = {}, []
    for n in g.order:
        node = g.nodes[n]
        if isinstance(node, P.Add):
            continue
        writer = next((fn for t, fn in EXPORTS.items() if isinstance(node, t)), None)
        require(writer is not None, lambda: f"node {n!r} ({node.kind}): NIR cannot express it")
        nodes[n] = writer(g, n, node, dt) if writer is not _w_if else _w_if(g, n, node, dt, if_r)
        if P.is_neuron(node) and node.fire_rule == ">=":
            ties.append(n)
    edges = [(a, n) for n in nodes for a in _sources(g, n)]
    for out in g.outputs:
        nodes[f"{out}.output"] = nir.Output(output_type={"output": np.array(g.shapes[out])})
        edges.append((out, f"{out}.output"))
    return Exported(nir.NIRGraph(nodes, edges), tuple(ties))


def save(graph: Graph, path, dt: float = DT) -> Exported:
    """Writes the graph as a NIR file (`nir.write`)."""
    import nir
    out = export(graph, dt)
    nir.write(str(path), out.graph)
    return out


def _sources(g: Graph, n: str) -> list:
    """The nodes feeding n once Adds are dissolved into several edges (NIR sums what arrives at a node)."""
    out = []
    for p in g.inputs_of(n):
        out += _sources(g, p) if isinstance(g.nodes[p], P.Add) else [p]
    return out


def _full(g: Graph, n: str, value) -> np.ndarray:
    return np.full(g.shapes[n], float(value), dtype=np.float32)


def _hard(n: str, node: P.Neuron) -> None:
    require(node.reset == "hard", lambda: f"node {n!r}: NIR has no soft (subtractive) reset")
    require(node.v_init is None or node.v_init == node.v_reset,
            lambda: f"node {n!r}: NIR has no initial membrane potential (v_init={node.v_init})")


def _w_if(g, n, node, dt, r=None):
    import nir
    _hard(n, node)
    return nir.IF(r=_full(g, n, 1.0 / dt if r is None else r), v_threshold=_full(g, n, node.threshold),
                  v_reset=_full(g, n, node.v_reset))


def _w_lif(g, n, node, dt):
    import nir
    _hard(n, node)
    return nir.LIF(tau=_full(g, n, node.tau * dt), r=_full(g, n, 1.0 if node.decay_input else node.tau),
                   v_leak=_full(g, n, node.v_reset), v_threshold=_full(g, n, node.threshold),
                   v_reset=_full(g, n, node.v_reset))


def _w_conv(g, n, node, dt):
    import nir
    bias = node.bias if node.bias is not None else np.zeros(node.weight.shape[0])
    return nir.Conv2d(input_shape=tuple(g.shapes[g.inputs_of(n)[0]][1:]), weight=np.asarray(node.weight, np.float32),
                      stride=tuple(node.stride), padding=tuple(node.padding), dilation=(1, 1), groups=node.groups,
                      bias=np.asarray(bias, np.float32))


def _w_linear(g, n, node, dt):
    import nir
    w = np.asarray(node.weight, np.float32)
    return nir.Linear(weight=w) if node.bias is None else nir.Affine(weight=w, bias=np.asarray(node.bias, np.float32))


def _w_flatten(g, n, node, dt):
    import nir
    return nir.Flatten(input_type={"input": np.array(g.shapes[g.inputs_of(n)[0]])}, start_dim=0, end_dim=-1)


def _w_avgpool(g, n, node, dt):
    import nir
    return nir.AvgPool2d(kernel_size=np.array(node.kernel), stride=np.array(node.stride),
                         padding=np.array(node.padding))


def _w_scale(g, n, node, dt):
    import nir
    return nir.Scale(scale=_full(g, n, node.factor))


def _w_input(g, n, node, dt):
    import nir
    return nir.Input(input_type={"input": np.array(node.shape)})


EXPORTS = {P.Input: _w_input, P.IF: _w_if, P.LIF: _w_lif, P.Conv2d: _w_conv, P.Linear: _w_linear,
           P.Flatten: _w_flatten, P.AvgPool2d: _w_avgpool, P.Scale: _w_scale}
