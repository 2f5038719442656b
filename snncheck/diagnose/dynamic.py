"""Diagnoses read off the runs of A (float) and B (integer): where B's own error lives and what it looks like.

- *Isolated mode* (as TFLite's quantization debugger): every spiking layer of B is fed the very spikes that A's run
  produced at that layer's input, so its mismatches are its own and not what earlier layers propagate into it. The
  yardstick is the same layer requantized correctly at B's own scale (round-to-nearest, saturated): a layer that
  misses far more spikes than that has an error beyond quantization.
- Membranes before the first own flip: the slope of B's charged potential against A's is the layer's effective
  scale; it should equal the threshold ratio theta_B / theta_A.
- Reset signature: after a spike, a hard reset leaves exactly v_reset, a soft one leaves H - theta.
- Layers that fall silent (or saturate) in B while A's fire, and samples that end without a single output spike.

Pieces of a network (`ir.segments`) run with the reference runner's `run_segment`.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from .. import ir
from ..runners.reference import run_segment
from . import Diagnosis

EXCESS_FACTOR = 3.0        # isolated mismatches this many times the requantized layer's ...
EXCESS_ABS = 0.005         # ... and this much above it (fraction of all spikes) are beyond quantization
EXCESS_MIN = 10            # ... and by at least this many spikes (a few flips in a small layer are noise)
SILENT_RATE = 0.01         # A fires at least this often where B never fires: silent
SATURATED = 0.95           # B fires this often where A fires at most half as often: saturated
HARD_SIGNATURE = 0.99      # share of post-spike potentials equal to v_reset that says "hard reset"


# ------------------------------------------------------------------------------------------- building blocks
def segment_inputs(net: ir.Network, run, inputs: np.ndarray) -> dict:
    """{neuron name: the input of its segment in `run`}: `inputs` for the first, the previous layer's spikes after."""
    out, prev = {}, inputs
    for name, _ in ir.segments(net):
        out[name] = prev
        prev = run.layer(name).spikes
    return out


# ------------------------------------------------------------------------------------------- isolated mode
def isolated(float_net: ir.Network, int_net: ir.Network, a_run, inputs: np.ndarray, input_scale: float,
             scales: dict) -> dict:
    """Per spiking layer: B's layer fed A's own input spikes (the deployed input for the first layer), against
    A's spikes; beside it, as yardstick, the same layer requantized correctly at a scale B may have meant
    (`scales`: {layer: B's fitted weight scale}), and the membrane slope of B against A up to each neuron's first
    own flip."""
    from ..convert import scale_segment
    folded_a = ir.fold_batchnorm(float_net)
    segs_b = dict(ir.segments(ir.fold_batchnorm(int_net)))
    deployed = np.rint(np.asarray(inputs, np.float64) * input_scale)
    segs_a = dict(ir.segments(folded_a))
    out, s_in = {}, float(input_scale)
    for name, x in segment_inputs(folded_a, a_run, deployed).items():
        seg_a, rec = segs_a[name], a_run.layer(name)
        spikes, _, h = run_segment(segs_b[name], x)
        theta_ratio = float(segs_b[name][-1].threshold) / float(seg_a[-1].threshold)
        total = int(rec.spikes.size)
        own = int(np.sum(spikes != rec.spikes))
        yard = None
        # the yardstick is the best requantization; stop as soon as one explains B's own mismatches
        for s_w in _plausible_scales(seg_a, scales.get(name), theta_ratio / s_in):
            n = int(np.sum(run_segment(scale_segment(seg_a, s_w, s_in), x, record_v=False)[0] != rec.spikes))
            yard = n if yard is None else min(yard, n)
            if not _beyond(own, yard, total):
                break
        slope = _slope(rec, spikes, h)
        out[name] = {
            "total": total, "mismatches": own, "rate": own / total, "requantized_mismatches": yard,
            "requantized_rate": yard / total, "firing_rate_a": float(rec.spikes.mean()),
            "firing_rate_b": float(spikes.mean()), "membrane_slope": slope, "threshold_ratio": theta_ratio,
            "slope_over_threshold_ratio": None if slope is None else slope / theta_ratio,
            "beyond_quantization": _beyond(own, yard, total),
        }
        s_in = 1.0
    return out


