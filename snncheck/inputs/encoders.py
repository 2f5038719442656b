"""Rate and latency encoders: frames in [0, 1] -> 0/1 spikes over T steps, bit-identical to SpikingJelly's
`encoding.PoissonEncoder` and `encoding.LatencyEncoder` (the same torch operations in the same order).

SpikingJelly's Poisson encoder draws `torch.rand_like(x)` from torch's global generator at every call. A user
who seeds it (`torch.manual_seed(s)`) and calls the encoder T times on the whole batch, or once on the batch
repeated over T in multi-step mode, gets exactly `poisson(frames, T, s)` here (the two draw the same stream).
What cannot be reproduced is said in docs/inputs.md: draws made batch by batch (each batch continues the
stream), from a shuffled DataLoader, after other random calls (dropout, initialisation), or in float64.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import require

LATENCY_FUNCTIONS = ("linear", "log")


def _checked(frames: np.ndarray, what: str):
    """Frames as the float32 tensor SpikingJelly would encode; both encoders require 0 <= x <= 1."""
    import torch
    x = torch.from_numpy(np.ascontiguousarray(frames, dtype=np.float32))
    require(x.numel() == 0 or (float(x.min()) >= 0 and float(x.max()) <= 1),
            lambda: f"{what} encoding takes inputs in [0, 1]; got values in [{float(x.min()):g}, {float(x.max()):g}]")
    return x


def poisson(frames: np.ndarray, timesteps: int, seed: int) -> np.ndarray:
    """[N, *shape] -> [N, T, *shape] uint8: at each step, spike where a fresh uniform draw is <= x
    (`torch.rand_like(x).le(x)`), the draws of step t made before those of step t + 1 from a generator seeded
    with `seed`."""
    import torch
    x = _checked(frames, "poisson")
    gen = torch.Generator().manual_seed(int(seed))
    out = np.empty((x.shape[0], timesteps) + tuple(x.shape[1:]), dtype=np.uint8)
    for t in range(timesteps):                 # one step at a time: memory of one frame set, same stream
        out[:, t] = torch.rand(x.shape, generator=gen, dtype=x.dtype).le(x).numpy()
    return out


def latency(frames: np.ndarray, timesteps: int, function: str = "linear") -> np.ndarray:
    """[N, *shape] -> [N, T, *shape] uint8: one spike per input at t_f = round((T - 1)(1 - x)) ('linear') or
    round(T - 1 - ln(alpha x + 1)) with alpha = e^(T-1) - 1 ('log'); a zero input still fires, at T - 1."""
    import torch
    require(function in LATENCY_FUNCTIONS, lambda: f"latency function {function!r}; known: {LATENCY_FUNCTIONS}")
    x = _checked(frames, "latency")
    if function == "log":
        t_f = (timesteps - 1.0 - torch.log((math.exp(timesteps - 1.0) - 1.0) * x + 1.0)).round().long()
    else:
        t_f = ((timesteps - 1.0) * (1.0 - x)).round().long()
    spikes = torch.nn.functional.one_hot(t_f, num_classes=timesteps)        # [N, *shape, T]
    return np.ascontiguousarray(np.moveaxis(spikes.numpy().astype(np.uint8), -1, 1))
