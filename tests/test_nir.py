"""NIR graphs: read and written with each parameter mapped by NIR's equations, refused by name where there is no
twin, and SpikingJelly and snnTorch reached through their own NIR importers with their traps named."""
from __future__ import annotations

import numpy as np
import pytest

from snncheck import pipeline, plan as plans
from snncheck.backends.reference import ReferenceBackend
from snncheck.errors import InputError
from snncheck.graph import chain
from snncheck.graph import primitives as P
from snncheck.graph.nir import export, to_graph

T = 6


def sj_int_net(theta1: float, theta2: float, seed: int = 0):
    """An integer-weight SpikingJelly IF network (conv-IF-flatten-linear-IF) and its NIR export."""
    import torch
    import torch.nn as nn
    from spikingjelly.activation_based import layer, neuron
    from spikingjelly.activation_based.nir_exchange import export_to_nir
    rng = np.random.default_rng(seed)
    net = nn.Sequential(layer.Conv2d(1, 4, 3, padding=1), neuron.IFNode(v_threshold=theta1), layer.Flatten(),
                        layer.Linear(4 * 6 * 6, 5), neuron.IFNode(v_threshold=theta2)).eval()
    with torch.no_grad():
        net[0].weight.copy_(torch.from_numpy(rng.integers(-2, 3, (4, 1, 3, 3)).astype(np.float32)))
        net[0].bias.copy_(torch.from_numpy(rng.integers(-1, 2, 4).astype(np.float32)))
        net[3].weight.copy_(torch.from_numpy(rng.integers(-2, 3, (5, 144)).astype(np.float32)))
        net[3].bias.zero_()
    return net, export_to_nir(net, torch.zeros(1, 1, 6, 6))


def spikes_in(n: int = 16, seed: int = 1) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, T, 1, 6, 6)) < 0.5).astype(np.float32)


def sj_own_run(net, x):
    """SpikingJelly's own multi-step run of the module, recorded through hooks (v_seq: v after reset)."""
    from spikingjelly.activation_based import functional
    from snncheck.frontends.hooks import record
    functional.set_step_mode(net, "m")
    for m in net.modules():
        if hasattr(m, "store_v_seq"):
            m.store_v_seq = True
    return record(net, x, step_mode="m")


def test_nir_import_maps_fire_rule_reset_r_and_tau():
    """Catches: NIR read as SpikingJelly semantics (>=), r or tau read without dt, v_leak ignored, unmappable
    nodes accepted silently."""
    import nir
    _, g = sj_int_net(4.0, 3.0)
    graph = to_graph(g)
    sn = graph.nodes["_1"]
    assert (type(sn), sn.fire_rule, sn.reset, sn.threshold, sn.v_reset) == (P.IF, ">", "hard", 4, 0)
    assert "_1.r" not in graph.nodes                      # r = 1/dt: no scaling at dt = 1e-4
    assert isinstance(to_graph(g, dt=1e-3).nodes["_1.r"], P.Scale)            # the same file read with dt = 1 ms
    one = np.ones(3, np.float32)
    lif = nir.NIRGraph({"i": nir.Input(input_type={"input": np.array([3])}), "fc": nir.Linear(np.eye(3)),
                        "n": nir.LIF(tau=one * 2e-4, r=one * 2, v_leak=one * 0, v_threshold=one, v_reset=one * 0)},
                       [("i", "fc"), ("fc", "n")])
    n = to_graph(lif).nodes["n"]
    assert (n.tau, n.decay_input) == (pytest.approx(2.0), False)              # r = tau/dt: SpikingJelly's other form
    bad = nir.NIRGraph({"i": nir.Input(input_type={"input": np.array([3])}),
                        "c": nir.CubaLIF(tau_syn=one, tau_mem=one, r=one, v_leak=one * 0, v_threshold=one)},
                       [("i", "c")])
    with pytest.raises(InputError, match="'c' \\(CubaLIF\\)"):
        to_graph(bad)


