"""The diagnoses' fast paths decide exactly as their plain forms: the reset mode from the share of the potential
after the first spike (no gather, no sort) against reset_signature's share at the most common value (np.unique);
the isolated mode sharing work (B's reference run for layers fed what it had, B's own spikes as the yardstick
where B is that requantization) against evaluating every layer."""
from __future__ import annotations

import numpy as np
import pytest

from snncheck.backends.base import LayerRecord
from snncheck.diagnose import dynamic


def _record(post: np.ndarray) -> LayerRecord:
    """A layer whose potentials after its spikes are `post` (and arbitrary where it does not spike)."""
    n = post.size
    spikes = np.zeros((1, 2 * n), bool)
    spikes[0, ::2] = True
    v = np.full((1, 2 * n), 7, post.dtype)
    v[0, ::2] = post
    return LayerRecord("n", spikes, v)


@pytest.mark.parametrize("first", ["reset", "rare", "common"])
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float32])
@pytest.mark.parametrize("at_reset", [0, 1, 10, 11, 98, 99, 100, 180, 989, 990, 991, 1000])
def test_reset_mode_is_reset_signatures_mode(dtype, at_reset, first):
    """Catches a share compared otherwise than reset_signature compares it (989, 990, 991 of 1000 at v_reset: both
    sides of HARD_SIGNATURE; 10, 11: both sides of 1 - HARD_SIGNATURE for the first value), and a first value that
    is not the most common one taken as deciding (`rare`: the first spike leaves a value held by one in 1000)."""
    rng = np.random.default_rng(at_reset)
    post = rng.integers(-50, 50, 1000).astype(dtype)
    post[(post == 0) | (post == 5) | (post == 33)] = 1
    post[:at_reset] = 0
    if at_reset < 500:
        post[at_reset:at_reset + 200] = 5                  # a common value other than the reset
    post = rng.permutation(post)
    lead = {"reset": 0, "rare": 33, "common": 5}[first]
    post = np.concatenate([[lead], post[1:]]).astype(dtype)
    rec = _record(post)
    assert dynamic.reset_mode(rec) == dynamic.reset_signature(rec)[0]


@pytest.mark.parametrize("others", [9, 10, 11])
def test_reset_mode_at_the_soft_boundary(others):
    """Catches a first value taken as deciding "soft" at a share of exactly 1 - HARD_SIGNATURE: 990 at v_reset and
    10 at the value the first spike leaves is hard."""
    post = np.zeros(1000, np.int32)
    post[-others:] = 7
    rec = _record(np.roll(post, others))
    assert dynamic.reset_mode(rec) == dynamic.reset_signature(rec)[0]


def test_reset_mode_with_too_few_spikes_or_no_potential():
    """Catches a mode claimed without evidence (fewer than min_spikes, or no v recorded)."""
    rec = _record(np.zeros(10, np.int32))
    assert dynamic.reset_mode(rec) is None and dynamic.reset_signature(rec) == (None, None)
    assert dynamic.reset_mode(rec.replace(v=None)) is None


def test_same_values_compares_every_field_by_value():
    """Catches a comparison that skips scalar fields (a threshold, a reset) or compares arrays by dtype."""
    from snncheck.diagnose.dynamic import _same_values
    from snncheck.graph import primitives as P
    w = np.arange(-4, 5).reshape(1, 1, 3, 3)
    assert _same_values(P.Conv2d(w.astype(np.int8), None), P.Conv2d(w.astype(np.float64), None))
    assert not _same_values(P.Conv2d(w, None), P.Conv2d(w, np.zeros(1)))
    assert not _same_values(P.Conv2d(w, None), P.Conv2d(w + (w == 4), None))
    assert _same_values(P.IF(300, reset="hard", v_reset=0), P.IF(300.0, reset="hard", v_reset=0))
    assert not _same_values(P.IF(300, reset="hard", v_reset=0), P.IF(301, reset="hard", v_reset=0))
    assert not _same_values(P.IF(300, reset="hard", v_reset=0), P.IF(300, reset="soft"))
    assert not _same_values(P.IF(300), P.Scale(300))


@pytest.mark.parametrize("bug", [None, "vthr_scale", "reset_mode"])
def test_isolated_shares_work_only_where_it_gives_the_same(monkeypatch, bug):
    """Catches the isolated mode taking B's reference run or B's own spikes for a layer whose evaluation would
    differ: with and without the sharing (the reference run standing in for layers fed what it had; B's spikes
    for a requantization B is) the results are equal, on a correct conversion and two wrong ones, and the
    sharing does happen (fewer evaluations)."""
    from snncheck import convert, mutations
    from snncheck.backends.reference import ReferenceBackend
    from snncheck.diagnose import static
    from convert_nets import model
    a, x, _ = model("csnn28")
    conv = convert.convert(a, 255, "max")
    b = conv.graph if bug is None else mutations.apply(conv.graph, a, {"name": bug, "layer": "conv_fc.6"}, conv)
    deployed = np.rint(x.astype(np.float64) * 255)
    a_run, b_run = ReferenceBackend().run(a, x, "reference:a"), ReferenceBackend().run(b, deployed, "reference:b")
    scales = {n: st["scale"] for n, st in static.analyse(a, b, 255)[0].items()}
    calls = []
    real = dynamic.evaluate
    monkeypatch.setattr(dynamic, "evaluate", lambda *args, **kw: (calls.append(1), real(*args, **kw))[1])
    shared = dynamic.isolated(a, b, a_run, x, 255, scales, b_run, deployed)
    fewer, calls[:] = len(calls), []
    monkeypatch.setattr(dynamic, "_same_part", lambda *args: False)
    plain = dynamic.isolated(a, b, a_run, x, 255, scales)
    assert shared == plain
    assert fewer < len(calls)
