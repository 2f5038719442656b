"""Exact integer matrix products at BLAS speed, shared by the reference and PAIBox's fast path.

NumPy's integer matmul does not use BLAS (tens of times slower than float32). An integer product is computed
exactly by the fastest kernel its operands allow:
- int8 x int8 with int32 accumulation (`torch._int_mm`, oneDNN's VNNI kernel: ~7x float32 BLAS here) when both
  operands fit int8 (spikes are 0/1, weights int8) and every partial sum is below 2**31;
- float32 BLAS when every partial sum is provably below 2**24 (integers are exact there, in any order);
- float64 BLAS below 2**53.
`kernel(bound, a_fits, b_fits)` names the choice, so tests can check each one against int64 arithmetic. The int8
kernel is trusted only after a probe on this CPU (`int8_exact`): without VNNI, some oneDNN kernels go through
saturating int16 pairs, which would be silently wrong.
"""
from __future__ import annotations

import functools
import threading
from typing import Optional

import numpy as np

from .. import parallel
from ..errors import require

INT8 = (-128, 127)
KERNELS = ("int8", "float32", "float64")
DTYPES = {"int8": np.int8, "float32": np.float32, "float64": np.float64}
SPLIT_MACS = 1 << 25        # multiply-adds from which a convolution's frames are split over `parallel.frame_threads`
#                             (digits' 9M-MAC second layer ran 4-9% slower split, 19M about even)
DENSE_ENTRIES = 1 << 20   # a convolution whose frame-to-frame matrix has at most this many entries, and ...
DENSE_GAIN = 8            # ... at most this many times its multiply-adds, is one product by that matrix
COLS_BYTES = 1 << 22        # im2col buffer per chunk of frames: stays in cache, reused across chunks and groups
CHANNEL_MAJOR_RUN = 16      # a kernel row shorter than this (kw * channels) goes through the channel-major im2col


def fits_int8(x: np.ndarray) -> bool:
    """Every value of x is an integer in int8's range (bool always is); x's values are integers already."""
    if x.dtype == bool or x.dtype == np.int8:
        return True
    return x.size == 0 or (INT8[0] <= x.min() and x.max() <= INT8[1])


def operand(x: np.ndarray) -> tuple:
    """(max |x|, whether x fits int8) of an integer-valued operand, from one min and one max (no |x| copy)."""
    if x.dtype == bool:
        return (1.0 if x.any() else 0.0), True
    if x.size == 0:
        return 0.0, True
    lo, hi = float(x.min()), float(x.max())
    return max(-lo, hi, 0.0), INT8[0] <= lo and hi <= INT8[1]


def bound(a_max: float, b: np.ndarray) -> float:
    """Largest |partial sum| of a @ b with |a| <= a_max: max over columns of sum_k |b_k| * a_max."""
    b = np.abs(np.asarray(b, np.float64))
    return float(b.sum(axis=0).max() * a_max) if b.size else 0.0


def kernel(limit: float, a_fits: bool, b_fits: bool) -> str:
    """The exact kernel for a product whose partial sums stay below `limit`."""
    require(limit < 2 ** 53, "synaptic sums exceed 2**53: integer network too large for exact float64")
    if a_fits and b_fits and limit < 2 ** 31 and int8_exact():
        return "int8"
    return "float32" if limit < 2 ** 24 else "float64"


def matmul(a: np.ndarray, b: np.ndarray, use: str = None) -> np.ndarray:
    """a [M, K] @ b [K, N] of integer values, exactly, as int64 (`use` forces a kernel: tests, benchmarks)."""
    return product(a, b, use or Weights(b).kernel(*operand(a))).astype(np.int64)


class Weights:
    """A weight matrix b [K, N] as exact products read it, prepared once: the largest |partial sum| per unit of
    input (`bound`), whether it fits int8, and its copy in each kernel's operand dtype (C-contiguous)."""

    def __init__(self, b: np.ndarray):
        self.b = np.asarray(b)
        self.w_sum = bound(1.0, self.b)
        self.fits = fits_int8(self.b)
        self._cast = {}

    def kernel(self, x_max: float, x_fits: bool) -> str:
        return kernel(self.w_sum * x_max, x_fits, self.fits)

    def cast(self, use: str) -> np.ndarray:
        if use not in self._cast:
            self._cast[use] = np.ascontiguousarray(self.b, dtype=DTYPES[use])
        return self._cast[use]


