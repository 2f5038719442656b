"""An exact BLAS path for the synaptic products inside PAIBox's own update; PAIBox still simulates the neurons,
the delay registers and the timing.

PAIBox computes a `pb.Conv2d` synapse by im2col with fancy indexing and an int64 matmul (NumPy's integer matmul
does not use BLAS), and a `pb.FullConn` as `x @ W.astype(int32)`, converting its weights at every step: on the
28x28 CSNN its convolutions are most of a step, and batching samples along the rows does not make them cheaper.
`install(network)` swaps each such synapse's transform (`syn.comm`, a callable x -> int32 sums) for a twin that
computes the same integers:
- `FastPool`: a depthwise convolution of ones whose windows tile the input (PAIBox's pooling), one strided add per
  kernel position;
- `FastWindows`: a convolution whose windows span the width without overlapping (the stacked layout's Linear
  layers, 1x1 convolutions of one column), one reshape and one exact float product;
- `FastConv2d`, any other: `exact_gemm.Conv2d` (int8 kernel with int32 accumulation for spikes; float32 BLAS for
  0-255 input, exact below 2**24; float64 beyond), cast to int32 as PAIBox's int64 -> int32 `astype` does;
- `FastFullConn`: for sparse spikes the sum of the active rows of W (a gather), else a BLAS product;
and all return zeros at once for an all-zero input (a pipeline filling or draining, a silent layer). A
convolution fed frames (pixels, event counts: not spikes) keeps the last frame's sums and gives a copy when the same
frame comes again, as it does at every step of an input layer under direct encoding.
`install` also makes every node's reset refill its state arrays in place: PAIBox deep-copies them from their
initial values at every `sim.reset()`, 256-slot delay registers included (118 MB for the first layer of 32
stacked 28x28 samples: most of a batched simulation once the products are fast), of which a run of S steps
wrote only S slots. And it binds to each neuron its class's charge and leak, PAIBox's own code run with
`v_overflow` below, the 30-bit range check found by one min and one max (PAIBox's own wraps and warns whenever
something is out of range): the neuron's arithmetic is PAIBox's, line for line.
Every other transform (one-to-one...) is left as it is. Spikes and voltages on every layer are those of PAIBox as
shipped (tests/test_fastpaths.py).

`Fast(source)` is a loader (see `build`) that builds `source` and installs the fast path: it pickles, so worker
processes get it too. What it builds is kept for the next run of the same graph (`reuse`), and `simulate`
records it directly (`simulate.Direct`) instead of through PAIBox's probes.

Where the time goes then (a batched run of 8 csnn28 samples at T=8, 16 digits ones; benchmarks/README.md):
PAIBox's own neuron update is about half of it, the synapse updates (PAIBox's delay-register reads and these
twins) under a third.
"""
from __future__ import annotations

import contextlib
import copy
import functools
import types

import numpy as np

from .. import exact_gemm

GATHER_DENSITY = 0.05     # a FullConn gathers rows when at most this fraction of its inputs is non-zero
GATHER_COLS = 1 << 15     # FastGather's im2col of spikes up to this many values; beyond, exact_gemm's int8 kernel


