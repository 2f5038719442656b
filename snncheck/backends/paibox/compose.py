"""A term's linear path composed into the one synapse PAIBox builds for it: sum pools folded into the Conv2d/Linear
next to them.

A sum pool (an average pool whose 1/n the conversion folded into its synapse, `snncheck.graph.pooling`) is a
depthwise convolution with a ones kernel. Two convolutions in a row are one convolution (per axis, A then B):

    kernel  K[sA*b + a] += W_B[b] * W_A[a]        size sA*(kB-1) + kA
    stride  sA*sB,  padding  sA*pB + pA

exactly, when what B reads in its padding is also zero for the composition: B's padding (pB > 0) must lie wholly
in A's (kA <= sA + pA), and where B's windows reach past A's last output, A's next window must lie wholly past the
input (sA*OH_A - pA >= H); the composition must then give B's output size. Where one of the two is a ones kernel
no channels mix. A Linear after a Flatten is a convolution whose kernel covers its whole input; composed with a
pool before it, its kernel is spread back over the pool's input as a dense FullConn matrix (always exact); so is a
Linear after an adaptive sum pool (its windows of one size, possibly overlapping: each weight summed over the
windows that hold the cell).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ...errors import InputError
from ...graph import Graph
from ...graph import primitives as P


@dataclass(frozen=True)
class Conv:
    """A convolution on a (C, H, W) input: weight OIHW (a ones kernel of shape (C, 1, kh, kw) for a pool)."""
    weight: np.ndarray
    stride: tuple
    padding: tuple
    groups: int
    ones: bool = False        # a pool: a depthwise ones kernel


def path_synapse(graph: Graph, source_shape: tuple, path: tuple):
    """The P.Conv2d / P.Linear (no bias) that equals the linear `path` applied to a value of `source_shape`, or None
    when the path holds no synapse and no pool (an identity, perhaps scaled). InputError says why a path has no
    single-synapse form."""
    source_shape = tuple(source_shape)
    conv, dense, factor, shape, adaptive = None, None, 1, source_shape, None
    for n in path:
        node = graph.nodes[n]
        if isinstance(node, P.Scale):
            factor *= int(node.factor)
        elif isinstance(node, P.AdaptiveSumPool2d):
            _no_dense(dense, n)
            if conv is not None:
                raise InputError(f"{n!r}: adaptive pooling after a convolution or pooling has no single-synapse form "
                                 "on PAIBox")
            adaptive = (node.windows(shape[1], 0).astype(np.int64), node.windows(shape[2], 1).astype(np.int64))
        elif isinstance(node, (P.SumPool2d, P.Conv2d)):
            _no_dense(dense, n)
            _no_adaptive(adaptive, n)
            b = _pool(node, shape[0]) if isinstance(node, P.SumPool2d) else \
                Conv(np.asarray(node.weight).astype(np.int64), tuple(node.stride), tuple(node.padding), int(node.groups))
            conv = _then(conv, b, source_shape, shape, graph.shapes[n], n)
        elif isinstance(node, P.Linear):
            _no_dense(dense, n)
            dense = np.asarray(node.weight).astype(np.int64)
            if adaptive is not None:       # M[o, c, h, w] = sum of W[o, c, i, j] over the windows (i, j) holding (h, w)
                w4 = dense.reshape((dense.shape[0],) + tuple(shape))
                dense, adaptive = np.einsum("ocij,ih,jw->ochw", w4, *adaptive).reshape(dense.shape[0], -1), None
            if conv is not None:
                dense, conv = _spread(dense, conv, source_shape, shape, n), None
        elif not isinstance(node, (P.Add, P.Flatten)):
            raise InputError(f"{n!r} ({node.kind}) on a synaptic path has no PAIBox synapse")
        if not isinstance(node, P.Flatten):
            shape = graph.shapes[n]
    _no_adaptive(adaptive, path[-1] if path else "?")
    if dense is not None:
        return P.Linear(dense * factor)
    if conv is not None:
        return P.Conv2d(conv.weight * factor, None, conv.stride, conv.padding, conv.groups)
    return None


def _no_adaptive(adaptive, name: str) -> None:
    if adaptive is not None:
        raise InputError(f"{name!r}: an adaptive pooling deploys on PAIBox only composed into a Linear after it")


def _no_dense(dense, name: str) -> None:
    if dense is not None:
        raise InputError(f"{name!r} follows a Linear on the same path: PAIBox needs a neuron in between")


def _pool(node: P.SumPool2d, channels: int) -> Conv:
    return Conv(np.ones((channels, 1) + tuple(node.kernel), np.int64), tuple(node.stride), tuple(node.padding),
                channels, ones=True)


def _then(a: Optional[Conv], b: Conv, source: tuple, mid: tuple, out: tuple, name: str) -> Conv:
    """A (from the `source` shape to `mid`) then B (from `mid` to `out`) as one convolution (see the module
    docstring), or InputError naming `name` (B's node)."""
    if a is None:
        return b
    if not (a.ones or b.ones):
        raise InputError(f"{name!r}: two weight layers on one path: PAIBox needs a neuron in between")
    kernel, stride, padding = [], [], []
    for ax in range(2):
        ka, kb = a.weight.shape[2 + ax], b.weight.shape[2 + ax]
        sa, sb, pa, pb = a.stride[ax], b.stride[ax], a.padding[ax], b.padding[ax]
        h, oh_a, oh_b = source[1 + ax], mid[1 + ax], out[1 + ax]
        k, p, s = sa * (kb - 1) + ka, sa * pb + pa, sa * sb
        reaches_past = sb * (oh_b - 1) + kb - 1 - pb >= oh_a
        if (pb > 0 and ka > sa + pa) or (reaches_past and sa * oh_a - pa < h) or (h + 2 * p - k) // s + 1 != oh_b:
            raise InputError(f"{name!r}: with the pooling next to it, its windows read past the edge values the "
                             "pooling does not make: the two have no exact single-convolution form on PAIBox")
        kernel.append(k), stride.append(s), padding.append(p)
    real, ones = (b, a) if a.ones else (a, b)
    w = real.weight
    out_w = np.zeros(w.shape[:2] + tuple(kernel), np.int64)
    (sh, sw), (kh, kw) = a.stride, w.shape[2:]
    for u in range(ones.weight.shape[2]):
        for v in range(ones.weight.shape[3]):
            if a.ones:      # K[sA*b + a] += W_B[b], for every cell a of the pool
                out_w[:, :, u:u + sh * (kh - 1) + 1:sh, v:v + sw * (kw - 1) + 1:sw] += w
            else:           # K[sA*b + a] += W_A[a], for every cell b of the pool
                out_w[:, :, sh * u:sh * u + kh, sw * v:sw * v + kw] += w
    return Conv(out_w, tuple(stride), tuple(padding), real.groups, ones=a.ones and b.ones)


def _spread(dense: np.ndarray, a: Conv, source: tuple, mid: tuple, name: str) -> np.ndarray:
    """A Linear (out, C*OH*OW) after pooling A and a Flatten, as a dense matrix over A's input (out, C*H*W): the
    Linear is a convolution whose kernel covers A's whole output, composed with A, its padding cut away."""
    if not a.ones:
        raise InputError(f"{name!r}: two weight layers on one path: PAIBox needs a neuron in between")
    whole = Conv(dense.reshape((dense.shape[0],) + tuple(mid)), (1, 1), (0, 0), 1)
    k = _then(a, whole, source, mid, (dense.shape[0], 1, 1), name)
    (c, h, w), (ph, pw) = source, k.padding
    out = np.zeros((dense.shape[0], c, h, w), np.int64)
    part = k.weight[:, :, ph:ph + h, pw:pw + w]
    out[:, :, :part.shape[2], :part.shape[3]] = part
    return out.reshape(dense.shape[0], -1)
