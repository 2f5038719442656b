"""The NumPy reference: same-step semantics (every node sees this step's output of the nodes before it), batched
over samples, and the arbiter between the simulators.

Values travel as `[N, T', *shape]` with T' = T, or T' = 1 for a value that is the same at every step (direct
encoding repeats one frame; a readout is one value per run): a stateless primitive then runs once per sample and
the neurons broadcast it over time. Stateless primitives run on all N*T' frames at once through BLAS. Integer
graphs are exact (`exact_gemm`): products of int8-valued operands (spikes, int8 weights) by an int8 kernel with
int32 accumulation, else float32 BLAS when every partial sum is provably below 2**24, else float64 (exact below
2**53), then held in int32 where bounds prove every value (a neuron's membrane over the whole run included) below
2**30, else in int64. Float graphs run in float32 with the neuron update in SpikingJelly's operation order
(the equations live in `snncheck.graph.primitives`), so what differs from SpikingJelly is only the summation order
of the synaptic input. Spikes travel as bool and are cast once, to the dtype of the product that reads them.

`evaluate` runs any part of a graph from given values (the isolated per-layer mode feeds a layer the spikes that
another run produced at its inputs); `ReferenceBackend.run` is `evaluate` from the input.
"""
from __future__ import annotations

import time
import weakref
from typing import Iterable, Optional

import numpy as np

from ..errors import require
from ..graph import Graph, fold_batchnorm, is_integer_valued
from ..graph import primitives as P
from . import exact_gemm, fused_neuron, jit, small_ints
from .base import Backend, LayerRecord, OutputRecord, Registry, RunResult, check_inputs_range, rounding_bounds

OPS = Registry("reference", lambda kind: f"the reference has no implementation of {kind}")


class ReferenceBackend(Backend):
    name = "reference"

    def accepts(self, graph: Graph) -> list:
        return OPS.refusals(graph)

    def run(self, graph: Graph, inputs: np.ndarray, label: str = "reference", record_v: bool = True) -> RunResult:
        start = time.perf_counter()
        inputs, lo, hi = check_inputs_range(graph, inputs)
        graph = fold_batchnorm(graph)
        # an integer network on integer-valued inputs runs exactly, the inputs in the narrowest integer type
        ints = small_ints.integer_copy(inputs, lo, hi) if exact_graph(graph) else None
        exact = ints is not None
        bounds = rounding_bounds(graph, 0.0 if exact else max(abs(lo), abs(hi)), exact)
        inputs = ints if exact else inputs
        records = evaluate(graph, {graph.input: inputs}, exact=exact, record_v=record_v, keep=graph.readouts)
        layers = [LayerRecord(n, *records[n], threshold=float(graph.nodes[n].threshold), rounding_bound=bounds[n])
                  for n in graph.neurons]
        outputs = readout_records(graph, records, inputs.shape[1])
        return RunResult(self.name, label, layers, {"exact": exact, "seconds": time.perf_counter() - start},
                         outputs)


def readout_records(graph: Graph, values: dict, t: int) -> list:
    """[OutputRecord] of the graph's readouts from `evaluate`'s kept values, in steps: a readout computed once from
    a feed that is the same at every step ([N, 1, ...]) is that value at each of the t steps; a rate (a
    MeanOverTime on its way) stays one value per run."""
    out = []
    for n in graph.readouts:
        v = np.asarray(values[n])
        if v.shape[1] == 1 and t > 1 and not _per_run(graph, n):
            v = np.broadcast_to(v, (v.shape[0], t) + v.shape[2:]).copy()
        out.append(OutputRecord(n, v))
    return out


def _per_run(graph: Graph, name: str) -> bool:
    """A readout with one value per run (a MeanOverTime on its way from the spikes)."""
    stack, seen = [name], set()
    while stack:
        n = stack.pop()
        if isinstance(graph.nodes[n], P.MeanOverTime):
            return True
        seen.add(n)
        stack += [p for p in graph.inputs_of(n) if p in graph.offchip and p not in seen]
    return False


def is_exact(graph: Graph, inputs: np.ndarray) -> bool:
    """An exact graph (`exact_graph`) on integer inputs: then every value is an integer, computed exactly."""
    return exact_graph(graph) and is_integer_valued(inputs)


