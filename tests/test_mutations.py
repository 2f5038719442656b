"""The bug catalog: every bug class injected into a correct conversion is named by the top diagnosis, with the
right code at the right layer, on the embedded digits CSNN and on other architectures (AlexNet-style stack with
biases and 0-255 input; a 28x28 CSNN with BatchNorm for the BatchNorm bug)."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from convert_nets import diagnose, model, pipeline_report
from snncheck import convert, mutations
from snncheck.diagnose import rank
from snncheck.errors import InputError
from snncheck.graph import fold_batchnorm

# Assertions on what only the full pipeline makes (the verdict, PAIBox's timing) are in tests marked


@pytest.fixture(scope="module")
def nets():
    out = {arch: model(arch)[:2] for arch in ("digits", "alexnet", "csnn28")}
    return {k: v + (convert.convert(v[0], 255, "max"),) for k, v in out.items()}


NETWORK_BUGS = [name for name, bug in mutations.CATALOG.items() if bug.inject is not None]
CASES = [("digits", name) for name in NETWORK_BUGS] + \
        [("alexnet", name) for name in NETWORK_BUGS if name != "bn_not_folded"] + \
        [("csnn28", "bn_not_folded")]


@pytest.mark.parametrize("arch,name", CASES)
def test_top_diagnosis_names_the_bug_and_its_layer(nets, arch, name):
    net, inputs, conv = nets[arch]
    bug = mutations.CATALOG[name]
    where = mutations.target(conv.graph, net, conv, name)
    broken = mutations.apply(conv.graph, net, {"name": name}, conv)
    _, _, found = diagnose(net, broken, inputs, 255)
    top = rank(found)[0]
    assert (top.code, top.layer) == (bug.code, where), [(d.code, d.layer, d.severity) for d in found]
    assert top.severity == "error"
    assert top.evidence["layer"] == where
    assert all(d.message and d.fix for d in found if d.severity == "error")


@pytest.mark.parametrize("arch,name", CASES)
def test_every_bug_makes_the_report_inconsistent(nets, arch, name):
    net, inputs, conv = nets[arch]
    broken = mutations.apply(conv.graph, net, {"name": name}, conv)
    report = pipeline_report(net, broken, inputs, 255, backends=("reference", "spikingjelly"))
    assert report.verdict == "inconsistent"
    top = rank(report.diagnoses)[0]
    assert (top.code, top.layer) == (mutations.CATALOG[name].code, mutations.target(conv.graph, net, conv, name))
    # each finding once: the static diagnoses come back from dynamic.analyse with the run evidence joined
    seen = [(d.code, d.layer, d.message) for d in report.diagnoses]
    assert len(seen) == len(set(seen)), seen


@pytest.mark.parametrize("arch,name,layer", [("digits", "vthr_scale", "conv_fc.6"),
                                             ("digits", "reset_mode", "conv_fc.10"),
                                             ("digits", "int8_wrap", "conv_fc.12"),
                                             ("alexnet", "truncation", "features.4"),
                                             ("alexnet", "prenorm_weights", "classifier.5"),
                                             ("digits", "bn_not_folded", "conv_fc.4")])
def test_deeper_layers_are_named_too(nets, arch, name, layer):
    net, inputs, conv = nets[arch]
    broken = mutations.apply(conv.graph, net, {"name": name, "layer": layer}, conv)
    spiking = mutations.target(conv.graph, net, conv, name, layer)
    _, _, found = diagnose(net, broken, inputs, 255)
    top = rank(found)[0]
    assert (top.code, top.layer) == (mutations.CATALOG[name].code, spiking)
    order = net.neurons
    earlier = [d for d in found if d.severity == "error" and order.index(d.layer) < order.index(spiking)]
    assert not earlier, earlier


@pytest.mark.parametrize("arch", ["digits", "alexnet"])
def test_mistimed_pipeline_is_named_at_the_first_late_layer(nets, arch):
    net, inputs, conv = nets[arch]
    report = pipeline_report(net, conv.graph, inputs[:4], 255, backends=("reference", "paibox"),
                             paibox=mutations.run_options("timing"))
    top = rank(report.diagnoses)[0]
    assert (top.code, top.layer) == ("timing", mutations.target(conv.graph, net, conv, "timing"))


def test_mutations_copy_and_change_only_their_layer(nets):
    net, _, conv = nets["digits"]
    before = {n: _fields(p) for n, p in conv.graph.nodes.items()}
    broken = mutations.apply(conv.graph, net, {"name": "vthr_scale", "layer": "conv_fc.6", "factor": 3}, conv)
    assert all(_same(before[n], _fields(p)) for n, p in conv.graph.nodes.items())
    changed = [n for n in conv.graph.order if not _same(_fields(conv.graph.nodes[n]), _fields(broken.nodes[n]))]
    assert changed == ["conv_fc.6"]
    assert broken.nodes["conv_fc.6"].threshold == round(conv.graph.nodes["conv_fc.6"].threshold * 3)
    assert broken.is_integer and broken.edges == conv.graph.edges
    # a synapse bug changes only that synapse
    trunc = mutations.apply(conv.graph, net, {"name": "truncation", "layer": "conv_fc.9"}, conv)
    assert [n for n in conv.graph.order if not _same(_fields(conv.graph.nodes[n]), _fields(trunc.nodes[n]))] == \
        ["conv_fc.9"]


def test_int8_wrap_is_what_torch_does(nets):
    """The wrap mutation equals `(w * s).to(torch.int8)` for a scale twice the full-range one."""
    net, _, conv = nets["digits"]
    broken = mutations.apply(conv.graph, net, {"name": "int8_wrap"}, conv)
    w = fold_batchnorm(net).nodes["conv_fc.0"].weight.astype(np.float64) * conv.weight_scales["conv_fc.0"] * 2
    torch_wrapped = torch.from_numpy(w).to(torch.int8).numpy()
    assert np.array_equal(broken.nodes["conv_fc.0"].weight, torch_wrapped)
    assert np.any(np.sign(torch_wrapped) != np.sign(np.trunc(w)))        # the test exercises a real wrap


@pytest.mark.parametrize("spec,words", [({"name": "nope"}, "unknown mutation"),
                                        ({"name": "vthr_scale", "layer": "fc9"}, "no spiking layer"),
                                        ({"name": "flatten_order", "layer": "conv_fc.2"}, "does not apply"),
                                        ({"name": "vthr_scale", "factor": 1}, "changes nothing"),
                                        ({"name": "timing"}, "not a network change")])
def test_bad_mutation_specs_say_why(nets, spec, words):
    net, _, conv = nets["digits"]
    with pytest.raises(InputError, match=words):
        mutations.apply(conv.graph, net, spec, conv)


def test_bias_unscaled_needs_a_scaled_input(nets):
    net, _, _ = nets["digits"]
    conv1 = convert.convert(net, 1.0, "max")
    assert "bias_unscaled" not in mutations.applicable(conv1.graph, net, conv1)
    assert "input_scale" not in mutations.applicable(conv1.graph, net, conv1)


def _fields(node) -> dict:
    return {f.name: np.array(getattr(node, f.name), copy=True) if isinstance(getattr(node, f.name), np.ndarray)
            else getattr(node, f.name) for f in dataclasses.fields(node)}


def _same(a: dict, b: dict) -> bool:
    return all(np.array_equal(a[k], b[k]) if isinstance(a[k], np.ndarray) else a[k] == b[k] for k in a)
