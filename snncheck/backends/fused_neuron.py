"""The reference's IF and AdditiveLIF update compiled by numba: two vectorized loops per step, NumPy's bits.

`Neuron.charge`, `fire` and `after_fire` (snncheck.graph.primitives) are the semantics; `reference.run_neuron`
applies them step by step with NumPy, three to five passes over a step's values, each through memory. This kernel
computes the same step in two passes over one step's values (the charge, then the fire and reset), which the
compiler vectorizes: 1.8-5x faster than NumPy per neuron layer here, the most on small layers, where NumPy's fixed
cost per call dominates (`benchmarks/fastpaths_ab.py` measures it in the reference's runs).

What it computes, per step t and element (scalar parameters; the same arithmetic as NumPy's, so the same bits):

    H[t] = V[t-1] + X[t] + leak                     (IF: leak = 0, on floats -0.0, which changes no value)
    S[t] = H[t] >= fire_at                          (">": on integers threshold + 1, on floats the next float up)
    V[t] = H[t] * a1 + b1  where S[t], else H[t] * a0 + b0

with (a1, b1) = (0, v_reset) for a hard reset, (1, -threshold) for a soft one, and (a0, b0) = (1, 0): multiplying
by 0 or 1 and adding are exact, and on floats the signed zeros are chosen as `after_fire`'s own operations leave
them (H * (1 - S) + S * v_reset; H - S * threshold: where no spike, NumPy adds a zero signed like the parameter).

It takes only what it computes exactly as NumPy does (`plan`): an IF or AdditiveLIF (not a subclass, methods as
defined) with scalar parameters on an int32, int64 or float32 state; every other neuron (multiplicative leaks,
per-neuron parameters, a user's own neuron class) runs in NumPy.
Without numba (it is a dependency, but a platform may lack its wheels) everything runs in NumPy.
`ENABLED` switches it off for the baseline of benchmarks and identity tests.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from .. import parallel
from ..graph import primitives as P
from . import jit

ENABLED = True
SPLIT_SIZE = 1 << 20     # element-steps from which a layer's samples are split over `parallel.frame_threads` (on
#                          2x64x64x16 (2M) 1.36x faster, 8x8x8x8 (0.26M) 0.54x: the threads' start dominates)
STATES = (np.dtype(np.int32), np.dtype(np.int64), np.dtype(np.float32))
STEPS = ("charge", "fire", "after_fire")
# the step methods this kernel restates, per neuron type: a subclass, or a method replaced (a planted bug, a patch),
# is not what the kernel computes, and runs in NumPy
RESTATED = {cls: tuple(getattr(cls, m) for m in STEPS) for cls in (P.IF, P.AdditiveLIF)}


def plan(neuron: P.Neuron, x: np.ndarray) -> Optional[tuple]:
    """(fire_at, a1, b1, a0, b0, leak) in x's dtype when the kernel computes this neuron on x exactly; else None."""
    restated = RESTATED.get(type(neuron))
    if not ENABLED or x.dtype not in STATES or restated is None or \
            restated != tuple(getattr(type(neuron), m) for m in STEPS):
        return None
    leak = getattr(neuron, "leak", None)
    values = [v for v in (neuron.threshold, neuron.v_reset, neuron.initial_v, leak) if v is not None]
    if any(np.ndim(v) for v in values) or _kernel() is None:
        return None
    params = (_integer_params if x.dtype.kind == "i" else _float_params)(neuron, x.dtype)
    return None if params is None else tuple(x.dtype.type(p) for p in params)


def _integer_params(neuron: P.Neuron, dtype) -> Optional[tuple]:
    values = (neuron.threshold, neuron.v_reset, neuron.initial_v, getattr(neuron, "leak", 0))
    if not all(float(v).is_integer() for v in values):
        return None
    theta = int(neuron.threshold)
    fire_at = theta if neuron.fire_rule == ">=" else theta + 1
    a1, b1 = (1, -theta) if neuron.soft_reset else (0, int(neuron.v_reset))
    params = (fire_at, a1, b1, 1, 0, int(values[3]))
    info = np.iinfo(dtype)          # (a parameter beyond the state's range: NumPy's casts say what happens)
    return params if all(info.min <= p <= info.max for p in params + (int(neuron.initial_v),)) else None


