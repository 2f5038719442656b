"""ANN to SNN conversion (snncheck.ann2snn): the QCFS theorem as a property, the error decomposition, the
initial membrane read off spikes, and the analysis of the shipped digits network through the pipeline."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import find, given, settings, strategies as st

from snncheck import data, pipeline
from snncheck.ann2snn import analysis, build, model, qcfs, runs
from snncheck.cli import main

GRID = 64          # inputs on a grid of theta / 64 and thresholds powers of two: every sum below is exact in float32


def _theorem_inputs():
    """(theta, L, z [n]): a power-of-two threshold, L quantization steps, constant inputs on the grid theta/64."""
    return st.tuples(st.integers(-3, 4), st.integers(1, 16),
                     st.lists(st.integers(-2 * GRID, 3 * GRID), min_size=1, max_size=32))


def _unpack(drawn):
    e, levels, js = drawn
    theta = 2.0 ** e
    return theta, levels, np.asarray(js, np.float32) * np.float32(theta / GRID)


def _reference_if(z, theta, steps, v0):
    return qcfs.if_output(np.repeat(z[:, None], steps, axis=1), theta, v0).sum(axis=1)


def _spikingjelly_if(z, theta, steps, v0):
    from spikingjelly.activation_based import functional, neuron
    node = neuron.IFNode(v_threshold=theta, v_reset=None, step_mode="m")
    node.set_reset_value("v", v0 * theta)
    functional.reset_net(node)
    with torch.no_grad():
        return node(torch.from_numpy(z)[None].expand(steps, -1)).sum(0).numpy()


def _own_class_if(z, theta, steps, v0):
    """The shipped QCFS class in IF mode (its own loop, v0 = theta/2 by construction; v0 is not a parameter)."""
    m = model.QCFS(levels=steps, up=theta)
    m.T = steps
    with torch.no_grad():
        return m(torch.from_numpy(z)[None].expand(steps, -1).flatten(0, 1)).reshape(steps, -1).sum(0).numpy() / theta


def _snn_equals_qcfs(drawn, simulate=_reference_if, v0=0.5) -> bool:
    """theta * N / L == lambda * k / L with lambda = theta: the spike count N is the QCFS step k."""
    theta, levels, z = _unpack(drawn)
    return np.array_equal(simulate(z, theta, levels, v0), qcfs.qcfs_level(z, theta, levels))


@pytest.mark.parametrize("simulate", [_reference_if, _spikingjelly_if, _own_class_if])
@settings(max_examples=60)
@given(drawn=_theorem_inputs())
def test_qcfs_theorem_constant_input_half_threshold(simulate, drawn):
    """Bu et al.'s theorem: an IF neuron (soft reset, v0 = theta/2) fed a constant z for T = L steps outputs
    theta * N / L = h(z), the QCFS activation, exactly. Catches a neuron started at 0 or one that floors where QCFS
    rounds, in the reference, in SpikingJelly's IFNode and in the shipped own IF class."""
    assert _snn_equals_qcfs(drawn, simulate)


def test_qcfs_theorem_fails_with_initial_membrane_zero():
    """The planted violation: with v0 = 0 the same property has a counterexample (hypothesis finds one), so the
    property above can fail."""
    bad = find(_theorem_inputs(), lambda d: not _snn_equals_qcfs(d, _reference_if, v0=0.0),
               settings=settings(max_examples=500, database=None))
    theta, levels, z = _unpack(bad)
    assert not np.array_equal(_reference_if(z, theta, levels, 0.0), qcfs.qcfs_level(z, theta, levels))


def test_decomposition_sums_to_the_deviation_and_is_even_for_constant_input():
    """r - ReLU(z) = clipping + quantization + unevenness; constant input has no unevenness, and an uneven train
    with the same mean (all input at the last step) has some. Catches a component measured against the wrong
    reference (the identity breaks) or an even output that is not the neuron's own."""
    rng = np.random.default_rng(0)
    theta, steps = 1.5, 8
    z = rng.uniform(-0.5, 2.5, (200,)).astype(np.float32)
    const = np.repeat(z[:, None], steps, axis=1)
    r = theta * qcfs.if_output(const, theta, 0.5).sum(axis=1) / steps
    d = qcfs.decompose(z, r, theta, steps, 0.5)
    np.testing.assert_allclose(d.total, r - np.maximum(z, 0), atol=1e-6)
    assert not d.unevenness.any() and (d.clipping[z > theta] < 0).all() and not d.clipping[z <= theta].any()
    late = np.zeros_like(const)
    late[:, -1] = z * steps
    r_late = theta * qcfs.if_output(late, theta, 0.5).sum(axis=1) / steps
    assert qcfs.decompose(z, r_late, theta, steps, 0.5).unevenness.any()


def test_signed_if_fires_negative_only_after_positive_spikes():
    """A signed neuron takes back a spike (-1, v += theta) when v drops below 0 after a net positive count, and
    never goes negative from rest. Catches negative spikes from rest or a reset with the wrong sign."""
    theta = 2.0
    x = np.array([[theta, -theta, -theta, 0.0]], np.float32)
    assert runs.signed_if_output(x, theta, 0.5).tolist() == [[1, -1, 0, 0]]


