"""Issue 6: the streaming comparison gives the whole-set numbers, chunk by chunk, and says what it covered."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from snncheck import api, checkpoint, convert, data, parallel, stream, zoo
from snncheck.cli import DEFAULT_CASE
from snncheck.compare import compare

from helpers import int_csnn, pixel_inputs


def _float_and_int(n: int):
    """The trained digits CSNN (A, float) and its int8 conversion (B) on n test digits: A~B differs a little."""
    model = checkpoint.load_float(zoo.DIGITS_CHECKPOINT)
    conv = convert.convert(model.network, input_scale=255, rule="max")
    x, _ = data.digits("test")
    x = data.direct(x[:n], 6)
    runs = api.run_network(model.network, x, ["reference", "spikingjelly"], "a", model.module)
    runs.update(api.run_network(conv.network, api.deployed_inputs(x, 255), ["reference"], "b"))
    return runs


def _streamed(runs: dict, pairs: list, spans: list) -> stream.Summary:
    """The runs cut into chunks of samples, each chunk summarised alone, the summaries merged out of order."""
    parts = []
    for lo, hi in spans:
        chunk = {label: stream.subset(run, slice(lo, hi)) for label, run in runs.items()}
        parts.append(stream.Summary().add_runs(chunk, pairs, {label: np.arange(lo, hi) for label in runs}))
    total = stream.Summary()
    for part in reversed(parts):
        total.merge(part)
    return total


def _assert_pair_equal(streamed, whole):
    assert streamed.to_dict() == whole.to_dict()
    for ls, lw in zip(streamed.layers, whole.layers):
        assert np.array_equal(ls.rate_a, lw.rate_a) and np.array_equal(ls.rate_b, lw.rate_b), ls.name


def test_streamed_comparison_equals_whole_set_comparison():
    runs = _float_and_int(23)
    pairs = api.pairs_for(list(runs))
    total = _streamed(runs, pairs, parallel.chunks(23, 5))
    for a, b in pairs:
        whole = compare(runs[a], runs[b])
        _assert_pair_equal(total.pairs[f"{a}~{b}"].result(), whole)
    ab = compare(runs["spikingjelly:a"], runs["reference:b"])
    # not vacuous: mismatches in several chunks, a first divergence, flips to order, propagated differences
    assert ab.first_divergence is not None and sum(lc.mismatches for lc in ab.layers) > 100
    assert sum(len(lc.flips) for lc in ab.layers) > 20 and sum(lc.propagated for lc in ab.layers) > 0
    assert 0 < ab.output_agreement <= 1
    evidence = total.pairs["spikingjelly:a~reference:b"].evidence
    assert evidence["sample"] == ab.first_divergence["sample"] and evidence["layer"] == ab.first_divergence["layer"]
    assert evidence["a"].layers[0].spikes.shape[0] == 1


def test_streamed_lags_equal_whole_set_alignment_even_when_timing_is_wrong():
    net = int_csnn(seed=1)
    x = pixel_inputs(9, 4, seed=3)
    whole = api.run_network(net, x, ["reference", "paibox"], timing="flat")
    total = stream.Summary()
    for lo, hi in parallel.chunks(9, 4):
        part = api.run_network(net, x[lo:hi], ["reference", "paibox"], timing="flat")
        total.add_runs(part, [("paibox:b", "reference:b")], {label: np.arange(lo, hi) for label in part})
    assert total.lags.result() == whole["paibox:b"].meta["lags"]
    assert any(lag["anomaly"] for lag in whole["paibox:b"].meta["lags"].values())
    _assert_pair_equal(total.pairs["paibox:b~reference:b"].result(), compare(whole["paibox:b"], whole["reference:b"]))


def test_full_set_job_runs_paibox_on_a_subset_and_states_the_coverage():
    job = stream.Job.from_case(DEFAULT_CASE, samples=20, paibox_samples=5)
    assert job.samples == 20 and len(job.paibox_ids) == 5
    report = stream.run(job, chunk=6)
    cov = report.extras["coverage"]
    assert cov["samples"] == 20
    assert cov["runs"]["reference:b"]["samples"] == 20 and cov["runs"]["paibox:b"]["samples"] == 5
    assert cov["runs"]["paibox:b"]["share"] == 0.25
    pb = report.pair("paibox:b~reference:b")
    assert pb.samples == 5 and pb.exact
    assert report.pair("spikingjelly:b~reference:b").samples == 20
    # the same 20 samples compared at once give the same A~B numbers
    setup = stream._setup(job)
    x = setup["inputs"][:20]
    a = api.run_network(setup["float"], x, ["spikingjelly", "reference"], "a", setup["module"])
    b = api.run_network(setup["int"], api.deployed_inputs(x, setup["scale"]), ["reference"], "b")
    _assert_pair_equal(report.pair("spikingjelly:a~reference:b"), compare(a["spikingjelly:a"], b["reference:b"]))
    assert report.verdict == "consistent" and not any(v["anomaly"] for v in report.lags.values())


def _peak_rss_kb(samples: int) -> int:
    code = ("import resource, sys; from snncheck.cli import main; "
            f"rc = main(['fullset', '--samples', '{samples}', '--chunk', '100', '--runners', "
            "'reference,spikingjelly', '--no-progress']); "
            "print('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    line = next(l for l in out.stdout.splitlines() if l.startswith("RSS"))
    return int(line.split()[1])


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_number_of_samples():
    """Ten chunks hold what one does (allocator slack aside); all 1000 at once took 2.4x the memory of 100 here."""
    small, large = _peak_rss_kb(100), _peak_rss_kb(1000)
    assert large < 1.3 * small, (small, large)