def _float_params(neuron: P.Neuron, dtype) -> Optional[tuple]:
    f = dtype.type
    theta = f(neuron.threshold)
    if not np.isfinite(theta):
        return None
    fire_at = theta if neuron.fire_rule == ">=" else np.nextafter(theta, f(np.inf))
    # where no spike, NumPy adds (or subtracts) 0.0 * parameter: a zero with the parameter's sign
    if neuron.soft_reset:               # H - S * theta
        a1, b1, a0, b0 = 1, -theta, 1, -(f(0) * theta)
    elif neuron.plain_zero_reset:       # H * (1 - S): H * 0 where a spike, H * 1 elsewhere; nothing added
        a1, b1, a0, b0 = 0, -0.0, 1, -0.0
    else:                               # H * (1 - S) + S * v_reset
        a1, b1, a0, b0 = 0, f(neuron.v_reset), 1, f(0) * f(neuron.v_reset)
    return fire_at, a1, b1, a0, b0, (-0.0 if type(neuron) is P.IF else f(neuron.leak))


def run(neuron: P.Neuron, x: np.ndarray, params: tuple, record_v: bool) -> tuple:
    """spikes, v, h [N, T, ...] as `reference.run_neuron` returns them (v and h None without record_v); `params`
    from `plan(neuron, x)`. x may repeat one frame over the steps (a broadcast, stride 0): it is read once."""
    n, t = x.shape[:2]
    frames = x[:, :1] if t > 1 and x.strides[1] == 0 else x         # [N, T' = 1 or T, ...]
    frames = frames.reshape(n, frames.shape[1], -1)                  # (a copy only if x's frames were strided)
    m = frames.shape[2]
    spikes = np.empty((n, t, m), bool)
    vs, hs = (np.empty((n, t, m), x.dtype), np.empty((n, t, m), x.dtype)) if record_v else (None, None)
    v0 = np.full(m, neuron.initial_v, x.dtype)

    def samples(lo: int, hi: int) -> None:
        # without records, h and v live in one scratch frame each per thread, rewritten at every step
        v, h = (vs[lo:hi], hs[lo:hi]) if record_v else (np.empty((1, 1, m), x.dtype), np.empty((1, 1, m), x.dtype))
        _kernel()(frames[lo:hi], v0, *params, spikes[lo:hi].view(np.uint8), h, v, record_v)
    # samples in halves on two threads (the kernel releases the GIL): each element's update is its own, so the
    # results are the same bits however the samples are cut
    parallel.in_parts(n, samples, spikes.size >= SPLIT_SIZE)
    shape = x.shape
    return spikes.reshape(shape), (vs.reshape(shape) if record_v else None), (hs.reshape(shape) if record_v else None)


def _kernel():
    """The compiled step loop (`jit.compiled`); None without numba."""
    return jit.compiled(_steps)


def _steps(x, v0, fire_at, a1, b1, a0, b0, leak, spikes, hs, vs, record):
    """The step loop `run` describes: x [N, T' = 1 or T, M], v0 [M], spikes (as uint8) / hs / vs [N, T, M] (or one
    scratch frame each without `record`)."""
    n_, t_, m_ = spikes.shape
    r = 1 if record else 0          # without records, h and v live in one scratch frame each
    for n in range(n_):
        v = v0
        for t in range(t_):
            xs = x[n, t if x.shape[1] > 1 else 0]
            hh, vv, sp = hs[n * r, t * r], vs[n * r, t * r], spikes[n, t]
            for i in range(m_):             # charge (two separate loops: each vectorizes)
                hh[i] = v[i] + xs[i] + leak
            for i in range(m_):             # fire and reset, from H as stored
                h = hh[i]
                s = h >= fire_at
                sp[i] = s
                vv[i] = h * (a1 if s else a0) + (b1 if s else b0)
            v = vv
