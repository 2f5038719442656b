"""`backends.jit.compiled`: numba when it can, NumPy's way when it cannot (no numba, no writable cache)."""
from __future__ import annotations

import pytest

from snncheck.backends import jit


def _double(x):
    return 2 * x


def test_no_writable_cache_compiles_without_it(monkeypatch):
    """Catches numba's "cannot cache function: no locator available" (a read-only install without HOME) escaping
    from the reference: the loop is then compiled in every process instead."""
    numba = pytest.importorskip("numba")
    real = numba.njit

    def njit(**options):
        if options.get("cache"):
            raise RuntimeError("cannot cache function '_double': no locator available")
        return real(**options)
    monkeypatch.setattr(numba, "njit", njit)
    jit.compiled.cache_clear()
    try:
        loop = jit.compiled(_double)
        assert loop is not None and loop(21) == 42
    finally:
        jit.compiled.cache_clear()


def test_without_numba_there_is_no_loop(monkeypatch):
    """Catches an ImportError of numba escaping instead of giving None (the callers' NumPy way)."""
    import builtins
    real = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name))
                        if name == "numba" else real(name, *a, **k))
    jit.compiled.cache_clear()
    try:
        assert jit.compiled(_double) is None
    finally:
        monkeypatch.undo()
        jit.compiled.cache_clear()
