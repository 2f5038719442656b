"""The inputs section of the HTML report: the encoded frames, a raster and the input statistics appear, with
the encoding that ran; text from the user's files is escaped."""
from __future__ import annotations

import re

import numpy as np

from snncheck import case as cases, pipeline
from snncheck.report import html

CASE = "cases/poisson_digits.toml"


def _section(page: str) -> str:
    start = page.index("<h2>Inputs</h2>")
    return page[start:page.index("<h2>", start + 5)]


def test_the_report_shows_the_encoded_inputs_and_their_statistics():
    """Catches the section missing from the registry, drawn from nothing (no evidence inputs) or not saying
    which encoding ran."""
    plan = cases.build_plan(cases.Case.load(CASE), samples=4, runners=["reference"])
    report = pipeline.execute(plan)
    section = _section(html.render(report))
    alts = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,[A-Za-z0-9+/=]{200,}"', section)
    assert alts == ["inputs", "input raster", "input statistics"], alts
    assert "encoding <b>poisson</b> (seed 0)" in section and "of 0/1 spikes" in section
    rates = report.extras["input_stats"]["rate_per_channel"]
    assert np.isclose(rates[0], plan.inputs.chunk(0, 4).mean()) and f"{rates[0]:.4f}" in section


def test_a_file_name_in_the_description_is_escaped(tmp_path):
    """The description quotes the user's file name: markup in it must arrive as text."""
    from snncheck.inputs import from_events
    from snncheck.inputs.events import Framing
    from snncheck.case import ModelSpec, graph_from_spec
    from snncheck.plan import check
    path = tmp_path / "<b>ev.npz"
    rng = np.random.default_rng(0)
    np.savez(path, t=np.arange(400), x=rng.integers(0, 8, 400), y=rng.integers(0, 8, 400), p=rng.integers(0, 2, 400))
    weight = rng.integers(-2, 3, (3, 2, 3, 3)).tolist()
    graph = graph_from_spec(ModelSpec(input_shape=[2, 8, 8], layers=[
        {"type": "Conv2d", "name": "c", "weight": weight, "padding": [1, 1]}, {"type": "IF", "name": "n"}]))
    report = pipeline.execute(check(graph, from_events(path, (2, 8, 8), Framing(frames=4)), ["reference"]))
    section = _section(html.render(report))
    assert "&lt;b&gt;ev.npz" in section and "<b>ev.npz" not in section
    assert len(re.findall("<img ", section)) == 3
