"""The NumPy reference: same-step semantics (every layer sees this step's output of the layer before), batched
over samples, and the arbiter between the simulators.

Synaptic layers are time-independent, so they run once on all N*T frames through BLAS. Integer networks are
exact: products and sums run in float32 when every partial sum is provably below 2**24, else float64 (exact
below 2**53), and are then held in int64. Float networks run in float32 with the neuron update in SpikingJelly's
operation order (the equations live in `snncheck.ir`), so what differs from SpikingJelly is only the summation
order of the synaptic input.
"""
from __future__ import annotations

import time

import numpy as np

from .. import ir
from ..errors import require
from .base import LayerRecord, Runner, RunResult, rounding_bounds


class ReferenceRunner(Runner):
    name = "reference"

    def _run(self, inputs: np.ndarray) -> RunResult:
        start = time.perf_counter()
        net = self.network
        require(not any(isinstance(l, ir.BatchNorm) for l in net.layers),
                "the reference runs folded networks: call snncheck.ir.fold_batchnorm first")
        exact = (net.is_integer and bool(np.all(inputs == np.round(inputs)))
                 and not any(isinstance(l, ir.AvgPool2d) for l in net.layers))   # averages are fractions
        n, t = inputs.shape[:2]
        x = inputs.reshape((n * t,) + inputs.shape[2:])
        x = x.astype(np.int64) if exact else x.astype(np.float32)
        bounds = rounding_bounds(net, float(np.abs(inputs).max()))
        records = []
        for layer in net.layers:
            if isinstance(layer, ir.NEURON_TYPES):
                spikes, v, h = run_neuron(layer, x.reshape((n, t) + x.shape[1:]), self.record_v)
                records.append(LayerRecord(layer.name, spikes, v, h, float(layer.threshold), bounds[layer.name]))
                x = spikes.reshape(x.shape).astype(x.dtype)
            else:
                x = apply_synapse(layer, x, exact)
        meta = {"exact": exact, "seconds": time.perf_counter() - start}
        return RunResult(self.name, self.label, records, meta)


def run_neuron(neuron: ir.Neuron, x: np.ndarray, record_v: bool = True):
    """x: [N, T, ...] synaptic input. Returns spikes (bool), v after reset and h before firing, [N, T, ...]."""
    v = np.full(x[:, 0].shape, neuron.initial_v, dtype=x.dtype)
    spikes = np.empty(x.shape, dtype=bool)
    vs = np.empty_like(x) if record_v else None
    hs = np.empty_like(x) if record_v else None
    for step in range(x.shape[1]):
        h = neuron.charge(v, x[:, step])
        s = neuron.fire(h)
        v = neuron.reset(h, s)
        spikes[:, step] = s
        if record_v:
            vs[:, step], hs[:, step] = v, h
    return spikes, vs, hs


def apply_synapse(layer, x: np.ndarray, exact: bool) -> np.ndarray:
    """Applies a non-neuron layer to a batch `[B, *shape]`."""
    if isinstance(layer, ir.Flatten):
        return x.reshape(x.shape[0], -1)
    if isinstance(layer, ir.MaxPool2d):
        return _windows(x, layer.kernel, layer.stride, layer.padding).max(axis=(-2, -1))
    if isinstance(layer, ir.AvgPool2d):
        return _windows(x.astype(np.float32), layer.kernel, layer.stride, (0, 0)).mean(axis=(-2, -1), dtype=np.float32)
    if isinstance(layer, ir.Linear):
        y = _matmul(x, layer.weight.T, exact, _bound(x, layer.weight))
        return y + _bias(layer, y)
    if isinstance(layer, ir.Conv2d):
        return conv2d(x, layer, exact)
    raise NotImplementedError(type(layer).__name__)


def conv2d(x: np.ndarray, layer: ir.Conv2d, exact: bool) -> np.ndarray:
    o, cg, kh, kw = layer.weight.shape
    cols = _windows(x, (kh, kw), layer.stride, layer.padding)           # [B, C, OH, OW, kh, kw]
    bound = _bound(x, layer.weight)
    outs = []
    for g in range(layer.groups):
        part = cols[:, g * cg:(g + 1) * cg]                               # [B, cg, OH, OW, kh, kw]
        part = part.transpose(0, 2, 3, 1, 4, 5).reshape(part.shape[0], part.shape[2], part.shape[3], -1)
        w = layer.weight[g * (o // layer.groups):(g + 1) * (o // layer.groups)].reshape(o // layer.groups, -1)
        outs.append(_matmul(part, w.T, exact, bound))                     # [B, OH, OW, o/g]
    y = np.concatenate(outs, axis=-1).transpose(0, 3, 1, 2)
    y = np.ascontiguousarray(y)
    return y + _bias(layer, y)[:, None, None]


def _matmul(a: np.ndarray, b: np.ndarray, exact: bool, bound: float) -> np.ndarray:
    if not exact:
        return np.matmul(a.astype(np.float32), b.astype(np.float32))
    dtype = np.float32 if bound < 2 ** 24 else np.float64               # BLAS, exact in either range
    require(bound < 2 ** 53, "synaptic sums exceed 2**53: integer network too large for exact float64")
    return np.rint(np.matmul(a.astype(dtype), b.astype(dtype))).astype(np.int64)


def _bound(x: np.ndarray, weight: np.ndarray) -> float:
    """Largest possible |partial sum| of one output: max_o sum_i |W_oi| * max|x|."""
    w = np.abs(weight.astype(np.float64)).reshape(weight.shape[0], -1).sum(axis=1).max()
    return float(w * (np.abs(x).max() if x.size else 0))


def _bias(layer, y: np.ndarray):
    if layer.bias is None:
        return np.zeros(y.shape[-1] if isinstance(layer, ir.Linear) else y.shape[1], dtype=y.dtype)
    return np.asarray(layer.bias).astype(y.dtype)


def _windows(x: np.ndarray, kernel, stride, padding) -> np.ndarray:
    """[B, C, H, W] -> [B, C, OH, OW, kh, kw] views of each window (zero padding)."""
    if padding[0] or padding[1]:
        x = np.pad(x, ((0, 0), (0, 0), (padding[0], padding[0]), (padding[1], padding[1])))
    win = np.lib.stride_tricks.sliding_window_view(x, tuple(kernel), axis=(2, 3))
    return win[:, :, ::stride[0], ::stride[1]]
