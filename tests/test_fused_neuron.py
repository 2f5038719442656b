"""The reference's compiled neuron update (`fused_neuron`) gives exactly what the step-by-step NumPy update of the
primitives' equations gives: spikes, v and h, dtypes included, for every neuron it takes."""
from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from snncheck.backends import fused_neuron
from snncheck.backends.reference import ReferenceBackend, run_neuron
from snncheck.graph import primitives as P

from helpers import int_csnn, pixel_inputs

pytestmark = pytest.mark.skipif(fused_neuron._kernel() is None, reason="numba is not installed")


def numpy_only(neuron, x, record_v=True):
    with mock.patch.object(fused_neuron, "ENABLED", False):
        return run_neuron(neuron, x, record_v)


@st.composite
def cases(draw):
    dtype = draw(st.sampled_from([np.int32, np.int64, np.float32]))
    number = st.integers(-20, 20) if dtype != np.float32 else st.one_of(
        st.integers(-20, 20), st.sampled_from([0.0, -0.0, -0.5, 0.25, 1.5, np.float32(0), np.float32(0.75)]))
    theta = draw(st.integers(-5, 60) if dtype != np.float32 else st.sampled_from([-0.5, 0, 1, 0.75, 10, 30.5]))
    kind = draw(st.sampled_from(["IF", "AdditiveLIF"]))
    common = dict(threshold=theta, reset=draw(st.sampled_from(["hard", "soft"])), v_reset=draw(number),
                  fire_rule=draw(st.sampled_from([">=", ">"])), v_init=draw(st.one_of(st.none(), number)))
    neuron = P.IF(**common) if kind == "IF" else P.AdditiveLIF(leak=draw(number), **common)
    n, t = draw(st.integers(1, 4)), draw(st.integers(1, 9))
    shape = draw(st.sampled_from([(), (5,), (3, 4), (2, 3, 5)]))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    repeated = t > 1 and draw(st.booleans())          # direct encoding: one frame broadcast over the steps
    x = rng.integers(-25, 40, (n, 1 if repeated else t) + shape).astype(dtype)
    if dtype == np.float32:         # quarters: sums hit the threshold exactly; signed zeros where x is 0
        x = x / np.float32(4) * np.where(rng.random(x.shape) < 0.5, 1, -1).astype(np.float32)
    return neuron, np.broadcast_to(x, (n, t) + shape), draw(st.booleans())


@settings(max_examples=200, deadline=None)
@given(cases())
def test_compiled_update_is_the_numpy_update(case):
    """Catches any difference between the kernel and the equations, to the bit (signed zeros of float states
    included): an off-by-one in the step loop (a step skipped or read twice), `>` fired as `>=` (equality fires
    only under ">="), the soft reset subtracting the wrong value, a hard reset turning H's -0.0 into +0.0 where
    NumPy keeps it, the leak added once instead of every step, v_init ignored, a broadcast input read at the
    wrong step, a scratch frame without records that does not carry v."""
    neuron, x, record_v = case
    assert fused_neuron.plan(neuron, x) is not None         # (the kernel runs: the comparison is not vacuous)
    got, want = run_neuron(neuron, x, record_v), numpy_only(neuron, x, record_v)
    for g, w in zip(got, want):
        assert (g is None) == (w is None)
        if w is not None:
            assert g.dtype == w.dtype and g.shape == w.shape
            assert np.array_equal(np.ascontiguousarray(g).view(np.uint8), np.ascontiguousarray(w).view(np.uint8))


@pytest.mark.parametrize("neuron", [
    P.IF(1.0), P.IF(1.0, v_reset=np.float32(0)), P.IF(1.0, v_reset=-0.5), P.IF(1.0, reset="soft"),
    P.AdditiveLIF(1.0, leak=-0.0), P.IF(-0.5, v_reset=0), P.IF(0.0, fire_rule=">")])
def test_signed_zeros_as_numpy_leaves_them(neuron):
    """Catches the kernel's constants turning a -0.0 membrane into +0.0 (or back) where NumPy's operations do not:
    H - 0.0 and H * 1 keep -0.0, H + 0.0 makes it +0.0 (a hard reset to a non-plain zero adds S * v_reset), and IF
    adds no leak at all. Both +0.0 and -0.0 inputs, from a -0.0 initial membrane."""
    x = np.array([-0.0, -0.0, 0.0, -0.0, 2.0, -0.0], np.float32)[None, :, None] * np.ones((1, 1, 2), np.float32)
    neuron = P.IF(**{**neuron.__dict__, "v_init": -0.0}) if type(neuron) is P.IF else \
        P.AdditiveLIF(**{**neuron.__dict__, "v_init": -0.0})
    for record_v in (True, False):
        got, want = run_neuron(neuron, x, record_v), numpy_only(neuron, x, record_v)
        for g, w in zip(got, want):
            assert (g is None and w is None) or np.array_equal(g.view(np.uint8), w.view(np.uint8)), (g, w)


