"""Writes cases/dvs_events.npz: synthetic DVS128-like event streams (t in microseconds, x, y in 0..127, p in
{0, 1}) in snncheck's events format (docs/inputs.md), reproducibly from a seed. Each sample is a bright bar
sweeping across the sensor: ON events (p = 1) at its leading edge, OFF events (p = 0) at its trailing edge, plus
sensor noise. Run: python scripts/make_events.py [OUT.npz]"""
from __future__ import annotations

import sys

import numpy as np

SIZE = 128


def sample(rng, n_events: int, duration_us: int) -> dict:
    t = np.sort(rng.integers(0, duration_us, n_events))
    angle, speed = rng.uniform(0, np.pi), rng.uniform(0.6, 1.4)
    pos = (t / duration_us * speed * SIZE) % SIZE
    along = rng.uniform(0, SIZE, n_events)
    on = rng.random(n_events) < 0.5
    across = np.where(on, pos, (pos - 6) % SIZE)
    x = (np.cos(angle) * (across - SIZE / 2) - np.sin(angle) * (along - SIZE / 2) + SIZE / 2) % SIZE
    y = (np.sin(angle) * (across - SIZE / 2) + np.cos(angle) * (along - SIZE / 2) + SIZE / 2) % SIZE
    noise = rng.random(n_events) < 0.1
    x = np.where(noise, rng.integers(0, SIZE, n_events), x).astype(np.uint16)
    y = np.where(noise, rng.integers(0, SIZE, n_events), y).astype(np.uint16)
    return {"t": t.astype(np.int64), "x": x, "y": y, "p": on.astype(np.uint8)}


def make(n_samples: int = 6, n_events: int = 6000, seed: int = 16) -> dict:
    rng = np.random.default_rng(seed)
    found = [sample(rng, n_events, int(rng.integers(800_000, 1_500_000))) for _ in range(n_samples)]
    out = {k: np.concatenate([s[k] for s in found]) for k in ("t", "x", "y", "p")}
    out["index"] = np.r_[0, np.cumsum([len(s["t"]) for s in found])]
    return out


if __name__ == "__main__":
    np.savez_compressed(sys.argv[1] if len(sys.argv) > 1 else "cases/dvs_events.npz", **make())