def product(a: np.ndarray, b: np.ndarray, use: str, out: np.ndarray = None) -> np.ndarray:
    """a @ b by the kernel `use`, in that kernel's result dtype (int32, float32, float64), integer-valued; into
    `out` (C-contiguous, that dtype) when given."""
    if use == "int8":
        return int8_matmul(a, b, out)
    dtype = np.float32 if use == "float32" else np.float64
    return np.matmul(a.astype(dtype, copy=False), b.astype(dtype, copy=False), out=out)


RESULT = {"int8": np.int32, "float32": np.float32, "float64": np.float64}      # `product`'s dtype per kernel


def int8_matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray = None) -> np.ndarray:
    """a [M, K] @ b [K, N], both int8-valued (bool is read as int8 without a copy), int32 result (into `out`)."""
    import torch
    threads = torch.get_num_threads()       # (OpenMP's count is per thread: each thread of a split restores its own)
    torch.set_num_threads(1)        # as the reference's BLAS: with a neighbour on the other core, 2 threads ran
    try:                            # a 16384x288 @ 288x32 product in 6.8 ms, 1 thread in 0.39 ms
        if out is None:
            return torch._int_mm(_as_torch_int8(a), _as_torch_int8(b)).numpy()
        torch._int_mm(_as_torch_int8(a), _as_torch_int8(b), out=torch.from_numpy(out))
        return out
    finally:
        torch.set_num_threads(threads)


def _wraps(out, use: str) -> bool:
    """Float sums for an integer `out` narrower than int64 go through int64 first, so that casting wraps as PAIBox's
    int64 -> int32 astype does (a float output, a float graph's convolution, takes them as they are)."""
    return np.dtype(out).kind == "i" and out != np.int64 and use != "int8"


def _write_back(y: np.ndarray, z: np.ndarray, bias, use: str) -> None:
    """y = z (+ bias [O, 1]), cast to y's dtype; the bias is added in y's dtype (integer sums: exactly, as adding
    it to y afterwards would; a float graph's: in float32, as before). Float sums `z` of kernel `use` for an integer
    y narrower than int64 go through int64 first (`_wraps`)."""
    if _wraps(y.dtype, use):
        z = z.astype(np.int64)          # then wrapped to y's dtype as PAIBox's astype does
    if bias is None:
        np.copyto(y, z, casting="unsafe")
    else:
        np.add(z, bias, out=y, casting="unsafe", dtype=y.dtype)


def _as_torch_int8(x: np.ndarray):
    """x as an int8 torch tensor with canonical strides. oneDNN takes a matrix's leading dimension from its
    strides, and NumPy gives a dimension of size 1 any stride: `W.T` of a Linear with one input is (1, N) with
    strides (1, 1), which `torch._int_mm` read as a leading dimension of 1 and answered with garbage."""
    import torch
    x = x.view(np.int8) if x.dtype == bool else x.astype(np.int8, copy=False)
    m, k = x.shape
    if x.strides != (k, 1) and not (m > 1 and k > 1 and x.strides == (1, m)):
        x = np.array(x, order="C", copy=True)
    return torch.from_numpy(x)


@functools.lru_cache(maxsize=None)
def int8_exact() -> bool:
    """Probe, once per process: does int8 x int8 accumulate exactly into int32 on this CPU, at the extremes
    (-128 * -128 and 127 * -128 pairs, long sums) where a saturating int16 stage would show?"""
    try:
        import torch
        if not hasattr(torch, "_int_mm"):
            return False
        rng = np.random.default_rng(0)
        a = np.concatenate([np.full((8, 512), -128), np.full((8, 512), 127), rng.integers(-128, 128, (16, 512))])
        b = np.concatenate([np.full((512, 8), -128), np.full((512, 8), 127), rng.integers(-128, 128, (512, 16))], 1)
        a, b = a.astype(np.int8), b.astype(np.int8)
        return bool(np.array_equal(int8_matmul(a, b), a.astype(np.int64) @ b.astype(np.int64)))
    except Exception:           # no torch, or an int8 kernel this build lacks: the float paths are exact too
        return False


