"""The ANN-to-SNN section (`snncheck ann2snn`): accuracy against T (the ANN as T = 0) as a table and a figure, each
layer's clipping, quantization and unevenness errors (Bu et al., ICLR 2022) as a table and error bars, and the
initial membrane each SNN was found to start at. Reads `report.extras["ann2snn"]` (docs/report.md)."""
from __future__ import annotations

from typing import Optional

KEY = "ann2snn"
DECOMPOSED = ("half", "zero", "signed")
COLUMNS = ("clipping", "quantization", "unevenness", "total", "vs_ann")


def render(report, env) -> Optional[str]:
    data = report.extras.get(KEY)
    if not data:
        return None
    return env.get_template("ann2snn.html.j2").render(
        data=data, accuracy=accuracy_table(data), tables=[(v, data["variants"][v], layer_table(data, v))
                                                          for v in DECOMPOSED if v in data["variants"]],
        figures=[("accuracy", "accuracy against T", accuracy_figure(data)),
                 ("errors", f"mean |error| per layer at T = {data['table_steps']}, in units of theta",
                  error_figure(data)),
                 ("unevenness", f"distribution of the unevenness error per layer at T = {data['table_steps']} "
                                "(non-zero errors only)", histogram_figure(data))],
        membrane=[(v, _interval(b)) for v, b in data["initial_membrane"].items()])


# ------------------------------------------------------------------------------------------------ tables
def accuracy_table(data: dict) -> dict:
    """Rows: the ANN, then each SNN; columns: T = 0 (the ANN), then the sweep."""
    steps = [str(t) for t in data["timesteps"]]
    rows = [["ann", _pct(data["accuracy"]["ann"])] + [""] * len(steps)]
    rows += [[v, ""] + [_pct(acc[t]) for t in steps] for v, acc in data["accuracy"].items() if v != "ann"]
    return {"head": ["run", "T=0 (ANN)"] + [f"T={t}" for t in steps], "rows": rows}


def layer_table(data: dict, variant: str) -> dict:
    """Per layer at the table's T: mean (signed), mean |.| and share of neurons of each error, in units of theta."""
    t = str(data["table_steps"])
    rows = []
    for layer in data["layers"]:
        st = layer[variant][t]
        rows.append([layer["name"], f"{layer['threshold']:.4g}", layer["neurons"]] +
                    [f"{st[c]['mean']:+.4f} / {st[c]['mean_abs']:.4f} / {st[c]['share']:.1%}" for c in COLUMNS])
    head = ["layer", "theta", "neurons"] + [f"{c} (mean / |mean| / share)" for c in COLUMNS]
    return {"head": head, "rows": rows}


def text(data: dict) -> str:
    """The terminal view: the accuracy sweep and the per-layer table of each decomposed variant."""
    lines = ["accuracy against T:"] + _plain(accuracy_table(data))
    for v in DECOMPOSED:
        if v in data["variants"]:
            where = data["unevenness_dominates_from"][v][str(data["table_steps"])]
            lines += ["", f"{v} ({data['variants'][v]}), T = {data['table_steps']}, errors / theta; unevenness "
                          f"dominates from layer {where}" if where else f"{v} ({data['variants'][v]}), T = "
                          f"{data['table_steps']}, errors / theta; unevenness never dominates"]
            lines += _plain(layer_table(data, v))
    lines += ["", "initial membrane found (first IF layer, units of theta): " +
              ", ".join(f"{v} {_interval(b)}" for v, b in data["initial_membrane"].items())]
    return "\n".join(lines)


def _plain(table: dict) -> list:
    from ..text import _table
    return _table(table["head"], [[str(c) for c in r] for r in table["rows"]])


def _pct(x: float) -> str:
    return f"{x:.2%}"


def _interval(bounds) -> str:
    from ...ann2snn.analysis import interval
    return interval(*bounds)


# ------------------------------------------------------------------------------------------------ figures
def accuracy_figure(data: dict) -> str:
    from ..figures import _figure, _png
    fig, (ax,) = _figure(1)
    steps = data["timesteps"]
    for v, acc in data["accuracy"].items():
        if v != "ann":
            ax.plot(steps, [acc[str(t)] for t in steps], marker="o", ms=3, label=v)
    ax.axhline(data["accuracy"]["ann"], color="k", ls="--", lw=1, label="ann (T=0)")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("T", fontsize=7)
    ax.set_ylabel("accuracy", fontsize=7)
    ax.legend(fontsize=6)
    return _png(fig)


def error_figure(data: dict) -> str:
    import numpy as np
    from ..figures import _figure, _png
    variants = [v for v in DECOMPOSED if v in data["variants"]]
    fig, axes = _figure(len(variants))
    t, names = str(data["table_steps"]), [layer["name"] for layer in data["layers"]]
    x = np.arange(len(names))
    for ax, v in zip(axes, variants):
        for k, c in enumerate(("clipping", "quantization", "unevenness")):
            ax.bar(x + (k - 1) * 0.27, [layer[v][t][c]["mean_abs"] for layer in data["layers"]], 0.27, label=c)
        ax.set_xticks(x, names, fontsize=6)
        ax.set_title(v, fontsize=7)
        ax.set_xlabel("layer", fontsize=7)
    axes[0].set_ylabel("mean |error| / theta", fontsize=7)
    axes[0].legend(fontsize=6)
    return _png(fig)


def histogram_figure(data: dict) -> str:
    """Per decomposed SNN, each layer's non-zero unevenness errors (units of theta) as a step histogram."""
    import numpy as np
    from ..figures import _figure, _png
    hist, variants = data["histogram"], [v for v in DECOMPOSED if v in data["histogram"]]
    edges = np.asarray(hist["edges"])
    centers = (edges[:-1] + edges[1:]) / 2
    fig, axes = _figure(len(variants))
    for ax, v in zip(axes, variants):
        for layer, counts in hist[v].items():
            ax.step(centers, counts[1:-1], where="mid", lw=1, label=layer)
        ax.set_yscale("symlog")
        ax.set_title(v, fontsize=7)
        ax.set_xlabel("unevenness error / theta", fontsize=7)
    axes[0].set_ylabel("neurons x samples", fontsize=7)
    axes[0].legend(fontsize=6)
    return _png(fig)
