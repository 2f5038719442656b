"""PAIBox with many samples per simulation (the stacked layout) gives exactly the one-sample-at-a-time records."""
from __future__ import annotations

import numpy as np
import pytest

from snncheck.backends.paibox import PAIBoxBackend, layouts, lower
from snncheck.backends.reference import ReferenceBackend
from snncheck.errors import InputError
from snncheck.graph import chain
from snncheck.graph import primitives as P

from helpers import assert_exact, digits_int_graph, int_csnn, pixel_inputs, resnet_graph


def _mlp_with_leak(seed: int = 3):
    """Flattened input, soft reset, a per-neuron additive leak and a scalar one: the other neuron drives."""
    rng = np.random.default_rng(seed)
    return chain([
        ("f", P.Flatten()),
        ("l1", P.Linear(rng.integers(-40, 41, (24, 64)), rng.integers(-200, 200, 24))),
        ("n1", P.AdditiveLIF(900, reset="soft", leak=rng.integers(-30, 60, 24))),
        ("l2", P.Linear(rng.integers(-40, 41, (10, 24)))),
        ("n2", P.AdditiveLIF(40, v_reset=0, leak=3)),
    ], (1, 8, 8), name="mlp_leak")


def _deep_csnn(seed: int = 5):
    """Three convs with biases and two paddings, so gaps must survive two poolings; '>' on the last layer."""
    rng = np.random.default_rng(seed)
    return chain([
        ("c1", P.Conv2d(rng.integers(-25, 26, (6, 2, 3, 3)), rng.integers(-300, 900, 6), (1, 1), (1, 1))),
        ("n1", P.IF(900, v_reset=0)),
        ("p1", P.MaxPool2d()),
        ("c2", P.Conv2d(rng.integers(-30, 31, (8, 6, 3, 3)), rng.integers(-5, 20, 8), (1, 1), (1, 1))),
        ("n2", P.IF(35, reset="soft")),
        ("c3", P.Conv2d(rng.integers(-30, 31, (8, 8, 3, 3)), None, (1, 1), (1, 1))),
        ("n3", P.IF(30, v_reset=0)),
        ("p3", P.MaxPool2d()),
        ("f", P.Flatten()),
        ("l1", P.Linear(rng.integers(-30, 31, (10, 8 * 3 * 3)), rng.integers(-5, 5, 10))),
        ("n4", P.IF(20, v_reset=0, fire_rule=">")),
    ], (2, 12, 12), name="deep_csnn")


CASES = {
    "csnn_hard": (lambda: int_csnn(seed=1, reset="hard"), (1, 8, 8)),
    "csnn_soft": (lambda: int_csnn(seed=2, reset="soft"), (1, 8, 8)),
    "mlp_leak": (_mlp_with_leak, (1, 8, 8)),
    "deep_csnn": (_deep_csnn, (2, 12, 12)),
}


def _assert_same(plain, batched) -> None:
    assert plain.names == batched.names
    for a, b in zip(plain.layers, batched.layers):
        assert a.spikes.shape == b.spikes.shape and a.v.shape == b.v.shape, a.name
        assert np.array_equal(a.spikes, b.spikes), (a.name, int((a.spikes != b.spikes).sum()))
        assert np.array_equal(a.v, b.v), (a.name, int((a.v != b.v).sum()))


@pytest.mark.parametrize("case", sorted(CASES))
def test_batched_equals_one_sample_at_a_time_on_every_layer(case):
    make, shape = CASES[case]
    g = make()
    x = pixel_inputs(7, 4, shape, seed=11)
    plain = PAIBoxBackend().run(g, x)
    batched = PAIBoxBackend(batch=3).run(g, x)            # 7 samples: 3 runs of 3, 3, 1
    assert batched.meta["batch"] == 3 and "batch_fallback" not in batched.meta
    _assert_same(plain, batched)
    for rec in plain.layers:     # not vacuous: every layer fires, and the voltages move
        assert 0.005 < rec.spikes.mean() < 0.95, (rec.name, rec.spikes.mean())
        assert np.abs(rec.v).max() > 0, rec.name


def test_a_planted_gap_bias_of_zero_makes_the_batched_run_differ(monkeypatch):
    """The stacked first layer has rows between samples whose conv sees two samples; without their silencing bias
    they fire, and the padded convolutions after them read those spikes into real neurons. So the equality above
    depends on the silencing bias being right, and this test proves it can fail."""
    g = _deep_csnn()
    x = pixel_inputs(4, 4, (2, 12, 12), seed=11)
    plain = PAIBoxBackend().run(g, x)
    monkeypatch.setattr(layouts.Stacked, "_silence", lambda self, name, reach, rows: 0)
    planted = PAIBoxBackend(batch=4).run(g, x)
    differ = [a.name for a, b in zip(plain.layers, planted.layers)
              if not (np.array_equal(a.spikes, b.spikes) and np.array_equal(a.v, b.v))]
    assert differ, "a gap bias of 0 went unnoticed"


