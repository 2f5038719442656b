"""Running an ANN and its SNNs on the same frames, recording every activation layer with plain torch hooks.

The ANN is a torch module whose activations are registered classes (`ACTIVATIONS`: QCFS, or the user's own with
`register_activation`), each giving its threshold theta and its quantization steps L. Its SNNs are copies in which
every activation is replaced by a spiking layer over T steps; every stateless layer runs on the T frames with time
merged into the batch ([T*N, ...], time-major), as the QCFS authors' code runs them:

- `half` / `zero`: IF, soft reset, initial membrane theta/2 or 0 (the reference's neuron loop), amplitude theta;
- `signed`: the same with negative spikes: -1 when v < 0 after a net positive count, v += theta;
- `ifnode`: SpikingJelly's IFNode(v_threshold=theta, v_reset=None) as it comes (initial membrane 0);
- a user's own SNN module (same structure, the user's own neuron class with its own loop over T).

A run records, at each activation's place, its input x[t] and its spikes s[t] (output / theta), [N, T, ...].
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np
import torch
import torch.nn as nn

from ..errors import require
from . import qcfs
from .model import QCFS

ACTIVATIONS: dict = {}     # activation class -> fn(module) -> (threshold or None, levels or None)
PERCENTILE = 99.9          # a ReLU layer's threshold: this percentile of its ANN activations (robust normalisation)


def register_activation(cls: type, fn: Callable) -> None:
    """Teaches snncheck an activation class: `fn(module) -> (theta, L)`; theta None: found from the data
    (`calibrate`), L None: the activation does not quantize."""
    ACTIVATIONS[cls] = fn


register_activation(QCFS, lambda m: (float(m.up.detach()), int(m.levels)))
register_activation(nn.ReLU, lambda m: (None, None))


@dataclass(frozen=True)
class Layer:
    """An activation layer: its module path, threshold theta and quantization steps L (None: not quantized)."""
    name: str
    threshold: Optional[float]
    levels: Optional[int]


def layers_of(ann: nn.Module) -> tuple:
    """The registered activations of `ann`, in definition order (its forward order for a Sequential)."""
    out = tuple(Layer(name, *ACTIVATIONS[type(m)](m)) for name, m in ann.named_modules() if type(m) in ACTIVATIONS)
    require(out, lambda: f"{type(ann).__name__} has no activation snncheck knows (QCFS, or register_activation)")
    return out


def calibrate(ann: nn.Module, layers: tuple, frames: np.ndarray) -> tuple:
    """The layers with every missing threshold set to the PERCENTILE-th percentile of that layer's ANN activations
    on `frames` (Rueckauer et al.'s robust normalisation, SpikingJelly's converter's "99.9%" mode): what lies
    above it becomes clipping error."""
    if all(l.threshold is not None for l in layers):
        return layers
    acts, _ = run_ann(ann, layers, frames)
    return tuple(l if l.threshold is not None else
                 Layer(l.name, max(float(np.percentile(acts[l.name][1], PERCENTILE)), 1e-6), l.levels)
                 for l in layers)


# ----------------------------------------------------------------------------------------------- spiking layers
class Spiking(nn.Module):
    """An IF layer (signed or not) over `steps` steps of x [T*N, ...]; outputs theta * spikes."""

    def __init__(self, threshold: float, steps: int, v0_fraction: float, signed: bool = False):
        super().__init__()
        self.threshold, self.steps, self.v0, self.signed = float(threshold), int(steps), float(v0_fraction), signed

    def forward(self, x):
        seq = x.detach().cpu().numpy().reshape((self.steps, -1) + tuple(x.shape[1:])).swapaxes(0, 1)
        fire = signed_if_output if self.signed else qcfs.if_output
        s = fire(np.ascontiguousarray(seq), self.threshold, self.v0)
        out = torch.from_numpy(np.ascontiguousarray(s.swapaxes(0, 1), dtype=np.float32) * np.float32(self.threshold))
        return out.flatten(0, 1)


def signed_if_output(x: np.ndarray, threshold: float, v0_fraction: float) -> np.ndarray:
    """Spikes {-1, 0, 1} [N, T, ...] of a signed IF neuron: the IF update (v += x; +1 and v -= theta when
    v >= theta), and -1 with v += theta when v < 0 while it has fired more +1 than -1 spikes."""
    theta = x.dtype.type(threshold)
    v = np.full(x[:, 0].shape, x.dtype.type(v0_fraction) * theta, x.dtype)
    count = np.zeros(v.shape, np.int64)
    out = np.empty(x.shape, np.int8)
    for t in range(x.shape[1]):
        v = v + x[:, t]
        s = (v >= theta).astype(np.int8) - ((v < 0) & (count > 0)).astype(np.int8)
        v = v - s.astype(x.dtype) * theta
        count += s
        out[:, t] = s
    return out


class IFNodeLayer(nn.Module):
    """SpikingJelly's IFNode as it comes (soft reset, initial membrane 0) in place of an activation."""

    def __init__(self, threshold: float, steps: int):
        super().__init__()
        from spikingjelly.activation_based import neuron
        self.threshold, self.steps = float(threshold), int(steps)
        self.node = neuron.IFNode(v_threshold=self.threshold, v_reset=None, step_mode="m")

    def forward(self, x):
        from spikingjelly.activation_based import functional
        functional.reset_net(self.node)
        return (self.node(x.reshape((self.steps, -1) + tuple(x.shape[1:]))) * self.threshold).flatten(0, 1)


def spiking_copy(ann: nn.Module, layers: tuple, make: Callable) -> nn.Module:
    """A copy of `ann` with each activation of `layers` replaced by `make(layer)`."""
    snn = copy.deepcopy(ann).eval()
    for layer in layers:
        parent, _, attr = layer.name.rpartition(".")
        setattr(snn.get_submodule(parent) if parent else snn, attr, make(layer))
    return snn


def variant(ann: nn.Module, layers: tuple, name: str, steps: int) -> nn.Module:
    """The SNN of `ann` (its activation `layers`) named `name` (half, zero, signed, ifnode) over `steps` steps."""
    makers = {"half": lambda l: Spiking(l.threshold, steps, 0.5), "zero": lambda l: Spiking(l.threshold, steps, 0.0),
              "signed": lambda l: Spiking(l.threshold, steps, 0.5, signed=True),
              "ifnode": lambda l: IFNodeLayer(l.threshold, steps)}
    return spiking_copy(ann, layers, makers[name])


# ----------------------------------------------------------------------------------------------- running
@contextlib.contextmanager
def one_thread():
    """torch on one thread while the runs last: on a shared 2-core machine a second intra-op thread waits for a
    busy core (the own-IF run of the digits net took 0.4-1.1 s with one thread, 4.9-14 s with two)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def hooked(module: nn.Module, names: list):
    """{name: {"x": input, "y": output}} of the named submodules, refilled by every forward."""
    seen = {n: {} for n in names}
    handles = [module.get_submodule(n).register_forward_hook(
        lambda m, args, out, rec=seen[n]: rec.update(x=args[0].detach(), y=out.detach())) for n in names]
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def run_ann(ann: nn.Module, layers: tuple, frames: np.ndarray) -> tuple:
    """({layer: (z, a)} [N, ...] float32 arrays, logits [N, classes]) of the ANN on frames [N, ...]."""
    ann.eval()
    with hooked(ann, [l.name for l in layers]) as seen:
        logits = ann(torch.from_numpy(np.ascontiguousarray(frames, np.float32)))
    acts = {l.name: (seen[l.name]["x"].numpy(), seen[l.name]["y"].numpy()) for l in layers}
    return acts, logits.numpy()


@torch.no_grad()
def run_snn(snn: nn.Module, layers: tuple, frames: np.ndarray, steps: int) -> tuple:
    """({layer: (x, s)} [N, T, ...] with s = output / theta, outputs [N, T, classes]) of an SNN fed the frames at
    every step, time merged into the batch ([T*N, ...], time-major)."""
    snn.eval()
    x = torch.from_numpy(np.ascontiguousarray(frames, np.float32))
    seq = x.unsqueeze(0).expand((steps,) + tuple(x.shape)).flatten(0, 1)
    with hooked(snn, [l.name for l in layers]) as seen:
        out = snn(seq)
    split = lambda t: t.numpy().reshape((steps, -1) + tuple(t.shape[1:])).swapaxes(0, 1)     # noqa: E731
    recs = {l.name: (split(seen[l.name]["x"]), split(seen[l.name]["y"]) / np.float32(l.threshold)) for l in layers}
    return recs, split(out)
