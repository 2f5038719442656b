"""The report's figures, drawn from the runs the pipeline keeps as evidence (`report.evidence`), as base64
PNGs for a self-contained HTML file. Per spiking layer:

- raster: the two runs of the pair that diverges first in this layer, side by side, around that divergence,
  with a third panel marking the spikes only one of them has;
- rates: firing-rate maps of A in SpikingJelly, B in PAIBox, and their difference;
- membrane: B's charged potential against A's, with the fitted slope and the threshold ratio theta_B / theta_A
  (the slope a correct conversion has);
- weights: B's weights (and biases) against A's folded ones, with the fitted scale.

Only small windows are drawn (one sample, 64 neurons, a few thousand points), so a report renders in seconds.
"""
from __future__ import annotations

import base64
import io
from typing import Optional

import numpy as np

from ..graph import Graph
from ..checkpoint import fit_scale

RASTER_NEURONS = 64
RASTER_STEPS = 32
MAX_POINTS = 3000
ONLY_A, ONLY_B, BOTH, SAME = (0.84, 0.15, 0.16), (0.13, 0.4, 0.85), (0.1, 0.1, 0.1), (0.82, 0.82, 0.82)


def layer_figures(report) -> dict:
    """{layer: [(kind, caption, base64 png)]}; empty when the report kept no runs."""
    runs, nets = report.evidence.runs, report.evidence.graphs
    if not runs:
        return {}
    drift = next((p for p in report.pairs if p.expect == "quantization"), None)
    a_label = drift.a if drift else None
    b_ref = drift.b if drift else None
    b_label = next((label for label, m in report.runs.items() if m.get("role") == "b" and m.get("pipelined")
                    and label in runs), b_ref)
    out = {}
    for name in report.layers:
        figs = []
        pair = _pair_for(report, name)
        if pair is not None and pair.a in runs and pair.b in runs:
            figs.append(raster(runs[pair.a], runs[pair.b], name, pair.layer(name).first_divergence))
        if a_label in runs and b_label in runs:
            figs.append(rate_maps(runs[a_label], runs[b_label], name))
        if a_label in runs and b_ref in runs:
            figs.append(membrane(runs[a_label], runs[b_ref], name))
        if "a" in nets and "b" in nets:
            fig = weights(nets["a"], nets["b"], name, _known_scale(report, nets["a"], name))
            if fig:
                figs.append(fig)
        out[name] = figs
    return out


# ------------------------------------------------------------------------------------------------ choosing
def _pair_for(report, name: str):
    """The pair whose first divergence in this layer comes earliest, runs of one network first (their disagreement
    is a bug, A against B may be quantization); without any, the A~B pair (or the first)."""
    diverging = [p for p in report.pairs if p.layer(name).first_divergence is not None]
    if diverging:
        return min(diverging, key=lambda p: (p.expect == "quantization", p.layer(name).first_divergence["t"],
                                             p.layer(name).first_divergence["sample"]))
    return next((p for p in report.pairs if p.expect == "quantization"), report.pairs[0] if report.pairs else None)


def synapse_of(graph, name: str) -> Optional[str]:
    """The last Conv2d/Linear on the first synaptic path into neuron `name` (None if there is none)."""
    for term in graph.terms(name):
        syns = term.synapses(graph)
        if syns:
            return syns[-1]
    return None


def _known_scale(report, graph, name: str) -> Optional[float]:
    for key in (name, synapse_of(graph, name)):
        scale = (report.weights.get(key) or {}).get("scale") if key else None
        if isinstance(scale, (int, float)):
            return float(scale)
    return None