def test_gap_neurons_get_the_silencing_bias_and_real_ones_their_own():
    g = _deep_csnn()
    layout = layouts.Stacked(g, batch=4, steps=8)
    rows = layout.plan["n1"]["rows"]
    threshold = int(g.nodes["n1"].threshold)
    assert rows.gap_rows().any() and layout.plan["n1"]["silence"] < -threshold
    bias, leak = layout.drive("n1")
    assert bias.shape == layout.shape("n1") and leak == 0
    gap = rows.gap_rows()
    assert np.all(bias[:, gap] == layout.plan["n1"]["silence"])
    assert np.array_equal(bias[:, ~gap][:, :12], np.broadcast_to(g.nodes["c1"].bias[:, None, None], (6, 12, 12)))


def test_embedded_digits_network_batched_matches_plain_and_the_reference():
    g = digits_int_graph()
    x = pixel_inputs(12, 8, (1, 8, 8), seed=3)
    plain = PAIBoxBackend().run(g, x)
    batched = PAIBoxBackend(batch=8).run(g, x)
    assert batched.meta["batch"] == 6 and plain.meta["batch"] == 1       # 12 samples in two balanced runs
    _assert_same(plain, batched)
    assert_exact(batched, ReferenceBackend().run(g, x), 8)


def test_flat_timing_is_batched_too():
    g = int_csnn(seed=1)
    x = pixel_inputs(4, 3, seed=4)
    _assert_same(PAIBoxBackend(timing="flat").run(g, x), PAIBoxBackend(timing="flat", batch=4).run(g, x))


def test_unstackable_network_falls_back_to_one_sample_and_says_why():
    """Overlapping 3x3/2 pooling: its gap outputs would read a sample's rows, and a pool has no bias to silence."""
    rng = np.random.default_rng(0)
    g = chain([
        ("c1", P.Conv2d(rng.integers(-20, 21, (4, 1, 3, 3)), None, (1, 1), (1, 1))),
        ("n1", P.IF(200, v_reset=0)),
        ("p1", P.MaxPool2d((3, 3), (2, 2))),
        ("f", P.Flatten()),
        ("l1", P.Linear(rng.integers(-20, 21, (10, 4 * 3 * 3)))),
        ("n2", P.IF(10, v_reset=0)),
    ], (1, 8, 8))
    with pytest.raises(InputError, match="p1"):
        layouts.Stacked(g, batch=4, steps=6)
    x = pixel_inputs(3, 3, seed=1)
    run = PAIBoxBackend(batch=4).run(g, x)
    assert run.meta["batch"] == 1 and "p1" in run.meta["batch_fallback"]
    _assert_same(PAIBoxBackend().run(g, x), run)


def test_merges_fall_back_to_one_sample_at_a_time_and_say_why():
    g = resnet_graph()
    x = pixel_inputs(3, 3, (2, 8, 8), seed=1)
    run = PAIBoxBackend(batch=3).run(g, x)
    assert run.meta["batch"] == 1
    assert "'n2' sums 2 synaptic terms (a merge)" in run.meta["batch_fallback"]
    _assert_same(PAIBoxBackend().run(g, x), run)


def test_runs_too_long_for_the_silencing_bias_are_refused():
    with pytest.raises(InputError, match="30-bit"):
        layouts.Stacked(_deep_csnn(), batch=4, steps=10 ** 6)


def test_a_single_identity_term_stacks():
    """A neuron fed by a one-to-one synapse alone (a Scale) keeps its source's rows."""
    rng = np.random.default_rng(2)
    g = chain([("c1", P.Conv2d(rng.integers(-20, 21, (3, 1, 3, 3)), None, (1, 1), (1, 1))),
               ("n1", P.IF(150, v_reset=0)), ("s", P.Scale(3)), ("n2", P.IF(5, reset="soft"))], (1, 8, 8))
    assert [l.kind for l in lower.stages(g)[1].links] == ["identity"]
    x = pixel_inputs(5, 4, seed=2)
    batched = PAIBoxBackend(batch=5).run(g, x)
    assert batched.meta["batch"] == 5
    _assert_same(PAIBoxBackend().run(g, x), batched)
    assert batched.layer("n2").spikes.any()