def exact_graph(graph: Graph) -> bool:
    """Integer parameters and no primitive that makes fractions (averages, leaks that multiply)."""
    return graph.is_integer and not graph.fractional


def evaluate(graph: Graph, feeds: dict, exact: bool, record_v: bool = True, targets: Optional[Iterable] = None,
             keep: Iterable = ()) -> dict:
    """Runs the nodes of `graph` needed for `targets` (default: every neuron) from `feeds` {node: [N, T, ...]}.

    Returns {neuron: (spikes, v, h)} for the neurons evaluated ([N, T, ...]; v and h None unless record_v) and
    {node: value} for the names in `keep`. Nodes upstream of the feeds are not evaluated."""
    targets = list(graph.neurons if targets is None else targets)
    t = next(iter(feeds.values())).shape[1]
    needed = _needed(graph, feeds, targets + list(keep))
    uses = {n: sum(1 for c in graph.consumers(n) if c in needed) for n in needed}
    values = {n: _compact(np.asarray(v)) for n, v in feeds.items()}
    work = np.int64 if exact else np.float32
    out, bounds = {}, {}
    for name in graph.order:
        if name not in needed or name in values:
            continue
        node = graph.nodes[name]
        ins = [values[p] for p in graph.inputs_of(name)]
        if P.is_neuron(node):
            x = ins[0] if narrow_state(node, ins[0], t, bounds.get(graph.inputs_of(name)[0])) else _as(ins[0], work)
            spikes, v, h = run_neuron(node, np.broadcast_to(x, (x.shape[0], t) + x.shape[2:]), record_v)
            out[name] = (spikes, v, h)
            values[name] = spikes
        else:
            values[name] = OPS.lookup(node)(node, ins, exact, work)
            if exact and isinstance(node, P.SYNAPSES):
                bounds[name] = _synapse_bound(node, ins[0])
        for p in graph.inputs_of(name):      # free what no one else will read
            uses[p] -= 1
            if uses[p] == 0 and p not in keep and p not in feeds:
                values.pop(p, None)
    out.update({n: values[n] for n in keep})
    return out


def _needed(graph: Graph, feeds: dict, targets: list) -> set:
    needed = graph.upstream(targets, stop=feeds)
    require(graph.input in feeds or graph.input not in needed,
            lambda: f"evaluating {targets} needs the input, which was not given")
    return needed


def _compact(x: np.ndarray) -> np.ndarray:
    """[N, T, ...] -> [N, 1, ...] when every step carries the same frame (direct encoding). Spike trains (bool: the
    isolated mode's feeds) are not searched: they are never the same at every step but when silent."""
    # (the first two steps first: event frames differ there, and the whole comparison is a pass over the input)
    if x.dtype != bool and x.shape[1] > 1 and np.array_equal(x[:, 1], x[:, 0]) and \
            np.array_equal(x[:, 1:], x[:, :-1]):
        return x[:, :1]
    return x


def _as(x: np.ndarray, dtype) -> np.ndarray:
    return x if x.dtype == dtype else x.astype(dtype)


def _frames(fn):
    """Lifts f([B, *shape]) -> [B, *shape'] to values [N, T', *shape]."""
    def lifted(node, ins, exact, work):
        x = ins[0]
        n, t = x.shape[:2]
        y = fn(node, x.reshape((n * t,) + x.shape[2:]), exact, work)
        return y.reshape((n, t) + y.shape[1:])
    return lifted


# ----------------------------------------------------------------------------------------------- neurons
def run_neuron(neuron: P.Neuron, x: np.ndarray, record_v: bool = True):
    """x: [N, T, ...] synaptic input. Returns spikes (bool), v after reset and h before firing, [N, T, ...].

    Each step writes straight into the records (or, without record_v, into two scratch frames). IF and
    AdditiveLIF with scalar parameters run compiled (`fused_neuron`), with the same results to the bit."""
    params = fused_neuron.plan(neuron, x)
    if params is not None:
        return fused_neuron.run(neuron, x, params, record_v)
    v = np.full(x[:, 0].shape, neuron.initial_v, dtype=x.dtype)
    spikes = np.empty(x.shape, dtype=bool)
    vs = np.empty(x.shape, x.dtype) if record_v else None
    hs = np.empty(x.shape, x.dtype) if record_v else None
    scratch = None if record_v else np.empty((2,) + v.shape, x.dtype)
    for step in range(x.shape[1]):
        h = neuron.charge(v, x[:, step], out=hs[:, step] if record_v else scratch[0])
        s = neuron.fire(h, out=spikes[:, step])
        v = neuron.after_fire(h, s, out=vs[:, step] if record_v else scratch[1])
    return spikes, vs, hs


