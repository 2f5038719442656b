"""Recorded runs as files: per-layer spikes and membranes in NIR 1.0.8's data format, or other tools' dumps.

A records file is a `nir.NIRGraphData` written by `nir.write_data` (HDF5): one `NIRNodeData` per spiking layer,
named as the graph names it, with the observables
    "spikes": TimeGriddedData [N, T, F] (bool) or EventData (spike times in units of dt),
    "v":      TimeGriddedData [N, T, F] (the membrane after reset), optional,
and, for the graph's input node, "input": TimeGriddedData [N, T, F] (the inputs the run saw), optional.
F is the layer's neurons flattened C-major. The file's root attribute `snncheck` (JSON: backend, source, dt)
is optional and ignored by other tools.

Records made elsewhere (`.npz` of hook dumps, one array per layer, `<layer>.v` for membranes) load with an explicit
`Layout`: sample-major [N, T, ...], time-major [T, N, ...] or time merged into the batch [T*N, ...] as
SpikingJelly's MergeTemporalDim does; spikes of amplitude theta (or any number) rather than 1; first-spike times
[N, ...] (a TTFS network) turned into spike trains. A layout the shapes do not settle is refused in one line.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np

from .backends.base import LayerRecord, RunResult
from .errors import InputError, require
from .graph import Graph

ORDERS = ("sample", "time", "merged")
NIR_SUFFIXES = (".h5", ".hdf5", ".nir", ".nird")
INPUT_KEY = "input"


@dataclass(frozen=True)
class Layout:
    """How another tool laid out its records. `order`: "sample" [N, T, ...], "time" [T, N, ...], "merged"
    [T*N, ...] (time-major, MergeTemporalDim), None: whatever the shapes settle (NIR files: "sample", as NIR
    defines it). `amplitude`: what a spike's value is: None (1), a number, or "theta" (each layer's threshold).
    `first_spike`: spikes are given as first-spike times [N, ...] in steps (inf, NaN or negative: none)."""
    order: Optional[str] = None
    amplitude: Union[None, float, str] = None
    first_spike: bool = False

    def __post_init__(self):
        require(self.order in (None,) + ORDERS, lambda: f"layout order must be one of {ORDERS}, got {self.order!r}")
        require(self.amplitude in (None, "theta") or _positive(self.amplitude),
                lambda: f"spike amplitude must be 'theta' or a positive number, got {self.amplitude!r}")

    def describe(self) -> dict:
        return {"order": self.order, "amplitude": self.amplitude, "first_spike": self.first_spike}


def _positive(x) -> bool:
    try:
        return float(x) > 0
    except (TypeError, ValueError):
        return False


# ----------------------------------------------------------------------------------------------- writing
def save(run: RunResult, path, inputs: Optional[np.ndarray] = None, dt: float = 1.0, source: str = "") -> None:
    """Writes a run's records (and the inputs it saw, [N, T, ...]) as NIR data."""
    import h5py
    import nir

    def gridded(a):
        return nir.TimeGriddedData(np.ascontiguousarray(a.reshape(a.shape[0], a.shape[1], -1)), dt)

    nodes = {}
    for rec in run.layers:
        obs = {"spikes": gridded(rec.spikes.astype(bool))}
        if rec.v is not None:
            obs["v"] = gridded(rec.v)
        nodes[rec.name] = nir.NIRNodeData(obs)
    if inputs is not None:
        nodes[INPUT_KEY] = nir.NIRNodeData({"input": gridded(np.asarray(inputs))})
    nir.write_data(str(path), nir.NIRGraphData(nodes))
    with h5py.File(path, "a") as f:        # optional, for snncheck only; other readers skip root attributes
        f.attrs["snncheck"] = json.dumps({"backend": run.backend, "label": run.label, "dt": dt, "source": source})


# ----------------------------------------------------------------------------------------------- reading
@dataclass(frozen=True, eq=False)
class Raw:
    """A records file as read, before the layout is applied: {layer: {"spikes"|"v": array or nir EventData}}."""
    path: str
    layers: dict
    inputs: Optional[np.ndarray]
    meta: dict
    nir: bool

    def missing(self, graph: Graph) -> list:
        return [n for n in graph.neurons if n not in self.layers]


