"""Recorded runs: records files (NIR data, other tools' dumps with their layouts) and a run made by an independent
implementation compared like a simulated one, its divergence explained by replaying the known traps."""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from snncheck import cli, data, records
from snncheck.backends.base import LayerRecord, RunResult
from snncheck.errors import InputError
from snncheck.graph import chain
from snncheck.graph import primitives as P

FIXTURES = Path(__file__).parent / "fixtures"
T, N = 4, 32


# ----------------------------------------------------------------------------------------------- the seed's CUDA port
def cuda_like(x: np.ndarray, params: dict) -> dict:
    """An independent re-implementation of the BN CSNN (the seed's CUDA port, here NumPy in float64), written from
    the equations and sharing no code with snncheck: conv as explicit shifted sums, IF with hard reset to 0 and
    firing on v >= 1. `params`: {"conv1": (W, b), "conv2": (W, b), "fc": (W, b)} as exported. Returns
    {layer: spikes [N, T, ...]}."""
    def conv(inp, w, b):                         # inp [B, C, H, W], padding 1, stride 1
        pad = np.pad(inp, ((0, 0), (0, 0), (1, 1), (1, 1)))
        out = np.zeros((inp.shape[0], w.shape[0]) + inp.shape[2:])
        for u in range(3):
            for v in range(3):
                patch = pad[:, :, u:u + inp.shape[2], v:v + inp.shape[3]]
                out += np.einsum("bchw,oc->bohw", patch, w[:, :, u, v])
        return out + b[None, :, None, None]

    n, steps = x.shape[:2]
    v = {k: 0.0 for k in ("sn1", "sn2", "sn3")}
    rec = {k: [] for k in v}
    for t in range(steps):
        s1 = _if_step(v, "sn1", conv(x[:, t].astype(np.float64), *params["conv1"]))
        s2 = _if_step(v, "sn2", conv(s1, *params["conv2"]))
        s3 = _if_step(v, "sn3", s2.reshape(n, -1) @ params["fc"][0].T + params["fc"][1])
        for k, s in (("sn1", s1), ("sn2", s2), ("sn3", s3)):
            rec[k].append(s)
    return {k: np.stack(s, axis=1) for k, s in rec.items()}


def _if_step(v: dict, name: str, x: np.ndarray) -> np.ndarray:
    h = v[name] + x
    s = (h >= 1.0).astype(np.float64)
    v[name] = h * (1 - s)
    return s


def exported(module, fold: tuple) -> dict:
    """The CSNN's weights as the seed exported them: conv layers named in `fold` with their BatchNorm folded in
    (k = gamma / sqrt(var + eps)), the others as they are before folding."""
    sd = {k: v.detach().numpy().astype(np.float64) for k, v in module.state_dict().items()}
    out = {"fc": (sd["fc.weight"], sd["fc.bias"])}
    for conv, bn in (("conv1", "bn1"), ("conv2", "bn2")):
        w, b = sd[f"{conv}.weight"], sd.get(f"{conv}.bias", np.zeros(sd[f"{conv}.weight"].shape[0]))
        if conv in fold:
            k = sd[f"{bn}.weight"] / np.sqrt(sd[f"{bn}.running_var"] + 1e-5)
            w, b = w * k[:, None, None, None], (b - sd[f"{bn}.running_mean"]) * k + sd[f"{bn}.bias"]
        out[conv] = (w, b)
    return out


@pytest.fixture(scope="module")
def csnn(tmp_path_factory):
    """(model spec, A.pth, inputs.npy, frames [N, T, 1, 8, 8]) of the BN CSNN on digits."""
    import torch
    sys.path.insert(0, str(FIXTURES))
    import bn_csnn
    root = tmp_path_factory.mktemp("csnn")
    module = bn_csnn.build()
    torch.save(module.state_dict(), root / "A.pth")
    x, _ = data.digits("test")
    np.save(root / "x.npy", x[:N])
    return f"{FIXTURES / 'bn_csnn.py'}:build", root, module, np.repeat(x[:N, None], T, axis=1)


def _merged_dump(path: Path, spikes: dict) -> None:
    """The port's hook dump as another tool writes it: time merged into the batch ([T*N, ...], time-major)."""
    np.savez(path, **{k: s.swapaxes(0, 1).reshape((-1,) + s.shape[2:]) for k, s in spikes.items()})


def _diff(spec, root, run, *extra):
    out = root / f"{Path(run).stem}.json"
    code = cli.main(["diff", str(root / "A.pth"), "--model", spec, "--run-b", str(run), "--inputs",
                     str(root / "x.npy"), "--timesteps", str(T), "--samples", str(N), "--json", str(out),
                     "--out", str(root / f"{Path(run).stem}.html"), *extra])
    import json
    return code, json.loads(out.read_text())