@pytest.mark.parametrize("v0", [0.0, 0.25, 0.5])
def test_initial_membrane_is_read_off_the_spikes(v0):
    """The initial membrane of a soft-reset IF layer under constant input is bounded by its spike counts; the
    bounds hold the true v0 and are narrow. Catches bounds of the wrong sign or from the wrong step."""
    rng = np.random.default_rng(1)
    theta = 3.0
    x = np.repeat(rng.uniform(0, theta, (50, 1, 16)).astype(np.float32), 32, axis=1)
    lo, hi = analysis.initial_membrane(x, qcfs.if_output(x, theta, v0), theta)
    assert lo <= v0 <= hi and hi - lo < 0.05


@pytest.fixture(scope="module")
def shipped():
    ann = model.qcfs_vgg_digits()
    ann.load_state_dict(torch.load(model.DIGITS_QCFS, weights_only=True))
    return ann.eval()


def test_prefix_of_a_long_run_is_the_short_run(shipped):
    """The T sweep reads T steps off one run of the largest T: the first 4 steps of an 8-step run equal a 4-step
    run (the SNN is causal). Catches a sweep that reads the wrong steps or a run that looks ahead."""
    x, _ = data.digits("test")
    layers = runs.layers_of(shipped)
    long, out8 = runs.run_snn(runs.variant(shipped, layers, "half", 8), layers, x[:16], 8)
    short, out4 = runs.run_snn(runs.variant(shipped, layers, "half", 4), layers, x[:16], 4)
    np.testing.assert_array_equal(out8[:, :4], out4)
    assert all(np.array_equal(long[n][1][:, :4], short[n][1]) for n in short)


@pytest.fixture(scope="module")
def report(shipped):
    x, y = data.digits("test")
    own = model.own_if_snn(T=8)
    own.load_state_dict(shipped.state_dict())
    plan = build.build_plan(shipped, x[:60], y[:60], (1, 2, 4, 8), ("half", "zero", "signed"), user=own.eval(),
                            chunk=25)
    return pipeline.execute(plan)


def test_shipped_network_layer_by_layer(report):
    """On the shipped network: no unevenness error in the first IF layer (constant input) at any T, some in
    every deeper layer at T = L; at T = L with v0 = theta/2 the first layer equals the ANN's QCFS activation;
    theta/2 beats 0 at small T. Catches a first layer fed uneven input, a sweep on the wrong variant, or chunks
    (25 + 25 + 10 samples) that do not merge."""
    e = report.extras["ann2snn"]
    first, deeper = e["layers"][0], e["layers"][1:]
    assert e["samples"] == 60 and e["table_steps"] == 4
    assert all(first[v][t]["unevenness"]["share"] == 0 for v in ("half", "zero", "signed")
               for t in ("1", "2", "4", "8"))
    assert first["half"]["4"]["vs_ann"]["share"] == 0
    assert all(layer["half"]["4"]["unevenness"]["share"] > 0 for layer in deeper)
    assert all(e["accuracy"]["half"][t] > e["accuracy"]["zero"][t] for t in ("1", "2", "4"))


def test_own_if_class_against_ifnode_names_the_initial_membrane(report):
    """The shipped own IF class starts at theta/2, SpikingJelly's IFNode at 0: found from the first layer's spikes
    and named as `initial_membrane` at that layer. Catches an IFNode built with theta/2 or a comparison that
    misses the difference."""
    e = report.extras["ann2snn"]
    (ul, uh), (il, ih) = e["initial_membrane"]["user"], e["initial_membrane"]["ifnode"]
    assert ul <= 0.5 <= uh and il <= 0 <= ih
    found = [d for d in report.diagnoses if d.code == "initial_membrane"]
    assert [d.layer for d in found] == ["act1"]
    assert e["accuracy"]["user"] == e["accuracy"]["half"] and e["accuracy"]["ifnode"] == e["accuracy"]["zero"]


def test_histogram_counts_the_unevenness_at_the_table_steps(report):
    """Each variant's unevenness histogram holds exactly the non-zero unevenness errors of the table's T (4 here,
    not the last of the sweep), summed over the chunks. Catches a histogram kept at another T of the sweep."""
    e = report.extras["ann2snn"]
    t, n = str(e["table_steps"]), e["samples"]
    assert t != str(e["timesteps"][-1])
    for name in ("half", "zero", "signed"):
        for layer in e["layers"]:
            share = layer[name][t]["unevenness"]["share"]
            assert sum(e["histogram"][name][layer["name"]]) == round(share * layer["neurons"] * n)
    assert sum(e["histogram"]["half"]["act2"]) > 0


def test_simulators_agree_on_the_converted_snn(report):
    """The converted SNN (IF with amplitude theta) runs identically in SpikingJelly and the reference."""
    pair = report.pair("spikingjelly:a~reference:a")
    assert pair.unexplained == 0 and report.verdict == "consistent"


