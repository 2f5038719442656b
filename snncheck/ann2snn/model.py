"""The QCFS network shipped with snncheck: a small VGG-style net for scikit-learn's 8x8 digits, trained with QCFS
activations (scripts/train_qcfs_digits.py), and the activation class itself, written as the QCFS authors' code
writes it: one module that is the ANN's activation when `T == 0` and its own IF neuron when `T > 0`.

That IF mode is a user's own neuron class as the seed study had one: initial membrane theta/2, amplitude theta,
its own loop over T, inputs with time merged into the batch ([T*N, ...], time-major). snncheck finds and names
how it differs from SpikingJelly's IFNode (`snncheck ann2snn`); nothing else in snncheck relies on it.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch
import torch.nn as nn

DIGITS_QCFS = Path(str(resources.files("snncheck") / "models" / "digits_qcfs.pth"))
LEVELS = 4


class _Floor(torch.autograd.Function):
    """floor with the straight-through gradient QCFS trains with."""

    @staticmethod
    def forward(ctx, x):
        return torch.floor(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


class QCFS(nn.Module):
    """T == 0: the QCFS activation h(z) = up * clip(floor(z * L / up + 1/2) / L, 0, 1), `up` trained.
    T > 0: an IF neuron per element over T steps of x [T*N, ...]: v0 = up/2, v += x, fire when v >= up, soft
    reset, output up * spike (the QCFS authors' IF class)."""

    def __init__(self, levels: int = LEVELS, up: float = 4.0):
        super().__init__()
        self.levels, self.T = int(levels), 0
        self.up = nn.Parameter(torch.tensor([float(up)]))

    def forward(self, x):
        if self.T == 0:
            y = torch.clamp(x / self.up, 0, 1)
            return _Floor.apply(y * self.levels + 0.5) / self.levels * self.up
        theta = self.up.data
        seq = x.reshape((self.T, -1) + x.shape[1:])
        mem, out = 0.5 * theta, []
        for t in range(self.T):
            mem = mem + seq[t]
            spike = (mem >= theta).to(x.dtype) * theta
            mem = mem - spike
            out.append(spike)
        return torch.stack(out).flatten(0, 1)


def set_timesteps(module: nn.Module, steps: int) -> nn.Module:
    """Every QCFS activation of `module` in IF mode over `steps` steps (0: back to the ANN)."""
    for m in module.modules():
        if isinstance(m, QCFS):
            m.T = int(steps)
    return module


def qcfs_vgg_digits(levels: int = LEVELS) -> nn.Module:
    """(conv-BN-QCFS) x 2, avgpool, (conv-BN-QCFS) x 2, avgpool, fc64-QCFS, fc10 on 1x8x8 digits: five IF layers
    once converted (act1..act5)."""
    from collections import OrderedDict
    layers = []
    for i, (cin, cout) in enumerate(((1, 16), (16, 16), (16, 32), (32, 32)), start=1):
        layers += [(f"conv{i}", nn.Conv2d(cin, cout, 3, padding=1, bias=False)), (f"bn{i}", nn.BatchNorm2d(cout)),
                   (f"act{i}", QCFS(levels))]
        if i % 2 == 0:
            layers.append((f"pool{i // 2}", nn.AvgPool2d(2)))
    layers += [("flatten", nn.Flatten()), ("fc1", nn.Linear(32 * 2 * 2, 64)), ("act5", QCFS(levels)),
               ("fc2", nn.Linear(64, 10))]
    return nn.Sequential(OrderedDict(layers)).eval()


def own_if_snn(T: int = 0) -> nn.Module:
    """The shipped network with its own IF class over T steps: `--snn snncheck.ann2snn.model:own_if_snn`."""
    return set_timesteps(qcfs_vgg_digits(), T)
