"""What a run received (`meta["input_received"]`) is summed over the samples that run was fed: a run of some rows
(PAIBox on a few samples of the set) is not given the sums of a run of every sample of the chunk."""
from __future__ import annotations

from snncheck import case as cases, pipeline
from snncheck.commands import DEFAULT_CASE


def test_a_run_of_some_samples_received_those_samples_only():
    """Catches the per-subject memo of what runs received handing a run of some rows (paibox:b, 4 of 12 samples)
    the sums of reference:b's run of every sample (same subject, same chunk): its count would be that of 12."""
    report = pipeline.execute(cases.plan_loader(DEFAULT_CASE, samples=12, paibox_samples=4, chunk=5))
    some, every = (report.runs[label]["input_received"] for label in ("paibox:b", "reference:b"))
    assert report.runs["paibox:b"]["samples"] == 4 and report.runs["reference:b"]["samples"] == 12
    assert some["count"] * 12 == every["count"] * 4
    assert some["received"] != every["received"]