def read(path) -> Raw:
    """The raw contents of a records file (NIR data, or an .npz of arrays)."""
    path = Path(path)
    require(path.is_file(), lambda: f"records file not found: {path}")
    if path.suffix.lower() == ".npz":
        return _read_npz(path)
    require(path.suffix.lower() in NIR_SUFFIXES, lambda: f"{path}: records are NIR data files "
                                                         f"({', '.join(NIR_SUFFIXES)}) or .npz dumps")
    return _read_nir(path)


def _read_nir(path: Path) -> Raw:
    import h5py
    import nir
    try:
        data = nir.read_data(str(path))
        with h5py.File(path, "r") as f:
            meta = json.loads(f.attrs.get("snncheck", "{}"))
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{path}: not a NIR data file ({type(exc).__name__}: {exc})") from None
    layers, inputs = {}, None
    for name, node in data.nodes.items():
        require(isinstance(node, nir.NIRNodeData), lambda: f"{path}: node {name!r} is a nested graph; "
                                                           "records of nested NIR graphs are not supported")
        obs = {k: (v.data if isinstance(v, nir.TimeGriddedData) else v) for k, v in node.observables.items()}
        if name == INPUT_KEY and "input" in obs:
            inputs = obs["input"]
        elif "spikes" in obs:
            layers[name] = obs
    return Raw(str(path), layers, inputs, meta, nir=True)


def _read_npz(path: Path) -> Raw:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable .npz ({exc})") from None
    layers = {}
    for key, arr in arrays.items():
        name, _, obs = key.rpartition(".") if key.endswith((".v", ".spikes")) else (key, "", "spikes")
        layers.setdefault(name, {})[obs] = arr
    layers = {n: o for n, o in layers.items() if "spikes" in o}
    return Raw(str(path), layers, None, {}, nir=False)


def load(path, graph: Graph, samples: int, timesteps: int, layout: Layout = Layout(), label: str = "recorded:b",
         raw: Optional[Raw] = None) -> RunResult:
    """A records file as a RunResult of `graph`'s spiking layers, [N, T, *shape] each, with the layout applied.
    Every problem (a layer missing, shapes that fit no layout or several, spike values that are not 0/amplitude)
    is one InputError naming the file and the layer."""
    raw = raw or read(path)
    missing = raw.missing(graph)
    require(not missing, lambda: f"{raw.path}: no records of layer(s) {', '.join(missing)} (it has: "
                                 f"{', '.join(sorted(raw.layers)) or 'none'})")
    layers = []
    for name in graph.neurons:
        shape, theta = graph.shapes[name], float(graph.nodes[name].threshold)
        obs = raw.layers[name]
        where = f"{raw.path}: layer {name!r}"
        spikes = _spikes(obs["spikes"], layout, samples, timesteps, shape, theta, where, raw)
        v = obs.get("v")
        v = None if v is None else arrange(_head(np.asarray(v), raw, layout, samples),
                                            layout.order or _default_order(raw), samples, timesteps, shape,
                                            where + " (v)")
        layers.append(LayerRecord(name, spikes, v=v, threshold=theta))
    meta = {"recorded_from": raw.path, "layout": layout.describe(), "exact": False,
            **{k: raw.meta[k] for k in ("backend", "source", "dt") if raw.meta.get(k) not in (None, "")}}
    return RunResult("recorded", label, layers, meta)


def _default_order(raw: Raw) -> Optional[str]:
    return "sample" if raw.nir else None


def _head(a: np.ndarray, raw: Raw, layout: Layout, n: int) -> np.ndarray:
    """The first n samples of a sample-major record that holds more (a comparison on fewer samples)."""
    sample_major = (layout.order or _default_order(raw)) == "sample" or layout.first_spike
    return a[:n] if sample_major and a.ndim >= 2 and a.shape[0] > n else a