OPS.allow(P.Input, P.Neuron)          # the input is fed; neurons run in `run_neuron`


# ----------------------------------------------------------------------------------------------- synapses
@OPS.register(P.Linear)
@_frames
def _linear(node: P.Linear, x, exact, work):
    weights = _prepared(node, _linear_weights)
    with one_blas_thread():
        if exact:
            x_max, x_fits = exact_gemm.operand(x)
            use = weights.kernel(x_max, x_fits)
            y = exact_gemm.product(x, weights.cast(use), use)
            y = y.astype(_narrowest(weights.w_sum * x_max + _bias_max(node)), copy=False)
        else:
            y = x.astype(np.float32, copy=False) @ weights.cast("float32")
    if node.bias is not None:
        y += _bias(node, y.dtype, y.shape[-1])
    return y


def _linear_weights(node: P.Linear) -> exact_gemm.Weights:
    """A Linear's W^T as its products read it, prepared once per node (a 4096x128 layer's statistics cost more
    than its product on spikes)."""
    return exact_gemm.Weights(np.asarray(node.weight).T)


_PREPARED = weakref.WeakKeyDictionary()       # node -> what its kernels prepare once (nodes are frozen)


def _prepared(node, make):
    """`make(node)`, computed once per node object (what it keeps per thread, a convolution's buffers, it keeps
    itself)."""
    cache = _PREPARED.setdefault(node, {})
    if make not in cache:
        cache[make] = make(node)
    return cache[make]


@OPS.register(P.Conv2d)
@_frames
def _conv(node: P.Conv2d, x, exact, work):
    with one_blas_thread():
        return conv2d(x, node, exact)


@OPS.register(P.Scale)
def _scale(node: P.Scale, ins, exact, work):
    x = _as(ins[0], work)
    return x * (np.int64(node.factor) if exact else np.float32(node.factor))


@OPS.register(P.Add)
def _add(node: P.Add, ins, exact, work):
    ins = [_as(x, work) for x in ins]         # bool + bool would be an OR
    t = max(x.shape[1] for x in ins)
    out = np.zeros((ins[0].shape[0], t) + ins[0].shape[2:], work)
    for x in ins:
        out += x
    return out


@OPS.register(P.Flatten)
def _flatten(node, ins, exact, work):
    x = ins[0]
    return x.reshape(x.shape[:2] + (-1,))


@OPS.register(P.MaxPool2d)
@_frames
def _max_pool(node: P.MaxPool2d, x, exact, work):
    return max_pool(x, node.kernel, node.stride, node.padding)


@OPS.register(P.AvgPool2d)
@_frames
def _avg_pool(node: P.AvgPool2d, x, exact, work):
    win = _windows(x.astype(np.float32), node.kernel, node.stride, node.padding)
    total = win.sum(axis=(-2, -1), dtype=np.float32)
    if node.count_include_pad or node.padding == (0, 0):
        return total / np.float32(np.prod(node.kernel))
    inside = _windows(np.ones((1, 1) + x.shape[2:], np.float32), node.kernel, node.stride, node.padding)
    return total / inside.sum(axis=(-2, -1), dtype=np.float32)


@OPS.register(P.AdaptiveAvgPool2d)
@_frames
def _adaptive_avg_pool(node: P.AdaptiveAvgPool2d, x, exact, work):
    rows, cols = node.windows(x.shape[2], 0), node.windows(x.shape[3], 1)
    total = np.einsum("ir,bcrq,jq->bcij", rows, x.astype(np.float32), cols, dtype=np.float32)
    return total / np.outer(rows.sum(1), cols.sum(1)).astype(np.float32)


