"""Mends of a review: the rules one entry point applied and another dropped, now in one place."""
from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch

from snncheck import case as cases
from snncheck.cli import main
from snncheck.plan import Role

ROOT = Path(__file__).parent.parent
RESIDUAL = ROOT / "cases" / "residual_paibox_user.toml"
EXAMPLE = ROOT / "examples" / "residual_paibox.py"


@pytest.fixture(scope="module")
def poisson_user_case():
    """The residual user-PAIBox case on Poisson spikes, its [paibox] declaring input_scale = 255 (B's scale for
    analog frames, which spikes must not get)."""
    raw = tomllib.loads(RESIDUAL.read_text())
    raw["paibox"]["input_scale"] = 255
    raw["inputs"] = {"source": "digits", "samples": 4, "timesteps": 8, "encoding": "poisson"}
    raw["run"] = {"runners": ["reference"]}
    raw["expect"] = {}
    return cases.Case.from_dict(raw, RESIDUAL.parent / "poisson_user.toml")


def test_a_case_feeds_its_user_paibox_network_spikes_unscaled(poisson_user_case, tmp_path, capsys):
    """Catches: a case's [paibox] B fed round(spikes * input_scale) (the rule 'spikes and event counts get B's
    scale 1' applied by `snncheck diff --paibox` but not by a case): B's inputs are the spikes, the report says the
    scale was not applied, and the case reaches the verdict the CLI reaches on the same network and inputs."""
    plan = cases.build_plan(poisson_user_case)
    x = plan.inputs.chunk()
    assert set(np.unique(x)) <= {0, 1}
    assert np.array_equal(plan.subject(Role.DEPLOYED).inputs(x), x)
    assert "input_scale_ignored" in plan.notes
    report = cases.run(poisson_user_case)
    graph, model = cases.build_float(poisson_user_case)
    torch.save(model.module.state_dict(), tmp_path / "A.pth")
    code = main([str(a) for a in ["diff", tmp_path / "A.pth", "--model", f"{EXAMPLE}:model", "--paibox",
                                  f"{EXAMPLE}:paibox_correct", "--encoding", "poisson", "--input-scale", "255",
                                  "--samples", "4", "--timesteps", "8", "--runners", "reference",
                                  "--json", tmp_path / "r.json", "--out", tmp_path / "r.html"]])
    capsys.readouterr()
    assert json.loads((tmp_path / "r.json").read_text())["verdict"] == report.verdict == "consistent", code


def test_a_cases_paibox_factory_is_among_the_files_it_reads(tmp_path):
    """Catches: `Case.files()` leaving out B's [paibox] factory, so that --out/--json may be written over it."""
    raw = tomllib.loads(RESIDUAL.read_text())
    raw["model"]["name"], raw["paibox"]["factory"] = "digits_csnn", "b_net.py:paibox_correct"
    (tmp_path / "b_net.py").write_text("")
    case = cases.Case.from_dict(raw, tmp_path / "c.toml")
    assert tmp_path / "b_net.py" in case.files()


def test_a_recorded_runs_a_with_a_wrong_input_shape_names_the_shape_it_takes(tmp_path, capsys):
    """Catches: `diff A --run-b` loading A by its own call, without `_load_float`'s translation of a wrong input
    shape into the shape the model takes."""
    from snncheck.frontends import models as zoo
    (tmp_path / "g.h5").write_bytes(b"x")
    code = main(["diff", str(zoo.DIGITS_CHECKPOINT), "--model", "digits_csnn", "--run-b", str(tmp_path / "g.h5"),
                 "--input-shape", "3,8,8"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "--input-shape 3,8,8; the model takes [N, 1, 8, 8]" in err, err


def test_an_ann_with_a_shaped_layer_converts_to_its_snn_graph():
    """Catches: ann2snn's own converter lookup, which skipped converters that need their input's shape
    (nn.AdaptiveAvgPool2d) and plugin classes: a TypeError traceback instead of the SNN's graph."""
    import torch.nn as nn
    from snncheck.ann2snn import build, model, runs
    ann = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), model.QCFS(levels=4, up=1.0), nn.AdaptiveAvgPool2d(2),
                        nn.Flatten(), nn.Linear(16, 10), model.QCFS(levels=4, up=1.0)).eval()
    graph = build.snn_graph(ann, runs.layers_of(ann), (1, 8, 8), 0.5)
    assert [graph.shapes[o] for o in graph.outputs] == [(10,)]
    assert graph.shapes["2"] == (4, 2, 2)


def test_the_api_says_when_bs_input_scale_is_not_applied_to_spikes():
    """Catches: `snncheck.api.diff` feeding spikes to B unscaled without the report's note that B's declared input
    scale was not applied (the CLI and a case say it)."""
    from snncheck import api, convert
    from snncheck.inputs import encode
    from snncheck.plan import Inputs
    a, _ = cases.build_float(cases.Case.from_dict(tomllib.loads(RESIDUAL.read_text()), RESIDUAL))
    b = convert.convert(a, 255.0).graph
    frames = Inputs.frames(np.random.default_rng(0).random((2, 1, 8, 8)).astype(np.float32), 4)
    report = api.diff(a, b, encode(frames, "poisson"), input_scale=255.0, backends=["reference"])
    assert "input_scale_ignored" in report.extras, report.extras.keys()
