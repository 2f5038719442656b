"""Loops compiled by numba for the reference's hot spots that NumPy runs as several passes (`fused_neuron`,
`small_ints`). Optional at run time: without numba (a platform without its wheels) `compiled` gives None and each
caller takes its NumPy way, with the same results."""
from __future__ import annotations

import functools


@functools.lru_cache(maxsize=None)
def compiled(loop):
    """`loop` compiled by numba, without the GIL (callers split work over threads) and with its machine code cached
    on disk beside its module, or in the user's cache directory (a process then loads it instead of compiling:
    ~0.2 s against ~0.5 s; with neither writable, compiled in every process); None without numba. Compiled at the
    first call for each argument type."""
    try:
        import numba
    except ImportError:
        return None
    try:
        return numba.njit(nogil=True, cache=True)(loop)
    except RuntimeError:        # no writable cache directory (a read-only install, no HOME): compile every process
        return numba.njit(nogil=True)(loop)