# ------------------------------------------------------------------------------------------------ figures
def raster(run_a, run_b, name: str, first: Optional[dict]) -> tuple:
    sa, sb = _flat(run_a.layer(name).spikes), _flat(run_b.layer(name).spikes)
    sample, t0, idx = (first["sample"], first["t"], first["index"]) if first else (0, 0, 0)
    lo = int(np.clip(idx - RASTER_NEURONS // 3, 0, max(0, sa.shape[2] - RASTER_NEURONS)))
    hi = min(sa.shape[2], lo + RASTER_NEURONS)
    t_lo = int(np.clip(t0 - RASTER_STEPS // 2, 0, max(0, sa.shape[1] - RASTER_STEPS)))
    t_hi = min(sa.shape[1], t_lo + RASTER_STEPS)
    a, b = sa[sample, t_lo:t_hi, lo:hi].T, sb[sample, t_lo:t_hi, lo:hi].T     # neurons x steps
    fig, axes = _figure(3)
    extent = (t_lo - 0.5, t_hi - 0.5, hi - 0.5, lo - 0.5)
    for ax, arr, label in ((axes[0], a, run_a.label), (axes[1], b, run_b.label)):
        ax.imshow(_rgb(arr.shape, (arr, BOTH)), extent=extent, aspect="auto", interpolation="nearest")
        ax.set_title(label, fontsize=8)
    axes[2].imshow(_rgb(a.shape, (a & b, SAME), (a & ~b, ONLY_A), (b & ~a, ONLY_B)), extent=extent,
                   aspect="auto", interpolation="nearest")
    axes[2].set_title(f"differ: {int((a != b).sum())}", fontsize=8)
    for ax in axes:
        ax.set_xlabel("step", fontsize=7)
        if first:
            ax.plot([t0], [idx], marker="s", ms=7, mfc="none", mec="#f5a623", mew=1.6)
    axes[0].set_ylabel("neuron (flat index)", fontsize=7)
    where = (f"first divergence at step {t0}, sample {sample}, neuron {tuple(first['neuron'])}" if first
             else f"no divergence; sample 0, neurons {lo}-{hi - 1}")
    caption = (f"Spikes of {run_a.label} and {run_b.label} in {name}, sample {sample}, neurons {lo}-{hi - 1}: "
               f"{where} (orange square). Right: red only in {run_a.label}, blue only in {run_b.label}, grey in both.")
    return "raster", caption, _png(fig)


def rate_maps(run_a, run_b, name: str) -> tuple:
    ra = run_a.layer(name).spikes.mean(axis=(0, 1))
    rb = run_b.layer(name).spikes.mean(axis=(0, 1))
    fig, axes = _figure(3, colorbars=True)
    top = max(float(ra.max()), float(rb.max()), 1e-9)
    for ax, r, label in ((axes[0], ra, run_a.label), (axes[1], rb, run_b.label)):
        im = ax.imshow(_mosaic(r), cmap="viridis", vmin=0, vmax=top, interpolation="nearest")
        ax.set_title(f"{label}: mean {r.mean():.3f}", fontsize=8)
    fig.colorbar(im, cax=fig.add_axes((0.655, 0.18, 0.01, 0.64))).ax.tick_params(labelsize=6)
    d = rb - ra
    lim = max(float(np.abs(d).max()), 1e-9)
    im = axes[2].imshow(_mosaic(d), cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    axes[2].set_title(f"{run_b.label} - {run_a.label}", fontsize=8)
    fig.colorbar(im, cax=fig.add_axes((0.965, 0.18, 0.01, 0.64))).ax.tick_params(labelsize=6)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    caption = (f"Firing rate per neuron in {name} over all samples and steps ({_layout(ra.shape)}); "
               "right: the difference (red: B fires more).")
    return "rates", caption, _png(fig)


def membrane(run_a, run_b, name: str) -> tuple:
    la, lb = run_a.layer(name), run_b.layer(name)
    x, y = _potential(la).ravel(), _potential(lb).ravel()
    differ = (la.spikes != lb.spikes).ravel()
    slope, ratio = membrane_fit(run_a, run_b, name)
    fig, axes = _figure(2)
    near = np.abs(x - la.threshold) <= 0.5 * max(abs(la.threshold), 1e-9)
    for ax, keep, title in ((axes[0], np.ones_like(near), "all"), (axes[1], near, "near A's threshold")):
        pick = np.flatnonzero(keep)[_sample(int(keep.sum()))]
        px, py, pd = x[pick], y[pick], differ[pick]
        ax.scatter(px[~pd], py[~pd], s=3, c="#7f8c8d", alpha=0.5, lw=0, label="same spike")
        ax.scatter(px[pd], py[pd], s=6, c=[ONLY_A], alpha=0.8, lw=0, label="spike differs")
        span = np.array([px.min(), px.max()]) if px.size else np.array([0.0, la.threshold])
        ax.plot(span, slope * span, color="#2c3e50", lw=1.1, label=f"fitted slope {slope:.4g}")
        ax.plot(span, ratio * span, color="#f39c12", lw=1.1, ls="--", label=f"threshold ratio {ratio:.4g}")
        ax.axvline(la.threshold, color="#999", lw=0.7, ls=":")
        ax.axhline(lb.threshold, color="#999", lw=0.7, ls=":")
        ax.set_title(f"{title} ({pick.size} points)", fontsize=8)
        ax.set_xlabel(f"{run_a.label} membrane before firing", fontsize=7)
    axes[0].set_ylabel(f"{run_b.label} membrane", fontsize=7)
    axes[0].legend(fontsize=6, loc="upper left", frameon=False)
    caption = (f"Membrane potential of B against A in {name}: a correct conversion lies on the threshold-ratio "
               f"line (dashed, {ratio:.4g}); fitted slope {slope:.4g}. Dotted: the thresholds; red: the spike "
               "differs. Right: the points within half a threshold of A's threshold, where spikes flip.")
    return "membrane", caption, _png(fig)


def membrane_fit(run_a, run_b, name: str) -> tuple:
    """(least-squares slope of B's membrane over A's, threshold ratio theta_B / theta_A): equal when B is A scaled."""
    la, lb = run_a.layer(name), run_b.layer(name)
    ratio = lb.threshold / la.threshold if la.threshold else float("nan")
    return fit_scale(_potential(lb), _potential(la)), ratio


def bias_fit(net_a: Graph, net_b: Graph, name: str) -> tuple:
    """(least-squares slope of B's bias over A's, threshold ratio): a bias must scale like the threshold."""
    syn_a, syn_b = net_a.nodes[synapse_of(net_a, name)], net_b.nodes[synapse_of(net_b, name)]
    ratio = float(net_b.nodes[name].threshold) / float(net_a.nodes[name].threshold)
    return fit_scale(_bias(syn_b), _bias(syn_a)), ratio


def weights(net_a: Graph, net_b: Graph, name: str, scale: Optional[float]) -> Optional[tuple]:
    a_name, b_name = synapse_of(net_a, name), synapse_of(net_b, name)
    if a_name is None or b_name is None:
        return None
    syn_a, syn_b = net_a.nodes[a_name], net_b.nodes[b_name]
    if syn_a.weight.shape != syn_b.weight.shape:
        return None
    wa = np.asarray(syn_a.weight, np.float64).ravel()
    wb = np.asarray(syn_b.weight, np.float64).ravel()
    scale = fit_scale(wb, wa) if scale is None else scale
    has_bias = syn_a.bias is not None or syn_b.bias is not None
    fig, axes = _figure(2 if has_bias else 1)
    pick = _sample(wa.size)
    axes[0].scatter(wa[pick], wb[pick], s=4, c="#34495e", alpha=0.6, lw=0)
    span = np.array([wa.min(), wa.max()])
    axes[0].plot(span, scale * span, color="#f39c12", lw=1.2, label=f"fitted scale {scale:.4g}")
    axes[0].set_xlabel(f"A {a_name} weight (BatchNorm folded)", fontsize=7)
    axes[0].set_ylabel("B weight", fontsize=7)
    axes[0].legend(fontsize=6, frameon=False)
    caption = f"Weights of {b_name} (into {name}): B against A, fitted scale {scale:.4g}."
    if has_bias:
        ba, bb = _bias(syn_a), _bias(syn_b)
        slope, ratio = bias_fit(net_a, net_b, name)
        axes[1].scatter(ba, bb, s=10, c="#34495e", alpha=0.8, lw=0)
        span = np.array([min(ba.min(), 0), max(ba.max(), 0)])
        axes[1].plot(span, slope * span, color="#2c3e50", lw=1.2, label=f"fitted {slope:.4g}")
        axes[1].plot(span, ratio * span, color="#f39c12", lw=1.2, ls="--", label=f"threshold ratio {ratio:.4g}")
        axes[1].set_xlabel("A bias", fontsize=7)
        axes[1].set_ylabel("B bias", fontsize=7)
        axes[1].legend(fontsize=6, frameon=False)
        caption += (f" Right: biases, fitted slope {slope:.4g}; a bias must scale like the threshold "
                    f"({ratio:.4g}, dashed).")
    return "weights", caption, _png(fig)


# ------------------------------------------------------------------------------------------------ helpers
def _potential(rec) -> np.ndarray:
    """The charged membrane before firing where the run records it, else the membrane after reset."""
    return np.asarray(rec.h if rec.h is not None else rec.v, np.float64)


def _flat(spikes: np.ndarray) -> np.ndarray:
    return spikes.reshape(spikes.shape[0], spikes.shape[1], -1)


def _rgb(shape, *layers) -> np.ndarray:
    """A white image with each (mask, color) painted in order."""
    img = np.ones(tuple(shape) + (3,))
    for mask, color in layers:
        img[mask] = color
    return img


def _mosaic(r: np.ndarray) -> np.ndarray:
    """Channels of a (C, H, W) map tiled in a near-square grid (NaN gaps); a (F,) vector as a near-square."""
    if r.ndim == 1:
        cols = int(np.ceil(np.sqrt(r.size)))
        out = np.full(cols * int(np.ceil(r.size / cols)), np.nan)
        out[:r.size] = r
        return out.reshape(-1, cols)
    r = r.reshape((-1,) + r.shape[-2:])
    c, h, w = r.shape
    cols = int(np.ceil(np.sqrt(c)))
    rows = int(np.ceil(c / cols))
    out = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1), np.nan)
    for k in range(c):
        i, j = divmod(k, cols)
        out[i * (h + 1):i * (h + 1) + h, j * (w + 1):j * (w + 1) + w] = r[k]
    return out


def _layout(shape) -> str:
    return f"{shape[0]} channels of {shape[1]}x{shape[2]}" if len(shape) == 3 else f"{int(np.prod(shape))} neurons"


def _bias(syn) -> np.ndarray:
    return np.zeros(syn.weight.shape[0]) if syn.bias is None else np.asarray(syn.bias, np.float64).ravel()


def _sample(n: int) -> np.ndarray:
    if n <= MAX_POINTS:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, MAX_POINTS, replace=False))


def _figure(panels: int, colorbars: bool = False):
    """One row of panels in a figure of the report's common size (fixed margins: faster than a layout engine)."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(7.2, 2.9))
    axes = fig.subplots(1, panels, squeeze=False)[0]
    fig.subplots_adjust(left=0.08, right=0.95 if colorbars else 0.98, bottom=0.16, top=0.9,
                        wspace=0.45 if colorbars else 0.3)
    for ax in axes:
        ax.tick_params(labelsize=6)
    return fig, list(axes)


def _png(fig) -> str:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return base64.b64encode(buf.getvalue()).decode("ascii")
