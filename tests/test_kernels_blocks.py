"""snncheck.kernels' float32 screens read block by block (kernels.BLOCK entries at a time): the result must be the
plain float64 expression's whatever the block size, wherever the largest difference sits (first block, a block's
last entry, the ragged last block) and for records that are not contiguous (aligned windows, copied once)."""
from __future__ import annotations

import numpy as np
import pytest

from snncheck import kernels

from test_kernels import _plain_diff, _scaled_case


def _pairs(rng):
    """(a, b, scale) as diff meets them: SpikingJelly's float32 membranes of A and B, the reference's int32 of B."""
    shape = (3, 5, 2, 7)                         # 210 entries: not a multiple of the small blocks below
    a32 = (rng.standard_normal(shape) * 40).astype(np.float32)
    b32 = np.where(rng.random(shape) < 0.3, np.nextafter(a32, np.float32(np.inf)), a32)
    i32 = rng.integers(-300, 300, shape).astype(np.int32)
    f_of_i = np.where(rng.random(shape) < 0.2, i32 + 1, i32).astype(np.float32)
    scaled, b_scaled, k = _scaled_case(int(rng.integers(100)))
    return [(a32, b32, None), (f_of_i, i32, None), (i32, f_of_i, None), (a32, i32, 37.5), (scaled, b_scaled, k)]


@pytest.mark.parametrize("block", [7, 64, 209, 210, 1 << 15])
@pytest.mark.parametrize("at", [0, 6, 7, -1, None])
def test_block_screens_are_the_plain_difference(monkeypatch, block, at):
    """Catches a block that skips or repeats entries (a start or an end off by one), a maximum or a count taken
    from one block only, and an exact maximum taken on another block than the one holding the float32 maximum:
    the largest difference is planted at the first entry, at a block's last or first entry, or at the very end."""
    monkeypatch.setattr(kernels, "BLOCK", block)
    rng = np.random.default_rng(block)
    for a, b, scale in _pairs(rng):
        if at is not None:
            b = b.copy()
            b.flat[at] = b.flat[at] + (500 if scale is None else 500 * scale)
        assert kernels.membrane_diff(a, b, scale) == _plain_diff(a, b, scale)
        assert kernels.membrane_diff(a, a.copy() if scale is None else np.rint(a * scale).astype(np.int64),
                                     scale) == _plain_diff(a, a.copy() if scale is None else
                                                           np.rint(a * scale).astype(np.int64), scale)


def test_windows_are_screened_from_their_own_entries(monkeypatch):
    """Catches blocks read from a non-contiguous window as if it were contiguous (its raw buffer read, past the
    window); and arrays of other shapes screened entry by entry instead of broadcast as the plain expression is."""
    monkeypatch.setattr(kernels, "BLOCK", 5)
    rng = np.random.default_rng(9)
    for a, b, scale in _pairs(rng):
        wa, wb = a[:, 1:], b[:, :-1]
        assert kernels.membrane_diff(wa, wb, scale) == _plain_diff(wa, wb, scale)
        assert kernels.membrane_diff(a, b[:1], scale) == _plain_diff(a, b[:1], scale)