def test_export_refuses_what_nir_cannot_say_and_round_trips_the_rest():
    """Catches: soft reset or max pooling written as something else; `>=` neurons exported without a word."""
    g = chain([("fc", P.Linear(np.eye(3, dtype=np.int64))), ("sn", P.IF(2, reset="soft"))], (3,))
    with pytest.raises(InputError, match="'sn'.*soft"):
        export(g)
    g = g.with_node("sn", reset="hard")
    out = export(g)
    assert out.ties == ("sn",)
    back = to_graph(out.graph)
    assert back.nodes["sn"].fire_rule == ">" and np.array_equal(back.nodes["fc"].weight, np.eye(3))


def test_sj_to_nir_to_graph_runs_exactly_without_ties():
    """Catches: any other loss on SpikingJelly -> NIR -> graph -> reference. Half-integer thresholds leave no
    tie on integer input, so `>` and `>=` agree and the reference of the NIR graph equals SpikingJelly's own run,
    spikes and membranes, bit for bit."""
    net, g = sj_int_net(3.5, 2.5)
    x = spikes_in()
    own = sj_own_run(net, x)
    ref = ReferenceBackend().run(to_graph(g), x, "reference")
    assert [r.spikes.mean() > 0.05 for r in ref.layers] == [True, True]
    for a, b in zip(own.layers, ref.layers):
        assert np.array_equal(a.spikes, b.spikes) and np.array_equal(a.v, b.v)


def test_ties_differ_and_are_named_fire_rule():
    """Catches: the `>` vs `>=` trap unnoticed or unnamed. Integer thresholds on integer input: SpikingJelly's own
    run and the NIR graph's reference differ exactly at H == threshold, and through SpikingJelly's NIR importer
    the pipeline names it `fire_rule` at the first layer. (Planted check: with the reference firing on `>=`
    nothing differs and the test fails on `first.any()`.)"""
    net, g = sj_int_net(4.0, 3.0)
    x = spikes_in()
    graph = to_graph(g)
    own, ref = sj_own_run(net, x), ReferenceBackend().run(graph, x, "reference")
    mismatch = own.layers[0].spikes != ref.layers[0].spikes
    first = mismatch & (np.cumsum(mismatch, axis=1) == 1)           # each neuron's first difference ...
    assert first.any() and np.all(ref.layers[0].h[first] == 4)     # ... is a tie, H == threshold
    report = pipeline.execute(plans.check(graph, plans.Inputs.sequences(x), backends=["reference", "sj_nir"]))
    found = report.diagnoses[0]
    assert (found.code, found.layer) == ("fire_rule", "_1") and found.evidence["replay"]["with_trap"] == 0
    assert "H >= threshold" in found.message


def test_snntorch_import_of_if_is_leaky_and_resets_softly():
    """Catches: snnTorch's NIR import of IF (Leaky(beta=0.9), subtractive reset) passing unnoticed, or blamed
    on something else: named `leaky_if` together with `reset_mode` at the first layer."""
    _, g = sj_int_net(4.0, 3.0)
    x = spikes_in(8)
    report = pipeline.execute(plans.check(to_graph(g), plans.Inputs.sequences(x), backends=["reference", "snntorch"]))
    first = report.diagnoses[0]
    assert first.layer == "_1" and set(first.evidence["traps"]) == {"leaky_if", "reset_mode"}, report.diagnoses


