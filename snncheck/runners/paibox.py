"""PAIBox runner: builds a `pb.Network` from an integer Network and simulates it one sample at a time.

Mapping (facts in SEMANTICS.md):
- IF/AdditiveLIF with hard reset -> `reset_v=<python int>`; soft reset -> `reset_v=None` (PAIBox's default).
- a Conv2d/Linear bias -> `pb.LIF(bias=...)`; weights must be int8, thresholds integers in [0, 2**29 - 1].
- MaxPool2d on spikes -> a depthwise ones-kernel `pb.Conv2d` into a `pb.BypassNeuron` (same spikes as OR-pooling,
  much faster than SpikingMaxPool2d); it is a pipeline stage of its own.
- every stage k (1-based) gets `tick_wait_start=k, delay=1`; stage k then answers k-1 steps late, so the run
  lasts T + L - 1 steps (zeros after frame T). The raw, unaligned records are returned; `snncheck.align` aligns.
"""
from __future__ import annotations

import time
from typing import Optional

import numpy as np

from .. import ir
from ..errors import InputError, require
from .base import LayerRecord, Runner, RunResult

INT8 = (-128, 127)
THRESHOLD_MAX = 2 ** 29 - 1


class PAIBoxRunner(Runner):
    name = "paibox"

    def __init__(self, network: ir.Network, label=None, timing: str = "pipeline", record_v: bool = True,
                 progress: bool = False, batch: int = 1, workers: int = 1, executor=None):
        """timing: "pipeline" (tick_wait_start = stage index, the correct recipe) or "flat" (tick_wait_start=1
        everywhere: the common mistake, kept so that the harness can show what it looks like).
        batch: samples per simulation (`paibox_batched`; falls back to 1 for a network that cannot be stacked).
        workers: processes sharing the samples (or `executor`, a `snncheck.parallel` executor kept across runs)."""
        super().__init__(network, label, record_v)
        require(timing in ("pipeline", "flat"), f"unknown timing {timing!r}")
        require(int(batch) >= 1 and int(workers) >= 1, "batch and workers must be at least 1")
        self.timing = timing
        self.progress = progress
        self.batch, self.workers, self.executor = int(batch), int(workers), executor
        check_deployable(network)

    def _run(self, inputs: np.ndarray) -> RunResult:
        start = time.perf_counter()
        require(bool(np.all(inputs == np.round(inputs))) and inputs.min() >= 0 and inputs.max() <= 255,
                "PAIBox input must be integers in 0..255 (InputProj casts to uint8)")
        inputs = inputs.astype(np.uint8)
        if self.executor is not None or self.workers > 1:
            records, how = self._run_workers(inputs)
        else:
            records, how = simulate_network(self.network, inputs, self.timing, self.record_v, self.progress,
                                            self.batch)
        thresholds = {n.name: float(n.threshold) for n in self.network.neurons}
        layers = [LayerRecord(name, s, v, None, thresholds[name]) for name, (s, v) in records.items()]
        meta = {"seconds": time.perf_counter() - start, "timing": self.timing, "raw": True,
                "expected_lag": ir.expected_lags(self.network), "steps": int(layers[0].steps), **how}
        return RunResult(self.name, self.label, layers, meta)

    def _run_workers(self, inputs: np.ndarray):
        """Contiguous pieces of the samples, one simulation per piece in a worker; records joined in order."""
        from tqdm import tqdm
        from .. import parallel
        ex = self.executor or parallel.ProcessExecutor(self.workers)
        try:
            pieces = parallel.split(len(inputs), 4 * ex.workers if self.progress else ex.workers)
            items = [(self.network, inputs[lo:hi], self.timing, self.record_v, False, self.batch)
                     for lo, hi in pieces]
            done = list(tqdm(parallel.imap(ex, simulate_network, items, ahead=len(items)), total=len(items),
                             desc="paibox", unit="piece", disable=not self.progress, leave=False))
        finally:
            if self.executor is None:
                ex.close()
        records = {name: tuple(None if parts[0][k] is None else np.concatenate([p[k] for p in parts])
                               for k in (0, 1))
                   for name, parts in ((name, [d[0][name] for d in done]) for name in done[0][0])}
        return records, dict(done[0][1], workers=ex.workers)


