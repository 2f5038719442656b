"""The reference's neuron update compiled into one pass per step (numba), for the neurons whose update is exact.

`Neuron.charge`, `fire` and `after_fire` (snncheck.graph.primitives) are the semantics; `reference.run_neuron`
applies them step by step with NumPy, three to five passes over a step's values, each through memory. This kernel
computes the same step in two passes over one step's values (the charge, then the fire and reset), which the
compiler vectorizes: 1.8-5x faster than NumPy per neuron layer here, the most on small layers, where NumPy's fixed
cost per call dominates (`benchmarks/fastpaths_ab.py` measures it in the reference's runs).

What it computes, per step t and element (scalar parameters, integer values, exact):

    H[t] = V[t-1] + X[t] + leak                         (IF: leak = 0; AdditiveLIF: its constant leak)
    S[t] = H[t] >= fire_at                              ("h > threshold" on integers is "h >= threshold + 1")
    V[t] = H[t] * keep + shift   where S[t], else H[t]  (hard: keep 0, shift v_reset; soft: keep 1, shift -threshold)

It takes only what it computes exactly as NumPy does (`plan`): an IF or AdditiveLIF (not a subclass, methods as
defined) with scalar parameters on an int32 or int64 state; every other neuron (float states, multiplicative
leaks, per-neuron parameters, a user's own neuron class) runs in NumPy.
Without numba (it is a dependency, but a platform may lack its wheels) everything runs in NumPy.
`ENABLED` switches it off for the baseline of benchmarks and identity tests.
"""
from __future__ import annotations

import functools
from typing import Optional

import numpy as np

from ..graph import primitives as P

ENABLED = True
INTEGER_STATES = (np.dtype(np.int32), np.dtype(np.int64))
STEPS = ("charge", "fire", "after_fire")
# the step methods this kernel restates, per neuron type: a subclass, or a method replaced (a planted bug, a patch),
# is not what the kernel computes, and runs in NumPy
RESTATED = {cls: tuple(getattr(cls, m) for m in STEPS) for cls in (P.IF, P.AdditiveLIF)}


def plan(neuron: P.Neuron, x: np.ndarray) -> Optional[tuple]:
    """(fire_at, keep, shift, leak) as x's dtype when the kernel computes this neuron on x exactly; else None."""
    restated = RESTATED.get(type(neuron))
    if not ENABLED or x.dtype not in INTEGER_STATES or restated is None or \
            restated != tuple(getattr(type(neuron), m) for m in STEPS):
        return None
    leak = getattr(neuron, "leak", 0)
    values = (neuron.threshold, neuron.v_reset, neuron.initial_v, leak)
    if any(np.ndim(v) for v in values) or not all(float(v).is_integer() for v in values) or _kernel() is None:
        return None
    theta = int(neuron.threshold)
    fire_at = theta if neuron.fire_rule == ">=" else theta + 1
    keep, shift = (1, -theta) if neuron.soft_reset else (0, int(neuron.v_reset))
    params = (fire_at, keep, shift, int(leak), int(neuron.initial_v))
    info = np.iinfo(x.dtype)        # (a parameter beyond the state's range: NumPy's casts say what happens)
    if not all(info.min <= p <= info.max for p in params):
        return None
    return tuple(x.dtype.type(p) for p in params[:4])


def run(neuron: P.Neuron, x: np.ndarray, params: tuple, record_v: bool) -> tuple:
    """spikes, v, h [N, T, ...] as `reference.run_neuron` returns them (v and h None without record_v); `params`
    from `plan(neuron, x)`. x may repeat one frame over the steps (a broadcast, stride 0): it is read once."""
    n, t = x.shape[:2]
    frames = x[:, :1] if t > 1 and x.strides[1] == 0 else x         # [N, T' = 1 or T, ...]
    frames = frames.reshape(n, frames.shape[1], -1)                  # (a copy only if x's frames were strided)
    m = frames.shape[2]
    spikes = np.empty((n, t, m), bool)
    if record_v:
        vs, hs = np.empty((n, t, m), x.dtype), np.empty((n, t, m), x.dtype)
    else:                       # one frame of scratch each, rewritten at every step
        vs, hs = np.empty((1, 1, m), x.dtype), np.empty((1, 1, m), x.dtype)
    v0 = np.full(m, neuron.initial_v, x.dtype)
    _kernel()(frames, v0, *params, spikes.view(np.uint8), hs, vs, record_v)
    shape = x.shape
    return spikes.reshape(shape), (vs.reshape(shape) if record_v else None), (hs.reshape(shape) if record_v else None)


@functools.lru_cache(maxsize=None)
def _kernel():
    """The compiled step loop (compiled at its first call per dtype, cached on disk by numba); None without numba."""
    try:
        import numba
    except ImportError:
        return None

    @numba.njit(nogil=True, cache=True)
    def steps(x, v0, fire_at, keep, shift, leak, spikes, hs, vs, record):
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
                    vv[i] = h * keep + shift if s else h
                v = vv
    return steps