def test_cuda_port_with_weights_before_bn_folding_is_diagnosed_bn_not_folded_at_its_layer(csnn):
    """Catches: a recorded run not compared at all, or its divergence left as a bare simulator_mismatch / blamed on
    the wrong layer. The port gets conv1 folded and conv2 before folding (the seed's export): diagnosed
    bn_not_folded at sn2, the layer it feeds. (Planted check: with the trap registry emptied the same run is
    only a simulator_mismatch and this test fails.)"""
    spec, root, module, x = csnn
    spikes = cuda_like(x, exported(module, fold=("conv1",)))
    _merged_dump(root / "port_bug.npz", spikes)
    code, rep = _diff(spec, root, root / "port_bug.npz", "--layout", "merged")
    assert code == 1 and rep["verdict"] == "inconsistent"
    errors = [(d["code"], d["layer"]) for d in rep["diagnoses"] if d["severity"] == "error"]
    assert errors[0] == ("bn_not_folded", "sn2"), errors
    assert rep["runs"]["recorded:a"]["recorded_from"].endswith("port_bug.npz")
    assert rep["runs"]["recorded:a"]["layout"]["order"] == "merged"


def test_cuda_port_with_folded_weights_is_consistent(csnn):
    """Catches: false alarms on a correct independent implementation (float64 against float32: flips only
    within rounding, if any)."""
    spec, root, module, x = csnn
    spikes = cuda_like(x, exported(module, fold=("conv1", "conv2")))
    _merged_dump(root / "port_ok.npz", spikes)
    code, rep = _diff(spec, root, root / "port_ok.npz", "--layout", "merged")
    assert code == 0 and rep["verdict"] == "consistent", rep["diagnoses"]
    pair = rep["pairs"]["recorded:a~reference:a"]
    assert pair["unexplained_flips"] == 0