def simulate_network(net: ir.Network, inputs: np.ndarray, timing: str = "pipeline", record_v: bool = True,
                     progress: bool = False, batch: int = 1):
    """({name: (spikes, v)} raw, {"batch": samples per simulation[, "batch_fallback": why not more]})."""
    how = {"batch": 1}
    if batch > 1 and len(inputs) > 1:
        from .paibox_batched import simulate_batched
        try:
            records, used = simulate_batched(net, inputs, batch, timing, record_v, progress)
            return records, {"batch": used}
        except InputError as exc:
            how["batch_fallback"] = str(exc)
    return simulate(build(net, timing), inputs, record_v, progress), how


def check_deployable(net: ir.Network) -> None:
    """Refuses, naming the layer, what PAIBox cannot run bit-exactly."""
    prev_neuron = False
    for i, l in enumerate(net.layers):
        where = f"layer {l.name!r} ({type(l).__name__})"
        if isinstance(l, ir.BatchNorm):
            raise InputError(f"{where}: fold BatchNorm before deploying to PAIBox")
        if isinstance(l, (ir.LIF, ir.ParametricLIF)):
            raise InputError(f"{where}: PAIBox has no multiplicative leak; only IF and additive-leak LIF deploy")
        if isinstance(l, ir.AvgPool2d):
            raise InputError(f"{where}: PAIBox's SpikingAvgPool2d is a majority vote, not an average")
        if isinstance(l, ir.MaxPool2d) and not prev_neuron:
            raise InputError(f"{where}: max pooling must follow a spiking layer in PAIBox")
        if isinstance(l, ir.SYNAPSE_TYPES):
            _check_integers(l.name, "weight", l.weight, *INT8)
            if l.bias is not None:
                _check_integers(l.name, "bias", l.bias, -(2 ** 29), 2 ** 29 - 1)
            nxt = next((m for m in net.layers[i + 1:] if not isinstance(m, ir.Flatten)), None)
            if not isinstance(nxt, ir.NEURON_TYPES):
                raise InputError(f"{where}: must be followed by a spiking layer in PAIBox")
        if isinstance(l, ir.NEURON_TYPES):
            _check_integers(l.name, "threshold", l.threshold, 0, THRESHOLD_MAX)
            if l.v_reset is not None:
                _check_integers(l.name, "v_reset", l.v_reset, -(2 ** 29), 2 ** 29 - 1)
            if l.initial_v != 0:
                raise InputError(f"{where}: PAIBox neurons always start at v = 0; an initial membrane of "
                                 f"{l.initial_v} (e.g. QCFS's threshold/2) cannot be expressed")
            inp = net.input_of(l.name)
            if inp is None and not isinstance(l, ir.AdditiveLIF):
                raise InputError(f"{where}: not fed by a Conv2d/Linear")
            prev_neuron = True
        elif not isinstance(l, (ir.MaxPool2d, ir.Flatten)):
            prev_neuron = False


def _check_integers(layer: str, what: str, value, lo: int, hi: int) -> None:
    a = np.asarray(value)
    if a.dtype.kind == "f":
        require(bool(np.all(np.isfinite(a))), f"layer {layer!r}: {what} contains NaN or infinite values")
        require(bool(np.all(a == np.round(a))),
                f"layer {layer!r}: {what} is not integer-valued (PAIBox runs integer networks only; convert first)")
    require(bool(a.min() >= lo and a.max() <= hi),
            f"layer {layer!r}: {what} ranges over [{a.min()}, {a.max()}], outside PAIBox's [{lo}, {hi}]")


class Built:
    """A built pb.Network with its input node, and probes per recorded neuron layer."""

    def __init__(self, network, inp, probes: dict, stages: int):
        self.network, self.inp, self.probes, self.stages = network, inp, probes, stages


