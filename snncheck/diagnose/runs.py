"""Diagnoses read off the runs of one network in several backends: timing, disagreement, refused runs.

Pure functions: they read comparisons, lag verdicts and plan facts, and return new Diagnosis objects.
"""
from __future__ import annotations

import numpy as np

from . import Diagnosis

RECIPE = ("give pipeline stage k (each neuron layer and each spiking pool, k = 1 for the layer fed by InputProj) "
          "tick_wait_start=k and delay=1")


def timing(lags: dict, label: str) -> list:
    """A node of pipelined run `label` whose detected lag differs from the expected one, or that matches at no
    lag (a user's own nodes are named in the fix by `diagnose.phrase_for_user`)."""
    out = []
    for layer, lag in lags.items():
        if not lag["anomaly"]:
            continue
        found = lag["detected"]
        if lag.get("early_activity"):
            msg = (f"{label} layer {layer} is already active in the {lag['expected']} step(s) before its input "
                   f"can reach it through the pipeline: it starts too early (tick_wait_start too small), so it "
                   f"integrates empty input")
        elif found is None:
            msg = (f"{label} layer {layer} matches the reference at no time shift (best mismatch "
                   f"{lag['best_mismatch']:.1%}); it is expected {lag['expected']} step(s) late: it does not "
                   "receive its input when the pipeline says it should")
        else:
            msg = f"{label} layer {layer} answers {found} step(s) late, the pipeline expects {lag['expected']}"
        out.append(Diagnosis(
            "timing", layer, "error", msg,
            evidence=dict({k: lag.get(k) for k in ("expected", "detected", "best_mismatch", "mismatch_at_expected",
                                                    "early_activity")}, run=label),
            fix=RECIPE))
    return out


def merge_timing(edge_lags: dict, label: str) -> list:
    """A merge whose inputs arrive at different steps: the offset found per input, 0 when aligned."""
    out = []
    for merge, inputs in edge_lags.items():
        off = [e for e in inputs if e["offset"] not in (0, None)]
        if not off:
            continue
        words = ", ".join(f"from {e['source']} {_steps(e['offset'])}" for e in off)
        out.append(Diagnosis(
            "timing", merge, "error",
            f"{label}: the inputs of merge {merge} do not arrive together: {words}",
            evidence={"run": label, "inputs": inputs},
            fix=("delay the early input by as many steps as it is early (a skip from InputProj is not buffered: "
                 "route it through that many relay neurons, pb.BypassNeuron with tick_wait_start 1, 2, ..., delay 1 "
                 "and one-to-one weight 1)"
                 if any(e["offset"] < 0 for e in off) else RECIPE)))
    return out


def _steps(offset: int) -> str:
    return f"{-offset} step(s) early" if offset < 0 else f"{offset} step(s) late"


def disagreement(pair, exact_required: bool, skip_layers=()) -> list:
    """Mismatches between two runs that nothing else explains: for integer networks any mismatch; for float
    runs, primary flips whose margin exceeds the float32 rounding bound."""
    out = []
    for lc in pair.layers:
        if lc.name in skip_layers or lc.mismatches == 0:
            continue
        primary = lc.primary_explained + lc.primary_unexplained
        if exact_required and primary:
            out.append(Diagnosis(
                "simulator_mismatch", lc.name, "error",
                f"{pair.a} and {pair.b} disagree in {lc.name}: {lc.mismatches} of {lc.total} spikes "
                f"({lc.rate:.2%}), {primary} of them first arising in this layer",
                evidence={"pair": pair.key, "mismatches": lc.mismatches, "first_divergence": lc.first_divergence,
                          "v_max_abs_diff": lc.v_max_abs_diff, "flips": list(lc.flips[:5])},
                fix="compare the layer's parameters in both builds (threshold, reset, bias, weights)"))
        elif lc.primary_unexplained:
            out.append(Diagnosis(
                "simulator_mismatch", lc.name, "error",
                f"{pair.a} and {pair.b} disagree in {lc.name} at {lc.primary_unexplained} spike(s) whose margin "
                "|H - threshold| exceeds float32 rounding",
                evidence={"pair": pair.key, "flips": [f for f in lc.flips if not f["explained"]][:5]},
                fix="the two runs do not compute the same function: check the layer's parameters"))
        elif primary:
            out.append(Diagnosis(
                "float_rounding", lc.name, "info",
                f"{pair.a} and {pair.b}: {lc.primary_explained} spike(s) in {lc.name} flip within float32 rounding "
                f"of the threshold (largest margin {max(f['margin'] for f in lc.flips):.2g}); "
                f"{lc.propagated} more follow from them",
                evidence={"pair": pair.key, "flips": list(lc.flips[:5]), "propagated": lc.propagated}))
    return out


