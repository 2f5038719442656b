"""The bug catalog: every bug class injected into a correct conversion is named by the top diagnosis, with the
right code at the right layer, on the embedded digits CSNN and on other architectures (AlexNet-style stack with
biases and 0-255 input; a 28x28 CSNN with BatchNorm for the BatchNorm bug)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from snncheck import api, case, checkpoint, convert, data, ir, mutations, zoo
from snncheck.diagnose import rank
from snncheck.errors import InputError
from snncheck.frontends.spikingjelly import from_module

RUNNERS = ["reference", "spikingjelly"]       # the diagnosis needs no PAIBox, except for timing (below)


def _seeded(name: str, shape, seed: int = 0, samples: int = 12, timesteps: int = 4):
    """A zoo model with seeded weights, BatchNorm statistics spread out, thresholds balanced on resized digits."""
    torch.manual_seed(seed)
    module = zoo.get(name)()
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) * 1.5 + 0.25)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
    x, _ = data.digits("test")
    inputs = data.direct(data.resize(x[:samples], shape), timesteps)
    net = case.calibrate_thresholds(module, from_module(module, shape, name=name), inputs, 0.9)
    return module.eval(), net, inputs


@pytest.fixture(scope="module")
def nets():
    fm = checkpoint.load_float(zoo.DIGITS_CHECKPOINT)
    x, _ = data.digits("test")
    out = {"digits": (fm.module, fm.network, data.direct(x[:16], 4)),
           "alexnet": _seeded("alexnet_small", (3, 16, 16)),
           "csnn28": _seeded("csnn28", (1, 28, 28), samples=8)}
    return {k: v + (convert.convert(v[1], 255, "max"),) for k, v in out.items()}


CASES = [("digits", name) for name in mutations.CATALOG if name != "timing"] + \
        [("alexnet", name) for name in mutations.CATALOG if name not in ("timing", "bn_not_folded")] + \
        [("csnn28", "bn_not_folded")]


@pytest.mark.parametrize("arch,name", CASES)
def test_top_diagnosis_names_the_bug_and_its_layer(nets, arch, name):
    module, net, inputs, conv = nets[arch]
    bug = mutations.CATALOG[name]
    where = mutations.target(conv.network, net, conv, name)
    broken = mutations.apply(conv.network, net, {"name": name}, conv)
    report = api.diff(module, net, broken, inputs, 255, runners=RUNNERS, keep_runs=False)
    top = rank(report.diagnoses)[0]
    assert (top.code, top.layer) == (bug.code, where), [(d.code, d.layer, d.severity) for d in report.diagnoses]
    assert top.severity == "error" and report.verdict == "inconsistent"
    assert top.evidence["layer"] == where
    assert all(d.message and d.fix for d in report.diagnoses if d.severity == "error")


@pytest.mark.parametrize("arch,name,layer", [("digits", "vthr_scale", "conv_fc.6"), ("digits", "reset_mode", "conv_fc.10"),
                                             ("digits", "int8_wrap", "conv_fc.12"), ("alexnet", "truncation", "features.4"),
                                             ("alexnet", "prenorm_weights", "classifier.5"),
                                             ("digits", "bn_not_folded", "conv_fc.4")])
def test_deeper_layers_are_named_too(nets, arch, name, layer):
    module, net, inputs, conv = nets[arch]
    broken = mutations.apply(conv.network, net, {"name": name, "layer": layer}, conv)
    spiking = mutations.target(conv.network, net, conv, name, layer)
    report = api.diff(module, net, broken, inputs, 255, runners=RUNNERS, keep_runs=False)
    top = rank(report.diagnoses)[0]
    assert (top.code, top.layer) == (mutations.CATALOG[name].code, spiking)
    earlier = [d for d in report.diagnoses if d.severity == "error" and
               report.layers.index(d.layer) < report.layers.index(spiking)]
    assert not earlier, earlier


@pytest.mark.parametrize("arch", ["digits", "alexnet"])
def test_mistimed_pipeline_is_named_at_the_first_late_layer(nets, arch):
    module, net, inputs, conv = nets[arch]
    report = api.diff(module, net, conv.network, inputs[:4], 255, runners=["reference", "paibox"],
                      keep_runs=False, **mutations.run_options("timing"))
    top = rank(report.diagnoses)[0]
    assert (top.code, top.layer) == ("timing", mutations.target(conv.network, net, conv, "timing"))


def test_mutations_copy_and_change_only_their_layer(nets):
    _, net, _, conv = nets["digits"]
    before = [np.array(p, copy=True) for p in conv.network.parameters()]
    broken = mutations.apply(conv.network, net, {"name": "vthr_scale", "layer": "conv_fc.6", "factor": 3}, conv)
    assert all(np.array_equal(a, b) for a, b in zip(before, conv.network.parameters()))
    changed = [a.name for a, b in zip(conv.network.layers, broken.layers) if not _same(a, b)]
    assert changed == ["conv_fc.6"]
    assert broken.layer("conv_fc.6").threshold == round(conv.network.layer("conv_fc.6").threshold * 3)
    assert broken.is_integer


def test_int8_wrap_is_what_torch_does(nets):
    """The wrap mutation equals `(w * s).to(torch.int8)` for a scale twice the full-range one."""
    _, net, _, conv = nets["digits"]
    broken = mutations.apply(conv.network, net, {"name": "int8_wrap"}, conv)
    w = ir.fold_batchnorm(net).layer("conv_fc.0").weight.astype(np.float64) * conv.scales["conv_fc.0"] * 2
    torch_wrapped = torch.from_numpy(w).to(torch.int8).numpy()
    assert np.array_equal(broken.layer("conv_fc.0").weight, torch_wrapped)
    assert np.any(np.sign(torch_wrapped) != np.sign(np.trunc(w)))        # the test exercises a real wrap


@pytest.mark.parametrize("spec,words", [({"name": "nope"}, "unknown mutation"),
                                        ({"name": "vthr_scale", "layer": "fc9"}, "no spiking layer"),
                                        ({"name": "flatten_order", "layer": "conv_fc.2"}, "does not apply"),
                                        ({"name": "vthr_scale", "factor": 1}, "changes nothing"),
                                        ({"name": "timing"}, "not a network change")])
def test_bad_mutation_specs_say_why(nets, spec, words):
    _, net, _, conv = nets["digits"]
    with pytest.raises(InputError, match=words):
        mutations.apply(conv.network, net, spec, conv)


def test_bias_unscaled_needs_a_scaled_input(nets):
    _, net, _, _ = nets["digits"]
    conv1 = convert.convert(net, 1.0, "max")
    assert "bias_unscaled" not in mutations.applicable(conv1.network, net, conv1)
    assert "input_scale" not in mutations.applicable(conv1.network, net, conv1)


def _same(a, b) -> bool:
    import dataclasses
    return all(np.array_equal(getattr(a, f.name), getattr(b, f.name)) if isinstance(getattr(a, f.name), np.ndarray)
               else getattr(a, f.name) == getattr(b, f.name) for f in dataclasses.fields(a))
