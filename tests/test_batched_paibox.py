"""Issue 6: PAIBox with many samples per simulation gives exactly the one-sample-at-a-time records."""
from __future__ import annotations

import numpy as np
import pytest

from snncheck import api, checkpoint, convert, data, ir, zoo
from snncheck.align import align
from snncheck.compare import compare
from snncheck.errors import InputError
from snncheck.runners import paibox, paibox_batched
from snncheck.runners.paibox import PAIBoxRunner

from helpers import int_csnn, pixel_inputs


def _mlp_with_leak(seed: int = 3) -> ir.Network:
    """Flattened input, soft reset, a per-neuron additive leak and a scalar one: the other neuron drives."""
    rng = np.random.default_rng(seed)
    return ir.Network([
        ir.Flatten("f"),
        ir.Linear("l1", rng.integers(-40, 41, (24, 64)).astype(np.int8), rng.integers(-200, 200, 24)),
        ir.AdditiveLIF("n1", 900, None, leak=rng.integers(-30, 60, 24)),
        ir.Linear("l2", rng.integers(-40, 41, (10, 24)).astype(np.int8)),
        ir.AdditiveLIF("n2", 40, 0, leak=3),
    ], (1, 8, 8), name="mlp_leak")


def _deep_csnn(seed: int = 5) -> ir.Network:
    """Three convs with biases and two paddings, so gaps must survive two poolings."""
    rng = np.random.default_rng(seed)
    return ir.Network([
        ir.Conv2d("c1", rng.integers(-25, 26, (6, 2, 3, 3)).astype(np.int8), rng.integers(-300, 900, 6), (1, 1), (1, 1)),
        ir.IF("n1", 900, 0.0),
        ir.MaxPool2d("p1"),
        ir.Conv2d("c2", rng.integers(-30, 31, (8, 6, 3, 3)).astype(np.int8), rng.integers(-5, 20, 8), (1, 1), (1, 1)),
        ir.IF("n2", 35, None),
        ir.Conv2d("c3", rng.integers(-30, 31, (8, 8, 3, 3)).astype(np.int8), None, (1, 1), (1, 1)),
        ir.IF("n3", 30, 0.0),
        ir.MaxPool2d("p3"),
        ir.Flatten("f"),
        ir.Linear("l1", rng.integers(-30, 31, (10, 8 * 3 * 3)).astype(np.int8), rng.integers(-5, 5, 10)),
        ir.IF("n4", 20, 0.0),
    ], (2, 12, 12), name="deep_csnn")


def _digits_int8() -> ir.Network:
    return convert.convert(checkpoint.load_float(zoo.DIGITS_CHECKPOINT).network, 255, "max").network


CASES = {
    "csnn_hard": (lambda: int_csnn(seed=1, reset="hard"), (1, 8, 8)),
    "csnn_soft": (lambda: int_csnn(seed=2, reset="soft"), (1, 8, 8)),
    "mlp_leak": (_mlp_with_leak, (1, 8, 8)),
    "deep_csnn": (_deep_csnn, (2, 12, 12)),
}


def _assert_same(plain: dict, batched: dict) -> None:
    assert list(plain) == list(batched)
    for name in plain:
        (s0, v0), (s1, v1) = plain[name], batched[name]
        assert s0.shape == s1.shape and v0.shape == v1.shape, name
        assert np.array_equal(s0, s1), (name, int((s0 != s1).sum()))
        assert np.array_equal(v0, v1), (name, int((v0 != v1).sum()))


@pytest.mark.parametrize("case", sorted(CASES))
def test_batched_equals_one_sample_at_a_time_on_every_layer(case):
    make, shape = CASES[case]
    net = make()
    x = pixel_inputs(7, 4, shape, seed=11).astype(np.uint8)
    plain = paibox.simulate(paibox.build(net), x)
    batched, used = paibox_batched.simulate_batched(net, x, batch=3)     # 7 samples: 3 runs of 3, 3, 1
    assert used == 3
    _assert_same(plain, batched)
    # not vacuous: every layer fires, and the voltages move
    for name, (s, v) in plain.items():
        assert 0.005 < s.mean() < 0.95, (name, s.mean())
        assert np.abs(v).max() > 0, name


def test_gap_neurons_would_fire_without_their_silencing_bias():
    """The stacked first layer has rows between samples whose conv sees two samples; with a large positive bias
    they would fire, so the equality above depends on the silencing bias being right."""
    net = _deep_csnn()
    layout = paibox_batched.StackedLayout(net, batch=4, steps=8)
    rows = layout.plan["n1"]["rows"]
    assert rows.gap_rows().any() and layout.plan["n1"]["silence"] < -int(net.layer("n1").threshold)
    shape, bias, leak = layout.neuron(net.layer("n1"), net.layer("c1"))
    assert bias.shape == shape and leak == 0
    gap = rows.gap_rows()
    assert np.all(bias[:, gap] == layout.plan["n1"]["silence"])
    assert np.array_equal(bias[:, ~gap][:, :12], np.broadcast_to(net.layer("c1").bias[:, None, None], (6, 12, 12)))


def test_embedded_digits_network_batched_runner_matches_plain_runner():
    net = _digits_int8()
    x, _ = data.digits("test")
    inputs = api.deployed_inputs(data.direct(x[:12], 8), 255)
    plain = PAIBoxRunner(net).run(inputs)
    batched = PAIBoxRunner(net, batch=8).run(inputs)
    assert batched.meta["batch"] == 6 and plain.meta["batch"] == 1       # 12 samples in two balanced runs
    for a, b in zip(plain.layers, batched.layers):
        assert np.array_equal(a.spikes, b.spikes) and np.array_equal(a.v, b.v), a.name
    ref = api.make_runner("reference", net, "b").run(inputs)
    assert compare(align(batched, ref), ref).exact


def test_flat_timing_is_batched_too():
    net = int_csnn(seed=1)
    x = pixel_inputs(4, 3, seed=4).astype(np.uint8)
    plain = paibox.simulate(paibox.build(net, "flat"), x)
    batched, _ = paibox_batched.simulate_batched(net, x, batch=4, timing="flat")
    _assert_same(plain, batched)


def test_unstackable_network_falls_back_to_one_sample_and_says_why():
    """Overlapping 3x3/2 pooling: its gap outputs would read a sample's rows, and a pool has no bias to silence."""
    rng = np.random.default_rng(0)
    net = ir.Network([
        ir.Conv2d("c1", rng.integers(-20, 21, (4, 1, 3, 3)).astype(np.int8), None, (1, 1), (1, 1)),
        ir.IF("n1", 200, 0.0),
        ir.MaxPool2d("p1", (3, 3), (2, 2)),
        ir.Flatten("f"),
        ir.Linear("l1", rng.integers(-20, 21, (10, 4 * 3 * 3)).astype(np.int8)),
        ir.IF("n2", 10, 0.0),
    ], (1, 8, 8))
    with pytest.raises(InputError, match="p1"):
        paibox_batched.StackedLayout(net, batch=4, steps=6)
    x = pixel_inputs(3, 3, seed=1)
    run = PAIBoxRunner(net, batch=4).run(x)
    assert run.meta["batch"] == 1 and "p1" in run.meta["batch_fallback"]
    plain = PAIBoxRunner(net).run(x)
    assert all(np.array_equal(a.spikes, b.spikes) for a, b in zip(plain.layers, run.layers))


def test_runs_too_long_for_the_silencing_bias_are_refused():
    with pytest.raises(InputError, match="30-bit"):
        paibox_batched.StackedLayout(_deep_csnn(), batch=4, steps=10 ** 6)
