"""Conversion on graphs: a residual network (a merge of a conv term and an identity term; a downsample conv term)
converts with one layer scale per neuron and runs exactly, keeping A's spikes up to quantization drift; every
field is scaled by its metadata (an AdditiveLIF's leak too); deployed checkpoints stored as float32 integers, and
a residual one with no tensor for its identity shortcut, load back to the same graph; what has no integer form
(a non-spiking head, a multiplicative leak, two weight layers in a row, a neuron with no synapse) is refused
naming its node."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from convert_nets import balance_thresholds, diagnose, runs
from snncheck import checkpoint, convert, mutations
from snncheck.backends.reference import evaluate
from snncheck.diagnose import rank, static
from snncheck.errors import InputError
from snncheck.graph import Graph, chain
from snncheck.graph import primitives as P

INPUT_SCALE = 255.0


def _conv(rng, i, o, stride=1, kernel=3, bias=True):
    bound = 1 / np.sqrt(i * kernel * kernel)
    w = rng.uniform(-bound, bound, (o, i, kernel, kernel)).astype(np.float32)
    b = rng.uniform(-bound, bound, o).astype(np.float32) if bias else None
    return P.Conv2d(w, b, stride=(stride, stride), padding=(kernel // 2, kernel // 2))


def _bn(rng, c):
    return P.BatchNorm(rng.normal(0, 0.1, c).astype(np.float32), (rng.random(c) + 0.5).astype(np.float32),
                       (rng.random(c) + 0.5).astype(np.float32), rng.normal(0, 0.1, c).astype(np.float32))


def residual_graph(explicit_shortcut: bool = False, seed: int = 0) -> Graph:
    """conv-BN-IF stem, a BasicBlock with an identity shortcut (SpikingJelly's spiking_resnet: the sum of conv2's
    current and the block's input spikes feeds sn2), a block with a downsample conv shortcut, then flatten,
    linear, IF. With `explicit_shortcut` the identity is a Scale(1) node, as an importer may write it."""
    rng = np.random.default_rng(seed)
    identity = [("layer1.0.identity", P.Scale(1.0))] if explicit_shortcut else []
    nodes = dict([("input", P.Input((2, 8, 8))),
                  ("conv1", _conv(rng, 2, 4, bias=False)), ("bn1", _bn(rng, 4)), ("sn1", P.IF()),
                  ("layer1.0.conv1", _conv(rng, 4, 4)), ("layer1.0.sn1", P.IF()),
                  ("layer1.0.conv2", _conv(rng, 4, 4, bias=False)), ("layer1.0.bn2", _bn(rng, 4))] + identity +
                 [("layer1.0.add", P.Add()), ("layer1.0.sn2", P.IF()),
                  ("layer2.0.conv1", _conv(rng, 4, 8, stride=2)), ("layer2.0.sn1", P.IF()),
                  ("layer2.0.conv2", _conv(rng, 8, 8)),
                  ("layer2.0.downsample.0", _conv(rng, 4, 8, stride=2, kernel=1)),
                  ("layer2.0.add", P.Add()), ("layer2.0.sn2", P.IF()),
                  ("flatten", P.Flatten()),
                  ("fc", P.Linear(rng.uniform(-0.1, 0.1, (10, 128)).astype(np.float32),
                                  rng.uniform(-0.1, 0.1, 10).astype(np.float32))),
                  ("sn_out", P.IF())])
    shortcut = [("sn1", "layer1.0.identity"), ("layer1.0.identity", "layer1.0.add")] if explicit_shortcut else \
        [("sn1", "layer1.0.add")]
    edges = [("input", "conv1"), ("conv1", "bn1"), ("bn1", "sn1"),
             ("sn1", "layer1.0.conv1"), ("layer1.0.conv1", "layer1.0.sn1"),
             ("layer1.0.sn1", "layer1.0.conv2"), ("layer1.0.conv2", "layer1.0.bn2"),
             ("layer1.0.bn2", "layer1.0.add")] + shortcut + \
            [("layer1.0.add", "layer1.0.sn2"),
             ("layer1.0.sn2", "layer2.0.conv1"), ("layer2.0.conv1", "layer2.0.sn1"),
             ("layer2.0.sn1", "layer2.0.conv2"), ("layer2.0.conv2", "layer2.0.add"),
             ("layer1.0.sn2", "layer2.0.downsample.0"), ("layer2.0.downsample.0", "layer2.0.add"),
             ("layer2.0.add", "layer2.0.sn2"), ("layer2.0.sn2", "flatten"), ("flatten", "fc"), ("fc", "sn_out")]
    return Graph(nodes, edges, name="resnet_tiny")


def _inputs(n=12, t=6, seed=1):
    rng = np.random.default_rng(seed)
    return np.repeat(rng.random((n, 1, 2, 8, 8)).astype(np.float32), t, axis=1)


@pytest.fixture(scope="module")
def resnet():
    x = _inputs()
    g = balance_thresholds(residual_graph(), x, 0.8)
    return g, x, convert.convert(g, INPUT_SCALE, "max")


# ------------------------------------------------------------------------------------------------ residual
def test_a_merge_has_one_layer_scale_shared_by_its_terms(resnet):
    g, _, conv = resnet
    b = conv.graph
    assert set(conv.layer_scales) == set(g.neurons) == set(conv.vthr)
    # identity shortcut: made explicit, deployed at theta_B / theta_A of the neuron it feeds
    assert b.inputs_of("layer1.0.add") == ["layer1.0.conv2", "layer1.0.add.shortcut"]        # BatchNorm folded
    k = conv.layer_scales["layer1.0.sn2"]
    theta_a = g.nodes["layer1.0.sn2"].threshold
    assert conv.weight_scales["layer1.0.conv2"] == k                     # spikes in: s_w = k
    assert b.nodes["layer1.0.add.shortcut"].factor == round(conv.vthr["layer1.0.sn2"] / theta_a)
    assert abs(b.nodes["layer1.0.add.shortcut"].factor - k) <= 0.5 + 0.5 / theta_a
    assert b.nodes["layer1.0.add.shortcut"].factor <= 127
    # downsample merge: both convs at the one scale of the neuron they feed
    k2 = conv.layer_scales["layer2.0.sn2"]
    assert conv.weight_scales["layer2.0.conv2"] == conv.weight_scales["layer2.0.downsample.0"] == k2
    folded = convert.prepare(g)
    for syn in ("layer2.0.conv2", "layer2.0.downsample.0"):
        a, i = folded.nodes[syn], b.nodes[syn]
        assert np.array_equal(i.weight, np.clip(np.rint(a.weight.astype(np.float64) * k2), -128, 127))
        assert np.array_equal(i.bias, np.rint(a.bias.astype(np.float64) * k2))
    # the first layer: input amplitude 255, so s_w = k / 255
    assert conv.weight_scales["conv1"] == pytest.approx(conv.layer_scales["sn1"] / INPUT_SCALE)
    # no term overflows int8, and the merge's k is the smallest the terms allow
    assert max(np.abs(b.nodes[s].weight).max() for s in ("layer2.0.conv2", "layer2.0.downsample.0")) == 127
    assert b.is_integer and not b.of_type(P.BatchNorm)


def test_residual_runs_exactly_and_keeps_a_spikes_up_to_drift(resnet):
    g, x, conv = resnet
    a, b = runs(g, conv.graph, x, INPUT_SCALE)
    assert b.meta["exact"]
    # the same integer network in float32 arithmetic (another path through the products) gives the same bits
    deployed = np.rint(x.astype(np.float64) * INPUT_SCALE)
    again = evaluate(conv.graph, {conv.graph.input: deployed}, exact=False)
    for rec in b.layers:
        assert np.array_equal(rec.spikes, again[rec.name][0]), rec.name
        assert np.array_equal(rec.v, again[rec.name][1].astype(np.int64)), rec.name
    # A's spikes kept up to quantization drift: every layer fires; fed A's own spikes each layer misses under 2%
    # of them, as a correct requantization does; flips cascade in the full run (still under 12% at depth 6)
    stats, extras, found = diagnose(g, conv.graph, x, INPUT_SCALE)
    iso = extras["isolated"]
    for ra, rb in zip(a.layers, b.layers):
        assert 0.02 < ra.spikes.mean() < 0.98, ra.name
        assert iso[ra.name]["rate"] < 0.02 and abs(iso[ra.name]["slope_over_threshold_ratio"] - 1) < 0.01, iso
        assert np.mean(ra.spikes != rb.spikes) < 0.12, (ra.name, np.mean(ra.spikes != rb.spikes))
    assert not [d for d in found if d.severity == "error"], found
    assert not any(st["beyond_quantization"] for st in iso.values()), iso
    assert set(stats["layer2.0.sn2"]["synapses"]) == {"layer2.0.conv2", "layer2.0.downsample.0"}
    assert stats["layer1.0.sn2"]["shortcuts"]["layer1.0.add.shortcut"]["factor"] == \
        conv.graph.nodes["layer1.0.add.shortcut"].factor


@pytest.mark.parametrize("reset", ["hard", "soft"])
@pytest.mark.parametrize("rule", ["seed", "max", "percentile", "search"])
def test_residual_conversions_by_every_rule_have_no_error(resnet, rule, reset):
    g, x, _ = resnet
    g = g.replace({n: dataclasses.replace(g.nodes[n], reset=reset) for n in g.neurons})
    conv = convert.convert(g, INPUT_SCALE, rule, calibration=_inputs(24, seed=5))
    _, extras, found = diagnose(g, conv.graph, x, INPUT_SCALE)
    assert not [d for d in found if d.severity == "error"], found
    assert all(st["rate"] < 0.02 for st in extras["isolated"].values()), extras["isolated"]


def test_an_explicit_identity_scale_converts_the_same(resnet):
    g, x, conv = resnet
    thresholds = {n: g.nodes[n].threshold for n in g.neurons}
    explicit = residual_graph(explicit_shortcut=True)
    explicit = explicit.replace({n: dataclasses.replace(explicit.nodes[n], threshold=t) for n, t in thresholds.items()})
    other = convert.convert(explicit, INPUT_SCALE, "max")
    assert other.graph.nodes["layer1.0.identity"].factor == conv.graph.nodes["layer1.0.add.shortcut"].factor
    assert other.vthr == conv.vthr and "layer1.0.add.shortcut" not in other.graph.nodes
    a, b = runs(explicit, other.graph, x, INPUT_SCALE)
    _, b0 = runs(g, conv.graph, x, INPUT_SCALE)
    assert all(np.array_equal(r.spikes, r0.spikes) for r, r0 in zip(b.layers, b0.layers))


def test_a_mis_scaled_term_of_a_merge_is_named(resnet):
    """Each term of a merge is checked against the layer's scale: a downsample conv at half the scale, an identity
    shortcut left at 1 (not deployed at the layer's scale)."""
    g, x, conv = resnet
    b = conv.graph
    ds = b.nodes["layer2.0.downsample.0"]
    folded = convert.prepare(g).nodes["layer2.0.downsample.0"]
    k2 = conv.layer_scales["layer2.0.sn2"]
    halved = b.replace({"layer2.0.downsample.0": dataclasses.replace(
        ds, weight=np.rint(folded.weight.astype(np.float64) * k2 / 2).astype(np.int8))})
    _, found = static.analyse(g, halved, INPUT_SCALE)
    top = rank(found)[0]
    assert (top.code, top.layer, top.evidence["synapse"]) == ("weight_scale", "layer2.0.sn2", "layer2.0.downsample.0")
    assert "multiply the weights of layer2.0.downsample.0 by 2" in top.fix
    unscaled = b.with_node("layer1.0.add.shortcut", factor=1)
    _, found = static.analyse(g, unscaled, INPUT_SCALE)
    top = rank(found)[0]
    assert (top.code, top.layer, top.evidence["synapse"]) == ("weight_scale", "layer1.0.sn2", "layer1.0.add.shortcut")
    assert f"set the factor of layer1.0.add.shortcut to {b.nodes['layer1.0.add.shortcut'].factor}" in top.fix
    # and a bug in the main synapse of a merge is named at the merge, as in a chain
    broken = mutations.apply(b, g, {"name": "vthr_scale", "layer": "layer2.0.sn2"}, conv)
    _, _, found = diagnose(g, broken, x, INPUT_SCALE)
    assert [(d.code, d.layer) for d in rank(found)][:1] == [("vthr_scale", "layer2.0.sn2")]


def test_residual_checkpoint_loads_back_to_the_same_graph(resnet, tmp_path):
    """No tensor for the identity shortcut: it comes back at vthr / theta_A of the neuron it feeds."""
    g, _, conv = resnet
    path = tmp_path / "resnet_int.pth"
    checkpoint.save_deployed(conv, path)
    raw = torch.load(path, weights_only=True)
    assert not [k for k in raw if "shortcut" in k]
    assert raw["conv1.bias"].dtype == torch.int32          # folded BatchNorm's bias, though A's conv had none
    assert raw["snncheck"]["vthr"] == conv.vthr and raw["snncheck"]["reset"] == "hard"
    dep = checkpoint.load_deployed(path, g)
    assert dep.inferred == [] and dep.input_scale == INPUT_SCALE and dep.reset == "hard"
    _assert_same_graph(dep.graph, conv.graph)


def _assert_same_graph(got: Graph, want: Graph):
    assert got.order == want.order and set(got.edges) == set(want.edges)
    for n in want.order:
        a, b = got.nodes[n], want.nodes[n]
        assert type(a) is type(b), n
        for f in dataclasses.fields(b):
            x, y = getattr(a, f.name), getattr(b, f.name)
            if isinstance(y, np.ndarray) or isinstance(x, np.ndarray):
                assert np.array_equal(x, y), (n, f.name)
            else:
                assert x == y, (n, f.name, x, y)


# ------------------------------------------------------------------------------------------------ metadata
def test_additive_lif_converts_with_its_leak_scaled():
    """The leak is a "layer" field: it scales with the threshold. Left at 0.3 in the integer network, it made a
    float network of the "integer" one and shifted every neuron's drive by 0.3 / k of a threshold."""
    rng = np.random.default_rng(0)
    w = rng.uniform(-0.5, 0.5, (12, 16)).astype(np.float32)
    g = chain([("fc", P.Linear(w, rng.uniform(-0.1, 0.1, 12).astype(np.float32))),
               ("lif", P.AdditiveLIF(threshold=1.0, leak=-0.05))], (16,), name="leaky")
    x = np.repeat(rng.random((16, 1, 16)).astype(np.float32), 8, axis=1)
    conv = convert.convert(g, INPUT_SCALE, "max")
    k = conv.layer_scales["lif"]
    lif = conv.graph.nodes["lif"]
    assert lif.leak == round(-0.05 * k) != 0 and isinstance(lif.leak, int)
    assert lif.threshold == round(k) and conv.graph.is_integer
    a, b = runs(g, conv.graph, x, INPUT_SCALE)
    assert b.meta["exact"] and 0.05 < a.layers[0].spikes.mean() < 0.95
    assert np.mean(a.layers[0].spikes != b.layers[0].spikes) < 0.02
    # a per-neuron leak array too
    arr = convert.convert(g.with_node("lif", leak=np.linspace(-0.1, 0.1, 12, dtype=np.float32)), INPUT_SCALE)
    assert np.array_equal(arr.graph.nodes["lif"].leak, np.rint(np.linspace(-0.1, 0.1, 12, dtype=np.float32)
                                                                .astype(np.float64) * arr.layer_scales["lif"]))


def test_every_layer_field_is_scaled():
    """v_reset and v_init scale with k like the threshold (a hard reset to 0.25 theta stays 0.25 theta)."""
    g = chain([("fc", P.Linear(np.full((3, 4), 0.5, np.float32))),
               ("n", P.IF(threshold=2.0, v_reset=0.5, v_init=0.25))], (4,))
    conv = convert.convert(g, 1.0, "max")
    n, k = conv.graph.nodes["n"], conv.layer_scales["n"]
    assert (n.threshold, n.v_reset, n.v_init) == (round(2 * k), round(0.5 * k), round(0.25 * k))
    soft = convert.convert(g, 1.0, "max", reset="soft").graph.nodes["n"]
    assert soft.reset == "soft" and soft.threshold == n.threshold


# ------------------------------------------------------------------------------------------------ checkpoints
def test_deployed_checkpoint_of_float32_integers_loads(resnet, tmp_path):
    """The contract allows integer values stored as float32 tensors (how most people save them); the old check
    built its error message eagerly and raised IndexError on every such checkpoint."""
    g, _, conv = resnet
    path = tmp_path / "b.pth"
    checkpoint.save_deployed(conv, path)
    raw = torch.load(path, weights_only=True)
    floats = {k: (v.float() if isinstance(v, torch.Tensor) else v) for k, v in raw.items()}
    assert all(v.dtype == torch.float32 for v in floats.values() if isinstance(v, torch.Tensor))
    torch.save(floats, tmp_path / "f32.pth")
    dep = checkpoint.load_deployed(tmp_path / "f32.pth", g)
    _assert_same_graph(dep.graph, conv.graph)
    # a fraction among them is still refused, naming the tensor and one bad value
    floats["layer1.0.conv1.weight"] = floats["layer1.0.conv1.weight"] + 0.25
    torch.save(floats, tmp_path / "frac.pth")
    with pytest.raises(InputError, match=r"layer1.0.conv1.weight has \d+ non-integer values \(e.g. -?[\d.]+\)"):
        checkpoint.load_deployed(tmp_path / "frac.pth", g)


def test_cli_values_override_the_entry_and_the_rest_is_inferred(resnet, tmp_path):
    g, _, conv = resnet
    path = tmp_path / "b.pth"
    checkpoint.save_deployed(conv, path)
    raw = torch.load(path, weights_only=True)
    del raw["snncheck"]
    torch.save(raw, tmp_path / "bare.pth")
    dep = checkpoint.load_deployed(tmp_path / "bare.pth", g, input_scale=INPUT_SCALE)
    assert dep.inferred == ["reset", "vthr"] and dep.reset == "hard"
    # thresholds inferred from the fitted weight scales: within a step or two of the converted ones
    for n, v in conv.vthr.items():
        assert abs(dep.graph.nodes[n].threshold - v) <= max(2, 0.01 * v), n
    vthr = [v + 1 for v in conv.vthr.values()]
    dep = checkpoint.load_deployed(path, g, vthr=vthr, reset="soft", input_scale=1.0)
    assert [dep.graph.nodes[n].threshold for n in g.neurons] == vthr and dep.reset == "soft"
    assert dep.input_scale == 1.0 and dep.inferred == []
    with pytest.raises(InputError, match="outside PAIBox's range"):
        checkpoint.load_deployed(path, g, vthr={**conv.vthr, "sn1": 2 ** 29})
    with pytest.raises(InputError, match="vthr names unknown spiking layers"):
        checkpoint.load_deployed(path, g, vthr={**conv.vthr, "nope": 3})


# ------------------------------------------------------------------------------------------------ refusals
def test_a_linear_head_with_no_neuron_after_it_is_an_integer_readout_and_two_are_refused():
    """Issue 10: a head was written as int8 zeros, then refused. It is now converted at its own full-range scale
    (never zeros); a head of two weight layers has no deployed form and is refused naming both."""
    rng = np.random.default_rng(0)
    layers = [("fc1", P.Linear(rng.normal(size=(8, 4)).astype(np.float32))), ("sn1", P.IF()),
              ("head", P.Linear(rng.normal(size=(3, 8)).astype(np.float32)))]
    conv = convert.convert(chain(layers, (4,)))
    head = conv.graph.nodes["head"]
    assert np.abs(head.weight).max() == 127 and conv.readout_scales["head"] == pytest.approx(conv.weight_scales["head"])
    with pytest.raises(InputError, match="a readout head of two weight layers \\('head', 'head2'\\)"):
        convert.convert(chain(layers + [("head2", P.Linear(np.ones((2, 3), np.float32)))], (4,)))


@pytest.mark.parametrize("neuron", [P.LIF(tau=2.0), P.ParametricLIF(w=0.0)])
def test_multiplicative_leaks_are_refused(neuron):
    g = chain([("fc", P.Linear(np.ones((2, 3), np.float32))), ("lif", neuron)], (3,))
    with pytest.raises(InputError, match=f"layer 'lif'.*{neuron.kind} has a multiplicative leak"):
        convert.convert(g)


def test_two_weight_layers_without_a_neuron_between_are_refused():
    g = chain([("fc1", P.Linear(np.ones((4, 3), np.float32))), ("fc2", P.Linear(np.ones((2, 4), np.float32))),
               ("sn", P.IF())], (3,))
    with pytest.raises(InputError, match="layers fc1, fc2 feed 'sn' without a neuron in between"):
        convert.convert(g)


def test_a_neuron_with_no_synapse_is_refused():
    g = chain([("fc", P.Linear(np.ones((4, 3), np.float32))), ("sn1", P.IF()), ("sn2", P.IF())], (3,))
    with pytest.raises(InputError, match="'sn2' receives 'sn1' through no Conv2d/Linear"):
        convert.convert(g)


def test_a_shortcut_is_capped_to_int8_whatever_the_rule():
    """A shortcut cannot clip: its k is capped so that its factor fits; a rule asking more only gets the cap."""
    g = residual_graph()
    convert.register_rule("huge", lambda w, b, **_: 1e4)
    try:
        conv = convert.convert(g, 1.0, "huge")
    finally:
        del convert.RULES["huge"]
    assert conv.graph.nodes["layer1.0.add.shortcut"].factor == 127
    assert conv.layer_scales["layer1.0.sn2"] <= 127.5


# ------------------------------------------------------------------------------------------------ SpikingJelly's own
def _sj_resnet(kind: str):
    """A small net of SpikingJelly 2.0's own BasicBlocks (spiking_resnet: merge before the neuron; sew_resnet ADD:
    spikes summed after it), an identity block then a downsample block, imported by tracing its forward."""
    import torch.nn as nn
    from spikingjelly.activation_based import layer, neuron
    from snncheck.frontends.models import import_sj
    from snncheck.frontends.spikingjelly import import_module
    blocks = import_sj(f"model.{kind}")
    extra = {"cnf": "ADD"} if kind == "sew_resnet" else {}
    torch.manual_seed(0)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1, self.sn1 = layer.Conv2d(3, 8, 3, padding=1, bias=False), layer.BatchNorm2d(8), \
                neuron.IFNode()
            self.layer1 = blocks.BasicBlock(8, 8, spiking_neuron=neuron.IFNode, **extra)
            down = nn.Sequential(layer.Conv2d(8, 16, 1, stride=2, bias=False), layer.BatchNorm2d(16))
            self.layer2 = blocks.BasicBlock(8, 16, stride=2, downsample=down, spiking_neuron=neuron.IFNode, **extra)
            self.flat, self.fc, self.sn2 = layer.Flatten(), layer.Linear(16 * 4 * 4, 10), neuron.IFNode()

        def forward(self, x):
            return self.sn2(self.fc(self.flat(self.layer2(self.layer1(self.sn1(self.bn1(self.conv1(x))))))))

    net = Net()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
    return import_module(net, (3, 8, 8), kind)[0]


@pytest.mark.parametrize("kind", ["spiking_resnet", "sew_resnet"])
def test_spikingjelly_basic_blocks_convert_with_one_scale_per_neuron(kind):
    x = np.repeat(np.random.default_rng(0).random((8, 1, 3, 8, 8)).astype(np.float32), 4, axis=1)
    g = balance_thresholds(_sj_resnet(kind), x, 0.8)
    conv = convert.convert(g, INPUT_SCALE, "max")
    b = conv.graph
    if kind == "spiking_resnet":      # the identity is a synapse of B at the merge's scale
        assert set(b.inputs_of("layer1.add")) == {"layer1.conv2", "layer1.add.shortcut"}
        assert b.nodes["layer1.add.shortcut"].factor == round(conv.vthr["layer1.sn2"] / g.nodes["layer1.sn2"].threshold)
        assert conv.weight_scales["layer2.conv2"] == conv.weight_scales["layer2.downsample.0"]
    else:                             # spikes summed, then one conv: both terms through the same synapse
        terms = convert.weighted_terms(convert.prepare(g), "layer2.sn1")
        assert {t.source for t in terms} == {"sn1", "layer1.sn2"} and {t.weight for t in terms} == {"layer2.conv1"}
        assert not [n for n in b.order if "shortcut" in n]
    _, extras, found = diagnose(g, b, x, INPUT_SCALE)
    assert not [d for d in found if d.severity == "error"], found
    assert all(st["rate"] < 0.02 and 0.02 < st["firing_rate_a"] for st in extras["isolated"].values()), extras
