"""The case files and their pytest plugin: a case is a file, a failing case shows what differs, and
`snncheck fuzz` turns a shrunk failure into a case file that reproduces it."""
from __future__ import annotations

import json
import textwrap
import tomllib
from pathlib import Path

import numpy as np
import pytest

from snncheck import case as cases
from snncheck import graph as G
from snncheck.backends.reference import ReferenceBackend
from snncheck.cli import main
from snncheck.commands.fuzz import Campaign
from snncheck.errors import InputError
from snncheck.graph import primitives as P
from snncheck.plan import Role

pytest_plugins = ["pytester"]

CASES = Path(__file__).resolve().parents[1] / "cases"


def test_there_are_at_least_twelve_cases_and_each_reads_on_its_own():
    files = sorted(CASES.glob("*.toml"))
    assert len(files) >= 12, [f.name for f in files]
    for path in files:
        text = path.read_text()
        comments = [line for line in text.splitlines() if line.startswith("#")]
        assert len(comments) >= 2, f"{path.name}: say what the case is about in comments"
        case = cases.Case.load(path)
        assert case.spec.expect.model_fields_set, f"{path.name}: no expectations"
        assert case.name == path.stem


FAILING = """
    # the digits CSNN with a mis-timed PAIBox pipeline, wrongly expected to be consistent
    name = "expects_too_much"
    [model]
    name = "digits_csnn"
    [conversion]
    input_scale = 255
    [inputs]
    samples = 4
    timesteps = 4
    [run]
    timing = "flat"
    [expect]
    verdict = "consistent"
    exact = ["paibox:b~reference:b"]
"""


def _inline_case(net: G.Graph, x: np.ndarray, **sections) -> dict:
    return dict({"name": "inline", "model": cases.graph_to_spec(net),
                 "inputs": {"source": "inline", "values": x.astype(np.int64).tolist()}}, **sections)


def _tiny_net(v_init=None) -> G.Graph:
    w = np.array([[3, -1, 2, 1], [1, 2, -2, 3]], dtype=np.int64)
    return G.chain([("fc", P.Linear(w, np.array([1, -1]))), ("n", P.IF(3, reset="soft", v_init=v_init))], (4,),
                   name="tiny")


