"""Inputs: the scikit-learn digits (shipped with scikit-learn, nothing downloaded), seeded random spikes, and
deterministic event-camera frames; every source returns `[N, T, C, H, W]` in the float model's input range."""
from __future__ import annotations

import numpy as np

from . import memory
from .errors import InputError, require


def digits(split: str = "test"):
    """8x8 digits scaled to [0, 1], shape (N, 1, 8, 8), and labels. A fixed stratified 80/20 split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    data = load_digits()
    x = (data.images / 16.0).astype(np.float32)[:, None]
    y = data.target.astype(np.int64)
    if split == "all":
        return x, y
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, random_state=0, stratify=y)
    require(split in ("train", "test"), f"unknown split {split!r}")
    return (xtr, ytr) if split == "train" else (xte, yte)


def direct(frames: np.ndarray, timesteps: int) -> np.ndarray:
    """Direct encoding: the same frame at every step, [N, C, H, W] -> [N, T, C, H, W]."""
    return np.repeat(np.asarray(frames)[:, None], timesteps, axis=1)


def resize(frames: np.ndarray, shape) -> np.ndarray:
    """Nearest-neighbour resize/channel-tile of [N, C, H, W] frames to (C', H', W') (for models of other sizes)."""
    c, h, w = shape
    n, c0, h0, w0 = frames.shape
    rows = (np.arange(h) * h0 // h)
    cols = (np.arange(w) * w0 // w)
    out = frames[:, :, rows][:, :, :, cols]
    return np.ascontiguousarray(np.tile(out, (1, -(-c // c0), 1, 1))[:, :c])


def random_spikes(n: int, timesteps: int, shape, rate: float = 0.2, seed: int = 0) -> np.ndarray:
    memory.require_fits(n * timesteps * int(np.prod(shape)) * 8, f"{n} samples x {timesteps} steps of random spikes")
    rng = np.random.default_rng(seed)
    return (rng.random((n, timesteps) + tuple(shape)) < rate).astype(np.float32)


def events(n: int, timesteps: int, size: int = 16, events_per_sample: int = 400, seed: int = 0) -> np.ndarray:
    """Synthetic event-camera input: a bright bar moving across the sensor emits ON (channel 0) events at its
    leading edge and OFF (channel 1) events at its trailing edge, plus noise; events are integrated into T frames
    as counts (0, 1, 2, ...). Deterministic for a seed."""
    memory.require_fits(n * timesteps * 2 * size * size * 4, f"{n} samples x {timesteps} steps of events")
    rng = np.random.default_rng(seed)
    out = np.zeros((n, timesteps, 2, size, size), dtype=np.float32)
    for i in range(n):
        angle, speed = rng.uniform(0, np.pi), rng.uniform(0.5, 1.5)
        ts = rng.uniform(0, timesteps, events_per_sample)
        pos = (ts * speed * size / timesteps) % size
        along = rng.uniform(0, size, events_per_sample)
        on = rng.random(events_per_sample) < 0.5
        xs = np.where(on, pos, (pos - 2) % size)
        x = (np.cos(angle) * xs - np.sin(angle) * (along - size / 2) + size / 2) % size
        y = (np.sin(angle) * xs + np.cos(angle) * (along - size / 2) + size / 2) % size
        np.add.at(out[i], (ts.astype(int), (~on).astype(int), y.astype(int), x.astype(int)), 1.0)
    return out


def open_array(path, what: str = "inputs") -> np.ndarray:
    """A user's .npy, memory-mapped, numeric: never unpickled, never a FIFO (np.load would block for ever).
    `what` names the file's role in the errors (inputs, labels)."""
    import os
    require(not os.path.exists(path) or os.path.isfile(path), lambda: f"{what} {path}: not a regular file")
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise InputError(f"{what} file not found: {path}") from None
    except (ValueError, OSError, EOFError) as exc:
        raise InputError(f"cannot read {what} {path}: {exc} (a .npy array is expected)") from None
    require(isinstance(arr, np.ndarray), lambda: f"{what} {path}: a .npy array is expected, not a .npz archive")
    require(arr.dtype.kind in "biuf", lambda: f"{what} {path}: numeric array expected, got dtype {arr.dtype}")
    return arr


def load_inputs(path, input_shape, timesteps: int):
    """A user's .npy as `snncheck.plan.Inputs`: [N, C, H, W] frames (repeated every step) or [N, T, C, H, W]
    sequences. The file is memory-mapped: only the samples a run reads are loaded, and frames are repeated over
    time one chunk at a time."""
    from .plan import Inputs
    arr = open_array(path)
    require(arr.ndim >= 2 and arr.shape[0] > 0 and arr.size > 0,
            lambda: f"inputs {path}: no samples (shape {arr.shape})")
    shape = tuple(input_shape)
    name = str(getattr(path, "name", path)).rsplit("/", 1)[-1]
    if arr.ndim == len(shape) + 1 and arr.shape[1:] == shape:
        return Inputs.frames(arr, timesteps, source=f"file:{name}")
    if arr.ndim == len(shape) + 2 and arr.shape[2:] == shape:
        return Inputs.sequences(arr, source=f"file:{name}")
    raise InputError(f"inputs {path} have shape {arr.shape}; the model takes [N, {', '.join(map(str, shape))}] "
                     f"or [N, T, {', '.join(map(str, shape))}]")