def _beyond(own: int, yard: int, total: int) -> bool:
    return own > EXCESS_FACTOR * yard and own - yard > max(EXCESS_ABS * total, EXCESS_MIN)


def _plausible_scales(seg_a: list, fitted, from_threshold: float) -> list:
    """Weight scales a correct conversion of this layer may have used: the one fitted to B's weights, the one
    B's threshold implies, and the full int8 range; the yardstick is the best of them."""
    from ..convert import rule_max
    syn = next(l for l in seg_a if isinstance(l, ir.SYNAPSE_TYPES))
    found = [s for s in (fitted, from_threshold, rule_max(syn.weight, syn.bias)) if s and np.isfinite(s) and s > 0]
    return list(dict.fromkeys(found))


def _slope(rec, spikes_b: np.ndarray, h_b: np.ndarray):
    """Least-squares slope of B's charged potential against A's, over each neuron's steps up to its first flip."""
    if rec.h is None:
        return None
    differ = spikes_b != rec.spikes
    flipped_before = np.zeros_like(differ)
    np.logical_or.accumulate(differ[:, :-1], axis=1, out=flipped_before[:, 1:])
    a, b = rec.h.astype(np.float64), h_b.astype(np.float64)
    den = float(np.sum(a * a, where=~flipped_before))
    return float(np.sum(a * b, where=~flipped_before) / den) if den > 0 else None


# ------------------------------------------------------------------------------------------- signatures
def reset_signature(rec, min_spikes: int = 20):
    """"hard" if (almost) every post-spike potential is one value (v_reset), "soft" if they spread (H - theta),
    None with too few spikes or no recorded potential; and the share at the most common value."""
    if rec.v is None:
        return None, None
    post = rec.v[rec.spikes]
    if post.size < min_spikes:
        return None, None
    _, counts = np.unique(post, return_counts=True)
    share = float(counts.max() / post.size)
    return ("hard" if share >= HARD_SIGNATURE else "soft"), share


def _reset_diagnoses(a_run, b_runs: list) -> list:
    out = []
    for rec in a_run.layers:
        mode_a, share_a = reset_signature(rec)
        for run in b_runs:
            mode_b, share_b = reset_signature(run.layer(rec.name))
            if mode_a and mode_b and mode_a != mode_b:
                out.append(Diagnosis(
                    "reset_mode", rec.name, "error",
                    f"{rec.name} resets {mode_a} in {a_run.label} but {mode_b} in {run.label}: after a spike "
                    f"{share_a:.0%} vs {share_b:.0%} of the potentials sit at one value (hard reset: all at v_reset; "
                    "soft: H - theta, spread)",
                    evidence={"layer": rec.name, "run_a": a_run.label, "run_b": run.label,
                              "share_at_reset_a": share_a, "share_at_reset_b": share_b},
                    fix="give the layer the same reset in both (PAIBox: reset_v=0 as a Python int for a hard reset; "
                        "SpikingJelly: v_reset=None for a soft one)"))
                break
    return out


def _silence(a_run, b_run, iso: dict) -> list:
    """The first layer of B's run that never fires (or always fires) where A's fires normally."""
    for rec in a_run.layers:
        rate_a, rate_b = float(rec.spikes.mean()), float(b_run.layer(rec.name).spikes.mean())
        silent = rate_a >= SILENT_RATE and rate_b < 0.05 * rate_a
        saturated = rate_b >= SATURATED and rate_a <= 0.5 * rate_b
        if not (silent or saturated):
            continue
        own = iso.get(rec.name, {}).get("firing_rate_b")
        inherited = own is not None and not (own < 0.05 * rate_a if silent else own >= SATURATED)
        word = "falls silent" if silent else "saturates"
        return [Diagnosis(
            "silent_layer", rec.name, "warning" if inherited else "error",
            f"{rec.name} {word} in {b_run.label}: firing rate {rate_b:.2%} against {rate_a:.2%} in {a_run.label}; "
            f"{_no_output(a_run, b_run)}"
            + (f"; fed A's own input it fires at {own:.2%}, so its input from earlier layers does this"
               if inherited else ""),
            evidence={"layer": rec.name, "firing_rate_a": rate_a, "firing_rate_b": rate_b, "isolated_rate_b": own},
            fix="look at the first layer with an error above" if inherited else
            "check this layer's threshold against its weights and bias scale")]
    return []


