"""Raw event streams (t, x, y, p) integrated into frames exactly as `spikingjelly.datasets` integrates them.

File format (docs/inputs.md): an `.npz` with 1-D arrays `t` (integer time stamps, microseconds for
`--frame-ms`, non-decreasing within a sample), `x`, `y` (pixel column and row) and `p` (polarity) of equal
length; one sample, or several concatenated with `index`, N + 1 offsets (sample i is events
`index[i]:index[i+1]`). A frame is [2, H, W] event counts; channel 0 holds the events with p == 0, channel 1
those with p != 0 (SpikingJelly's order).

Splitting (SpikingJelly's `integrate_events_by_fixed_frames_number` and `integrate_events_by_fixed_duration`):
- by number, M frames: frame j holds events [j * (n // M), (j + 1) * (n // M)), the last frame up to the end;
- by time, M frames: dt = (t_last - t_first) // M, frame j holds the events with t in
  [t_first + j dt, t_first + (j + 1) dt), the last frame up to the end; an empty frame is an error there too;
- fixed duration D: frame j holds the events with (t - t_first) // D == j, ceil((t_last - t_first) / D)
  frames, the last one up to the end. Samples then differ in length: they are padded with empty frames at the
  end, as `pad_sequence_collate` pads a batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import InputError, require

SPLITS = ("number", "time")
FIELDS = ("t", "x", "y", "p")


@dataclass(frozen=True)
class Framing:
    """How events become frames: `frames` by `split_by`, or one frame per `duration` time units."""
    frames: Optional[int] = None
    split_by: str = "number"
    duration: Optional[int] = None

    def __post_init__(self):
        require((self.frames is None) != (self.duration is None),
                "events are integrated either into a number of frames (--frames N) or per duration (--frame-ms D)")
        require(self.split_by in SPLITS, lambda: f"split_by {self.split_by!r}; known: {', '.join(SPLITS)}")
        require(self.frames is None or self.frames >= 1, lambda: f"frames must be positive, got {self.frames}")
        require(self.duration is None or self.duration > 0, lambda: f"duration must be positive, got {self.duration}")

    @classmethod
    def from_options(cls, frames: Optional[int] = None, split_by: Optional[str] = None,
                     frame_ms: Optional[float] = None) -> Optional["Framing"]:
        """The framing of the flags `--frames N --split-by S` or `--frame-ms D` (or a case's keys); None when
        they describe none. D ms is D * 1000 time units: time stamps are microseconds."""
        if frames is None and frame_ms is None:
            require(split_by is None, "split_by goes with frames N")
            return None
        duration = None if frame_ms is None else round(frame_ms * 1000)
        require(frame_ms is None or abs(duration - frame_ms * 1000) < 1e-6,
                lambda: f"frame_ms {frame_ms:g}: a whole number of microseconds is expected")
        return cls(frames=frames, split_by=split_by or "number", duration=duration)

    def describe(self) -> str:
        if self.duration is not None:
            return f"one frame per {self.duration / 1000:g} ms of time stamps in us (integrate_events_by_fixed_duration)"
        return f"{self.frames} frames split by {self.split_by} (integrate_events_by_fixed_frames_number)"


def load(path) -> list:
    """The samples of an events file: [{'t', 'x', 'y', 'p'} arrays], checked."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: np.asarray(f[k]) for k in f.files}
    except FileNotFoundError:
        raise InputError(f"events file not found: {path}") from None
    except (ValueError, OSError) as exc:
        raise InputError(f"cannot read events {path}: {exc} (an .npz with arrays t, x, y, p is expected)") from None
    missing = [k for k in FIELDS if k not in arrays]
    require(not missing, lambda: f"events {path}: missing array(s) {missing}; an events file holds t, x, y, p")
    n = arrays["t"].shape
    require(all(arrays[k].ndim == 1 and arrays[k].shape == n for k in FIELDS),
            lambda: f"events {path}: t, x, y, p must be 1-D of one length, got "
                    f"{ {k: arrays[k].shape for k in FIELDS} }")
    require(all(arrays[k].dtype.kind in "iub" for k in ("x", "y", "p")) and arrays["t"].dtype.kind in "iu",
            lambda: f"events {path}: t, x, y, p must be integer arrays")
    index = arrays.get("index", np.array([0, n[0]]))
    require(index.ndim == 1 and len(index) >= 2 and index[0] == 0 and index[-1] == n[0] and
            bool(np.all(np.diff(index) >= 0)),
            lambda: f"events {path}: index must be N + 1 non-decreasing offsets from 0 to {n[0]}")
    return [{k: arrays[k][lo:hi] for k in FIELDS} for lo, hi in zip(index[:-1], index[1:])]


def segments(t: np.ndarray, framing: Framing, sample: int = 0) -> list:
    """[(lo, hi)] event index ranges of each frame, as SpikingJelly computes them."""
    n = len(t)
    require(n > 0, lambda: f"sample {sample} has no event")
    require(bool(np.all(np.diff(t) >= 0)), lambda: f"sample {sample}: time stamps t must be non-decreasing")
    if framing.duration is not None:
        return _by_duration(t, framing.duration, sample)
    m = framing.frames
    if framing.split_by == "number":
        lo = (n // m) * np.arange(m)
        hi = lo + n // m
    else:
        dt = (t[-1] - t[0]) // m
        starts = t[0] + dt * np.arange(m)
        lo, hi = np.searchsorted(t, starts, side="left"), np.searchsorted(t, starts + dt, side="left")
        empty = np.flatnonzero(hi <= lo)
        require(not len(empty), lambda: f"sample {sample}: frame {int(empty[0])} of {m} split by time holds no "
                                        "event (SpikingJelly's integrate function fails there too)")
    hi[-1] = n
    return list(zip(lo.tolist(), hi.tolist()))


def _by_duration(t: np.ndarray, duration: int, sample: int) -> list:
    rel = t - t.min()
    count = math.ceil(rel[-1] / duration)
    require(count >= 1, lambda: f"sample {sample}: every event has the same time stamp: no frame of duration "
                                f"{duration} (SpikingJelly's integrate function fails there too)")
    cuts = np.searchsorted(rel // duration, np.arange(1, count), side="left")
    bounds = np.r_[0, cuts, len(t)]
    return list(zip(bounds[:-1].tolist(), bounds[1:].tolist()))


def frames(events: dict, framing: Framing, height: int, width: int, sample: int = 0) -> np.ndarray:
    """One sample's events -> [T, 2, H, W] float32 counts."""
    x, y = events["x"].astype(np.int64), events["y"].astype(np.int64)
    require(len(x) == 0 or (x.min() >= 0 and x.max() < width and y.min() >= 0 and y.max() < height),
            lambda: f"sample {sample}: events outside the {height}x{width} sensor the model takes "
                    f"(x up to {x.max()}, y up to {y.max()})")
    pixel = (events["p"] != 0).astype(np.int64) * height * width + y * width + x
    spans = segments(events["t"], framing, sample)
    out = np.zeros((len(spans), 2 * height * width), dtype=np.float32)
    for j, (lo, hi) in enumerate(spans):
        out[j] = np.bincount(pixel[lo:hi], minlength=2 * height * width)
    return out.reshape(len(spans), 2, height, width)


def integrate(samples: list, framing: Framing, height: int, width: int) -> tuple:
    """([N, T, 2, H, W] counts, [N] lengths): samples of different lengths padded with empty frames at the end,
    as `pad_sequence_collate` pads them."""
    per = [frames(ev, framing, height, width, i) for i, ev in enumerate(samples)]
    lengths = np.array([len(f) for f in per])
    out = np.zeros((len(per), int(lengths.max())) + per[0].shape[1:], dtype=np.float32)
    for i, f in enumerate(per):
        out[i, :len(f)] = f
    return out, lengths
