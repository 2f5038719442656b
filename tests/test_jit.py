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

    def njit(*args, **options):         # (numba's own overloads call it too, positionally)
        if options.get("cache"):
            raise RuntimeError("cannot cache function '_double': no locator available")
        return real(*args, **options)
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


def test_warm_up_compiles_the_types_runs_meet():
    """Catches `make venv`'s warm-up leaving out a type the demo meets (int32 and float32 neuron states, pixels cast
    to uint8, event counts to int8): the first demo on a machine would compile it. In a fresh process: this one's
    loops already hold what earlier tests compiled."""
    import subprocess
    import sys
    pytest.importorskip("numba")
    code = ("from snncheck.backends.reference import warm_up; print(repr({k: ' '.join(map(str, v)) "
            "for k, v in warm_up().items()}))")
    got = eval(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    for dtype in ("int32", "int64", "float32"):
        assert f"Array({dtype}, 3, 'C', True" in got["_steps"], dtype
    assert "Array(int8, 1" in got["_cast"] and "Array(uint8, 1" in got["_cast"]
