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


def _events_report(path):
    """A small conv-IF network on 8x8 event frames integrated from a synthetic events file at `path`."""
    from snncheck.case import ModelSpec, graph_from_spec
    from snncheck.inputs import from_events
    from snncheck.inputs.events import Framing
    from snncheck.plan import check
    rng = np.random.default_rng(0)
    np.savez(path, t=np.arange(400), x=rng.integers(0, 8, 400), y=rng.integers(0, 8, 400), p=rng.integers(0, 2, 400))
    weight = rng.integers(-2, 3, (3, 2, 3, 3)).tolist()
    graph = graph_from_spec(ModelSpec(input_shape=[2, 8, 8], layers=[
        {"type": "Conv2d", "name": "c", "weight": weight, "padding": [1, 1]}, {"type": "IF", "name": "n"}]))
    return pipeline.execute(check(graph, from_events(path, (2, 8, 8), Framing(frames=4)), ["reference"]))


def test_a_file_name_in_the_description_is_escaped(tmp_path):
    """The description quotes the user's file name: markup in it must arrive as text."""
    section = _section(html.render(_events_report(tmp_path / "<b>ev.npz")))
    assert "&lt;b&gt;ev.npz" in section and "<b>ev.npz" not in section
    assert len(re.findall("<img ", section)) == 3


def test_an_events_report_renders_in_chromium(tmp_path):
    """The event frames strip, raster and statistics load in a real browser with the rest of the page (no broken
    image, nothing on the console); skipped with the reason when Chromium cannot be had."""
    from tests.test_chromium import _chromium, _open
    chromium = _chromium()
    page = tmp_path / "events.html"
    page.write_text(html.render(_events_report(tmp_path / "ev.npz")), encoding="utf-8")
    found, console = _open(chromium, page, tmp_path)
    assert found["images"] >= 3 and found["broken"] == 0 and console == [], (found, console)
