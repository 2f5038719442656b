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
                 progress: bool = False):
        """timing: "pipeline" (tick_wait_start = stage index, the correct recipe) or "flat" (tick_wait_start=1
        everywhere: the common mistake, kept so that the harness can show what it looks like)."""
        super().__init__(network, label, record_v)
        require(timing in ("pipeline", "flat"), f"unknown timing {timing!r}")
        self.timing = timing
        self.progress = progress
        check_deployable(network)

    def _run(self, inputs: np.ndarray) -> RunResult:
        start = time.perf_counter()
        require(bool(np.all(inputs == np.round(inputs))) and inputs.min() >= 0 and inputs.max() <= 255,
                "PAIBox input must be integers in 0..255 (InputProj casts to uint8)")
        built = build(self.network, self.timing)
        records = simulate(built, inputs.astype(np.uint8), self.record_v, self.progress)
        thresholds = {n.name: float(n.threshold) for n in self.network.neurons}
        layers = [LayerRecord(name, s, v, None, thresholds[name]) for name, (s, v) in records.items()]
        meta = {"seconds": time.perf_counter() - start, "timing": self.timing, "raw": True,
                "expected_lag": ir.expected_lags(self.network), "steps": int(layers[0].steps)}
        return RunResult(self.name, self.label, layers, meta)


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


def build(net: ir.Network, timing: str = "pipeline") -> Built:
    import paibox as pb
    from paibox.naming import clear_name_cache
    clear_name_cache(ignore_warn=True)          # node names must be unique per process

    class _Net(pb.Network):
        pass

    pnet = _Net()
    shapes = dict(zip([l.name for l in net.layers], net.shapes()))
    pnet.inp = pb.InputProj(input=None, shape_out=tuple(net.input_shape))
    src, synapse, nodes, probes, k = pnet.inp, None, [], {}, 0

    def tick(stage):
        return {"tick_wait_start": stage if timing == "pipeline" else 1, "delay": 1}

    syn_list = []
    for l in net.layers:
        if isinstance(l, ir.SYNAPSE_TYPES):
            synapse = l
        elif isinstance(l, ir.NEURON_TYPES):
            k += 1
            node = _make_neuron(pb, l, shapes[l.name], synapse, tick(k))
            syn_list.append(_connect(pb, src, node, synapse))
            nodes.append(node)
            probes[l.name] = (pb.Probe(node, "spike"), pb.Probe(node, "voltage"))
            src, synapse = node, None
        elif isinstance(l, ir.MaxPool2d):
            k += 1
            c = shapes[l.name][0]
            node = pb.BypassNeuron(shapes[l.name], **tick(k))
            kernel = np.zeros((c, 1) + tuple(l.kernel), dtype=np.int8) + 1
            syn_list.append(pb.Conv2d(src, node, kernel, stride=l.stride, padding=l.padding, groups=c))
            nodes.append(node)
            src = node
    pnet.stage_nodes = pb.NodeList(nodes)
    pnet.synapse_nodes = pb.NodeList(syn_list)
    pnet.probe_nodes = pb.NodeList([p for pair in probes.values() for p in pair])
    return Built(pnet, pnet.inp, probes, k)


def _make_neuron(pb, l, shape, synapse, kw):
    reset = None if l.v_reset is None else int(l.v_reset)      # a Python int, or PAIBox silently resets softly
    bias = None if synapse is None or synapse.bias is None else np.asarray(synapse.bias).astype(np.int64)
    leak = getattr(l, "leak", 0)
    if np.ndim(leak) > 0:
        bias = (0 if bias is None else _per_neuron(bias, shape)) + np.asarray(leak, np.int64).reshape(shape)
        leak = 0
    elif bias is not None:
        bias = _per_neuron(bias, shape)
    if bias is None and int(leak) == 0:
        return pb.IF(shape, int(l.threshold), reset_v=reset, **kw)
    return pb.LIF(shape, int(l.threshold), reset_v=reset, leak_v=int(leak), bias=0 if bias is None else bias, **kw)


def _per_neuron(bias: np.ndarray, shape) -> np.ndarray:
    """A per-channel bias (C,) spread to every neuron of a (C, H, W) layer; a (F,) bias stays."""
    if len(shape) == 3:
        return np.broadcast_to(bias.reshape(-1, 1, 1), shape).astype(np.int64)
    return bias.astype(np.int64).reshape(shape)


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
    zeros = np.zeros(inputs.shape[2:], dtype=np.uint8)
    for i in tqdm(range(n), desc="paibox", unit="sample", disable=not progress, leave=False):
        sim.reset()
        for step in range(steps):
            built.inp.input = inputs[i, step] if step < t else zeros
            sim.run(1)
        for name, (ps, pv) in built.probes.items():
            out[name][0].append(np.asarray(sim.data[ps], dtype=bool))
            if record_v:
                out[name][1].append(np.asarray(sim.data[pv], dtype=np.int64))
    result = {}
    for name, (spikes, volts) in out.items():
        shape = _probe_shape(built, name)
        s = np.stack(spikes).reshape((n, steps) + shape)
        v = np.stack(volts).reshape((n, steps) + shape) if record_v else None
        result[name] = (s, v)
    return result


def _probe_shape(built: Built, name: str) -> tuple:
    node = built.probes[name][0].target
    return tuple(node.shape_out) if hasattr(node, "shape_out") else tuple(node.varshape)
