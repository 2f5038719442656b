"""The reference's integer inputs: a float input of integer values becomes the narrowest integer array, one with any
fraction stays float (the network then runs in float32, not exactly), by the compiled cast-and-check loop and by
NumPy alike."""
from __future__ import annotations

from unittest import mock

import numpy as np
import pytest

from snncheck.backends import small_ints
from snncheck.backends.reference import ReferenceBackend
from snncheck.errors import InputError

from helpers import int_csnn, pixel_inputs


def both(x):
    """integer_copy of x compiled and in NumPy (they must agree)."""
    lo, hi = float(x.min()), float(x.max())
    with mock.patch.object(small_ints, "ENABLED", False):
        plain = small_ints.integer_copy(x, lo, hi)
    return small_ints.integer_copy(x, lo, hi), plain


@pytest.mark.parametrize("values, dtype", [
    ([0, 3, 1], np.int8), ([0, 255, 7], np.uint8), ([-3, 200], np.int16), ([-40000, 5], np.int32),
    ([2.0 ** 40, -1], np.int64), ([-0.0, 0.0, 127], np.int8)])
def test_integer_values_come_out_in_the_narrowest_type(values, dtype):
    """Catches a type too narrow for the range (255 in int8 wraps), a value changed by the cast, or integer
    values taken for fractions (-0.0 is the integer 0)."""
    x = np.array(values * 60, np.float64).reshape(2, 3, -1)[:, ::2]         # (strided: as a window of a run)
    for got in both(x):
        assert got is not None and got.dtype == dtype and got.shape == x.shape and np.array_equal(got, x)


@pytest.mark.parametrize("where", [0, 77, -1])
def test_one_fraction_anywhere_keeps_the_inputs_float(where):
    """Catches the integer check stopping early, missing the first or the last value, or comparing the cast with
    itself: one 0.5 among integers must keep the run in float (not exact)."""
    x = np.arange(300, dtype=np.float64).reshape(3, 100) % 7
    x.reshape(-1)[where] = 0.5
    assert both(x) == (None, None)


def test_beyond_int64_is_not_an_integer_input():
    """Catches integer-valued floats beyond int64 (1e30) cast anyway (they would wrap into garbage)."""
    x = np.array([[1e30, 0.0]])
    assert both(x) == (None, None)


def test_reference_runs_fractional_or_huge_inputs_in_float_and_refuses_nan():
    """Catches the reference calling integer inputs what is not (a run marked exact on fractional pixels) and
    NaN or an infinity getting through the range check."""
    graph, x = int_csnn(), pixel_inputs(2, 3)
    assert ReferenceBackend().run(graph, x).meta["exact"]
    y = x.copy()
    y[1, 2, 0, 3, 3] += 0.25
    assert not ReferenceBackend().run(graph, y).meta["exact"]
    for bad in (np.nan, np.inf, -np.inf):
        y[0, 0, 0, 0, 0] = bad
        with pytest.raises(InputError, match="NaN or infinite"):
            ReferenceBackend().run(graph, y)


@pytest.mark.parametrize("dtype", [np.float16, ">f8", np.longdouble, np.float32])
def test_every_float_type_comes_through(dtype):
    """Catches the compiled loop handed a float type it was not compiled for (float16, big-endian, long double:
    numba cannot type them and raised from inside the reference): those take NumPy's way, with the same result."""
    x = (np.arange(60) % 9).reshape(2, 3, 10).astype(dtype)
    got, plain = both(x)
    assert got is not None and got.dtype == np.int8 and np.array_equal(got, plain) and np.array_equal(got, x)
    graph = int_csnn()
    assert ReferenceBackend().run(graph, pixel_inputs(2, 3).astype(dtype)).meta["exact"]


def test_an_input_of_width_zero_runs():
    """Catches the range check failing on an empty input (min of a zero-size array raised a bare ValueError)."""
    from snncheck.graph import chain
    from snncheck.graph import primitives as P
    graph = chain([("l", P.Linear(np.zeros((3, 0), np.int64))), ("n", P.IF(1))], (0,))
    run = ReferenceBackend().run(graph, np.zeros((2, 3, 0)))
    assert run.layers[0].spikes.shape == (2, 3, 3)