class Layout:
    """How the layers of one sample become PAIBox nodes: here one sample per node, node shapes are the layers'
    shapes. `snncheck.runners.paibox_batched` lays many samples into the same nodes instead."""

    def __init__(self, net: ir.Network):
        self.shapes = dict(zip([l.name for l in net.layers], net.shapes()))
        self.input_shape = tuple(net.input_shape)

    def neuron(self, l: ir.Neuron, synapse):
        """(node shape, per-neuron bias or None, scalar leak) of neuron layer `l` fed by `synapse`."""
        shape = self.shapes[l.name]
        return (shape,) + neuron_drive(l, shape, synapse)

    def connect(self, pb, src, dst, synapse):
        return _connect(pb, src, dst, synapse)

    def pool(self, l: ir.MaxPool2d):
        """(node shape, pb.Conv2d keyword arguments) of max pooling on spikes: a depthwise ones kernel."""
        shape = self.shapes[l.name]
        return shape, _pool_conv(shape[0], l.kernel, l.stride, l.padding)


def build(net: ir.Network, timing: str = "pipeline", layout: Optional[Layout] = None,
          cache_components: bool = True) -> Built:
    """The pb.Network of an integer network. `layout`: how samples map to nodes (default: one sample);
    `cache_components=False` keeps PAIBox's own graph walk at every step (the baseline of benchmarks/run.py)."""
    import paibox as pb
    from paibox.naming import clear_name_cache
    clear_name_cache(ignore_warn=True)          # node names must be unique per process
    layout = layout or Layout(net)
    pnet = (_network_class(pb) if cache_components else _plain_network_class(pb))()
    pnet.inp = pb.InputProj(input=None, shape_out=layout.input_shape)
    src, synapse, nodes, probes, k = pnet.inp, None, [], {}, 0

    def tick(stage):
        return {"tick_wait_start": stage if timing == "pipeline" else 1, "delay": 1}

    syn_list = []
    for l in net.layers:
        if isinstance(l, ir.SYNAPSE_TYPES):
            synapse = l
        elif isinstance(l, ir.NEURON_TYPES):
            k += 1
            shape, bias, leak = layout.neuron(l, synapse)
            node = _make_neuron(pb, l, shape, bias, leak, tick(k))
            syn_list.append(layout.connect(pb, src, node, synapse))
            nodes.append(node)
            probes[l.name] = (pb.Probe(node, "spike"), pb.Probe(node, "voltage"))
            src, synapse = node, None
        elif isinstance(l, ir.MaxPool2d):
            k += 1
            shape, conv = layout.pool(l)
            node = pb.BypassNeuron(shape, **tick(k))
            syn_list.append(pb.Conv2d(src, node, **conv))
            nodes.append(node)
            src = node
    pnet.stage_nodes = pb.NodeList(nodes)
    pnet.synapse_nodes = pb.NodeList(syn_list)
    pnet.probe_nodes = pb.NodeList([p for pair in probes.values() for p in pair])
    return Built(pnet, pnet.inp, probes, k)


_NETWORK_CLASS = None


def _plain_network_class(pb):
    class _Net(pb.Network):
        pass
    return _Net


def _network_class(pb):
    """A pb.Network that collects its components once. PAIBox walks the whole object graph to find them at every
    step (DynSysGroup.components), about half of a small network's simulation time; the graph does not change
    after `build`, and the update order stays PAIBox's own."""
    global _NETWORK_CLASS
    if _NETWORK_CLASS is None:
        class _Net(pb.Network):
            @property
            def components(self):
                found = self.__dict__.get("_snncheck_components")
                if found is None:
                    found = pb.Network.components.fget(self)
                    self.__dict__["_snncheck_components"] = found
                return found
        _NETWORK_CLASS = _Net
    return _NETWORK_CLASS