class Conv2d:
    """An exact integer convolution, prepared once: weights reordered channels-last [groups, O/groups, kh*kw*C],
    im2col buffers kept across calls (PAIBox calls a synapse once per step with the same shapes).

    `__call__(x [B, C, H, W], out=np.int64, bias=None)`: im2col rows [B * OH * OW, kh*kw*C] in the narrowest dtype the
    kernel takes (int8 for spikes: a quarter of float32's bytes), chunk by chunk of frames, by kh*kw strided slice
    copies; times the weights by `product`; written back NCHW per chunk, plus `bias` [O] (in `out`'s dtype) on the
    way: one pass over the output instead of two. A depthwise convolution (one channel per
    group: PAIBox's pooling) is a sum of kh*kw shifted, weighted slices instead. A small frame (digits' 8x4x4) is
    one product by the convolution's whole frame-to-frame matrix (`_dense`), for integer sums. `out=np.int32`
    wraps as an int64 sum cast to int32 does (what PAIBox's own convolution returns)."""

    def __init__(self, weight: np.ndarray, stride=(1, 1), padding=(0, 0), groups: int = 1):
        weight = np.asarray(weight)
        self.shape = tuple(weight.shape)
        o, cg, kh, kw = self.shape
        self.stride, self.padding, self.groups = tuple(stride), tuple(padding), int(groups)
        og = o // self.groups
        wk = weight.reshape(self.groups, og, cg, kh, kw).transpose(0, 1, 3, 4, 2)      # [g, o, u, v, c]
        self.weight = np.ascontiguousarray(wk).reshape(self.groups, og, kh * kw * cg)
        self.matrix = Weights(weight.reshape(o, -1).T)          # W^T [C*kh*kw, O]: its bound, int8 fit, casts
        self.depthwise = cg == 1 and og == 1 and self.groups > 1
        # few input channels: a kernel row of the rows layout is a run of only kw*C values (10 bytes for 2 channels
        # 5 wide), so im2col goes channel-major instead, by runs of OW values (`_channel_major`)
        self.channel_major = self.groups == 1 and kw * cg < CHANNEL_MAJOR_RUN
        self.weight_cm = np.ascontiguousarray(weight.reshape(o, -1)) if self.channel_major else None
        self._buffers = {}
        self._dense = {}

    def kernel(self, x: np.ndarray) -> str:
        return self.matrix.kernel(*operand(x))

    def out_shape(self, h: int, w: int) -> tuple:
        (_, _, kh, kw), (sh, sw), (ph, pw) = self.shape, self.stride, self.padding
        return (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1

    def __call__(self, x: np.ndarray, out=np.int64, use: str = None, bias: np.ndarray = None) -> np.ndarray:
        use = use or self.kernel(x)
        if self.depthwise:
            y = self._depthwise(x, out, use)
            if bias is not None:
                y += bias[:, None, None]
            return y
        b, _, h, w = x.shape
        oh, ow = self.out_shape(h, w)
        dense = self.dense(h, w) if np.dtype(out).kind != "f" else None
        if dense is not None:
            z = product(x.reshape(b, -1), dense.cast(use), use).reshape(b, self.shape[0], oh * ow)
            if z.dtype == out and bias is None:
                return z.reshape(b, self.shape[0], oh, ow)
            y = np.empty(z.shape, out)
            _write_back(y, z, None if bias is None else bias.reshape(-1, 1), use)
            return y.reshape(b, self.shape[0], oh, ow)
        y = np.empty((b, self.shape[0], oh * ow), out)
        bias = None if bias is None else bias.reshape(-1, 1)
        # frames in halves on two threads (products and copies release the GIL): integer sums only, which are
        # exact in any order; a float graph's would round differently with the machine's core count
        split = y.dtype.kind != "f" and b * oh * ow * np.prod(self.shape) >= SPLIT_MACS
        parallel.in_parts(b, lambda lo, hi: self._fill(x[lo:hi], y[lo:hi], use, bias), split)
        return y.reshape(b, self.shape[0], oh, ow)

    def dense(self, h: int, w: int) -> Optional[Weights]:
        """The convolution of a C x h x w frame as one matrix M [C*h*w, O*OH*OW] (frames [B, C*h*w] @ M are the
        outputs, NCHW, with no im2col and no write-back transpose), when M is small (`DENSE_ENTRIES`) and costs at
        most `DENSE_GAIN` times the convolution's multiply-adds; else None. Built once per frame size by this
        convolution itself, on the identity's frames: M's entries are the weights (or 0) where they apply, so every
        kernel's bound and int8 fit hold for it too."""
        if (h, w) not in self._dense:
            o, cg, kh, kw = self.shape
            n_in, n_out = cg * self.groups * h * w, o * int(np.prod(self.out_shape(h, w)))
            # (the identity it is built from has n_in * n_in entries: a kernel as wide as the frame has few outputs)
            small = not self.depthwise and max(n_in, n_out) * n_in <= min(DENSE_ENTRIES, DENSE_GAIN * n_out * cg * kh * kw)
            self._dense[h, w] = Weights(self._im2col_conv(np.eye(n_in, dtype=np.int8).reshape(
                n_in, cg * self.groups, h, w)).reshape(n_in, n_out)) if small else None
        return self._dense[h, w]

    def _im2col_conv(self, x: np.ndarray) -> np.ndarray:
        """x [B, C, H, W] -> [B, O, OH * OW] int64 by im2col (what `dense` builds its matrix with)."""
        b, _, h, w = x.shape
        y = np.empty((b, self.shape[0], int(np.prod(self.out_shape(h, w)))), np.int64)
        self._fill(x, y, self.kernel(x))
        return y

    def _fill(self, x: np.ndarray, y: np.ndarray, use: str, bias=None) -> None:
        """y [B, O, OH * OW] = the convolution of x by im2col (+ bias [O, 1]), in the layout this one takes."""
        (self._channel_major if self.channel_major else self._rows)(x, y, use, bias)

    def _rows(self, x: np.ndarray, y: np.ndarray, use: str, bias=None) -> None:
        """y [B, O, OH * OW] = the convolution of x, by im2col in the rows layout, chunk by chunk of frames."""
        o, cg, kh, kw = self.shape
        og, k = o // self.groups, cg * kh * kw
        ph, pw = self.padding
        b, c, h, w = x.shape
        oh, ow = self.out_shape(h, w)
        dtype = DTYPES[use]
        step = self._frames_per_chunk(oh * ow * k * np.dtype(dtype).itemsize, og * oh * ow)
        padded, cols, sums = self._buffer(use, min(step, b), (h + 2 * ph, w + 2 * pw, c), (oh, ow, kh, kw, cg),
                                          og * oh * ow)
        # cast once, contiguously: the transposing copy into `padded` below is then between equal dtypes
        src = x.view(np.int8) if x.dtype == bool else x.astype(dtype, copy=False)
        for lo in range(0, b, step):
            n = min(b, lo + step) - lo
            np.copyto(padded[:n, ph:ph + h, pw:pw + w], src[lo:lo + n].transpose(0, 2, 3, 1), casting="unsafe")
            for g in range(self.groups):
                self._im2col(padded[:n], cols[:n], g)
                # W [og, K] @ cols^T: the sums come out channel-major [og, n * OH * OW], so that writing them
                # back NCHW copies runs of OH * OW values (4x faster than a transpose of [n * OH * OW, og])
                z = product(self.weight[g], cols[:n].reshape(-1, k).T, use,
                            sums[:og * n * oh * ow].reshape(og, n * oh * ow)).reshape(og, n, oh * ow)
                _write_back(y[lo:lo + n, g * og:(g + 1) * og], z.transpose(1, 0, 2),
                            None if bias is None else bias[g * og:(g + 1) * og], use)

    def _channel_major(self, x: np.ndarray, y: np.ndarray, use: str, bias=None) -> None:
        """One group, few channels: frames padded NCHW (no transpose), cols[c, u, v, n, i, j] = padded[n, c,
        sh*i + u, sw*j + v] by kh*kw copies, then W [O, C*kh*kw] @ cols (Caffe's im2col), into y [B, O, OH * OW]."""
        o, c, kh, kw = self.shape
        (sh, sw), (ph, pw) = self.stride, self.padding
        b, _, h, w = x.shape
        oh, ow = self.out_shape(h, w)
        dtype, k = DTYPES[use], c * kh * kw
        step = self._frames_per_chunk(oh * ow * k * np.dtype(dtype).itemsize, o * oh * ow)
        padded, flat, sums = self._buffer(use, min(step, b), (c, h + 2 * ph, w + 2 * pw), (k * oh * ow,), o * oh * ow)
        flat = flat.reshape(-1)
        src = x.view(np.int8) if x.dtype == bool else x.astype(dtype, copy=False)
        for lo in range(0, b, step):
            n = min(b, lo + step) - lo
            padded[:n, :, ph:ph + h, pw:pw + w] = src[lo:lo + n]
            cols = flat[:k * n * oh * ow].reshape(c, kh, kw, n, oh, ow)
            # strided: the frames split once into their sh*sw phases (rows p::sh, columns q::sw), so that every
            # kernel position reads runs of OW neighbours from one phase (2x faster than gathering every sw-th)
            phases = {(p, q): np.ascontiguousarray(padded[:n, :, p::sh, q::sw]) for p in range(sh) for q in range(sw)}
            for u in range(kh):
                for v in range(kw):
                    part = phases[u % sh, v % sw][:, :, u // sh:u // sh + oh, v // sw:v // sw + ow]
                    cols[:, u, v] = part.transpose(1, 0, 2, 3)
            z = product(self.weight_cm, cols.reshape(k, n * oh * ow), use,
                        sums[:o * n * oh * ow].reshape(o, n * oh * ow)).reshape(o, n, oh * ow)
            _write_back(y[lo:lo + n], z.transpose(1, 0, 2), bias, use)

    def _im2col(self, padded: np.ndarray, cols: np.ndarray, g: int) -> None:
        """cols[n, i, j, u, v, c] = padded[n, sh*i + u, sw*j + v, g*cg + c]. With one group, the kw*C values of a
        kernel row are one contiguous run in both: one strided copy per kernel row (6x faster than per (u, v))."""
        n, oh, ow, kh, kw, cg = cols.shape
        (sh, sw) = self.stride
        if self.groups == 1:
            s0, s1, s2, s3 = padded.strides
            for u in range(kh):
                rows = np.lib.stride_tricks.as_strided(padded[:, u:], (n, oh, ow, kw * cg), (s0, sh * s1, sw * s2, s3))
                cols[:, :, :, u].reshape(n, oh, ow, kw * cg)[...] = rows
            return
        for u in range(kh):
            for v in range(kw):
                cols[:, :, :, u, v] = padded[:, u:u + sh * (oh - 1) + 1:sh, v:v + sw * (ow - 1) + 1:sw,
                                             g * cg:(g + 1) * cg]

    @staticmethod
    def _frames_per_chunk(cols_bytes: int, sums: int) -> int:
        """Frames per chunk: their im2col within COLS_BYTES and their sums (8 bytes at most per value) within
        2 * COLS_BYTES (a one-channel first layer's 64 outputs per position outweigh its 9 im2col values)."""
        return max(1, min(COLS_BYTES // cols_bytes, 2 * COLS_BYTES // (8 * sums)))

    def _buffer(self, use: str, frames: int, padded: tuple, cols: tuple, sums: int) -> tuple:
        """(padded frames, im2col, flat sums) buffers of this thread, kept while the shapes stay the same: `sums`
        values per frame of the product's result. Kept, not allocated per call: a second thread's big temporaries
        come from its own malloc arena, which hands freed memory back to the system, and faulting it in again at
        every call doubled a split convolution's time in some processes (vgg_cifar's reference: 11-38 ms)."""
        key = (use, frames, padded, cols, sums)
        mine = self._buffers.get(threading.get_ident())
        if mine is None or mine[0] != key:
            dtype = DTYPES[use]
            mine = self._buffers[threading.get_ident()] = (key, np.zeros((frames,) + padded, dtype),
                                                            np.empty((frames,) + cols, dtype),
                                                            np.empty(frames * sums, RESULT[use]))
        return mine[1:]

    def _depthwise(self, x: np.ndarray, out, use: str) -> np.ndarray:
        """Per channel, the sum of kh*kw shifted slices times that channel's weight: in int32 when the sums
        provably fit (pooling: always), else int64; exact either way."""
        o, _, kh, kw = self.shape
        (sh, sw), (ph, pw) = self.stride, self.padding
        b, c, h, w = x.shape
        oh, ow = self.out_shape(h, w)
        acc = out if np.dtype(out).kind == "f" else (np.int32 if use in ("int8", "float32") else np.int64)
        if ph or pw:
            padded = np.zeros((b, c, h + 2 * ph, w + 2 * pw), acc)
            padded[:, :, ph:ph + h, pw:pw + w] = x
            x = padded
        elif x.dtype == bool:
            x = x.view(np.uint8)
        elif x.dtype.kind == "f":        # integer values carried as floats (an input)
            x = x.astype(acc)
        weight = self.weight.reshape(c, kh, kw).astype(acc)
        y = np.zeros((b, c, oh, ow), acc)
        for u in range(kh):
            for v in range(kw):
                y += x[:, :, u:u + sh * (oh - 1) + 1:sh, v:v + sw * (ow - 1) + 1:sw] * weight[:, u, v, None, None]
        return y.astype(out, copy=False)