class FastConv2d:
    """Stands in for PAIBox's `Conv2dForward` (same attributes; the call computes the same int32 sums)."""

    keep_frames = True        # the last input frame's sums kept (off: benchmarks/fastpaths_ab.py's baseline)

    def __init__(self, comm):
        self.comm = comm
        self.in_shape, self.out_shape = tuple(comm.in_shape), tuple(comm.out_shape)
        self.channels = comm.weights.shape[1] * comm.groups
        self.conv = exact_gemm.Conv2d(comm.weights, comm.stride, comm.padding, comm.groups)
        self.zeros = (comm.weights.shape[0],) + self.out_shape
        self.last = None                      # (frame, its sums): the last input frame that was not spikes

    def __call__(self, x, *args, **kwargs) -> np.ndarray:
        if x.dtype != np.uint8:               # PAIBox's spikes and InputProj's frames are uint8
            return self._generic(x)
        x_max = int(x.max())                  # one reduction picks the kernel (uint8: no sign to look at)
        if x_max == 0:
            return np.zeros(self.zeros, np.int32)
        if x_max == 1 or not self.keep_frames:
            return self._sums(x, x_max)
        # a frame (pixels, event counts): under direct encoding the input layer gets the same one at every step,
        # so a frame that came twice in a row has its sums kept, and given (as a copy: PAIBox owns what it gets)
        # when it comes again; frames that change at every step (events) cost a copy of the frame, not of its sums
        again = self.last is not None and np.array_equal(self.last[0], x)
        if again and self.last[1] is not None:
            return self.last[1].copy()
        sums = self._sums(x, x_max)
        self.last = (self.last[0], sums.copy()) if again else (x.copy(), None)
        return sums

    def _sums(self, x: np.ndarray, x_max: int) -> np.ndarray:
        """The int32 sums of a uint8 input x whose largest value is x_max > 0."""
        use = self.conv.matrix.kernel(x_max, x_max <= exact_gemm.INT8[1])
        return self.conv(x.reshape((1, self.channels) + self.in_shape), out=np.int32, use=use)[0]

    def _generic(self, x) -> np.ndarray:
        if not x.any():
            return np.zeros(self.zeros, np.int32)
        return self.conv(x.reshape((1, self.channels) + self.in_shape), out=np.int32)[0]

    def __getattr__(self, name):          # connectivity, ksize, weights...: PAIBox's own
        return _delegate(self, name)


class FastPool(FastConv2d):
    """A depthwise convolution whose windows tile the input (stride = kernel, no padding): PAIBox's pooling (see
    `lower.pool_kernel`). With a kernel of ones (max pooling of spikes), one reshape and a sum in int32 directly
    (at most kh*kw*255 per window), one strided add per kernel position (NumPy's sum over two strided axes was
    slower than the generic path), or in bytes where no window can pass 255 (spikes); other weights are
    `FastConv2d`'s (exact_gemm's depthwise sum of weighted slices)."""

    def __init__(self, comm):
        super().__init__(comm)
        c, _, kh, kw = comm.weights.shape
        (oh, ow) = self.out_shape
        self.windows = (c, oh, kh, ow, kw)
        self.ones = bool((np.asarray(comm.weights) == 1).all())

    @staticmethod
    def applies(comm) -> bool:
        c, cg, kh, kw = comm.weights.shape
        return (cg == 1 and comm.groups == c > 1 and tuple(comm.stride) == (kh, kw)
                and not any(comm.padding))

    def __call__(self, x, *args, **kwargs) -> np.ndarray:
        if not self.ones:
            return super().__call__(x)
        x_max = int(x.max()) if x.dtype == np.uint8 and x.size else None
        if (x_max == 0) if x_max is not None else not x.any():
            return np.zeros(self.zeros, np.int32)
        c, oh, kh, ow, kw = self.windows
        x = x.reshape((c,) + self.in_shape)[:, :oh * kh, :ow * kw]
        if x_max is not None and kh * kw * x_max <= np.iinfo(np.uint8).max:
            return self._sum_bytes(x).astype(np.int32)
        x = x.reshape(self.windows)
        acc = np.zeros((c, oh, ow), np.int32)
        for u in range(kh):
            for v in range(kw):
                acc += x[:, :, u, :, v]
        return acc

    def _sum_bytes(self, x: np.ndarray) -> np.ndarray:
        """Window sums of uint8 x, in uint8 (the caller checked none passes 255): the kernel's rows added, then its
        columns (spikes into 2x2 windows: 57 -> 30 us a step on csnn28 batched 8)."""
        _, _, kh, _, kw = self.windows
        rows = x[:, 0::kh].copy()
        for u in range(1, kh):
            rows += x[:, u::kh]
        out = rows[:, :, 0::kw].copy()
        for v in range(1, kw):
            out += rows[:, :, v::kw]
        return out


