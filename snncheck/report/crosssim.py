"""The cross-simulator table of one network: per layer and per simulator against the reference, the exact
mismatch count, the first divergence, the NIR paper's activity cosine similarity, and what explains the divergence:
each layer is replayed alone from the simulator's own input spikes (`diagnose.traps.explain_layer`), so a layer
whose replay matches as the graph says only inherits its difference ("propagated"), and one that needs a trap to
match is named with it ("unexplained" when none does).

The NIR paper (Pedersen et al., 2024) compared platforms by the cosine similarity of one layer's activity; here
it is per layer: cos(c_sim, c_ref) of the spike counts per sample and neuron (summed over time), on the samples
the report keeps as evidence. A table is plain rows; `markdown` renders them.
"""
from __future__ import annotations

from typing import Optional

import numpy as np


def table(report) -> list:
    """[{layer, run, reference, mismatches, total, first_divergence, cosine, explained_by}] for every pair."""
    rows = []
    for pair in report.pairs:
        for lc in pair.layers:
            rows.append({"layer": lc.name, "run": pair.a, "reference": pair.b, "mismatches": lc.mismatches,
                         "total": lc.total, "first_divergence": lc.first_divergence,
                         "cosine": cosine(report, pair.a, pair.b, lc.name),
                         "explained_by": _cause(report, pair.a, lc) if lc.mismatches else ""})
    return rows


def _cause(report, label: str, lc) -> str:
    """The trap(s) that the layer's own replay needs to reproduce run `label`, "propagated" if none is needed."""
    from ..diagnose.traps import explain_layer
    run, role = report.evidence.runs.get(label), report.runs.get(label, {}).get("role")
    graph = report.evidence.graphs.get(role)
    if run is None or graph is None or report.evidence.inputs is None:
        return "no evidence"
    x = np.asarray(report.evidence.inputs[:run.samples], np.float64)
    scale = report.inputs.get("input_scale", 1.0) if role == "b" else 1.0
    result = explain_layer(graph, lc.name, run, np.rint(x * scale) if scale != 1 else x)
    if result["as_is"] == 0:
        return "propagated"
    return " + ".join(result["best"][0]) if result["best"] else f"unexplained ({result['as_is']} own)"


def cosine(report, a: str, b: str, layer: str) -> Optional[float]:
    """Cosine similarity of the two runs' spike counts in `layer` (evidence samples), None without evidence."""
    runs = report.evidence.runs
    if a not in runs or b not in runs:
        return None
    ca, cb = (runs[r].layer(layer).spikes.sum(axis=1).astype(np.float64).ravel() for r in (a, b))
    den = float(np.linalg.norm(ca) * np.linalg.norm(cb))
    return float(ca @ cb / den) if den > 0 else (1.0 if not ca.any() and not cb.any() else 0.0)


def markdown(rows: list) -> str:
    head = "| layer | simulator | mismatches | first divergence (t, sample, neuron) | cosine | explained by |"
    lines = [head, "|---|---|---|---|---|---|"]
    for r in rows:
        fd = r["first_divergence"]
        where = "-" if fd is None else f"t={fd['t']}, {fd['sample']}, {tuple(fd['neuron'])}"
        cos = "-" if r["cosine"] is None else f"{r['cosine']:.3f}"
        lines.append(f"| {r['layer']} | {r['run']} | {r['mismatches']}/{r['total']} | {where} | {cos} | "
                     f"{r['explained_by'] or '-'} |")
    return "\n".join(lines)