def test_r_read_with_another_dt_is_named_dt_scaling(tmp_path):
    """Catches: the dt trap unnamed. One NIR IF network with r = 1, as snnTorch writes it: read by NIR's
    definition at dt = 1e-4 the input is scaled by 1e-4; a run made by a tool that reads r as a per-step gain
    (here: the same file read at dt = 1, recorded to a file) is diagnosed `dt_scaling` at the neuron."""
    import nir
    from snncheck import records
    rng = np.random.default_rng(0)
    one = np.ones(6, np.float32)
    g = nir.NIRGraph({"i": nir.Input(input_type={"input": np.array([8])}),
                      "fc": nir.Linear(rng.integers(-1, 3, (6, 8)).astype(np.float32)),
                      "n": nir.IF(r=one, v_threshold=one * 3.5, v_reset=one * 0)}, [("i", "fc"), ("fc", "n")])
    per_step = to_graph(g, dt=1.0)
    x = (rng.random((16, T, 8)) < 0.5).astype(np.float32)
    records.save(ReferenceBackend().run(per_step, x, "per_step"), tmp_path / "r.h5", inputs=x)
    by_spec = to_graph(g)                                   # dt = 1e-4: Scale(1e-4) before the neuron
    assert isinstance(by_spec.nodes["n.r"], P.Scale)
    plan = plans.with_recorded(plans.check(by_spec, plans.Inputs.sequences(x)), str(tmp_path / "r.h5"),
                               plans.Role.FLOAT)
    found = pipeline.execute(plan).diagnoses[0]
    assert (found.code, found.layer) == ("dt_scaling", "n"), found


def test_soft_reset_exported_as_hard_is_named_reset_mode(tmp_path):
    """Catches: the reported exporter trap (soft reset written as reset-to-zero) unnamed. SpikingJelly 2.0's
    exporter refuses soft reset; an older one wrote it as hard: the soft-reset module's own run, recorded to a
    file, against the graph of its hard-reset export is diagnosed `reset_mode` at the first layer (thresholds
    2.71 and 1.62: H - k*theta never ties with theta within six steps, so the fire rule plays no part)."""
    from snncheck import records
    from spikingjelly.activation_based.nir_exchange import export_to_nir
    import torch
    soft, _ = sj_int_net(2.71, 1.62)
    for m in (soft[1], soft[4]):
        m.v_reset = None
    with pytest.raises(NotImplementedError, match="soft reset"):
        export_to_nir(soft, torch.zeros(1, 1, 6, 6))
    _, as_hard = sj_int_net(2.71, 1.62)               # same weights (same seed), v_reset = 0
    x = spikes_in()
    run = sj_own_run(soft, x)
    graph = to_graph(as_hard)
    records.save(run.replace(layers=[r.replace(name=n) for r, n in zip(run.layers, graph.neurons)]),
                 tmp_path / "soft.h5", inputs=x)
    plan = plans.with_recorded(plans.check(graph, plans.Inputs.sequences(x), backends=["reference"]),
                               str(tmp_path / "soft.h5"))
    found = pipeline.execute(plan).diagnoses[0]
    assert (found.code, found.layer) == ("reset_mode", "_1") and found.evidence["replay"]["with_trap"] == 0


def test_diff_takes_a_nir_graph_as_the_model(tmp_path, capsys):
    """Catches: `snncheck diff graph.nir --run-b RUN` not reaching the NIR frontend (or the inputs the records
    carry): SpikingJelly's own run of the module, recorded, against its NIR graph: exit 1, fire_rule named, and
    the HTML page's cross-simulator table lists the recorded run with its trap."""
    import nir
    from snncheck import cli, records
    net, g = sj_int_net(4.0, 3.0)
    nir.write(str(tmp_path / "net.nir"), g)
    x = spikes_in()
    run = sj_own_run(net, x)
    records.save(run.replace(layers=[r.replace(name=f"_{r.name}") for r in run.layers]), tmp_path / "sj.h5",
                 inputs=x)
    code = cli.main(["diff", str(tmp_path / "net.nir"), "--run-b", str(tmp_path / "sj.h5"), "--out",
                     str(tmp_path / "r.html")])
    out = capsys.readouterr().out
    assert code == 1 and "fire_rule @ _1" in out and "recorded:b: recorded, from" in out
    page = (tmp_path / "r.html").read_text()
    table = page[page.index("Across simulators"):page.index("</table>", page.index("Across simulators"))]
    assert "recorded:b" in table and "fire_rule" in table


