"""The NumPy reference: same-step semantics (every layer sees this step's output of the layer before), batched
over samples, and the arbiter between the simulators.

Synaptic layers are time-independent, so they run once on all N*T frames through BLAS; the layers before the first
neuron run once per sample when every step carries the same frame (direct encoding). Integer networks are exact:
products and sums run in float32 when every partial sum is provably below 2**24, else float64 (exact below 2**53),
and are then held in int64. Float networks run in float32 with the neuron update in SpikingJelly's operation order
(the equations live in `snncheck.ir`), so what differs from SpikingJelly is only the summation order of the
synaptic input. Spikes travel as bool and are cast once, straight to the dtype of the next product.
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
        bounds = rounding_bounds(net, float(np.abs(inputs).max()))
        records, x = [], inputs
        for name, segment in ir.segments(net):
            spikes, v, h = run_segment(segment, x, self.record_v, exact)
            records.append(LayerRecord(name, spikes, v, h, float(segment[-1].threshold), bounds[name]))
            x = spikes
        meta = {"exact": exact, "seconds": time.perf_counter() - start}
        return RunResult(self.name, self.label, records, meta)


def run_segment(layers: list, x: np.ndarray, record_v: bool = True, exact=None):
    """One segment (the layers after a neuron up to and including the next one) on x [N, T, *in_shape]:
    (spikes, v, h) of its neuron, [N, T, *shape]."""
    return run_neuron(layers[-1], synaptic_input(layers, x, exact), record_v)


def synaptic_input(layers: list, x: np.ndarray, exact=None) -> np.ndarray:
    """The input X [N, T, *shape] that a segment's neuron receives: every layer but the neuron applied to x.

    Exact (int64) when the segment's parameters and x are integers, else float32. Direct encoding repeats one
    frame at every step: then the layers see it once per sample and the result is broadcast over time."""
    n, t = x.shape[:2]
    if exact is None:
        exact = (all(ir.is_integer_valued(p) for l in layers for p in ir.parameters_of(l))
                 and (x.dtype == bool or bool(np.all(x == np.round(x)))))
    work = np.int64 if exact else np.float32
    frames = x[:, :1] if t > 1 and np.array_equal(x[:, 1:], x[:, :-1]) else x
    flat = frames.reshape((-1,) + x.shape[2:])
    if flat.dtype != bool:
        flat = flat.astype(work, copy=False)
    for layer in layers[:-1]:
        flat = apply_synapse(layer, flat, exact)
    out = flat.astype(work, copy=False).reshape((n, -1) + flat.shape[1:])
    return np.broadcast_to(out, (n, t) + out.shape[2:])


def run_neuron(neuron: ir.Neuron, x: np.ndarray, record_v: bool = True):
    """x: [N, T, ...] synaptic input. Returns spikes (bool), v after reset and h before firing, [N, T, ...]."""
    v = np.full(x[:, 0].shape, neuron.initial_v, dtype=x.dtype)
    spikes = np.empty(x.shape, dtype=bool)
    vs = np.empty(x.shape, x.dtype) if record_v else None
    hs = np.empty(x.shape, x.dtype) if record_v else None
    for step in range(x.shape[1]):
        h = neuron.charge(v, x[:, step])
        s = neuron.fire(h)
        v = neuron.reset(h, s)
        spikes[:, step] = s
        if record_v:
            vs[:, step], hs[:, step] = v, h
    return spikes, vs, hs


def apply_synapse(layer, x: np.ndarray, exact: bool) -> np.ndarray:
    """Applies a non-neuron layer to a batch `[B, *shape]` (bool spikes or numbers)."""
    if isinstance(layer, ir.Flatten):
        return x.reshape(x.shape[0], -1)
    if isinstance(layer, ir.MaxPool2d):
        return max_pool(x, layer.kernel, layer.stride, layer.padding)
    if isinstance(layer, ir.AvgPool2d):
        return _windows(x.astype(np.float32), layer.kernel, layer.stride, (0, 0)).mean(axis=(-2, -1), dtype=np.float32)
    if isinstance(layer, ir.Linear):
        dtype = _dtype(x, layer.weight, exact)
        with one_blas_thread():
            y = x.astype(dtype, copy=False) @ layer.weight.T.astype(dtype)
        y = _finish(y, exact)
        return y + _bias(layer, y)
    if isinstance(layer, ir.Conv2d):
        with one_blas_thread():
            return conv2d(x, layer, exact)
    raise NotImplementedError(type(layer).__name__)


def one_blas_thread():
    """BLAS limited to one thread around the reference's products. On this shared 2-core machine a second
    OpenBLAS thread waits for a busy core: a 2048x64 @ 64x32 product took 12 ms with two threads and 0.6 ms
    with one, and the reference on the 28x28 CSNN ran ~15% faster (benchmarks/run.py measures both)."""
    from ..parallel import blas_threads
    return blas_threads(1)


def conv2d(x: np.ndarray, layer: ir.Conv2d, exact: bool) -> np.ndarray:
    """im2col per group, laid out [B, C*kh*kw, OH*OW] so that one stacked matmul W @ cols gives NCHW directly."""
    o, cg, kh, kw = layer.weight.shape
    dtype = _dtype(x, layer.weight, exact)
    win = _windows(x.astype(dtype, copy=False), (kh, kw), layer.stride, layer.padding)   # [B, C, OH, OW, kh, kw]
    b, _, oh, ow = win.shape[:4]
    og = o // layer.groups
    y = np.empty((b, o, oh * ow), dtype)
    for g in range(layer.groups):
        cols = win[:, g * cg:(g + 1) * cg].transpose(0, 1, 4, 5, 2, 3).reshape(b, cg * kh * kw, oh * ow)
        np.matmul(layer.weight[g * og:(g + 1) * og].reshape(og, -1).astype(dtype), cols, out=y[:, g * og:(g + 1) * og])
    y = _finish(y.reshape(b, o, oh, ow), exact)
    return y + _bias(layer, y)[:, None, None]


def max_pool(x: np.ndarray, kernel, stride, padding) -> np.ndarray:
    """Max over each window as a running maximum of kh*kw strided slices (on bool spikes: an OR)."""
    (kh, kw), (sh, sw) = kernel, stride
    low = False if x.dtype == bool else (-np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min)
    x = _pad(x, padding, low)
    oh, ow = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
    out = None
    for u in range(kh):
        for v in range(kw):
            part = x[:, :, u:u + sh * (oh - 1) + 1:sh, v:v + sw * (ow - 1) + 1:sw]
            out = part.copy() if out is None else np.maximum(out, part, out=out)
    return out


def _dtype(x: np.ndarray, weight: np.ndarray, exact: bool):
    """float32 unless an exact product could reach 2**24 (then float64, exact below 2**53)."""
    if not exact:
        return np.float32
    bound = _bound(x, weight)
    require(bound < 2 ** 53, "synaptic sums exceed 2**53: integer network too large for exact float64")
    return np.float32 if bound < 2 ** 24 else np.float64


def _finish(y: np.ndarray, exact: bool) -> np.ndarray:
    """Exact sums are integers already: held in int64 from here on."""
    return y.astype(np.int64) if exact else y


def _bound(x: np.ndarray, weight: np.ndarray) -> float:
    """Largest possible |partial sum| of one output: max_o sum_i |W_oi| * max|x|."""
    w = np.abs(weight.astype(np.float64)).reshape(weight.shape[0], -1).sum(axis=1).max()
    x_max = (1.0 if x.any() else 0.0) if x.dtype == bool else float(np.abs(x).max() if x.size else 0)
    return float(w * x_max)


def _bias(layer, y: np.ndarray):
    if layer.bias is None:
        return np.zeros(y.shape[-1] if isinstance(layer, ir.Linear) else y.shape[1], dtype=y.dtype)
    return np.asarray(layer.bias).astype(y.dtype)


def _windows(x: np.ndarray, kernel, stride, padding) -> np.ndarray:
    """[B, C, H, W] -> [B, C, OH, OW, kh, kw] views of each window (zero padding)."""
    x = _pad(x, padding, 0)
    win = np.lib.stride_tricks.sliding_window_view(x, tuple(kernel), axis=(2, 3))
    return win[:, :, ::stride[0], ::stride[1]]


def _pad(x: np.ndarray, padding, value) -> np.ndarray:
    """x [B, C, H, W] with `padding` rows and columns of `value` around (np.pad is several times slower)."""
    ph, pw = padding
    if not (ph or pw):
        return x
    b, c, h, w = x.shape
    out = np.full((b, c, h + 2 * ph, w + 2 * pw), value, dtype=x.dtype)
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out