@OPS.register(P.AdaptiveSumPool2d)
@_frames
def _adaptive_sum_pool(node: P.AdaptiveSumPool2d, x, exact, work):
    rows, cols = node.windows(x.shape[2], 0).astype(work), node.windows(x.shape[3], 1).astype(work)
    return np.einsum("ir,bcrq,jq->bcij", rows, _as(x, work), cols)


@OPS.register(P.Vote)
def _vote(node: P.Vote, ins, exact, work):
    x = ins[0]
    groups = x.shape[-1] // node.size
    x = x[..., :groups * node.size].reshape(x.shape[:-1] + (groups, node.size))
    return x.sum(axis=-1, dtype=np.float32) / np.float32(node.size)


@OPS.register(P.SumPool2d)
@_frames
def _sum_pool(node: P.SumPool2d, x, exact, work):
    return _windows(_as(x, work), node.kernel, node.stride, node.padding).sum(axis=(-2, -1), dtype=work)


@OPS.register(P.MeanOverTime)
def _mean_over_time(node, ins, exact, work):
    return ins[0].astype(np.float32).mean(axis=1, keepdims=True, dtype=np.float32)


OPS.allow(P.BatchNorm)       # folded into its synapse before running (ReferenceBackend.run)


# ----------------------------------------------------------------------------------------------- kernels
def one_blas_thread():
    """BLAS limited to one thread around the reference's products. On this shared 2-core machine a second
    OpenBLAS thread waits for a busy core: a 2048x64 @ 64x32 product took 12 ms with two threads and 0.6 ms
    with one, and the reference on the 28x28 CSNN ran ~15% faster (benchmarks/run.py measures both). Both cores
    still work on big integer convolutions: `exact_gemm.Conv2d` splits their frames over two Python threads."""
    from ..parallel import blas_threads
    return blas_threads(1)


def conv2d(x: np.ndarray, layer: P.Conv2d, exact: bool) -> np.ndarray:
    """A float graph's convolution in float32 by the same im2col and BLAS product as the integer one (only the
    summation order differs from SpikingJelly's); integer graphs: `conv2d_exact`."""
    if exact:
        return conv2d_exact(x, layer)
    bias = None if layer.bias is None else _bias(layer, np.float32, layer.weight.shape[0])
    return _prepared(layer, _exact_conv)(x, out=np.float32, use="float32", bias=bias)


def conv2d_exact(x: np.ndarray, layer: P.Conv2d) -> np.ndarray:
    """Integer convolution, exact (`exact_gemm.Conv2d`: int8 im2col and kernel for spikes), held in int32 when its
    sums stay below `NARROW`, else int64. Prepared once per layer (`_prepared`)."""
    conv = _prepared(layer, _exact_conv)
    x_max, x_fits = exact_gemm.operand(x)
    use = conv.matrix.kernel(x_max, x_fits)
    out = _narrowest(conv.matrix.w_sum * x_max + _bias_max(layer))
    # the bias is added as the sums are written back: one pass over the layer's output, not two
    return conv(x, out=out, use=use, bias=None if layer.bias is None else _bias(layer, out, layer.weight.shape[0]))


def _exact_conv(layer: P.Conv2d) -> exact_gemm.Conv2d:
    return exact_gemm.Conv2d(layer.weight, layer.stride, layer.padding, layer.groups)


NARROW = 2 ** 30      # integers held in int32 below this: the difference of two still fits


def _narrowest(bound: float) -> type:
    """int32 for integers provably below NARROW in magnitude (half the bytes for the neuron that reads them: its
    update is memory-bound), else int64."""
    return np.int32 if bound < NARROW else np.int64


def narrow_state(neuron: P.Neuron, x: np.ndarray, steps: int, x_max: Optional[float] = None) -> bool:
    """An int32 synaptic input x can drive `neuron` in int32 for `steps` steps: its membrane stays below NARROW
    (at most |v0| + |v_reset| + steps * (max|x| + |threshold| + |leak|)). `x_max`: a bound on max|x| known without
    reading x (`_synapse_bound`); else x is read."""
    if x.dtype != np.int32:
        return False
    x_max = exact_gemm.operand(x)[0] if x_max is None else x_max
    per_step = x_max + abs(float(neuron.threshold)) + float(np.abs(getattr(neuron, "leak", 0)).max(initial=0))
    start = abs(float(neuron.initial_v)) + abs(float(neuron.v_reset))
    return start + steps * per_step < NARROW


