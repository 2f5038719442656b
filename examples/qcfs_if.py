"""A user's own neuron class checked by snncheck: the QCFS-style IF of ANN-to-SNN conversion studies.

Its membrane starts at theta/2 (so that rates round to nearest instead of down), it emits spikes of amplitude theta,
resets by subtraction, and runs its own loop over the time steps of the [T, N, ...] sequence it receives. theta is a
learned parameter (QCFS's clipping bound).

This file is both the plugin and the model:

    snncheck diff qcfs.pth --model examples/qcfs_if.py:qcfs_net --plugin examples/qcfs_if.py --input-shape 1,8,8

`register_neuron` below tells snncheck what the class computes, as graph primitives: a soft-reset IF with
threshold theta and initial membrane theta/2, followed by a Scale(theta) for the spike amplitude. snncheck then
checks that claim against the module's own forward when it imports the model, and runs the graph in its reference
beside SpikingJelly running this very class.
"""
from __future__ import annotations

import torch
import torch.nn as nn

import snncheck
from snncheck.graph import primitives as P


class QCFSIF(nn.Module):
    """IF with initial membrane theta/2, spike amplitude theta and soft reset, over x_seq [T, N, ...]."""

    def __init__(self, theta: float = 1.0):
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(float(theta)))

    def forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        theta = self.theta
        v = torch.full_like(x_seq[0], 0.5) * theta
        out = []
        for x in x_seq:
            v = v + x
            spike = (v >= theta).to(x.dtype)
            v = v - spike * theta
            out.append(spike * theta)
        return torch.stack(out)


def qcfs_to_graph(m: QCFSIF) -> list:
    theta = float(m.theta.detach())
    return [P.IF(threshold=theta, reset="soft", v_init=theta / 2), P.Scale(theta)]


snncheck.register_neuron(QCFSIF, qcfs_to_graph)


def qcfs_net(size: int = 8, channels: int = 8, classes: int = 10, theta: float = 1.0):
    """conv-QCFSIF-pool, linear-QCFSIF, on 1-channel frames (SpikingJelly layers in multi-step mode)."""
    from spikingjelly.activation_based import layer
    return nn.Sequential(
        layer.Conv2d(1, channels, 3, padding=1), QCFSIF(theta), layer.MaxPool2d(2, 2),
        layer.Flatten(), layer.Linear(channels * (size // 2) ** 2, classes), QCFSIF(theta),
    )