def test_export_command_writes_a_graph_that_runs_the_same(tmp_path, capsys):
    """Catches: `snncheck export` losing BatchNorm (not folded), weights or shapes on the way to NIR; and max
    pooling exported as something else (refused naming the node, exit 2)."""
    import sys
    import torch
    from pathlib import Path
    from snncheck import cli, data
    from snncheck.frontends import nir as nir_files
    fixtures = Path(__file__).parent / "fixtures"
    sys.path.insert(0, str(fixtures))
    import bn_csnn
    torch.save(bn_csnn.build().state_dict(), tmp_path / "A.pth")
    spec = f"{fixtures / 'bn_csnn.py'}:build"
    assert cli.main(["export", str(tmp_path / "A.pth"), "--model", spec, "--input-shape", "1,8,8",
                     "--out", str(tmp_path / "a.nir")]) == 0
    assert "sn1, sn2, sn3" in capsys.readouterr().out               # the >= neurons are listed
    from snncheck.checkpoint import load_float
    a = load_float(tmp_path / "A.pth", spec, (1, 8, 8)).graph
    x = np.repeat(data.digits("test")[0][:16, None], 4, axis=1)
    ref_a = ReferenceBackend().run(a, x)
    ref_nir = ReferenceBackend().run(nir_files.load(tmp_path / "a.nir"), x)
    assert all(np.array_equal(p.spikes, q.spikes) for p, q in zip(ref_a.layers, ref_nir.layers))
    from snncheck.frontends.models import DIGITS_CHECKPOINT
    assert cli.main(["export", str(DIGITS_CHECKPOINT), "--out", str(tmp_path / "d.nir")]) == 2
    assert "MaxPool2d" in capsys.readouterr().err


@pytest.mark.parametrize("decay_input", [True, False])
def test_sj_lif_through_nir_keeps_tau_and_its_form(decay_input):
    """Catches: tau read without dt (tau_NIR = tau*dt) or SpikingJelly's decay_input form lost (r = 1 or r = tau):
    LIF networks exported by SpikingJelly run in the reference like SpikingJelly's own run (same spikes, membranes
    within float32 rounding of the synaptic sums)."""
    import torch
    import torch.nn as nn
    from spikingjelly.activation_based import layer, neuron
    from spikingjelly.activation_based.nir_exchange import export_to_nir
    torch.manual_seed(0)
    net = nn.Sequential(layer.Conv2d(1, 4, 3, padding=1), neuron.LIFNode(tau=3.0, decay_input=decay_input,
                                                                          v_threshold=0.8),
                        layer.Flatten(), layer.Linear(144, 5), neuron.LIFNode(tau=2.0, decay_input=decay_input)).eval()
    with torch.no_grad():
        net[0].weight.mul_(4.0)
        net[3].weight.mul_(4.0)
    graph = to_graph(export_to_nir(net, torch.zeros(1, 1, 6, 6)))
    assert (graph.nodes["_1"].tau, graph.nodes["_1"].decay_input) == (3.0, decay_input)
    x = spikes_in()
    own, ref = sj_own_run(net, x), ReferenceBackend().run(graph, x)
    assert all(r.spikes.any() for r in ref.layers)
    for a, b in zip(own.layers, ref.layers):
        assert np.array_equal(a.spikes, b.spikes) and np.allclose(a.v, b.v, atol=1e-6)


def test_nir_backends_refuse_what_their_importers_cannot_map():
    """Catches: a graph accepted and then failing inside the importer (a crash instead of a refusal): a Scale (as a
    NIR IF read at another dt brings) is in neither importer's map; max pooling cannot be written as NIR."""
    from snncheck import backends
    g = chain([("fc", P.Linear(np.eye(3, dtype=np.int64))), ("s", P.Scale(2)), ("sn", P.IF(2))], (3,))
    for name in ("sj_nir", "snntorch"):
        (refusal,) = backends.get(name)().accepts(g)
        assert refusal.node == "s" and "Scale" in refusal.reason
    pooled = chain([("c", P.Conv2d(np.ones((1, 1, 1, 1), np.int64))), ("p", P.MaxPool2d()), ("sn", P.IF(1))],
                   (1, 4, 4))
    assert "MaxPool2d" in backends.get("sj_nir")().accepts(pooled)[0].reason
