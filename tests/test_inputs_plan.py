"""Encoded inputs through the pipeline: drawn once, the same for every run, reproducible by seed; and the
`input_encoding` diagnosis when the two sides of a pair were fed different inputs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from snncheck import case as cases, pipeline
from snncheck.inputs import encoders
from snncheck.plan import Role, Subject

from helpers import timeless

CASE = Path(__file__).resolve().parents[1] / "cases" / "poisson_digits.toml"
RUNNERS = ["reference", "spikingjelly"]


def _report(seed: int, **over):
    case = cases.Case.load(CASE)
    raw = case.spec.model_dump()
    raw["inputs"].update(encoding_seed=seed, **over)
    plan = cases.build_plan(cases.Case.from_dict(raw, CASE), samples=8, runners=RUNNERS)
    return plan, pipeline.execute(plan)


def test_same_seed_same_report_other_seed_other_spikes_same_verdict():
    """Catches spikes drawn anew per run or per chunk (two runs of one seed would differ) and a seed that is
    ignored (two seeds would give the same spikes)."""
    plan0, r0 = _report(0)
    _, again = _report(0)
    plan1, r1 = _report(1)
    assert timeless(r0.to_dict()) == timeless(again.to_dict())
    assert not np.array_equal(plan0.inputs.chunk(), plan1.inputs.chunk())
    s0, s1 = (r.evidence.runs["reference:b"].layers[0].spikes for r in (r0, r1))
    assert not np.array_equal(s0, s1)
    assert r0.verdict == r1.verdict == "consistent"
    assert r0.inputs["encoding"] == "poisson" and r0.inputs["encoding_seed"] == 0 and r1.inputs["encoding_seed"] == 1
    assert r0.inputs["input_scale"] == 1.0 and r0.extras["input_stats"]["binary"]


def test_spikes_reach_the_deployed_network_unscaled():
    """Catches B's input scale applied to spikes (a network converted for 0-255 pixels fed Poisson spikes would
    get 0/255): B receives exactly the encoded 0/1 tensor."""
    plan, report = _report(0)
    got = report.runs["reference:b"]["input_received"]
    assert plan.subject(Role.DEPLOYED).input_scale == 1.0 and got["received"] == got["encoded"]
    assert np.isin(plan.subject(Role.DEPLOYED).inputs(plan.inputs.chunk()), (0, 1)).all()


def test_input_encoding_names_a_run_fed_another_poisson_draw(monkeypatch):
    """The bug of a pipeline that encodes once per simulator: B's runs get a Poisson draw of their own (another
    seed, the same rates in expectation). Their first layer disagrees with A's, and the diagnosis says the inputs
    differed, first, naming B's runs; the honest plan gets no such diagnosis."""
    _, clean = _report(0)
    assert not [d for d in clean.diagnoses if d.code == "input_encoding"]
    frames = cases.build_inputs(cases.Case.load(CASE), (1, 8, 8), samples=8)
    analog = _digits(8)
    redraw = encoders.poisson(analog, frames.timesteps, seed=99).astype(np.float32)
    plain = Subject.inputs

    def per_simulator(self, x):
        if self.role is Role.DEPLOYED:
            return redraw[:len(x)]
        return plain(self, x)

    monkeypatch.setattr(Subject, "inputs", per_simulator)
    _, report = _report(0)
    found = [d for d in report.diagnoses if d.code == "input_encoding"]
    assert found and report.diagnoses[0].code == "input_encoding", [d.code for d in report.diagnoses]
    assert found[0].layer == report.layers[0] and found[0].evidence["run"].endswith(":b")
    assert report.verdict == "inconsistent"


def _digits(n):
    from snncheck import data
    return data.digits("test")[0][:n]


def test_the_same_spike_count_drawn_elsewhere_is_still_other_inputs():
    """Catches a comparison of rates alone: B's spikes moved to other steps and pixels (the same count per
    channel, as a second draw often nearly has) are other inputs, and the diagnosis says so."""
    from types import SimpleNamespace
    from snncheck.diagnose.inputs_encoding import different_inputs
    from snncheck.inputs import received
    spikes = encoders.poisson(_digits(8), 8, seed=0).astype(np.float32)
    moved = np.roll(spikes, 1, axis=1)
    lc = SimpleNamespace(mismatches=5, total=100)
    pair = SimpleNamespace(key="a~b", a=SimpleNamespace(label="x:a"), b=SimpleNamespace(label="x:b"))
    comparisons = {"a~b": SimpleNamespace(layer=lambda name: lc)}
    runs = {"x:a": {"input_received": received(spikes, 1.0, spikes)},
            "x:b": {"input_received": received(moved, 1.0, spikes)}}
    assert runs["x:b"]["input_received"]["received"] == runs["x:b"]["input_received"]["encoded"]
    found = different_inputs([pair], comparisons, runs, ["l1"])
    assert [d.evidence["run"] for d in found] == ["x:b"]
    lc.mismatches = 0                                      # the first layer agrees: nothing to explain
    assert different_inputs([pair], comparisons, runs, ["l1"]) == []


def test_a_record_without_its_inputs_claims_nothing_and_one_with_them_states_the_plans(tmp_path):
    """Catches the pipeline stating that a recorded run received the plan's inputs when its file does not say what
    it was recorded on (input_received is None then), and losing that None when chunks merge."""
    from snncheck import records
    from snncheck.plan import Inputs, check, with_recorded
    plan = cases.build_plan(cases.Case.load(CASE), samples=6, runners=["reference"])
    graph = plan.subject(Role.DEPLOYED).graph
    ref = pipeline.execute(check(graph, plan.inputs, ["reference"])).evidence.runs["reference:b"]
    inputs = Inputs.sequences(plan.inputs.chunk())
    for name, saved in (("bare.h5", None), ("with.h5", plan.inputs.chunk())):
        records.save(ref, tmp_path / name, inputs=saved)
        report = pipeline.execute(with_recorded(check(graph, inputs, ["reference"]), str(tmp_path / name)))
        got = report.runs["recorded:b"]["input_received"]
        assert (got is None) == (saved is None), (name, got)
        assert got is None or got["received"] == got["encoded"]
    stated = report.runs["recorded:b"]
    assert pipeline._sum_meta(dict(stated, input_received=None), stated)["input_received"] is None
    assert pipeline._sum_meta(stated, stated)["input_received"]["count"] == 2 * stated["input_received"]["count"]