class _FloatProduct(FastConv2d):
    """A twin whose sums are one exact float product of an im2col matrix with the weights [K, O]."""

    def __init__(self, comm):
        super().__init__(comm)
        self.matrix = self.conv.matrix

    def _product(self, cols: np.ndarray, x_max: int) -> np.ndarray:
        """cols [positions, K] (uint8) @ the weights [K, O], exactly, as int32 [positions, O]: float32 where every
        sum is below 2**24, else float64, then wrapped to int32 as PAIBox's int64 -> int32 cast does."""
        use = self.matrix.kernel(x_max, False)
        sums = exact_gemm.product(cols, self.matrix.cast(use), use)
        return sums.astype(np.int32) if use == "float32" else sums.astype(np.int64).astype(np.int32)


class FastWindows(_FloatProduct):
    """A convolution whose windows span the input's whole width and do not overlap (no padding, row stride at
    least the kernel's height): the stacked layout's Linear layers (a kernel covering one sample, row stride the
    sample's period) and 1x1 convolutions of one column. Each output row's window is one row of a matrix taken by
    a reshape, times the weights by one exact float product."""

    def __init__(self, comm):
        super().__init__(comm)
        self.rows = self.out_shape[0]
        self.step_h = int(comm.stride[0])

    @staticmethod
    def applies(comm) -> bool:
        o, c, kh, kw = comm.weights.shape
        (h, w), (oh, ow) = tuple(comm.in_shape), tuple(comm.out_shape)
        return (comm.groups == 1 and not any(comm.padding) and kw == w and ow == 1 and comm.stride[0] >= kh
                and oh * comm.stride[0] <= h)

    def _sums(self, x: np.ndarray, x_max: int) -> np.ndarray:
        o, c, kh, kw = self.comm.weights.shape
        x = x.reshape((c,) + self.in_shape)[:, :self.rows * self.step_h]
        windows = x.reshape(c, self.rows, self.step_h, kw)[:, :, :kh].transpose(1, 0, 2, 3)
        return self._product(windows.reshape(self.rows, c * kh * kw), x_max).T.reshape(self.zeros)


class FastGather(_FloatProduct):
    """A convolution of one group: im2col by one `take` of indices worked out once, from a zero-padded copy of
    the input kept across steps (its border stays zero), then one exact float product. Less Python around small
    inputs than `exact_gemm.Conv2d`, and no float im2col of 0-255 frames (first layers: 48 -> 15 us a step on
    digits, 360 -> 72 us on csnn28 batched 8); spikes into im2col matrices above `GATHER_COLS` values go to the
    int8 kernel of `FastConv2d` instead (csnn28's second layer: 160 us there, 400 us here)."""

    def __init__(self, comm):
        super().__init__(comm)
        o, c, kh, kw = comm.weights.shape
        self.cols = int(np.prod(self.out_shape)) * c * kh * kw      # the im2col's values
        self.gather = None      # (padded input, its inside, index): made at the first gather (a spiking layer
        #                         past GATHER_COLS never gathers; a stacked one's index is tens of MB)

    @staticmethod
    def applies(comm) -> bool:
        return comm.groups == 1

    def _sums(self, x: np.ndarray, x_max: int) -> np.ndarray:
        if x_max <= exact_gemm.INT8[1] and self.cols > GATHER_COLS:
            return FastConv2d._sums(self, x, x_max)
        padded, inside, index = self.gather or self._gather()
        padded[inside] = x.reshape(padded.shape[0], *self.in_shape)
        return self._product(padded.ravel().take(index), x_max).T.reshape(self.zeros)

    def _gather(self) -> tuple:
        """The zero-padded input kept across steps (its border stays zero), the slice its inside is written to, and
        the flat indices of each output position's window in it [OH * OW, C * kh * kw]."""
        o, c, kh, kw = self.comm.weights.shape
        (h, w), (oh, ow) = self.in_shape, self.out_shape
        (sh, sw), (ph, pw) = tuple(self.comm.stride), tuple(self.comm.padding)
        padded = np.zeros((c, h + 2 * ph, w + 2 * pw), np.uint8)
        i, j, ch, u, v = np.ix_(np.arange(oh), np.arange(ow), np.arange(c), np.arange(kh), np.arange(kw))
        flat = ch * padded.shape[1] * padded.shape[2] + (i * sh + u) * padded.shape[2] + j * sw + v
        self.gather = padded, (slice(None), slice(ph, ph + h), slice(pw, pw + w)), flat.reshape(oh * ow, -1)
        return self.gather


