"""One pipeline: a plan says what runs and what each pair must show; chunks merge into the whole-set numbers;
the report is built once and cannot be edited."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from snncheck import graph as G, pipeline, plan as plans
from snncheck.plan import Expect, Inputs, Role, Subject


def _float_chain(seed: int = 0) -> G.Graph:
    """A float MLP whose weights are multiples of 1/64: its float32 sums of spikes are exact in any order, so
    chunked runs (other BLAS blockings) give bit-identical margins."""
    rng = np.random.default_rng(seed)
    dyadic = lambda *shape, s: (np.rint(rng.normal(0, s, shape) * 64) / 64).astype(np.float32)   # noqa: E731
    return G.chain([("fc1", G.Linear(dyadic(24, 36, s=0.3), dyadic(24, s=0.1))), ("sn1", G.IF(threshold=0.5)),
                    ("fc2", G.Linear(dyadic(10, 24, s=0.4))), ("sn2", G.IF(threshold=0.5))], (36,), name="mlp")


def _rounded(graph: G.Graph, k: float = 10.3) -> G.Graph:
    """A crude integer version of a float chain: every weight, bias and threshold times k, rounded."""
    nodes = {}
    for name, node in graph.nodes.items():
        if isinstance(node, G.Linear):
            nodes[name] = dataclasses.replace(node, weight=np.rint(node.weight * k).astype(np.int64),
                                              bias=None if node.bias is None else np.rint(node.bias * k))
        elif isinstance(node, G.IF):
            nodes[name] = dataclasses.replace(node, threshold=round(node.threshold * k))
    return graph.replace(nodes, name="mlp-int")


def _inputs(n=23, t=5, seed=1):
    return Inputs.sequences((np.random.default_rng(seed).random((n, t, 36)) < 0.4).astype(np.float32))


def _plan(**kw):
    a = _float_chain()
    return plans.diff(Subject(Role.FLOAT, a), Subject(Role.DEPLOYED, _rounded(a)), _inputs(), ["reference"],
                      title="t", diagnose=False, **kw)


def test_plan_says_which_pairs_exist_and_what_each_must_show():
    plan = _plan()
    assert [r.label for r in plan.runs] == ["reference:a", "reference:b"]
    (pair,) = plan.pairs
    assert pair.expect is Expect.QUANTIZATION and not pair.same_network
    assert pair.a.role is Role.FLOAT and pair.b.role is Role.DEPLOYED and pair.key == "reference:a~reference:b"


def test_chunks_merge_into_the_whole_set_comparison():
    whole = pipeline.execute(_plan())
    chunked = pipeline.execute(_plan(chunk=5))
    assert chunked.extras["coverage"]["chunks"] == 5 and whole.extras["coverage"]["chunks"] == 1
    (pw,), (pc,) = whole.pairs, chunked.pairs
    assert pc.to_dict() == pw.to_dict()
    for lw, lc in zip(pw.layers, pc.layers):
        assert np.array_equal(lw.count_a, lc.count_a) and np.array_equal(lw.count_b, lc.count_b)
    # not vacuous: the crude conversion drifts, in several chunks, with flips to order
    assert sum(lc.mismatches for lc in pw.layers) > 50 and pw.first_divergence is not None
    assert sum(len(lc.flips) for lc in pw.layers) > 5
    assert len({f["sample"] // 5 for lc in pw.layers for f in lc.flips}) > 1


def test_evidence_keeps_the_first_samples_across_chunks():
    report = pipeline.execute(_plan(chunk=4, evidence=10))
    assert len(report.evidence.inputs) == 10
    assert all(run.samples == 10 for run in report.evidence.runs.values())
    whole = pipeline.execute(_plan())
    for label, run in report.evidence.runs.items():
        for a, b in zip(run.layers, whole.evidence.runs[label].layers):
            assert np.array_equal(a.spikes, b.spikes[:10]), (label, a.name)


def test_report_is_built_once_and_cannot_be_edited():
    report = pipeline.execute(_plan())
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.diagnoses = ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.pairs[0].layers[0].mismatches = 0
    assert isinstance(report.diagnoses, tuple) and isinstance(report.pairs, tuple)


def test_a_backend_that_refuses_is_left_out_with_its_reason():
    g = _float_chain().with_node("sn1", fire_rule=">")      # SpikingJelly fires on >= only
    plan = plans.check(g, _inputs(), ["reference", "spikingjelly"])
    assert [r.label for r in plan.runs] == ["reference:a"]
    (skipped,) = plan.skipped
    assert skipped.run.backend == "spikingjelly" and skipped.refusals[0].node == "sn1"
    report = pipeline.execute(plan)
    (d,) = [d for d in report.diagnoses if d.code == "unsupported"]
    assert d.layer == "sn1" and d.severity == "warning" and "spikingjelly" in report.extras["unsupported"]


def _peak_rss_kb(samples: int) -> int:
    import subprocess
    import sys
    code = ("import resource, sys; from snncheck.cli import main; "
            f"rc = main(['fullset', '--split', 'all', '--samples', '{samples}', '--chunk', '100', '--runners', "
            "'reference,spikingjelly', '--no-progress']); "
            "print('RSS', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    line = next(l for l in out.stdout.splitlines() if l.startswith("RSS"))
    return int(line.split()[1])


@pytest.mark.slow
def test_peak_memory_does_not_grow_with_the_number_of_samples():
    """Ten chunks hold what one does (allocator slack aside): comparisons are counts, and the evidence kept for
    the figures and the isolated mode is bounded (the first 256 samples)."""
    small, large = _peak_rss_kb(100), _peak_rss_kb(1000)
    assert large < 1.3 * small, (small, large)