def test_threshold_equality_and_hard_reset_values():
    """Catches the fire rule inverted at equality: x = threshold fires under ">=" and not under ">", and a hard
    reset leaves v_reset."""
    x = np.full((1, 2, 3), 14, np.int32)          # step 0: H = 14 fires; step 1: H = -4 + 14 = 10, the threshold
    s, v, h = run_neuron(P.IF(10, v_reset=-4, v_init=0), x)
    assert s.all() and (v == -4).all() and (h[:, 1] == 10).all()
    s, v, h = run_neuron(P.IF(10, v_reset=-4, v_init=0, fire_rule=">"), x)
    assert s[:, 0].all() and not s[:, 1].any() and (v[:, 1] == 10).all()


@pytest.mark.parametrize("neuron, dtype, why", [
    (P.IF(10), np.float64, "float64 states (the reference's float graphs run in float32)"),
    (P.IF(np.inf), np.float32, "an infinite threshold"),
    (P.LIF(10, tau=2.0), np.int64, "a multiplicative leak makes fractions"),
    (P.IF(np.array([10, 11, 12])), np.int32, "per-neuron thresholds"),
    (P.AdditiveLIF(10, leak=np.array([1, 2, 3])), np.int32, "per-neuron leaks"),
    (P.IF(2 ** 31 - 1, fire_rule=">"), np.int32, "threshold + 1 beyond int32"),
])
def test_what_the_kernel_does_not_take_runs_in_numpy(neuron, dtype, why):
    """Catches the kernel taking a neuron it would compute differently from NumPy (`why`)."""
    x = np.ones((2, 3, 3), dtype)
    assert fused_neuron.plan(neuron, x) is None, why


def test_a_subclass_or_a_replaced_step_runs_in_numpy(monkeypatch):
    """Catches the kernel running a neuron whose steps are not the ones it restates: a user's subclass of IF, or
    a step method replaced (the fuzzing campaign plants bugs that way; the reference must compute them)."""
    import dataclasses

    @dataclasses.dataclass(frozen=True, eq=False)
    class Mine(P.IF):
        def charge(self, v, x, out=None):
            return np.add(v, 2 * x, out=out)
    x = np.ones((1, 2, 3), np.int32)
    assert fused_neuron.plan(P.IF(3), x) is not None and fused_neuron.plan(Mine(3), x) is None
    assert (run_neuron(Mine(3), x)[2][:, 0] == 2).all()
    monkeypatch.setattr(P.Neuron, "fire", lambda self, h, out=None: np.greater(h, self.threshold, out=out))
    assert fused_neuron.plan(P.IF(3), x) is None


def test_reference_runs_are_the_same_with_and_without_the_kernel():
    """Catches the reference's records of a whole integer network changing with the compiled update (as
    `ReferenceBackend.run` feeds it: int32 or int64 states, a repeated input frame on the first layer)."""
    graph, inputs = int_csnn(), pixel_inputs(6, 5)
    got = ReferenceBackend().run(graph, inputs)
    with mock.patch.object(fused_neuron, "ENABLED", False):
        want = ReferenceBackend().run(graph, inputs)
    for g, w in zip(got.layers, want.layers):
        assert np.array_equal(g.spikes, w.spikes) and np.array_equal(g.v, w.v) and g.v.dtype == w.v.dtype
    assert any(r.spikes.any() for r in got.layers)


@pytest.mark.parametrize("record_v", [True, False])
def test_samples_split_over_threads_give_the_same_records(monkeypatch, record_v):
    """Catches the two-thread split of a layer's samples reading or writing another part's samples (a half off by
    one sample), the threads sharing one scratch frame without records (a race), or a part left unwritten. Three
    samples: unequal halves; a repeated input frame: the broadcast read per part."""
    from snncheck import parallel
    rng = np.random.default_rng(5)
    neuron = P.IF(40, reset="soft")
    for x in (rng.integers(-20, 40, (3, 7, 4, 5)).astype(np.int32),
              np.broadcast_to(rng.integers(-20, 40, (3, 1, 4, 5)).astype(np.float32), (3, 7, 4, 5))):
        want = run_neuron(neuron, x, record_v)
        calls = []
        monkeypatch.setattr(fused_neuron, "SPLIT_SIZE", 0)
        monkeypatch.setattr(parallel, "frame_threads", lambda: 2)
        monkeypatch.setattr(parallel, "run_threads", lambda tasks, run=parallel.run_threads: calls.append(len(tasks))
                            or run(tasks))
        got = run_neuron(neuron, x, record_v)
        monkeypatch.undo()
        assert calls == [2]
        for g, w in zip(got, want):
            assert (g is None and w is None) or (g.dtype == w.dtype and np.array_equal(g, w))
        assert want[0].any() and not want[0].all()
