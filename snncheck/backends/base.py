"""What every backend returns, the one interface they share, and the registry each keeps of its primitives.

A backend runs a graph on inputs `[N, T, *input_shape]` and records, for every neuron node, every sample and every
step: the spikes, the membrane potential after reset (`v`) and, where it can, the charged potential before firing
(`h`). Results are plain data (NumPy arrays and dicts) that can be saved to `.npz` and compared later; backends
know nothing of comparison. A pipelined backend (PAIBox) returns its records raw, T + L - 1 steps long, with the
lag it expects per node in `meta["expected_lag"]`; `snncheck.align` crops them.

Before running, a backend says what it cannot run and why (`accepts(graph) -> [Refusal]`), from its registry: one
entry per primitive type, whose absence is itself a reason ("no entry for AvgPool2d: ...").
"""
from __future__ import annotations

import abc
import dataclasses
import json
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from ..errors import require
from ..graph import Graph
from ..graph import primitives as P


# ----------------------------------------------------------------------------------------------- results
@dataclass(frozen=True, eq=False)
class LayerRecord:
    """One neuron node's trace. Arrays are `[N, steps, *shape]`; `steps` is T once aligned."""
    name: str
    spikes: np.ndarray                 # bool
    v: Optional[np.ndarray] = None     # membrane after reset
    h: Optional[np.ndarray] = None     # charged membrane before firing
    threshold: float = 1.0
    rounding_bound: float = 0.0        # |error| a float32 run may have in h at step 0 (0: exact arithmetic)

    @property
    def shape(self) -> tuple:
        return tuple(self.spikes.shape[2:])

    @property
    def steps(self) -> int:
        return self.spikes.shape[1]

    def replace(self, **changes) -> "LayerRecord":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, eq=False)
class OutputRecord:
    """One readout's values (`Graph.readouts`: a rate, a Linear head...): `[N, T, *shape]`, or `[N, 1, *shape]`
    for one value per run. Not spikes: compared as numbers, in the units of the run's own network."""
    name: str
    values: np.ndarray

    def replace(self, **changes) -> "OutputRecord":
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, eq=False)
class RunResult:
    """The output of one backend on one graph and one input batch."""
    backend: str                  # which simulator: "reference", "spikingjelly", "paibox", "recorded"...
    label: str                    # how reports name this run, e.g. "paibox:b"
    layers: tuple                 # (LayerRecord,) in the graph's neuron order
    meta: dict = field(default_factory=dict)   # JSON-able facts: expected_lag, lags, timing, seconds, ...
    outputs: tuple = ()           # (OutputRecord,) in the graph's readout order, where the backend has them

    def __post_init__(self):
        object.__setattr__(self, "layers", tuple(self.layers))
        object.__setattr__(self, "outputs", tuple(self.outputs))

    def output(self, name: str) -> OutputRecord:
        return next(o for o in self.outputs if o.name == name)

    def layer(self, name: str) -> LayerRecord:
        for rec in self.layers:
            if rec.name == name:
                return rec
        raise KeyError(name)

    @property
    def names(self) -> list:
        return [rec.name for rec in self.layers]

    @property
    def samples(self) -> int:
        return int(self.layers[0].spikes.shape[0]) if self.layers else 0

    @property
    def raw(self) -> bool:
        """Pipelined and not yet aligned."""
        return "expected_lag" in self.meta and "lags" not in self.meta

    def replace(self, **changes) -> "RunResult":
        return dataclasses.replace(self, **changes)

    def rows(self, rows) -> "RunResult":
        """The run restricted to some samples (a list of rows copies, so the rest can be freed)."""
        pick = lambda a: None if a is None else a[rows]        # noqa: E731
        return self.replace(layers=[r.replace(spikes=pick(r.spikes), v=pick(r.v), h=pick(r.h)) for r in self.layers],
                            outputs=[o.replace(values=pick(o.values)) for o in self.outputs])

    def save(self, path) -> None:
        arrays = {}
        for i, rec in enumerate(self.layers):
            for key in ("spikes", "v", "h"):
                if getattr(rec, key) is not None:
                    arrays[f"{i}/{key}"] = getattr(rec, key)
        arrays.update({f"out{i}/values": o.values for i, o in enumerate(self.outputs)})
        header = {"backend": self.backend, "label": self.label, "meta": self.meta,
                  "layers": [{"name": r.name, "threshold": float(r.threshold),
                              "rounding_bound": float(r.rounding_bound)} for r in self.layers],
                  "outputs": [o.name for o in self.outputs]}
        np.savez_compressed(path, __header__=np.array(json.dumps(header, default=_jsonable)), **arrays)

    @classmethod
    def load(cls, path) -> "RunResult":
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["__header__"]))
            layers = [LayerRecord(name=info["name"], threshold=info["threshold"],
                                  rounding_bound=info["rounding_bound"],
                                  **{k: data[f"{i}/{k}"] if f"{i}/{k}" in data else None
                                     for k in ("spikes", "v", "h")})
                      for i, info in enumerate(header["layers"])]
            outputs = [OutputRecord(name, data[f"out{i}/values"]) for i, name in enumerate(header.get("outputs", []))]
        return cls(header["backend"], header["label"], layers, header["meta"], outputs)