def refused(skipped) -> list:
    """A run its backend refused: left out, and said so with the node and the reason."""
    out = []
    for s in skipped:
        first = s.refusals[0]
        more = f" (and {len(s.refusals) - 1} more)" if len(s.refusals) > 1 else ""
        out.append(Diagnosis(
            "unsupported", first.node, "warning",
            f"{s.run.backend} cannot run {s.run.label}, so it was left out: "
            f"{'node ' + repr(first.node) + ': ' if first.node else ''}{first.reason}{more}",
            evidence={"run": s.run.label, "refusals": [{"node": r.node, "reason": r.reason} for r in s.refusals]},
            fix=f"change the construct {s.run.backend} cannot express, or compare without {s.run.backend}"))
    return out


def downstream(layers: set, order: list) -> set:
    """Layers at or after the first of `layers`: a timing fault explains every mismatch from there on."""
    hits = [order.index(layer) for layer in layers if layer in order]
    return set(order[min(hits):]) if hits else set()


def edge_lags(graph, run, feeds: dict, max_shift: int = 4) -> dict:
    """{merge neuron: [{"source", "offset", "scores"}]}: for every neuron with several terms in an aligned
    pipelined run, the step offset at which it reads each input. Each input in turn is fed to the reference,
    shifted by d steps (the others as recorded), and the offset is the d whose evaluation reproduces the run's own
    record of the merge best; 0 means the inputs arrive together as in a same-step simulator. `feeds`:
    {node: [N, T, ...]} values the run does not record (the deployed input)."""
    from ..backends.reference import evaluate
    out = {}
    recorded = {rec.name: rec.spikes for rec in run.layers}
    for merge in graph.neurons:
        sources = list(dict.fromkeys(t.source for t in graph.terms(merge)))
        fed = [_feed(graph, s, recorded, feeds) for s in sources]
        if len(sources) < 2 or any(f is None for f in fed):
            continue
        base = dict(fed)
        rows = []
        for s, (node, _) in zip(sources, fed):
            scores = {}
            for d in range(-max_shift, max_shift + 1):
                given = dict(base, **{node: _shift(base[node], d)})
                spikes = evaluate(graph, given, exact=True, record_v=False, targets=[merge])[merge][0]
                scores[d] = int(np.sum(spikes != recorded[merge]))
            rows.append({"source": s, "offset": min(scores, key=lambda d: (scores[d], abs(d))), "scores": scores})
        out[merge] = rows
    return out


def _feed(graph, source: str, recorded: dict, feeds: dict):
    """(node to feed, its value) standing for `source`: itself when recorded or given, else (a max pool) what it
    pools; None when neither is known."""
    if source in recorded:
        return source, recorded[source]
    if source in feeds:
        return source, np.asarray(feeds[source])
    ins = graph.inputs_of(source)
    return None if len(ins) != 1 else _feed(graph, ins[0], recorded, feeds)


def _shift(x: np.ndarray, d: int) -> np.ndarray:
    """x delayed by d steps (d < 0: advanced), zeros where nothing was sent."""
    out = np.zeros_like(x)
    t = x.shape[1]
    if d >= 0:
        out[:, d:] = x[:, :t - d]
    else:
        out[:, :t + d] = x[:, -d:]
    return out