def neuron_drive(l: ir.Neuron, shape, synapse) -> tuple:
    """(per-neuron bias array or None, scalar leak): what PAIBox adds to the membrane every step. A Conv/Linear
    bias becomes a per-neuron bias; an additive leak stays a scalar unless it is per neuron."""
    bias = None if synapse is None or synapse.bias is None else _per_neuron(np.asarray(synapse.bias), shape)
    leak = getattr(l, "leak", 0)
    if np.ndim(leak) > 0:
        bias = (0 if bias is None else bias) + np.asarray(leak, np.int64).reshape(shape)
        leak = 0
    return bias, int(leak)


def _make_neuron(pb, l, shape, bias, leak: int, kw):
    reset = None if l.v_reset is None else int(l.v_reset)      # a Python int, or PAIBox silently resets softly
    if bias is not None and np.size(bias) == 1:   # PAIBox int()s a one-element bias, which NumPy 2 refuses for 1-d
        bias, leak = None, leak + int(np.asarray(bias).reshape(-1)[0])
    if bias is None and leak == 0:
        return pb.IF(shape, int(l.threshold), reset_v=reset, **kw)
    return pb.LIF(shape, int(l.threshold), reset_v=reset, leak_v=leak, bias=0 if bias is None else bias, **kw)


def _per_neuron(bias: np.ndarray, shape) -> np.ndarray:
    """A per-channel bias (C,) spread to every neuron of a (C, H, W) layer; a (F,) bias stays."""
    if len(shape) == 3:
        return np.broadcast_to(bias.reshape(-1, 1, 1), shape).astype(np.int64)
    return bias.astype(np.int64).reshape(shape)


def _pool_conv(channels: int, kernel, stride, padding) -> dict:
    """Max pooling on spikes as a depthwise ones-kernel convolution into a BypassNeuron (fires when >= 1)."""
    return {"kernel": np.ones((channels, 1) + tuple(kernel), dtype=np.int8), "stride": tuple(stride),
            "padding": tuple(padding), "groups": channels}


def _connect(pb, src, dst, synapse):
    if isinstance(synapse, ir.Conv2d):
        return pb.Conv2d(src, dst, synapse.weight.astype(np.int8), stride=synapse.stride,
                         padding=synapse.padding, groups=synapse.groups)
    # FullConn flattens a (C, H, W) source C-major, as torch.flatten does
    return pb.FullConn(src, dst, synapse.weight.T.astype(np.int8))


def simulate(built: Built, inputs: np.ndarray, record_v: bool = True, progress: bool = False) -> dict:
    """Runs every sample for T + L - 1 steps (zero input after frame T); returns {name: (spikes, v)} raw."""
    import paibox as pb
    from tqdm import tqdm
    n, t = inputs.shape[:2]
    steps = t + built.stages - 1
    sim = pb.Simulator(built.network, start_time_zero=False)
    out = {name: ([], []) for name in built.probes}
    for i in tqdm(range(n), desc="paibox", unit="sample", disable=not progress, leave=False):
        for name, (s, v) in run_frames(sim, built, inputs[i], steps, record_v).items():
            out[name][0].append(s)
            out[name][1].append(v)
    result = {}
    for name, (spikes, volts) in out.items():
        shape = _probe_shape(built, name)
        s = np.stack(spikes).reshape((n, steps) + shape)
        v = np.stack(volts).reshape((n, steps) + shape) if record_v else None
        result[name] = (s, v)
    return result


def run_frames(sim, built: Built, frames: np.ndarray, steps: int, record_v: bool = True) -> dict:
    """One simulation from a reset: `frames[k]` is fed at step k, zeros after the last one. Returns
    {name: (spikes, v)} as the probes hold them, (steps, neurons); v is None unless recorded."""
    sim.reset()
    zeros = np.zeros(frames.shape[1:], dtype=frames.dtype)
    for step in range(steps):
        built.inp.input = frames[step] if step < len(frames) else zeros
        sim.run(1)
    return {name: (np.asarray(sim.data[ps], dtype=bool), np.asarray(sim.data[pv], dtype=np.int64) if record_v else None)
            for name, (ps, pv) in built.probes.items()}


def _probe_shape(built: Built, name: str) -> tuple:
    node = built.probes[name][0].target
    return tuple(node.shape_out) if hasattr(node, "shape_out") else tuple(node.varshape)
