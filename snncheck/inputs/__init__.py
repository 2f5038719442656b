"""Inputs as users have them: frames encoded into spikes (direct, Poisson, latency) and raw event streams
integrated into frames, both as SpikingJelly does it. Encoding happens once, when the plan is built: every
simulator then receives the same tensor, and the deployed network receives spikes unscaled (they are 0/1).
The file formats and what cannot be reproduced are in docs/inputs.md."""
from __future__ import annotations

import functools

from pathlib import Path
from typing import Optional

import numpy as np

from ..errors import require
from ..graph import is_integer_valued
from ..plan import Inputs
from . import encoders, events

ENCODINGS = ("direct", "poisson", "latency")
SPIKE_ENCODINGS = ("poisson", "latency")
UNSCALED = SPIKE_ENCODINGS + ("events",)     # inputs already in the deployed network's units


def encode(inputs: Inputs, encoding: str = "direct", seed: int = 0) -> Inputs:
    """The inputs encoded over their time steps. Direct leaves them as they are; Poisson and latency turn frames
    [N, *shape] in [0, 1] into 0/1 spikes [N, T, *shape], drawn once for the whole set."""
    require(encoding in ENCODINGS, lambda: f"encoding {encoding!r}; known: {', '.join(ENCODINGS)}")
    if encoding == "direct":
        return inputs
    require(inputs.direct, lambda: f"{encoding} encoding takes frames [N, C, H, W]; these inputs are already "
                                   "sequences over time")
    t = inputs.timesteps
    spikes = encoders.poisson(inputs.data, t, seed) if encoding == "poisson" else encoders.latency(inputs.data, t)
    what = f"Poisson-encoded (seed {seed})" if encoding == "poisson" else "latency-encoded (linear)"
    described = inputs.info.get("description") or inputs.info.get("source", "inputs")
    info = dict(inputs.info, description=f"{described.removesuffix(', direct encoding')}, {what}",
                encoding=encoding, **({"encoding_seed": int(seed)} if encoding == "poisson" else {}))
    return Inputs(spikes, t, False, info)


def from_events(path, input_shape, framing: events.Framing, samples: Optional[int] = None) -> Inputs:
    """An events file integrated into frames [N, T, 2, H, W] for a model taking (2, H, W)."""
    shape = tuple(input_shape)
    require(len(shape) == 3 and shape[0] == 2, lambda: f"events {path}: the model takes {shape}; event frames "
                                                       "are (2, H, W), one channel per polarity")
    found = events.load(path)[:samples]
    x, lengths = events.integrate(found, framing, shape[1], shape[2])
    name = Path(str(path)).name
    info = {"source": f"events:{name}", "encoding": "events", "framing": framing.describe(),
            "description": f"events from {name}, {framing.describe()}"}
    if len(set(lengths.tolist())) > 1:
        info["lengths"] = lengths.tolist()
    return Inputs.sequences(x, **info)


def is_events(path) -> bool:
    """An events file (`t, x, y, p` arrays in a `.npz`, docs/inputs.md) rather than a `.npy` of frames."""
    return str(path).endswith(".npz")


def load(path, input_shape, timesteps: int, framing: Optional[events.Framing] = None,
         samples: Optional[int] = None) -> Inputs:
    """An inputs file: an events `.npz` (integrated by `framing`) or a `.npy` of frames or sequences."""
    from .. import data
    if is_events(path):
        require(framing is not None, lambda: f"{path} is an events file: say how to integrate it "
                                             "(--frames N [--split-by number|time] or --frame-ms D)")
        return from_events(path, input_shape, framing, samples)
    require(framing is None, lambda: f"--frames/--frame-ms integrate an events file (.npz); {path} is not one")
    loaded = data.load_inputs(path, tuple(input_shape), timesteps)
    return loaded if samples is None else Inputs(loaded.data[:samples], loaded.timesteps, loaded.direct,
                                                 loaded.info)


def unscaled(inputs: Inputs) -> bool:
    """Spikes and event counts are in the deployed network's units already (the chip's input is spikes)."""
    return inputs.info.get("encoding") in UNSCALED


