"""The inputs as the simulators received them: which encoding ran, the first samples' encoded frames as a strip
(ON events red, OFF events blue for two polarity channels), a raster of the first sample's inputs over time, and
the statistics (rate per channel, events per frame) of the evidence samples (`report.extras["input_stats"]`)."""
from __future__ import annotations

import numpy as np

from ..figures import _mosaic, _png

KEY = "input_stats"
STRIP_SAMPLES = 3
STRIP_STEPS = 8
RASTER_INPUTS = 256


def render(report, env):
    x, stats = report.evidence.inputs, report.extras.get(KEY)
    if x is None or stats is None or np.ndim(x) < 3 or not len(x):
        return None
    x = np.asarray(x)
    figures = [f for f in (frame_strip(x), raster(x[0]), statistics(stats)) if f]
    info = report.inputs
    return env.get_template("section_inputs.html.j2").render(
        encoding=info.get("encoding"), seed=info.get("encoding_seed"), description=info.get("description")
        or info.get("source"), framing=info.get("framing"), scale=info.get("input_scale"), stats=stats,
        figures=figures)


def frame_strip(x: np.ndarray):
    """(kind, caption, png): samples in rows, steps in columns."""
    if x.ndim != 5:
        return None
    from matplotlib.figure import Figure
    rows, cols = min(STRIP_SAMPLES, x.shape[0]), min(STRIP_STEPS, x.shape[1])
    fig = Figure(figsize=(7.2, 1.0 + 1.0 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.03, top=0.86, wspace=0.06, hspace=0.12)
    top = max(float(x[:rows, :cols].max()), 1e-12)
    for i in range(rows):
        for t in range(cols):
            ax = axes[i][t]
            ax.imshow(_picture(x[i, t], top), interpolation="nearest", cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(f"t={t}", fontsize=7)
        axes[i][0].set_ylabel(f"sample {i}", fontsize=7)
    two = x.shape[2] == 2
    fig.suptitle("encoded inputs" + (": ON (p=1) red, OFF (p=0) blue" if two else ""), fontsize=8)
    return ("inputs", f"the first {rows} samples' inputs at the first {cols} steps, as every simulator received "
                      "them (the deployed network's scale aside)", _png(fig))


def _picture(frame: np.ndarray, top: float) -> np.ndarray:
    """A (C, H, W) frame as an image: two polarity channels as red/blue on white, else channels tiled in gray."""
    if frame.shape[0] == 2:
        off, on = np.clip(frame / top, 0, 1)
        return np.stack([1 - off, 1 - on - off, 1 - on], axis=-1).clip(0, 1)
    return _mosaic(frame / top)


def raster(sample: np.ndarray):
    """(kind, caption, png): input index against step for one sample (the most active inputs when there are many)."""
    from matplotlib.figure import Figure
    flat = sample.reshape(sample.shape[0], -1)
    picked = np.arange(flat.shape[1]) if flat.shape[1] <= RASTER_INPUTS else \
        np.sort(np.argsort(-(flat != 0).sum(axis=0), kind="stable")[:RASTER_INPUTS])
    fig = Figure(figsize=(7.2, 2.6))
    ax = fig.subplots()
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.18, top=0.9)
    shown = flat[:, picked].T
    ax.imshow(shown, aspect="auto", interpolation="nearest", cmap="gray_r", vmin=0,
              vmax=max(float(shown.max()), 1e-12))
    ax.set_xlabel("step", fontsize=7), ax.set_ylabel("input", fontsize=7)
    ax.tick_params(labelsize=6)
    which = "every input" if len(picked) == flat.shape[1] else f"the {len(picked)} most active of {flat.shape[1]}"
    return ("input raster", f"sample 0: {which}, dark where the input is non-zero", _png(fig))


def statistics(stats: dict):
    """(kind, caption, png): rate per channel, events per frame."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(7.2, 2.4))
    a, b = fig.subplots(1, 2)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.2, top=0.86, wspace=0.3)
    rates, per_frame = stats["rate_per_channel"], stats["events_per_frame"]
    a.bar(range(len(rates)), rates, color="#2e86c1")
    a.set_xticks(range(len(rates)))
    a.set_title("rate per input channel", fontsize=8), a.set_xlabel("channel", fontsize=7)
    b.plot(range(len(per_frame)), per_frame, marker="o", ms=3, color="#c0392b")
    b.set_title("events per frame (mean over samples)", fontsize=8), b.set_xlabel("step", fontsize=7)
    for ax in (a, b):
        ax.tick_params(labelsize=6)
    return ("input statistics", f"the first {stats['samples']} samples' inputs", _png(fig))