def _synapse_bound(layer, x: np.ndarray) -> float:
    """A bound on |y| of an exact Conv2d or Linear from its input: max|x| (1 for spikes, unread) times the largest
    column sum of |W|, plus the largest |bias|: what chose y's dtype, and what lets the neuron after it choose its
    state's dtype without reading y again (two passes over a layer's whole output)."""
    w_sum = (_prepared(layer, _exact_conv).matrix if isinstance(layer, P.Conv2d) else
             _prepared(layer, _linear_weights)).w_sum
    return w_sum * (1.0 if x.dtype == bool else exact_gemm.operand(x)[0]) + _bias_max(layer)


def _bias_max(layer) -> float:
    return 0.0 if layer.bias is None else float(np.abs(np.asarray(layer.bias, np.float64)).max(initial=0))


def max_pool(x: np.ndarray, kernel, stride, padding) -> np.ndarray:
    """Max over each window as a running maximum of kh*kw strided slices (on bool spikes: an OR)."""
    (kh, kw), (sh, sw) = kernel, stride
    if x.dtype == bool and (kh, kw) == (sh, sw) == (2, 2) and padding == (0, 0) and x.shape[3] % 2 == 0:
        return _or_pool_2x2(x)
    low = False if x.dtype == bool else (-np.inf if x.dtype.kind == "f" else np.iinfo(x.dtype).min)
    x = _pad(x, padding, low)
    oh, ow = (x.shape[2] - kh) // sh + 1, (x.shape[3] - kw) // sw + 1
    out = None
    for u in range(kh):
        for v in range(kw):
            part = x[:, :, u:u + sh * (oh - 1) + 1:sh, v:v + sw * (ow - 1) + 1:sw]
            out = part.copy() if out is None else np.maximum(out, part, out=out)
    return out


def _or_pool_2x2(x: np.ndarray) -> np.ndarray:
    """2x2 stride-2 max pooling of bool spikes: the OR of row pairs, each row read as the widest words its length
    allows (8 bools as one uint64: digits' 8-wide rows were one short loop per row pair), then each pair of adjacent
    bytes read as one uint16, non-zero when either is (3x faster than four strided slices)."""
    oh, w = x.shape[2] // 2, x.shape[3]
    word = next(t for t in (np.uint64, np.uint32, np.uint16, np.uint8) if w % np.dtype(t).itemsize == 0)
    pairs = np.ascontiguousarray(x[:, :, :2 * oh]).view(word)
    rows = np.bitwise_or(pairs[:, :, 0::2], pairs[:, :, 1::2]).view(np.uint8)
    return rows.view(np.uint16) != 0


def _bias(layer, dtype, size: int) -> np.ndarray:
    if layer.bias is None:
        return np.zeros(size, dtype=dtype)
    return np.asarray(layer.bias).astype(dtype)


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


def warm_up() -> dict:
    """Compiles (or loads from the disk cache) the loops for the types runs meet most: neuron states in int32,
    int64 and float32, float64 inputs (pixels, event counts) cast to int8 and uint8. `make venv` calls it, so that
    the first `snncheck demo` on a machine does not compile them (8.8 s against 6.2 s in a fresh clone). Returns
    {loop: its compiled signatures}; {} without numba."""
    if jit.compiled(fused_neuron._steps) is None:
        return {}
    for dtype in (np.int32, np.int64, np.float32):
        for repeated in (False, True):          # a frame per step, and one frame broadcast over the steps
            x = np.ones((1, 1 if repeated else 2, 3), dtype)
            run_neuron(P.IF(1), np.broadcast_to(x, (1, 2, 3)), record_v=True)
    for values in ([0, 3], [0, 255]):
        x = np.array(values, np.float64)
        small_ints.integer_copy(x, float(x.min()), float(x.max()))
    return {loop.__name__: list(jit.compiled(loop).signatures) for loop in (fused_neuron._steps, small_ints._cast)}