class FastFullConn:
    """Stands in for PAIBox's `AllToAll` with a weight matrix (N_in, N_out)."""

    def __init__(self, comm):
        self.comm = comm
        weights = np.asarray(comm.weights)
        self.rows = weights.astype(np.int64)
        self.weights = exact_gemm.Weights(weights)

    def __call__(self, x, *args, **kwargs) -> np.ndarray:
        active = np.flatnonzero(x)
        if active.size == 0:
            return np.zeros(self.rows.shape[1], np.int32)
        x_max = exact_gemm.operand(x)[0]
        if x_max == 1 and active.size <= GATHER_DENSITY * x.size:      # spikes: add the rows of the active inputs
            return self.rows[active].sum(axis=0).astype(np.int32)
        use = self.weights.kernel(x_max, False)          # a vector times a matrix: BLAS in float, never int8
        return exact_gemm.product(x, self.weights.cast(use), use).astype(np.int64).astype(np.int32)

    def __getattr__(self, name):
        return _delegate(self, name)


def _delegate(twin, name: str):
    """An attribute the twin does not have is its PAIBox transform's (not `comm` itself: a copy being built)."""
    if name == "comm":
        raise AttributeError(name)
    return getattr(twin.comm, name)


def install(network) -> int:
    """Swaps the transform of every Conv2d and full-matrix FullConn synapse in `network`, and every node's reset
    for one in place; returns how many transforms it swapped."""
    from paibox.components.synapses.transforms import AllToAll, Conv2dForward
    from paibox.mixin import StatusMemory
    count = 0
    for node in network.nodes().values():
        if isinstance(node, StatusMemory) and "reset_memory" not in vars(node):
            if hasattr(type(node), "put_out_in_delay_reg"):
                track_delay_writes(node)
            object.__setattr__(node, "reset_memory", types.MethodType(reset_in_place, node))
        wrap_check_once(node)
        comm = getattr(node, "comm", None)
        if type(comm) is Conv2dForward:
            node.comm = next(twin for twin in (FastPool, FastWindows, FastGather, FastConv2d)
                             if twin is FastConv2d or twin.applies(comm))(comm)
        elif type(comm) is AllToAll and np.ndim(comm.weights) == 2:
            node.comm = FastFullConn(comm)
        else:
            continue
        count += 1
    return count


def v_overflow(v, strict: bool = False):
    """PAIBox's `v_overflow` (neuron/utils.py) where nothing overflows, found by one min and one max instead of its
    two range checks, two `any`s and two nested `where`s over every neuron (a quarter of a csnn28 step): the values
    as they are, as PAIBox's int32. Anything out of the 30-bit range goes to PAIBox's own, which wraps and warns
    (or raises, strict) as shipped."""
    utils = _paibox_utils()
    if not isinstance(v, np.ndarray) or not v.size or v.min() < utils.V_MIN or v.max() > utils.V_MAX:
        return utils.v_overflow(v, strict)
    return v.astype(utils.VOLTAGE_DTYPE)


@functools.lru_cache(maxsize=1)
def _paibox_utils():
    from paibox.components.neuron import utils
    return utils


_TWIN_GLOBALS = {}


def wrap_check_once(node) -> None:
    """Binds to `node` its class's methods that call PAIBox's `v_overflow` (the charge and the leak of an offline
    neuron), each PAIBox's own code object run with `v_overflow` above in its globals: the neuron's arithmetic
    stays PAIBox's line for line, only the wrap check is the twin. Other nodes are left alone."""
    for name in dir(type(node)):
        fn = getattr(type(node), name, None)
        code = getattr(fn, "__code__", None)
        if code is None or "v_overflow" not in code.co_names or fn.__globals__.get("v_overflow") is v_overflow:
            continue
        key = id(fn.__globals__)
        if key not in _TWIN_GLOBALS:
            _TWIN_GLOBALS[key] = {**fn.__globals__, "v_overflow": v_overflow}
        twin = types.FunctionType(code, _TWIN_GLOBALS[key], fn.__name__, fn.__defaults__, fn.__closure__)
        twin.__kwdefaults__ = fn.__kwdefaults__
        object.__setattr__(node, name, types.MethodType(twin, node))