def _no_output(a_run, b_run) -> str:
    share = [float(np.mean(run.layers[-1].spikes.reshape(run.layers[-1].spikes.shape[0], -1).sum(axis=1) == 0))
             for run in (a_run, b_run)]
    return f"samples without a single output spike: {share[0]:.1%} in A, {share[1]:.1%} in B"


# ------------------------------------------------------------------------------------------- all together
def analyse(float_net: ir.Network, int_net: ir.Network, results: dict, inputs: np.ndarray, input_scale: float,
            scales: dict) -> tuple:
    """(extras, [Diagnosis]) from the runs of A and B; `scales`: {spiking layer: fitted weight scale of B}."""
    a_run = results.get("spikingjelly:a") or results.get("reference:a")
    b_ref = results.get("reference:b")
    if a_run is None or b_ref is None:
        return {}, []
    iso = isolated(float_net, int_net, a_run, inputs, input_scale, scales)
    found = _reset_diagnoses(a_run, [r for label, r in results.items() if label.endswith(":b")])
    named = {d.layer: d for d in found}
    for name, st in iso.items():
        if not st["beyond_quantization"]:
            continue
        d = _own_error(name, st)
        if name in named:              # the reset signature already names the cause: its evidence
            named[name].evidence["isolated"] = d.evidence
        else:
            found.append(d)
    found += _silence(a_run, b_ref, iso)
    first = next((n for n, st in iso.items() if st["beyond_quantization"]), None)
    return {"isolated": iso, "first_own_error": first}, found


def _own_error(name: str, st: dict) -> Diagnosis:
    return Diagnosis(
        "quantization_error", name, "error",
        f"{name}, fed A's own input spikes, misses {st['rate']:.2%} of A's spikes; requantized correctly it "
        f"would miss {st['requantized_rate']:.2%}: the error is this layer's own, beyond quantization "
        f"(membrane slope {_fmt(st['membrane_slope'])} against threshold ratio {st['threshold_ratio']:.4g})",
        evidence=dict(layer=name, **{k: st[k] for k in ("rate", "requantized_rate", "membrane_slope",
                                                          "threshold_ratio", "slope_over_threshold_ratio")}),
        fix="compare this layer's weights, bias and threshold with A's times the layer's scale")


def merge(primary: list, secondary: list, order: list) -> list:
    """Dynamic findings on a layer that already has a static error join that diagnosis as evidence; a warning
    downstream of an error says so; the rest are kept."""
    errors = {d.layer: d for d in primary if d.severity == "error"}
    first_error = min((order.index(l) for l in errors if l in order), default=None)
    out = []
    for d in secondary:
        if d.layer in errors:
            errors[d.layer].evidence.setdefault("runs", {})[d.code] = d.evidence
        else:
            if first_error is not None and d.layer in order and order.index(d.layer) > first_error \
                    and d.code == "silent_layer":
                d = dataclasses.replace(d, severity="warning",
                                        message=d.message + f" (downstream of the error in {order[first_error]})")
            out.append(d)
    return out


def scaled_membrane_diff(a_run, b_run, scales: dict) -> dict:
    """{layer: max |v_B / k - v_A|}: B's membranes brought back to A's units with the layer's scale k."""
    out = {}
    for rec in a_run.layers:
        k = scales.get(rec.name)
        other = b_run.layer(rec.name)
        if k and rec.v is not None and other.v is not None:
            out[rec.name] = float(np.max(np.abs(other.v / k - rec.v)))
    return out


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.4g}"
