"""Diagnoses read off the runs of one network in several simulators: timing and plain disagreement."""
from __future__ import annotations

from . import Diagnosis


def timing(lags: dict, runner: str = "paibox") -> list:
    """A layer whose detected lag differs from the pipeline's expected lag, or that matches at no lag."""
    out = []
    for layer, lag in lags.items():
        if not lag["anomaly"]:
            continue
        found = lag["detected"]
        if lag.get("early_activity"):
            msg = (f"{runner} layer {layer} is already active in the {lag['expected']} step(s) before its input "
                   f"can reach it through the pipeline: it starts too early (tick_wait_start too small), so it "
                   f"integrates empty input")
        elif found is None:
            msg = (f"{runner} layer {layer} matches the reference at no time shift (best mismatch "
                   f"{lag['best_mismatch']:.1%}); it is expected {lag['expected']} step(s) late: it does not "
                   "receive its input when the pipeline says it should")
        else:
            msg = f"{runner} layer {layer} answers {found} step(s) late, the pipeline expects {lag['expected']}"
        out.append(Diagnosis(
            "timing", layer, "error", msg,
            evidence={k: lag.get(k) for k in ("expected", "detected", "best_mismatch", "mismatch_at_expected",
                                               "early_activity")},
            fix="give pipeline stage k (each neuron layer and each spiking pool, k = 1 for the layer fed by "
                "InputProj) tick_wait_start=k and delay=1"))
    return out


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
                          "v_max_abs_diff": lc.v_max_abs_diff, "flips": lc.flips[:5]},
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
                evidence={"pair": pair.key, "flips": lc.flips[:5], "propagated": lc.propagated}))
    return out