def reset_in_place(node, name=None) -> None:
    """PAIBox's `StatusMemory.reset_memory`, copying each initial value into the current array when it has the
    same shape and dtype (PAIBox's own update writes these arrays in place too), else deep-copying as PAIBox does.
    A neuron's delay register is all zeros at first, and since then only the slots `put_out_in_delay_reg` wrote
    (one per step) differ: only those are zeroed."""
    written = node.__dict__.setdefault("_snncheck_written", set())
    for key in ([name] if name is not None else list(node._memories.keys())):
        current, initial = node._memories[key], node._memories_rv[key]
        if not (isinstance(current, np.ndarray) and isinstance(initial, np.ndarray) and current.flags.writeable
                and current.shape == initial.shape and current.dtype == initial.dtype):
            node._memories[key] = copy.deepcopy(initial)
        elif key == "delay_registers" and "tracked" in written and _all_zero(node, initial):
            current[sorted(written - {"tracked"})] = 0
        else:
            np.copyto(current, initial)
    if name is None or name == "delay_registers":
        written.clear()
        written.add("tracked")


def _all_zero(node, initial: np.ndarray) -> bool:
    """Whether a reset value is all zeros, scanned once per array (PAIBox sets them when it builds the node; a
    stacked layer's delay register is 256 slots of it, tens of MB to scan at every reset)."""
    known = node.__dict__.setdefault("_snncheck_zero", {})
    if id(initial) not in known:
        known[id(initial)] = (initial, not any_nonzero(initial))      # the array kept: its id stays its own
    return known[id(initial)][1]


def any_nonzero(a: np.ndarray) -> bool:
    """`a.any()`, read 8 bytes at a time where that is the same question (a contiguous integer or bool array: a
    value is non-zero exactly when one of its bytes is): a fresh network's delay registers (256 slots of every
    stage) are scanned twice, a sixth of building one."""
    if a.dtype.kind in "biu" and a.flags.c_contiguous and a.nbytes % 8 == 0:
        return bool(a.reshape(-1).view(np.uint64).any())
    return bool(a.any())


def track_delay_writes(node) -> None:
    """Records the slot of every write to the node's delay register (PAIBox's `put_out_in_delay_reg`)."""
    put = node.put_out_in_delay_reg
    written = node.__dict__.setdefault("_snncheck_written", set())

    def put_out_in_delay_reg(neu_out):
        written.add((node.timestamp + node.delay_relative - 1) % node.delay_reg_len)
        put(neu_out)
    object.__setattr__(node, "put_out_in_delay_reg", put_out_in_delay_reg)
    if not any_nonzero(node.delay_registers):   # nothing written yet (a fresh network): every write counts from now
        written.add("tracked")


class Fast:
    """A loader: `source()` with the fast path installed in the network it builds."""

    def __init__(self, source):
        self.source = source

    @property
    def key(self):
        """The key `reuse` keeps built networks by, or None (a user's own network: built once by the user)."""
        inner = getattr(self.source, "reuse_key", None)
        return None if inner is None else ("fast",) + inner

    def __call__(self):
        with lazy_zero_state():
            built = self.source()
        install(built.network)
        built.fast = True
        return built


@contextlib.contextmanager
def lazy_zero_state():
    """While a network is built, a state array whose initial value is all zeros keeps, as that initial value, a
    fresh `np.zeros` (pages mapped when first written) instead of PAIBox's deep copy, which writes every byte:
    the 256-slot delay registers of a stacked layer are 100 MB and more, of which a run writes a few slots."""
    from paibox.mixin import StatusMemory
    original = StatusMemory.set_reset_value

    def set_reset_value(self, name, init_value):
        if isinstance(init_value, np.ndarray) and init_value.size > 4096 and not init_value.any():
            self._memories_rv[name] = np.zeros(init_value.shape, init_value.dtype)
        else:
            original(self, name, init_value)
    StatusMemory.set_reset_value = set_reset_value
    try:
        yield
    finally:
        StatusMemory.set_reset_value = original
