"""Networks and checks shared by the tests: seeded integer graphs (chains, spiking_resnet- and SEW-style residual
blocks), the embedded digits CSNN, pixel inputs, and alignment helpers for raw pipelined records."""
from __future__ import annotations

import functools

import numpy as np

from snncheck.compare import compare
from snncheck.graph import Graph, chain
from snncheck.graph import primitives as P

T = 6


# ----------------------------------------------------------------------------------------------- graphs
def int_csnn(seed: int = 0, reset: str = "hard", size: int = 8, channels=(4, 8)) -> Graph:
    """A random integer CSNN (conv-IF-pool x2, linear-IF x2) whose layers all fire at moderate rates."""
    rng = np.random.default_rng(seed)
    c1, c2 = channels
    feat = c2 * (size // 4) ** 2
    neuron = lambda threshold: P.IF(threshold, reset=reset, v_reset=0)      # noqa: E731
    return chain([
        ("c1", P.Conv2d(rng.integers(-20, 21, (c1, 1, 3, 3)), rng.integers(-50, 50, c1), (1, 1), (1, 1))),
        ("n1", neuron(300)), ("p1", P.MaxPool2d()),
        ("c2", P.Conv2d(rng.integers(-30, 31, (c2, c1, 3, 3)), None, (1, 1), (1, 1))),
        ("n2", neuron(40)), ("p2", P.MaxPool2d()), ("f", P.Flatten()),
        ("l1", P.Linear(rng.integers(-30, 31, (16, feat)), rng.integers(-5, 5, 16))),
        ("n3", neuron(30)),
        ("l2", P.Linear(rng.integers(-30, 31, (10, 16)))), ("n4", neuron(20)),
    ], (1, size, size), name=f"int_csnn_{reset}")


def rand_conv(rng, o, i, k=3, s=1, p=1, bias=True):
    return P.Conv2d(rng.integers(-20, 21, (o, i, k, k)), rng.integers(-40, 40, o) if bias else None, (s, s), (p, p))


def resnet_graph(seed: int = 0, reset: str = "hard", shortcut: int = 40) -> Graph:
    """spiking_resnet-style: a stem, a BasicBlock whose identity shortcut Scale(k) merges currents into n2, and a
    downsampling block whose 1x1/2 conv shortcut merges into n4; then max pooling and a classifier neuron."""
    rng = np.random.default_rng(seed)
    n = lambda t: P.IF(t, reset=reset, v_reset=0)      # noqa: E731
    nodes = {"input": P.Input((2, 8, 8)), "c0": rand_conv(rng, 4, 2), "n0": n(300),
             "c1": rand_conv(rng, 4, 4), "n1": n(40), "c2": rand_conv(rng, 4, 4), "s1": P.Scale(shortcut), "add1": P.Add(),
             "n2": n(40),
             "c3": rand_conv(rng, 8, 4, s=2), "n3": n(40), "c4": rand_conv(rng, 8, 8), "ds": rand_conv(rng, 8, 4, k=1, s=2, p=0),
             "add2": P.Add(), "n4": n(40),
             "p4": P.MaxPool2d(), "f": P.Flatten(),
             "l": P.Linear(rng.integers(-30, 31, (10, 32)), rng.integers(-5, 5, 10)), "n5": n(20)}
    edges = [("input", "c0"), ("c0", "n0"), ("n0", "c1"), ("c1", "n1"), ("n1", "c2"), ("c2", "add1"),
             ("n0", "s1"), ("s1", "add1"), ("add1", "n2"), ("n2", "c3"), ("c3", "n3"), ("n3", "c4"),
             ("c4", "add2"), ("n2", "ds"), ("ds", "add2"), ("add2", "n4"),
             ("n4", "p4"), ("p4", "f"), ("f", "l"), ("l", "n5")]
    return Graph(nodes, edges, name=f"resnet_{reset}")


def sew_graph(seed: int = 0, reset: str = "hard", shortcut: int = 20) -> Graph:
    """SEW-style: a1 = n2 + n0 and a2 = n4 + a1 are adds of spikes (values 0..3); a2 feeds the next conv and,
    through an identity Scale(k), the same neuron n5 (six synapses into it); then max pooling and a classifier."""
    rng = np.random.default_rng(seed)
    n = lambda t: P.IF(t, reset=reset, v_reset=0)      # noqa: E731
    nodes = {"input": P.Input((2, 8, 8)), "c0": rand_conv(rng, 4, 2), "n0": n(300),
             "c1": rand_conv(rng, 4, 4), "n1": n(40), "c2": rand_conv(rng, 4, 4), "n2": n(40), "a1": P.Add(),
             "c3": rand_conv(rng, 4, 4), "n3": n(40), "c4": rand_conv(rng, 4, 4), "n4": n(40), "a2": P.Add(),
             "c5": rand_conv(rng, 4, 4), "s5": P.Scale(shortcut), "m5": P.Add(), "n5": n(60),
             "p5": P.MaxPool2d(), "f": P.Flatten(),
             "l": P.Linear(rng.integers(-30, 31, (10, 64)), rng.integers(-5, 5, 10)), "n6": n(20)}
    edges = [("input", "c0"), ("c0", "n0"), ("n0", "c1"), ("c1", "n1"), ("n1", "c2"), ("c2", "n2"),
             ("n2", "a1"), ("n0", "a1"), ("a1", "c3"), ("c3", "n3"), ("n3", "c4"), ("c4", "n4"),
             ("n4", "a2"), ("a1", "a2"), ("a2", "c5"), ("c5", "m5"), ("a2", "s5"), ("s5", "m5"), ("m5", "n5"),
             ("n5", "p5"), ("p5", "f"), ("f", "l"), ("l", "n6")]
    return Graph(nodes, edges, name=f"sew_{reset}")


def digits_float_graph() -> Graph:
    """A: the embedded digits CSNN (conv-BN-IF-pool x2, flatten, linear-IF x2) from its float checkpoint, read
    as the SpikingJelly frontend reads it (node names are module paths: conv_fc.2 ...)."""
    return _digits()[0]


def digits_model():
    """The digits CSNN's TorchModel (the user's module, as trained), for the SpikingJelly backend."""
    return _digits()[1]


@functools.lru_cache(maxsize=1)
def _digits():
    from snncheck import checkpoint
    from snncheck.frontends.models import DIGITS_CHECKPOINT
    model = checkpoint.load_float(DIGITS_CHECKPOINT, "digits_csnn")
    return model.graph, model.model


def digits_int_graph() -> Graph:
    """B: the digits CSNN's int8 conversion for 0-255 input, as the deployed checkpoint that ships holds it."""
    from snncheck import checkpoint
    from snncheck.frontends.models import DIGITS_DEPLOYED
    return checkpoint.load_deployed(DIGITS_DEPLOYED, digits_float_graph()).graph


def pixel_inputs(n: int, t: int, shape=(1, 8, 8), seed: int = 0) -> np.ndarray:
    """Direct-encoded 0..255 integer frames [N, T, *shape]."""
    rng = np.random.default_rng(seed)
    return np.repeat(rng.integers(0, 256, (n, 1) + tuple(shape)), t, axis=1).astype(np.float64)


# ----------------------------------------------------------------------------------------------- alignment
def crop(raw, t: int) -> dict:
    """{neuron: (spikes, v)} of a raw PAIBox run, rows [lag, lag + T) at the expected lag."""
    lags = raw.meta["expected_lag"]
    return {r.name: (r.spikes[:, lags[r.name]:lags[r.name] + t], r.v[:, lags[r.name]:lags[r.name] + t])
            for r in raw.layers}


def found_lags(raw, ref) -> dict:
    """{neuron: the one shift at which the raw record equals the reference exactly (spikes and v), or None}."""
    out = {}
    for rec in raw.layers:
        r = ref.layer(rec.name)
        window = lambda a, d: a[:, d:d + r.steps]      # noqa: E731
        fits = [d for d in range(rec.steps - r.steps + 1)
                if np.array_equal(window(rec.spikes, d), r.spikes) and np.array_equal(window(rec.v, d), r.v)]
        out[rec.name] = fits[0] if len(fits) == 1 else None
    return out


def assert_exact(raw, ref, t: int = T) -> None:
    for name, (s, v) in crop(raw, t).items():
        r = ref.layer(name)
        assert np.array_equal(s, r.spikes), (name, int((s != r.spikes).sum()))
        assert np.array_equal(v, r.v), (name, int((v != r.v).sum()))


def assert_firing(ref, lo: float = 0.05, hi: float = 0.8) -> None:
    for rec in ref.layers:      # not vacuous: every layer fires, and not always
        assert lo < rec.spikes.mean() < hi, (rec.name, rec.spikes.mean())




# ----------------------------------------------------------------------------------------------- torch models
def resnet(kind: str):
    """A small residual network on 3x32x32 from SpikingJelly's own BasicBlock ("spiking_resnet", or "sew_resnet"
    with ADD): an identity block at 8 channels, then a downsampling block to 16 (conv1x1 + BN shortcut), a
    spiking head and a rate readout. Seeded, with trained-looking BatchNorm statistics."""
    import torch
    import torch.nn as nn
    from spikingjelly.activation_based import layer, neuron
    from snncheck.frontends.models import import_sj

    class ResNet(nn.Module):
        def __init__(self, block, **kw):
            super().__init__()
            self.conv1, self.bn1 = layer.Conv2d(3, 8, 3, padding=1, bias=False), layer.BatchNorm2d(8)
            self.sn1, self.pool = neuron.IFNode(), layer.MaxPool2d(2, 2)
            self.layer1 = nn.Sequential(block(8, 8, spiking_neuron=neuron.IFNode, **kw))
            shortcut = nn.Sequential(layer.Conv2d(8, 16, 1, 2, bias=False), layer.BatchNorm2d(16))
            self.layer2 = nn.Sequential(block(8, 16, stride=2, downsample=shortcut, spiking_neuron=neuron.IFNode,
                                              **kw))
            self.fc, self.sn_out = layer.Linear(16 * 8 * 8, 10), neuron.IFNode()

        def forward(self, x):
            x = self.pool(self.sn1(self.bn1(self.conv1(x))))
            x = self.layer2(self.layer1(x))
            return self.sn_out(self.fc(torch.flatten(x, 2))).mean(0)

    torch.manual_seed(0)
    if kind == "spiking_resnet":
        net = ResNet(import_sj("model.spiking_resnet").BasicBlock)
    else:
        net = ResNet(import_sj("model.sew_resnet").BasicBlock, cnf="ADD")
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():            # trained-looking BatchNorm statistics, so that folding changes the weights
        for bn in net.modules():
            if isinstance(bn, nn.BatchNorm2d):
                c = bn.num_features
                bn.running_mean.copy_(torch.rand(c, generator=gen) * 0.4 - 0.2)
                bn.running_var.copy_(torch.rand(c, generator=gen) + 0.5)
                bn.weight.copy_(torch.rand(c, generator=gen) + 0.5)
                bn.bias.copy_(torch.rand(c, generator=gen) * 0.4 - 0.1)
        net.fc.weight.mul_(8.0)      # so that the head fires too
    return net


def unexplained(a, b) -> dict:
    """{layer: primary flips between two runs of one float graph that float32 rounding does not explain}."""
    return {lc.name: lc.primary_unexplained for lc in compare(a, b, "float_rounding").layers}


def flips(a, b) -> dict:
    """{layer: the primary flips listed, each with its margin |H - threshold| and rounding bound}."""
    return {lc.name: list(lc.flips) for lc in compare(a, b, "float_rounding").layers}


def timeless(d):
    """A report's JSON (dicts and lists) without its wall-clock times (every key naming seconds): what a rerun
    changes."""
    if isinstance(d, dict):
        return {k: timeless(v) for k, v in d.items() if "seconds" not in k}
    return [timeless(v) for v in d] if isinstance(d, list) else d