def test_cli_writes_the_section(tmp_path, capsys):
    """`snncheck ann2snn` on the embedded default: exit 0, the sweep and tables printed, JSON keys as
    docs/report.md lists them, the HTML section with its two figures."""
    js, page = tmp_path / "r.json", tmp_path / "r.html"
    assert main(["ann2snn", "--samples", "20", "--timesteps", "1,4", "--json", str(js), "--out", str(page)]) == 0
    assert "accuracy against T" in capsys.readouterr().out
    e = json.loads(js.read_text())["extras"]["ann2snn"]
    assert set(e) >= {"levels", "timesteps", "table_steps", "samples", "variants", "accuracy", "layers",
                      "histogram", "unevenness_dominates_from", "initial_membrane"}
    html = page.read_text()
    assert "ANN to SNN conversion" in html and html.count('alt="accuracy"') == 1 and 'alt="errors"' in html


@pytest.mark.parametrize("argv", [["--timesteps", "0,4"], ["--model", "x.py:f"], ["--table-steps", "3"],
                                  ["--inputs", "nowhere.npy"]])
def test_cli_bad_usage_is_exit_2(argv, capsys):
    """Bad flags are one line and exit 2: a zero step count, --model without a checkpoint, a table T outside the
    sweep, --inputs without --labels."""
    assert main(["ann2snn", "--samples", "4"] + argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("snncheck: error:") and err.count("\n") == 1


@pytest.mark.parametrize("labels, says", [
    (lambda p: np.savez(p.with_suffix(".npz"), y=np.zeros(6)) or p.with_suffix(".npz").rename(p),
     "labels {}: a .npy array is expected, not a .npz archive"),
    (lambda p: p.write_text("1 2 3"), "cannot read labels {}: "),
    (lambda p: np.save(p, np.zeros(4, np.int64)), "labels {}: expected one class index per input, shape (6,), "
                                                  "got (4,)"),
    (lambda p: np.save(p, np.zeros((6, 10))), "labels {}: expected one class index per input, shape (6,), "
                                              "got (6, 10)"),
    (lambda p: np.save(p, np.full(6, 0.5)), "labels {}: expected class indices (integers >= 0)"),
    (lambda p: np.save(p, np.full(6, -1)), "labels {}: expected class indices (integers >= 0)"),
], ids=["npz", "text", "short", "one-hot", "fractions", "negative"])
def test_cli_bad_labels_are_named_as_labels(tmp_path, capsys, labels, says):
    """Catches a bad --labels file reported as "inputs" (the reader's default word), and labels that do not fit
    the inputs taken anyway: another count (cut to the shorter), one-hot rows (a broadcasting traceback),
    fractions or negatives (truncated to class indices)."""
    x, bad = tmp_path / "x.npy", tmp_path / "labels.npy"
    np.save(x, np.zeros((6, 1, 8, 8), np.float32))
    labels(bad)
    assert main(["ann2snn", "--inputs", str(x), "--labels", str(bad), "--timesteps", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("snncheck: error: " + says.format(bad)) and err.count("\n") == 1, err


def test_relu_ann_thresholds_from_the_data_show_clipping(shipped):
    """A ReLU ANN (the shipped weights with nn.ReLU): each IF threshold is the 99.9th percentile of its layer's
    activations, so some neurons exceed it and show clipping error, and the errors still add up to the deviation
    from ReLU. Catches thresholds taken from the maximum (no clipping at all) or a calibration on the wrong layer."""
    import copy
    relu = copy.deepcopy(shipped)
    for layer in runs.layers_of(shipped):
        setattr(relu, layer.name, torch.nn.ReLU())
    x, y = data.digits("test")
    layers = runs.calibrate(relu, runs.layers_of(relu), x[:40])
    acts, _ = runs.run_ann(relu, layers, x[:40])
    assert all(np.isclose(l.threshold, np.percentile(acts[l.name][1], 99.9)) for l in layers)
    e = pipeline.execute(build.build_plan(relu, x[:40], y[:40], (8, 16), ("half",))).extras["ann2snn"]
    assert e["levels"] == [None] * 5 and e["table_steps"] == 16
    stats = [layer["half"]["16"] for layer in e["layers"]]
    assert any(st["clipping"]["share"] > 0 for st in stats)
    for st in stats:
        assert np.isclose(st["total"]["mean"], sum(st[c]["mean"] for c in qcfs.COMPONENTS))


def test_unevenness_dominates_from_the_first_layer_where_it_exceeds_the_others():
    """The first layer whose mean |unevenness| exceeds mean |clipping| + mean |quantization|, or None. Catches a
    comparison of signed means (which cancel) or of one error only."""
    def layer(name, clip, quant, uneven):
        return {"name": name, "half": {"4": {"clipping": {"mean_abs": clip, "mean": -clip},
                                             "quantization": {"mean_abs": quant, "mean": 0.0},
                                             "unevenness": {"mean_abs": uneven, "mean": 0.0}}}}
    layers = [layer("a", 0.0, 0.03, 0.0), layer("b", 0.02, 0.02, 0.03), layer("c", 0.01, 0.01, 0.03)]
    assert analysis.dominates_from(layers, "half", "4") == "c"
    assert analysis.dominates_from(layers[:2], "half", "4") is None