def _jsonable(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(type(o).__name__)


# ----------------------------------------------------------------------------------------------- refusals
@dataclass(frozen=True)
class Refusal:
    """Why a backend cannot run a graph: the node (None: the graph as a whole) and the reason."""
    backend: str
    node: Optional[str]
    reason: str

    def __str__(self) -> str:
        where = f"node {self.node!r}: " if self.node else ""
        return f"{self.backend} cannot run it: {where}{self.reason}"


class Registry:
    """What one backend does with each primitive type: an implementation and, optionally, a check that refuses
    some instances (a float weight where integers are needed...). A type with no entry is unsupported, and the
    refusal says why (`missing(kind)`)."""

    def __init__(self, backend: str, missing: Callable[[str], str]):
        self.backend, self.missing = backend, missing
        self._impl: dict = {}
        self._checks: dict = {}

    def register(self, *types, check: Optional[Callable] = None):
        """Decorator: `fn` implements `types`; `check(graph, name, node) -> reason or None`."""
        def deco(fn):
            for t in types:
                self._impl[t] = fn
                if check is not None:
                    self._checks[t] = check
            return fn
        return deco

    def allow(self, *types, check: Optional[Callable] = None) -> None:
        """Types the backend handles without a per-node implementation here (it sees them some other way)."""
        self.register(*types, check=check)(None)

    def lookup(self, node):
        for t in type(node).__mro__:
            if t in self._impl:
                return self._impl[t]
        raise KeyError(type(node).__name__)

    def supports(self, node) -> bool:
        return any(t in self._impl for t in type(node).__mro__)

    def refusals(self, graph: Graph) -> list:
        out = []
        for name in graph.order:
            node = graph.nodes[name]
            kind = next((t for t in type(node).__mro__ if t in self._impl), None)
            if kind is None:
                out.append(Refusal(self.backend, name, self.missing(node.kind)))
            elif kind in self._checks:
                reason = self._checks[kind](graph, name, node)
                if reason:
                    out.append(Refusal(self.backend, name, reason))
        return out


# ----------------------------------------------------------------------------------------------- backends
class Backend(abc.ABC):
    """One simulator behind the small interface every other module uses (Polygraphy's runner)."""
    name = "backend"
    pipelined = False         # answers k-1 steps late at pipeline stage k (raw records need alignment)

    def __init__(self, module=None, source=None, progress: bool = False):
        """`module`: the user's own torch module for this subject (SpikingJelly runs it as trained); `source`:
        where the network comes from when it is not built from the graph (a user's own PAIBox network)."""
        self.module, self.source, self.progress = module, source, progress

    def accepts(self, graph: Graph) -> list:
        """[Refusal]: what in `graph` this backend cannot run, and why (empty: it can run it)."""
        return []

    @abc.abstractmethod
    def run(self, graph: Graph, inputs: np.ndarray, label: str, record_v: bool = True) -> RunResult:
        """Records of every neuron node of `graph` for inputs [N, T, *input_shape]."""


def check_inputs(graph: Graph, inputs) -> np.ndarray:
    """Inputs are `[N, T, *input_shape]`, finite, with at least one sample and one step."""
    inputs = _shaped(graph, inputs)
    require(bool(np.all(np.isfinite(inputs))), NOT_FINITE)
    return inputs


def check_inputs_range(graph: Graph, inputs) -> tuple:
    """`check_inputs` by the inputs' min and max, returned beside them: (inputs, min, max) as floats (NaN and
    infinities show in min or max; a backend that needs the range reads the inputs twice instead of four times)."""
    inputs = _shaped(graph, inputs)
    lo, hi = (float(inputs.min()), float(inputs.max())) if inputs.size else (0.0, 0.0)     # (a layer of width 0)
    require(np.isfinite(lo) and np.isfinite(hi), NOT_FINITE)
    return inputs, lo, hi


NOT_FINITE = "inputs contain NaN or infinite values"


def _shaped(graph: Graph, inputs) -> np.ndarray:
    inputs = np.asarray(inputs)
    shape = graph.input_shape
    require(inputs.ndim == len(shape) + 2 and tuple(inputs.shape[2:]) == shape,
            lambda: f"inputs have shape {inputs.shape}; network {graph.name!r} takes "
                    f"[N, T, {', '.join(map(str, shape))}]")
    require(inputs.shape[0] > 0 and inputs.shape[1] > 0, lambda: f"inputs have shape {inputs.shape}: no sample or "
                                                                 "no step")
    require(inputs.dtype.kind in "biuf", lambda: f"inputs must be numbers, got dtype {inputs.dtype}")
    return inputs


U = 2.0 ** -24       # float32 unit roundoff


def rounding_bounds(graph: Graph, input_max: float, exact: Optional[bool] = None) -> dict:
    """Per neuron, a bound on the float32 error of one step's synaptic input X (0 where the run is exact: by default
    an integer graph; an integer-valued graph fed float inputs is not, `exact=False`).

    A dot product of n terms errs by at most n * u * sum|w_i x_i| (u = 2**-24); with inputs bounded by `x_max`
    (the input's maximum, 1 for spikes) that is n * u * (max_o sum_i |W_oi| * x_max + |b_o|), doubled for a
    BatchNorm folded on one side only. Terms of a merge add their bounds."""
    if graph.is_integer if exact is None else exact:
        return {n: 0.0 for n in graph.neurons}
    out = {}
    for name in graph.neurons:
        total = 0.0
        for term in graph.terms(name):
            x_max = float(input_max) if term.source == graph.input else 1.0
            bound = 4 * U * x_max
            for n in term.path:
                node = graph.nodes[n]
                if isinstance(node, P.SYNAPSES):
                    w = np.abs(np.asarray(node.weight, np.float64)).reshape(node.weight.shape[0], -1)
                    b = np.abs(np.asarray(node.bias, np.float64)) if node.bias is not None else 0.0
                    x_max = float(np.max(w.sum(axis=1) * x_max + b))
                    bound = 2 * (w.shape[1] + 2) * U * x_max
                elif isinstance(node, P.Scale):
                    x_max *= abs(float(node.factor))
                    bound += 4 * U * x_max
            total += bound
        out[name] = total + 4 * U * abs(float(graph.nodes[name].threshold))
    return out


def window(a: Optional[np.ndarray], lag: int, t: int) -> Optional[np.ndarray]:
    """Steps [lag, lag + t) of a pipelined record [N, steps, ...] (a view), padded with zeros where the record is
    shorter: a mis-built pipeline may end before its expected lag, and the mismatches must stay visible."""
    if a is None:
        return None
    out = a[:, lag:lag + t]
    if out.shape[1] < t:
        out = np.concatenate([out, np.zeros((a.shape[0], t - out.shape[1]) + a.shape[2:], a.dtype)], axis=1)
    return out
