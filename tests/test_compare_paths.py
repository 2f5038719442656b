"""compare finds a layer's mismatches two ways: over the whole boolean array (dense) and, when they are few, from
their indices (sparse). Both must say the same first divergence, the same first step per sample and the same
primary flips in the same order, for every density and any upstream first step."""
from __future__ import annotations

import numpy as np
import pytest

from snncheck import compare
from snncheck.backends.base import LayerRecord, RunResult


def _flat(rng, rate: float, shape=(6, 9, 40)) -> np.ndarray:
    flat = rng.random(shape) < rate
    flat[2] = False                     # a sample without a mismatch
    flat[4, :, 7] = True                # a neuron that differs at every step
    return flat


@pytest.mark.parametrize("rate", [0.001, 0.01, 0.05, 0.3])
@pytest.mark.parametrize("seed", range(4))
def test_sparse_and_dense_find_the_same(rate, seed):
    """Catches a sparse path off by one anywhere: the first divergence (step, then sample, then neuron), a sample's
    first step, a neuron's first flip kept as primary (not a later one), the upstream cut (< not <=), C order."""
    rng = np.random.default_rng(seed)
    flat = _flat(rng, rate)
    upstream = rng.integers(0, flat.shape[1] + 1, flat.shape[0])
    ids = np.arange(100, 100 + flat.shape[0])
    dense, sparse = compare._Dense(flat), compare._Sparse(flat)
    assert sparse.first((40,), ids) == dense.first((40,), ids)
    assert np.array_equal(sparse.first_steps(), dense.first_steps())
    for up in (None, upstream):
        assert np.array_equal(sparse.primary(up), dense.primary(up))


def test_dense_primary_is_the_definition():
    """Catches a dense path that keeps a neuron's later flips or drops its first: primary = the first mismatch of a
    neuron in a sample, before the sample's first upstream mismatch."""
    flat = np.zeros((2, 4, 3), bool)
    flat[0, 1, 0] = flat[0, 2, 0] = flat[0, 3, 2] = flat[1, 0, 1] = flat[1, 2, 1] = True
    assert compare._Dense(flat).primary(None).tolist() == [[0, 1, 0], [0, 3, 2], [1, 0, 1]]
    assert compare._Dense(flat).primary(np.array([3, 4])).tolist() == [[0, 1, 0], [1, 0, 1]]
    assert compare._Dense(flat).first((3,), np.arange(2)) == {"t": 0, "sample": 1, "neuron": [1], "index": 1}
    assert compare._Dense(flat).first_steps().tolist() == [1, 0]


def test_compare_takes_the_sparse_path_and_agrees_with_the_dense_one(monkeypatch):
    """Not vacuous: a whole comparison with few mismatches goes through _Sparse, and forcing _Dense gives the same."""
    rng = np.random.default_rng(7)
    shape = (5, 8, 4, 6)
    spikes = rng.random(shape) < 0.3
    flipped = spikes ^ (rng.random(shape) < 0.02)
    h = rng.standard_normal(shape).astype(np.float32)
    run = lambda s, label: RunResult("x", label, [LayerRecord("n", s, h, h, 0.5, 1e-3)])    # noqa: E731
    used, real = [], compare._Sparse
    monkeypatch.setattr(compare, "_Sparse", type("Spy", (real,), {
        "__init__": lambda self, flat: (used.append(1), real.__init__(self, flat))[1]}))
    sparse = compare.compare(run(spikes, "a"), run(flipped, "b")).layers[0].to_dict()
    assert used
    monkeypatch.setattr(compare, "SPARSE", 0)
    dense = compare.compare(run(spikes, "a"), run(flipped, "b")).layers[0].to_dict()
    assert sparse == dense and sparse["flips"]
