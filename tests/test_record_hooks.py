"""`snncheck record`: any torch module recorded through forward hooks, then compared with `diff --run-b`."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from snncheck import cli, data, records

FIXTURES = Path(__file__).parent / "fixtures"
SPEC = str(FIXTURES / "custom_if.py")


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """(dir, the custom-IF net recorded through hooks on 24 digits at T=6, SpikingJelly's weights)."""
    import torch
    import importlib.util
    root = tmp_path_factory.mktemp("hooks")
    x, _ = data.digits("test")
    np.save(root / "x.npy", x[:24])
    assert cli.main(["record", "--model", f"{SPEC}:build_custom", "--inputs", str(root / "x.npy"),
                     "--timesteps", "6", "--out", str(root / "custom.h5")]) == 0
    spec = importlib.util.spec_from_file_location("custom_if_fixture", SPEC)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.save(mod.build_sj().state_dict(), root / "sj.pth")
    return root


def test_hooks_record_a_custom_if_class_by_name(recorded):
    """Catches: a recorder that needs SpikingJelly classes (or a plugin) to find neurons, that keeps theta as a
    spike value, or that loses the membrane the module keeps in `v`."""
    raw = records.read(recorded / "custom.h5")
    assert sorted(raw.layers) == ["sn1", "sn2"]
    assert raw.inputs.shape == (24, 6, 64)
    assert raw.layers["sn1"]["spikes"].dtype == bool and raw.layers["sn1"]["spikes"].any()
    v = raw.layers["sn1"]["v"]
    assert v.shape == (24, 6, 256) and np.isfinite(v).all() and np.unique(v).size > 100


def test_custom_if_against_spikingjelly_ifnode_names_the_initial_membrane(recorded):
    """Catches: the seed's row-by-row reading of hook dumps: the custom IF (starting at theta/2) against
    SpikingJelly's IFNode (starting at 0) must be diagnosed `initial_membrane` at sn1, the first layer, with theta/2 named.
    (Planted check: without the initial-membrane trap the same comparison is only a simulator_mismatch.)"""
    out = recorded / "r.json"
    code = cli.main(["diff", str(recorded / "sj.pth"), "--model", f"{SPEC}:build_sj", "--run-b",
                     str(recorded / "custom.h5"), "--json", str(out), "--out", str(recorded / "r.html")])
    rep = json.loads(out.read_text())
    assert code == 1
    first = rep["diagnoses"][0]
    assert (first["code"], first["layer"]) == ("initial_membrane", "sn1"), rep["diagnoses"]
    assert "v = 1" in first["message"] and first["evidence"]["replay"]["with_trap"] == 0
    assert rep["inputs"]["source"].startswith("recorded with custom.h5")
    assert rep["runs"]["recorded:a"]["recorded_from"].endswith("custom.h5")


def test_single_and_multi_step_recordings_agree(tmp_path):
    """Catches: a multi-step recording read in the wrong layout ([T, N, ...] taken as [N, T, ...]) or with the
    membranes of the last step only: the BN CSNN recorded both ways gives the same spikes and membranes."""
    from snncheck.frontends import hooks
    import sys
    sys.path.insert(0, str(FIXTURES))
    import bn_csnn
    x = np.repeat(data.digits("test")[0][:5, None], 3, axis=1)
    single = hooks.record(bn_csnn.build(), x, step_mode="s")
    multi = hooks.record(bn_csnn.build(), x, step_mode="m")
    assert single.names == multi.names == ["sn1", "sn2", "sn3"]
    for a, b in zip(single.layers, multi.layers):
        assert a.spikes.shape == (5, 3) + a.shape and np.array_equal(a.spikes, b.spikes)
        assert np.allclose(a.v, b.v, atol=1e-6)


def test_a_module_without_neurons_is_refused_naming_the_option():
    """Catches: a recording of nothing written silently (a user's neuron class with an unusual name)."""
    import torch.nn as nn
    from snncheck.errors import InputError
    from snncheck.frontends import hooks
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU())
    with pytest.raises(InputError, match="--neuron-class"):
        hooks.record(net, np.zeros((2, 3, 4), np.float32))
    run = hooks.record(net, np.ones((2, 3, 4), np.float32), classes=["ReLU"])
    assert run.names == ["1"] and run.layers[0].spikes.shape == (2, 3, 3)


def test_multi_step_recording_leaves_layers_inside_a_seq_to_ann_container_alone():
    """Catches: every module with a step_mode switched to multi-step, children of a SeqToANNContainer too (whose
    layer.Conv2d then refuses the [T*N, C, H, W] the container feeds it): the wrapped net records the same spikes
    and membranes as the same net unwrapped (SpikingJelly's set_step_mode skips such children)."""
    import torch
    from spikingjelly.activation_based import layer, neuron
    from snncheck.frontends import hooks
    torch.manual_seed(0)
    conv = layer.Conv2d(1, 4, 3, padding=1)
    wrapped = torch.nn.Sequential(layer.SeqToANNContainer(conv), neuron.IFNode())
    plain = torch.nn.Sequential(layer.Conv2d(1, 4, 3, padding=1), neuron.IFNode())
    plain[0].load_state_dict(conv.state_dict())
    x = np.random.default_rng(0).uniform(0, 1, (3, 4, 1, 8, 8)).astype(np.float32)
    a, b = hooks.record(wrapped, x, step_mode="m"), hooks.record(plain, x, step_mode="m")
    assert a.layers[0].spikes.any() and np.array_equal(a.layers[0].spikes, b.layers[0].spikes)
    assert np.allclose(a.layers[0].v, b.layers[0].v, atol=1e-6)