def _spikes(data, layout: Layout, n: int, t: int, shape: tuple, theta: float, where: str, raw: Raw) -> np.ndarray:
    import nir
    if isinstance(data, nir.EventData):            # spike times: NIR's own conversion to a time grid
        dt = float(raw.meta.get("dt", 1.0))
        data = data.to_time_gridded(dt).data
        data = data[:, :t] if data.shape[1] >= t else np.pad(data, ((0, 0), (0, t - data.shape[1]), (0, 0)))
    data = _head(np.asarray(data), raw, layout, n)
    if layout.first_spike:
        return first_spike_trains(data, n, t, shape, where)
    values = arrange(data, layout.order or _default_order(raw), n, t, shape, where)
    return _binary(values, layout.amplitude, theta, where)


def first_spike_trains(times: np.ndarray, n: int, t: int, shape: tuple, where: str) -> np.ndarray:
    """First-spike times [N, *shape] (or [N, F]; in steps; inf, NaN or negative: no spike) -> spike trains
    [N, T, *shape] with one spike at each time."""
    size = int(np.prod(shape))
    require(times.shape[0] == n and times.size == n * size,
            lambda: f"{where}: first-spike times have shape {times.shape}; expected [{n}, "
                    f"{', '.join(map(str, shape))}] ({n} samples)")
    times = times.reshape(n, size).astype(np.float64)
    fired = np.isfinite(times) & (times >= 0)
    require(np.all(times[fired] == np.round(times[fired])) and np.all(times[fired] < t),
            lambda: f"{where}: first-spike times must be whole steps below T={t}")
    out = np.zeros((n, t, size), dtype=bool)
    s, f = np.nonzero(fired)
    out[s, times[s, f].astype(int), f] = True
    return out.reshape((n, t) + tuple(shape))


def arrange(a: np.ndarray, order: Optional[str], n: int, t: int, shape: tuple, where: str) -> np.ndarray:
    """An array laid out as `order` (None: the one its shape allows, refused when several do) -> [N, T, *shape]."""
    size = int(np.prod(shape))
    fits = {o: lead for o, lead in (("sample", (n, t)), ("time", (t, n)), ("merged", (t * n,)))
            if a.shape[:len(lead)] == lead and int(np.prod(a.shape[len(lead):])) == size}
    if order is None:
        if len(fits) > 1 and n > 1 and t > 1:     # with one sample or one step every layout reads the same
            raise InputError(f"{where}: shape {a.shape} fits layouts {' and '.join(fits)} "
                             f"(N={n}, T={t}): give the layout (--layout {'|'.join(ORDERS)})")
        require(fits, lambda: f"{where}: shape {a.shape} fits no layout for N={n}, T={t}, layer shape {shape} "
                              "([N, T, ...], [T, N, ...] or [T*N, ...])")
        order = next(iter(fits))
    require(order in fits, lambda: f"{where}: shape {a.shape} is not {order}-major for N={n}, T={t}, layer "
                                   f"shape {shape}" + (f" (it fits {', '.join(fits)})" if fits else ""))
    if order == "sample":
        out = a.reshape((n, t) + tuple(shape))
    else:
        out = a.reshape((t, n) + tuple(shape)).swapaxes(0, 1)
    return np.ascontiguousarray(out)


def _binary(values: np.ndarray, amplitude, theta: float, where: str) -> np.ndarray:
    """Spike values -> bool, after dividing by the amplitude; values other than 0 and the amplitude are refused."""
    if values.dtype == bool:
        return values
    amp = theta if amplitude == "theta" else (1.0 if amplitude is None else float(amplitude))
    found = np.unique(values)
    nonzero = found[found != 0]
    if amplitude is None and len(nonzero) == 1 and nonzero[0] != 1:
        raise InputError(f"{where}: spikes take the values 0 and {nonzero[0]:g}, not 0 and 1: give the spike "
                         "amplitude (--spike-amplitude theta or a number)")
    require(np.all(np.isclose(nonzero, amp, rtol=1e-6, atol=0)),
            lambda: f"{where}: spike values {_few(nonzero)} are not 0 or the amplitude {amp:g}")
    return values != 0


def _few(values) -> str:
    shown = ", ".join(f"{v:g}" for v in values[:4])
    return shown + (f" and {len(values) - 4} more" if len(values) > 4 else "")