def test_a_case_file_is_a_test_and_a_failing_one_shows_what_differs(pytester):
    """Two files in a cases/ folder: a tiny inline case that passes, and the digits CSNN with a mis-timed
    pipeline wrongly expected consistent, which fails showing the unmet expectations, the per-layer table and
    the diagnoses. Reports go where --case-json / --case-html say. (A subprocess: torch cannot be re-imported.)"""
    folder = pytester.path / "cases"
    folder.mkdir()
    (folder / "expects_too_much.toml").write_text(textwrap.dedent(FAILING))
    x = np.random.default_rng(0).integers(0, 2, (3, 5, 4))
    spec = _inline_case(_tiny_net(), x, expect={"exact": ["paibox:b~reference:b", "spikingjelly:b~reference:b"]})
    (folder / "tiny.toml").write_text(cases.to_toml(spec, "a tiny biased IF layer"))
    result = pytester.runpytest_subprocess("-p", "snncheck.pytest_plugin", "--case-json", "out", "--case-html",
                                           "html", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    for needle in ("expectations not met", "verdict is inconsistent (timing @ conv_fc.6", "expected consistent",
                   "paibox:b~reference:b is not bit-exact", "layer       lag exp/found",
                   "[error] timing @ conv_fc.6", "fix: give pipeline stage k"):
        assert needle in out, needle
    report = json.loads((pytester.path / "out" / "expects_too_much.json").read_text())
    assert report["verdict"] == "inconsistent"
    timing = {d["layer"] for d in report["diagnoses"] if d["code"] == "timing"}
    assert timing == {"conv_fc.6", "conv_fc.10", "conv_fc.12"}, timing
    assert json.loads((pytester.path / "out" / "inline.json").read_text())["verdict"] == "consistent"
    assert "<html" in (pytester.path / "html" / "expects_too_much.html").read_text().lower()


def test_a_runner_that_refuses_the_network_is_said_and_must_be_expected():
    x = np.random.default_rng(1).integers(0, 2, (2, 4, 4))
    qcfs_like = _tiny_net(v_init=1)                  # theta/2 start: PAIBox's offline neurons start at 0
    plain = cases.Case.from_dict(_inline_case(qcfs_like, x))
    report = cases.run(plain)
    assert [p.key for p in report.pairs] == ["spikingjelly:b~reference:b"] and report.pairs[0].exact
    assert "initial membrane" in report.extras["unsupported"]["paibox"]
    said = [d for d in report.diagnoses if d.code == "unsupported"]
    assert said and said[0].layer == "n" and "initial membrane" in said[0].message
    assert any("paibox refused the network" in f for f in cases.check_expectations(plain, report))
    expected = cases.Case.from_dict(_inline_case(qcfs_like, x, expect={"unsupported": {"paibox": "start at v = 0"}}))
    assert cases.check_expectations(expected, report) == []
    wrong = cases.Case.from_dict(_inline_case(qcfs_like, x, expect={"unsupported": {"paibox": "bias"}}))
    assert any("does not say 'bias'" in f for f in cases.check_expectations(wrong, report))


def test_calibration_makes_every_layer_of_seeded_models_fire_and_keeps_qcfs_at_half_threshold():
    for name in ("alexnet_direct_255", "qcfs_half_threshold", "event_camera", "mlp_digits"):
        case = cases.Case.load(CASES / f"{name}.toml")
        plan = cases.build_plan(case, samples=8)
        graph = plan.subject(Role.FLOAT).graph
        x = plan.inputs.chunk()
        assert len(x) == 8
        run = ReferenceBackend().run(graph, x, "reference:a")
        rates = {r.name: float(r.spikes.mean()) for r in run.layers}
        assert all(0.02 < r < 0.6 for r in rates.values()), (name, rates)
        if name.startswith("qcfs"):
            assert all(graph.nodes[n].v_init == pytest.approx(graph.nodes[n].threshold / 2) for n in graph.neurons)


def test_the_biased_case_deploys_its_biases_as_pb_lif():
    from snncheck.backends.paibox.build import GraphSource
    case = cases.Case.load(CASES / "if_bias_as_lif.toml")
    int_graph = cases.build_plan(case).subject(Role.DEPLOYED).graph
    assert int_graph.is_integer
    for n in int_graph.neurons:
        biases = [int_graph.nodes[s].bias for t in int_graph.terms(n) for s in t.synapses(int_graph)]
        assert any(b is not None and np.any(b != 0) for b in biases), n
    built = GraphSource(int_graph)()
    assert set(built.probes) == set(int_graph.neurons)
    assert {type(p[0].target).__name__ for p in built.probes.values()} == {"LIF"}


@pytest.mark.parametrize("table, field", [
    ('[expect2]\nverdict = "consistent"\n', "expect2"),
    ('[expect]\nexact = "paibox:b~reference:b"\n', "expect.exact"),
])
def test_an_unknown_or_mistyped_key_in_a_case_file_is_one_clear_line(tmp_path, capsys, table, field):
    """The case schema forbids what it does not know: a typo is refused naming the file and the field, never
    silently ignored (an `[expect2]` table would leave the case with no expectations, passing whatever runs)."""
    path = tmp_path / "typo.toml"
    path.write_text(f'name = "typo"\n\n[inputs]\nsamples = 2\n\n{table}')
    with pytest.raises(InputError) as err:
        cases.Case.load(path)
    message = str(err.value)
    assert len(message.splitlines()) == 1 and str(path) in message and field in message, message
    assert main(["compare", str(path)]) == 2
    stderr = capsys.readouterr().err.strip()
    assert stderr.startswith("snncheck: error:") and len(stderr.splitlines()) == 1, stderr
    assert str(path) in stderr and field in stderr, stderr


def test_fuzz_writes_the_shrunk_failure_as_a_case_that_reproduces_it(tmp_path, monkeypatch):
    """Plant `>` for `>=` in the reference's firing rule; a short campaign must find it, shrink it, and write a
    case that fails with the planted bug and passes without it."""
    monkeypatch.setattr(P.Neuron, "fire", lambda self, h, out=None: np.greater(h, P._scalar(self.threshold, h),
                                                                               out=out))
    campaign = Campaign(tmp_path, ["integer"], per_round=40, seed=0)
    campaign.one_round("integer", 0)
    assert len(campaign.written) == 1, campaign.summary()
    case = cases.Case.load(campaign.written[0])
    assert "not bit-exact" in case.path.read_text()
    layers = tomllib.loads(case.path.read_text())["model"]["layers"]
    assert len(layers) <= 4, layers                   # shrunk: one or two small layers
    assert cases.check_expectations(case, cases.run(case))
    monkeypatch.undo()
    assert cases.check_expectations(case, cases.run(case)) == []