def deployed_scale(inputs: Inputs, declared: float) -> tuple:
    """(what the deployed network's input is multiplied by: 1 for unscaled inputs, else its own input scale
    `declared`; the report's notes: why `declared` is not applied, when it is not)."""
    used = 1.0 if unscaled(inputs) else float(declared)
    if declared == used:
        return used, {}
    return used, {"input_scale_ignored": f"B's input scale {declared:g} is not applied: the inputs are "
                                         f"{inputs.info['encoding']}, fed to B as they are"}


def _per_channel(x, weighted: bool = False) -> np.ndarray:
    """Sums per input channel (axis 2 of [N, T, C, ...]; one channel for flat inputs), in float64. Weighted:
    each step and position weighs differently (a fixed irrational sequence), so that another draw of the same
    spike count sums differently."""
    x = np.asarray(x, dtype=np.float64)
    if weighted:
        x = x * _weights(x.shape[1:])
    if x.ndim < 4:
        return np.array([x.sum()])
    return x.reshape(x.shape[0], x.shape[1], x.shape[2], -1).sum(axis=(0, 1, 3))


@functools.lru_cache(maxsize=4)
def _weights(shape: tuple) -> np.ndarray:
    """The weights of `_per_channel(weighted=True)` for one sample of `shape`, made once per shape (the float
    remainder took 9 of the 11 ms of a weighted sum over 2x32x2x128x128 events: every run, twice per subject)."""
    w = (1.0 + (np.arange(int(np.prod(shape))) * 0.6180339887498949 % 1.0)).reshape(shape)
    w.flags.writeable = False
    return w


def statistics(x: np.ndarray) -> dict:
    """What the report says of the inputs [N, T, C, ...] (the first samples): the rate per channel (mean value:
    the spike rate for 0/1 spikes), and per frame the events (sum of all values) per sample."""
    x = np.asarray(x)
    per_channel = x[0, 0].size // (x.shape[2] if x.ndim >= 4 else 1)
    return {"samples": int(x.shape[0]),
            "rate_per_channel": (_per_channel(x) / (x.shape[0] * x.shape[1] * per_channel)).tolist(),
            "events_per_frame": x.reshape(x.shape[0], x.shape[1], -1).sum(axis=2).mean(axis=0).tolist(),
            "binary": bool(np.isin(x, (0, 1)).all())}


def encoded_sums(encoded: np.ndarray) -> dict:
    """The plan's side of `received`: per-channel sums of the encoded inputs (plain and weighted), their count per
    channel and whether they are integers; the same for every run fed these samples."""
    per = np.asarray(encoded)[0, 0].size // (encoded.shape[2] if np.ndim(encoded) >= 4 else 1)
    return {"encoded": _per_channel(encoded), "encoded_weighted": _per_channel(encoded, True),
            "count": int(encoded.shape[0] * encoded.shape[1] * per), "integer": is_integer_valued(encoded)}


def received(fed: np.ndarray, scale: float, encoded: np.ndarray, sums: Optional[dict] = None) -> dict:
    """What a run received, against the plan's encoded inputs on the same samples, as sums per channel that add
    up over chunks: `received` in A's units (fed / scale), `encoded`, and `count` values per channel. `sums`:
    `encoded_sums(encoded)` when the caller has it; a run fed the encoded array itself reuses its sums."""
    sums = encoded_sums(encoded) if sums is None else sums
    same = fed is encoded
    got = sums["encoded"] if same else _per_channel(fed)
    got_weighted = sums["encoded_weighted"] if same else _per_channel(fed, True)
    return {"received": (got / scale).tolist(), "encoded": sums["encoded"].tolist(),
            "received_weighted": (got_weighted / scale).tolist(), "encoded_weighted": sums["encoded_weighted"].tolist(),
            "count": sums["count"], "scale": float(scale), "integer": sums["integer"]}


def merge_received(a: dict, b: dict) -> dict:
    """Two chunks' `received` sums as one."""
    add = lambda k: (np.asarray(a[k]) + np.asarray(b[k])).tolist()     # noqa: E731
    return dict(a, received=add("received"), encoded=add("encoded"), received_weighted=add("received_weighted"),
                encoded_weighted=add("encoded_weighted"), count=a["count"] + b["count"],
                integer=a["integer"] and b["integer"])
