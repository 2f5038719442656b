"""The HTML report and `snncheck demo`: the two demo reports come out as they should, are self-contained, put the
verdict first, escape what comes from files, show measured numbers in their figures, and degrade without runs.
The browser check (every figure loads, no console message) is tests/test_chromium.py."""
from __future__ import annotations

import base64
import dataclasses
import json
import re
import time

import pytest

from snncheck import api, checkpoint, convert, mutations
from snncheck.frontends import models as zoo
from snncheck.cli import main
from snncheck.report import Evidence
from snncheck.commands.diff import default_inputs
from snncheck.diagnose import Diagnosis
from snncheck.report import figures, html

LAYERS = ["conv_fc.2", "conv_fc.6", "conv_fc.10", "conv_fc.12"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    start = time.perf_counter()
    code = main(["demo", "--out-dir", str(out), "--samples", "12", "--timesteps", "6"])
    return code, out, time.perf_counter() - start


@pytest.fixture(scope="module")
def small_reports():
    """Correct and seed-bug diffs of the digits CSNN, with their runs kept for the figures."""
    model = checkpoint.load_float(zoo.DIGITS_CHECKPOINT, "digits_csnn")
    inputs = default_inputs(model.graph.input_shape, 6, 4)
    conv = convert.convert(model.graph, 255, "max")
    bug = mutations.apply(conv.graph, model.graph, {"name": "bias_unscaled"}, conv)
    return {name: api.diff(model.graph, graph, inputs, 255.0, module=model.model, title=name)
            for name, graph in (("correct", conv.graph), ("seed_bug", bug))}


def test_demo_reports_come_out_as_expected(demo, capsys):
    code, out, seconds = demo
    assert code == 0
    correct = json.loads((out / "demo_correct.json").read_text())
    bug = json.loads((out / "demo_seed_bug.json").read_text())
    assert correct["verdict"] == "consistent"
    assert not [d for d in correct["diagnoses"] if d["severity"] == "error"]
    assert bug["verdict"] == "inconsistent"
    assert bug["diagnoses"][0]["code"] in ("bias_scale", "input_scale")
    assert bug["diagnoses"][0]["layer"] == "conv_fc.2"
    for rep in (correct, bug):                 # the simulators agree bit-exactly on B in both
        assert all(l["paibox:b~reference:b"]["mismatches"] == 0 for l in rep["layers"])
    assert (out / "demo_correct.html").stat().st_size > 50_000 and (out / "demo_seed_bug.html").exists()


def test_reports_are_self_contained_and_verdict_first(demo):
    _, out, _ = demo
    for stem in ("demo_correct", "demo_seed_bug"):
        page = (out / f"{stem}.html").read_text()
        assert not re.search(r"https?://|<script|<link|@import|url\(", page, re.I)
        sources = re.findall(r'<img [^>]*src="([^"]+)"', page)
        assert len(sources) == 4 * len(LAYERS) + 3        # raster, rates, membrane, weights per layer; inputs
        for src in sources:
            assert src.startswith("data:image/png;base64,")
            png = base64.b64decode(src.split(",", 1)[1])
            assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
        order = [page.index(h) for h in ("class=\"verdict", "<h2>Diagnoses", "<h2>Layers", "<h2>Layer by layer")]
        assert order == sorted(order)
    bug = (out / "demo_seed_bug.html").read_text()
    assert "INCONSISTENT" in bug and "Fix:" in bug


def test_figures_measure_the_seed_bug(small_reports):
    """The bias panel's fitted slope is the threshold ratio for the correct conversion and 255 times smaller for
    the seed bug; the membrane slope follows the threshold ratio where the conversion is correct."""
    ok, bug = small_reports["correct"], small_reports["seed_bug"]
    slope, ratio = figures.bias_fit(*_nets(ok), "conv_fc.2")
    assert slope == pytest.approx(ratio, rel=0.01)
    slope, ratio = figures.bias_fit(*_nets(bug), "conv_fc.2")
    assert slope * 255 == pytest.approx(ratio, rel=0.02)
    runs = ok.evidence.runs
    slope, ratio = figures.membrane_fit(runs["spikingjelly:a"], runs["reference:b"], "conv_fc.2")
    assert slope == pytest.approx(ratio, rel=0.02)
    runs = bug.evidence.runs
    slope, ratio = figures.membrane_fit(runs["spikingjelly:a"], runs["reference:b"], "conv_fc.2")
    assert abs(slope / ratio - 1) > 0.02


def test_raster_is_drawn_around_the_first_divergence(small_reports):
    rep = small_reports["seed_bug"]
    figs = figures.layer_figures(rep)
    kinds = [k for k, _, _ in figs["conv_fc.2"]]
    assert kinds == ["raster", "rates", "membrane", "weights"]
    fd = rep.pair("spikingjelly:a~reference:b").layer("conv_fc.2").first_divergence
    caption = figs["conv_fc.2"][0][1]
    assert f"step {fd['t']}, sample {fd['sample']}, neuron {tuple(fd['neuron'])}" in caption


def _nets(report):
    return report.evidence.graphs["a"], report.evidence.graphs["b"]


def test_text_from_files_is_escaped(small_reports):
    rep = small_reports["correct"]
    evil = Diagnosis("timing", "<b>layer</b>", "error", "<img src=x onerror=alert(1)>",
                     evidence={"k": "</pre><script>"}, fix="<i>fix</i>")
    page = html.render(dataclasses.replace(rep, title="<script>alert('t')</script>", diagnoses=rep.diagnoses + (evil,),
                                           extras=dict(rep.extras, note="<iframe>")))
    assert "<script" not in page and "<iframe" not in page and "<img src=x" not in page and "<i>fix" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "&lt;b&gt;layer&lt;/b&gt;" in page


def test_report_without_runs_or_weights_still_renders(small_reports):
    rep = small_reports["correct"]
    page = html.render(dataclasses.replace(rep, evidence=Evidence(), weights={}))
    assert "<img" not in page and "<h2>Layers" in page and page.count("<tr>") == len(LAYERS) + 1
    assert "CONSISTENT" in page


def test_header_separates_simulator_disagreement_from_quantization_drift(demo):
    """The seed bug moves A against B, while the simulators agree on B: the header says the one and not the other;
    the table shows each layer's drift in isolation beside what a correct requantization drifts."""
    _, out, _ = demo
    bug = json.loads((out / "demo_seed_bug.json").read_text())
    page = (out / "demo_seed_bug.html").read_text()
    fd = bug["pairs"]["spikingjelly:a~reference:b"]["first_divergence"]
    assert f"A and B first differ: layer <b>{fd['layer']}</b>, step {fd['t']}, sample {fd['sample']}" in page
    assert "Simulators first disagree" not in page
    iso = bug["extras"]["isolated"]["conv_fc.2"]
    assert "A ~ B in isolation" in page and f"{iso['rate']:.2%}</span>" in page
