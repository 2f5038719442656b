"""A residual spiking network written by hand twice, as a user does: in SpikingJelly (A) and in PAIBox (B), with a
skip connection from the input into the third spiking layer.

    x -> stem -> sn0 -> conv1 -> sn1 -> conv2 --(+)--> sn2 -> flatten -> fc -> sn3
    x -----------------------------------skip-/

Both carry the same integer weights and thresholds (A's are integer-valued floats), so B is A deployed as it is.
In PAIBox every stage k gets tick_wait_start=k and delay=1 (the recipe), so sn1 -> sn2 lines up by itself; but the
InputProj is not buffered: a synapse from it into sn2 (stage 3) would deliver frame t at step t, two steps before
sn2's other input. `paibox_correct` holds the input back through two relay neurons (BypassNeuron, stages 1 and 2,
one-to-one weight 1); `paibox_undelayed` wires the skip straight from the InputProj, the mistake that
`snncheck diff A --paibox examples/residual_paibox.py:paibox_undelayed --model examples/residual_paibox.py:model`
reports as `timing` at sn2, naming the synapse `skip` and the fix.
"""
import numpy as np

SHAPE = (1, 8, 8)
THRESHOLDS = (6, 20, 30, 150)


def params(seed: int = 7) -> dict:
    """The integer weights both networks carry (OIHW convs, (out, in) Linear)."""
    rng = np.random.default_rng(seed)
    return {"stem": rng.integers(-3, 6, (4, 1, 3, 3)), "conv1": rng.integers(-4, 7, (4, 4, 3, 3)),
            "conv2": rng.integers(-4, 7, (4, 4, 3, 3)), "skip": rng.integers(2, 9, (4, 1, 1, 1)),
            "fc": rng.integers(-3, 6, (10, 4 * 8 * 8))}


def model(integer: bool = True):
    """A: the SpikingJelly network, IF neurons with hard reset to 0, carrying `params()` (or, with integer=False,
    torch's own initial weights, for a conversion by snncheck)."""
    import torch
    import torch.nn as nn
    from spikingjelly.activation_based import layer, neuron

    class ResidualSNN(nn.Module):
        input_shape = SHAPE

        def __init__(self):
            super().__init__()
            th = [float(t) for t in THRESHOLDS]
            self.stem, self.sn0 = layer.Conv2d(1, 4, 3, padding=1, bias=False), neuron.IFNode(v_threshold=th[0])
            self.conv1, self.sn1 = layer.Conv2d(4, 4, 3, padding=1, bias=False), neuron.IFNode(v_threshold=th[1])
            self.conv2 = layer.Conv2d(4, 4, 3, padding=1, bias=False)
            self.skip = layer.Conv2d(1, 4, 1, bias=False)
            self.sn2 = neuron.IFNode(v_threshold=th[2])
            self.flat, self.fc = layer.Flatten(), layer.Linear(4 * 8 * 8, 10, bias=False)
            self.sn3 = neuron.IFNode(v_threshold=th[3])

        def forward(self, x):
            h = self.sn1(self.conv1(self.sn0(self.stem(x))))
            h = self.sn2(self.conv2(h) + self.skip(x))
            return self.sn3(self.fc(self.flat(h)))

    net = ResidualSNN()
    with torch.no_grad():
        for name, w in params().items() if integer else ():
            getattr(net, name).weight.copy_(torch.from_numpy(w.astype(np.float32)))
    return net.eval()


def _paibox(relays: bool):
    import paibox as pb

    class ResidualPAIBox(pb.Network):
        def __init__(self):
            super().__init__()
            p, th = params(), THRESHOLDS
            self.inp = pb.InputProj(input=None, shape_out=SHAPE)
            self.n0 = pb.IF((4, 8, 8), th[0], reset_v=0, tick_wait_start=1)
            self.n1 = pb.IF((4, 8, 8), th[1], reset_v=0, tick_wait_start=2)
            self.n2 = pb.IF((4, 8, 8), th[2], reset_v=0, tick_wait_start=3)
            self.n3 = pb.IF(10, th[3], reset_v=0, tick_wait_start=4)
            self.s0 = pb.Conv2d(self.inp, self.n0, p["stem"].astype(np.int8), padding=1)
            self.s1 = pb.Conv2d(self.n0, self.n1, p["conv1"].astype(np.int8), padding=1)
            self.s2 = pb.Conv2d(self.n1, self.n2, p["conv2"].astype(np.int8), padding=1)
            source = self.inp
            if relays:      # the InputProj is not buffered: hold the input back one step per relay
                self.r1 = pb.BypassNeuron(SHAPE, tick_wait_start=1)
                self.r2 = pb.BypassNeuron(SHAPE, tick_wait_start=2)
                self.i1 = pb.FullConn(self.inp, self.r1, 1, conn_type=pb.SynConnType.One2One)
                self.i2 = pb.FullConn(self.r1, self.r2, 1, conn_type=pb.SynConnType.One2One)
                source = self.r2
            self.skip = pb.Conv2d(source, self.n2, p["skip"].astype(np.int8))
            self.s3 = pb.FullConn(self.n2, self.n3, p["fc"].T.astype(np.int8))

    return ResidualPAIBox()


def paibox_correct():
    """B with the skip from the input held back two steps by relay neurons: bit-exact with the reference."""
    return _paibox(relays=True)


def paibox_undelayed():
    """B with the skip wired straight from the InputProj: it reaches n2 two steps early."""
    return _paibox(relays=False)