def test_ambiguous_layout_is_refused_in_one_line(csnn, capsys):
    """Catches: guessing between [N, T, ...] and [T, N, ...] when N == T. A dump with N = T = 4 and no --layout
    is refused (exit 2) naming the layer and the layouts that fit."""
    spec, root, module, x = csnn
    spikes = cuda_like(x[:T], exported(module, fold=("conv1", "conv2")))
    np.savez(root / "square.npz", **spikes)
    np.save(root / "x4.npy", x[:T, 0])
    code = cli.main(["diff", str(root / "A.pth"), "--model", spec, "--run-b", str(root / "square.npz"),
                     "--inputs", str(root / "x4.npy"), "--timesteps", str(T)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "sn1" in err[0] and "sample and time" in err[0] and "--layout" in err[0]


# ----------------------------------------------------------------------------------------------- the file format
def _graph():
    return chain([("fc", P.Linear(np.eye(3, dtype=np.int64))), ("sn", P.IF(2, v_reset=0))], (3,))


def test_nir_data_round_trip_and_other_layouts(tmp_path):
    """Catches: records that do not survive nir.write_data/nir.read_data (order, shape, membrane, inputs), and
    amplitude/first-spike conversions that place spikes wrongly."""
    g = _graph()
    rng = np.random.default_rng(0)
    spikes = rng.random((5, 3, 3)) < 0.4
    v = rng.integers(-3, 3, (5, 3, 3)).astype(np.float32)
    x = rng.integers(0, 2, (5, 3, 3)).astype(np.float32)
    records.save(RunResult("cuda", "cuda:b", [LayerRecord("sn", spikes, v=v)]), tmp_path / "r.h5", inputs=x)
    raw = records.read(tmp_path / "r.h5")
    assert np.array_equal(raw.inputs.reshape(x.shape), x)
    run = records.load(tmp_path / "r.h5", g, 5, 3)
    assert np.array_equal(run.layer("sn").spikes, spikes) and np.array_equal(run.layer("sn").v, v)
    assert run.meta["backend"] == "cuda"
    theta = 2 * spikes.astype(np.float32)                              # amplitude theta, time-major
    np.savez(tmp_path / "amp.npz", sn=theta.swapaxes(0, 1))
    with pytest.raises(InputError, match="spike amplitude"):
        records.load(tmp_path / "amp.npz", g, 5, 3, records.Layout("time"))
    run = records.load(tmp_path / "amp.npz", g, 5, 3, records.Layout("time", "theta"))
    assert np.array_equal(run.layer("sn").spikes, spikes)
    first = np.array([[0, np.inf, 2]] * 5)                             # TTFS: first-spike times in steps
    np.savez(tmp_path / "ttfs.npz", sn=first)
    trains = records.load(tmp_path / "ttfs.npz", g, 5, 3, records.Layout(first_spike=True)).layer("sn").spikes
    assert trains[:, :, 1].sum() == 0 and trains[:, 0, 0].all() and trains[:, 2, 2].all() and trains.sum() == 10


def test_missing_layer_is_refused_naming_it(tmp_path):
    """Catches: a records file without a layer of the network silently compared on fewer layers."""
    np.savez(tmp_path / "r.npz", other=np.zeros((2, 3, 3)))
    with pytest.raises(InputError, match="no records of layer.*sn"):
        records.load(tmp_path / "r.npz", _graph(), 2, 3)


def test_a_chips_pipelined_output_is_realigned_and_a_late_layer_found(tmp_path):
    """Catches: a recorded pipeline (a board's raw output, stage k answering k-1 steps late) compared unaligned,
    or a layer that answers one step later than the pipeline says left unnoticed. The raw record is the
    reference shifted by each stage's lag; with n3 one step later still, `timing` is diagnosed at n3 alone."""
    from helpers import int_csnn
    from snncheck import pipeline, plan as plans
    from snncheck.backends.paibox.lower import expected_lags, pipeline_length
    from snncheck.backends.reference import ReferenceBackend
    g = int_csnn(seed=0)
    x = np.rint(np.random.default_rng(0).random((8, 6, 1, 8, 8)) * 3).astype(np.float32)
    ref = ReferenceBackend().run(g, x, "reference")
    steps, lags = 6 + pipeline_length(g) - 1, expected_lags(g)

    def board(extra: dict) -> Path:
        layers = []
        for rec in ref.layers:
            lag = lags[rec.name] + extra.get(rec.name, 0)
            raw = np.zeros((8, steps) + rec.shape, bool)
            raw[:, lag:lag + 6] = rec.spikes[:, :steps - lag]
            layers.append(LayerRecord(rec.name, raw))
        path = tmp_path / f"board{len(extra)}.h5"
        records.save(RunResult("board", "board", layers), path, inputs=x)
        return path

    def report(path):
        plan = plans.check(g, plans.Inputs.sequences(x), backends=["reference"])
        return pipeline.execute(plans.with_recorded(plan, str(path), plans.Role.DEPLOYED, pipelined=True))

    good = report(board({}))
    assert good.verdict == "consistent" and good.lags["recorded:b"]["n4"]["detected"] == lags["n4"]
    late = report(board({"n3": 1}))
    timing = [d for d in late.diagnoses if d.code == "timing"]
    assert [d.layer for d in timing] == ["n3"] and timing[0].evidence["detected"] == lags["n3"] + 1


def test_event_spike_times_load_through_nirs_own_conversion(tmp_path):
    """Catches: NIR EventData (spike times, dt from the file) misplaced on the time grid."""
    import h5py
    import json
    import nir
    idx = np.array([[0, 2, -1], [1, -1, -1]])
    time = np.array([[0.0, 0.004, np.inf], [0.002, np.inf, np.inf]])          # dt = 2 ms: steps 0, 2 and 1
    nir.write_data(str(tmp_path / "e.h5"), nir.NIRGraphData(
        {"sn": nir.NIRNodeData({"spikes": nir.EventData(idx, time, n_neurons=3, t_max=0.006)})}))
    with h5py.File(tmp_path / "e.h5", "a") as f:
        f.attrs["snncheck"] = json.dumps({"dt": 0.002})
    spikes = records.load(tmp_path / "e.h5", _graph(), 2, 3).layer("sn").spikes
    assert [tuple(map(tuple, np.argwhere(s))) for s in spikes] == [((0, 0), (2, 2)), ((1, 1),)]


def test_a_comparison_on_fewer_samples_takes_the_records_first_ones(tmp_path):
    """Catches: `--samples 8` against a 32-sample record refused as a layout error, or compared against the wrong
    rows (the recorded inputs are checked against the first samples)."""
    g = _graph()
    spikes = np.random.default_rng(1).random((6, 3, 3)) < 0.5
    x = np.arange(6 * 3 * 3, dtype=np.float32).reshape(6, 3, 3)
    records.save(RunResult("x", "x", [LayerRecord("sn", spikes)]), tmp_path / "r.h5", inputs=x)
    from snncheck.backends.recorded import RecordedBackend
    run = RecordedBackend(path=str(tmp_path / "r.h5")).run(g, x[:4], "recorded:b")
    assert np.array_equal(run.layer("sn").spikes, spikes[:4])
    with pytest.raises(InputError, match="other inputs"):
        RecordedBackend(path=str(tmp_path / "r.h5")).run(g, x[2:], "recorded:b")


def test_a_chunked_plan_compares_each_sample_with_its_own_record(tmp_path):
    """Catches: a recorded run read from its first sample in every chunk (chunk 2 compared against samples 0..2 of
    the record: 'inconsistent' where the whole set is consistent). The record holds no inputs, so nothing else
    notices the shift."""
    from helpers import int_csnn
    from snncheck import pipeline, plan as plans
    from snncheck.backends.reference import ReferenceBackend
    g = int_csnn(seed=0)
    x = np.rint(np.random.default_rng(2).random((7, 5, 1, 8, 8)) * 3).astype(np.float32)
    ref = ReferenceBackend().run(g, x, "reference")
    records.save(RunResult("own", "own", [LayerRecord(r.name, r.spikes) for r in ref.layers]), tmp_path / "r.h5")
    plan = plans.check(g, plans.Inputs.sequences(x), backends=["reference"]).replace(chunk=3)
    report = pipeline.execute(plans.with_recorded(plan, str(tmp_path / "r.h5"), plans.Role.DEPLOYED))
    assert report.verdict == "consistent"
    assert all(c.mismatches == 0 for p in report.pairs for c in p.layers) and report.pairs[0].samples == 7
