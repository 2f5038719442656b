"""Static diagnosis: the float network A against its integer version B, parameters only, nothing run.

Per spiking layer (a neuron and the terms of its synaptic input, `convert.weighted_terms`), with k_w the fitted
scale of B's weights against A's folded weights and a the amplitude of their source (the input scale for the
input, 1 for spikes): the layer scale is k = a * k_w of its main synapse (the one with the most weights), and B's
bias should be k times A's bias, B's threshold k times A's. The parameter whose scale is the odd one out is the
bug. Before that, the weights themselves are checked: do they match A's weights at all, or better A's weights
before BatchNorm folding, permuted HWC instead of CHW after a Flatten, or transposed? Wrapped (sign-flipped)
large weights, residuals one-sided toward zero (truncation) and the reset mode are checked too. In a merge every
other synapse gets its own weight fit and must carry the same k, and an identity shortcut must carry the scale
the layer's threshold implies (the deployed checkpoint format, `snncheck.checkpoint`). Per-layer statistics:
scale, SQNR, RMSE over the quantization step (0.29 for round-to-nearest, 0.58 for truncation), clipped weights,
sign flips.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..convert import fit_scale, prepare, primary, weighted_terms
from ..errors import InputError
from ..graph import Graph, folded_from
from ..graph import primitives as P
from . import Diagnosis, channels

INT8 = 127
BIAS_TOL = 0.10            # relative deviation of the bias scale tolerated beyond rounding
THRESHOLD_TOL = 0.005      # same for the threshold (a single number, rounded once)
TRUNCATION_OFFSET = -0.25  # mean residual toward zero (in steps) that says "truncated"; rounding gives ~0
STRUCTURAL_GAIN = 4.0      # an alternative reading of A's weights must explain B this many times better
RANGE_USED = 0.5           # weights using less than this share of int8 are the odd one out, not bias/threshold
SCALE_TOL = 0.01           # relative disagreement of two synapses' scales in one merge tolerated beyond their fits
SUSPECT_SIGMAS = 2.0       # a threshold this many standard errors off, within the band: suspect (warning)
CLIP_ALLOWANCE = 0.25      # how far above the saturation point a rule may put a scale that no unsaturated weight bounds

__all__ = ["Fit", "analyse", "fit", "fit_scale", "flattened_shape"]


@dataclass(frozen=True)
class Fit:
    """B's integer values against s * A's float values."""
    scale: float
    offset: float          # mean residual toward zero, in steps (truncation: about -0.5)
    sigma_rel: float       # relative standard error of the scale
    rmse: float            # RMSE of b - scale*a over the entries that did not saturate, in steps
    sqnr_db: float
    clipped: int
    wrapped: int           # sign-flipped entries among those beyond the int8 range
    sign_flips: int        # all significant entries whose sign differs
    unexplained: float     # share of B's energy that no single scale of A explains (1 - cos^2)
    feasible: Optional[tuple] = None   # (lo, hi): every scale that rounds A to B exactly, if any does


def fit(b_int: np.ndarray, a: np.ndarray) -> Fit:
    """Robust fit: a median ratio finds the scale among wrapped or clipped outliers, then least squares on the
    entries within a step of it, with a sign(a) term that captures truncation's one-sided residuals."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b_int, np.float64).ravel()
    sat = np.abs(b) >= INT8
    usable = ~sat & (a != 0)
    s0, inl = _best(a, b, usable, _candidates(a, b, usable))
    if inl.sum() < 3:
        inl = usable if usable.sum() >= 1 else np.ones_like(usable)
    a_in, b_in = a[inl], b[inl]
    x = np.stack([a_in, np.sign(a_in)], axis=1)
    (s, c), *_ = np.linalg.lstsq(x, b_in, rcond=None) if inl.sum() >= 2 else ((s0, 0.0),)
    feasible = _feasible(a, b, sat)
    if c > TRUNCATION_OFFSET or not np.isfinite(s) or s == 0:
        s = fit_scale(b_in, a_in) or s0      # no one-sided offset: the plain fit has the smaller variance
        if feasible and np.any(a):               # of the scales that explain B exactly, one that clips nothing
            s = float(np.clip(s, feasible[0], max(feasible[0], min(feasible[1], (INT8 + 0.5) / np.abs(a).max()))))
    res = b - s * a
    kept = ~sat
    rmse = float(np.sqrt(np.mean(res[kept] ** 2))) if kept.any() else 0.0
    energy = float(np.sum((s * a_in) ** 2))
    over = np.abs(s * a) > INT8 + 0.5
    flips = (np.sign(b) != np.sign(a)) & (np.abs(s * a) >= 1)
    cos2 = float((a @ b) ** 2 / ((a @ a) * (b @ b))) if (a @ a) > 0 and (b @ b) > 0 else 0.0
    return Fit(scale=float(s), offset=float(c),
               sigma_rel=float(np.sqrt(np.mean(res[inl] ** 2)) / np.sqrt(energy)) if energy > 0 else 1.0,
               rmse=rmse, sqnr_db=_db(np.sum((s * a) ** 2), np.sum(res ** 2)),
               clipped=int(np.sum(over & sat & ~flips)), wrapped=int(np.sum(over & flips)),
               sign_flips=int(flips.sum()), unexplained=1.0 - cos2, feasible=feasible)


def _best(a, b, usable, candidates) -> tuple:
    """(s0, its inliers): the first of the candidate scales that the most usable entries agree with (within 1.5
    steps), as max(candidates, key=that count) picks it, with the entries it counted."""
    best = None
    for s in candidates:
        inl = usable & (np.abs(b - s * a) <= 1.5)
        count = np.sum(inl)
        if best is None or count > best[0]:
            best = count, s, inl
    return best[1], best[2]


def _feasible(a, b, sat):
    """The interval of scales s with round(s*a) = b for every unsaturated entry and |s*a| >= 126.5 for the
    saturated ones (None if empty): with few weights, many scales explain B equally well. Per entry the bounds
    are (b -+ 0.5) / a, the lower one b - 0.5 * sign(a) (exactly b - 0.5 or b + 0.5); only their extremes are
    kept."""
    nz = a != 0
    keep = nz & ~sat
    a1, half = np.where(nz, a, 1), 0.5 * np.sign(a)
    lo = float(np.max((b - half) / a1, where=keep, initial=-np.inf))
    hi = float(np.min((b + half) / a1, where=keep, initial=np.inf))
    floor = (INT8 - 0.5) / np.abs(a[nz & sat & (np.sign(a) == np.sign(b))])
    some = bool(keep.any())
    low = max(lo if some else 0.0, float(floor.max()) if floor.size else 0.0)
    high = hi if some else low * (1 + CLIP_ALLOWANCE)   # only saturated weights: no upper bound
    return (low, high) if 0 < low <= high else None


# ------------------------------------------------------------------------------------------------ per layer
def analyse(float_graph: Graph, int_graph: Graph, input_scale: float = 1.0):
    """(stats {neuron: dict}, [Diagnosis]) for A (float, BatchNorm folded or not) against B (integer)."""
    a, b = prepare(float_graph), prepare(int_graph)
    stats, found = {}, []
    for n in a.neurons:
        if n not in b.nodes or not P.is_neuron(b.nodes[n]):
            continue
        try:
            terms = weighted_terms(a, n, input_scale)
        except InputError:       # no integer form (convert refuses it): nothing to compare
            continue
        if not _comparable(a, b, primary(a, terms).weight):
            continue
        st, diags = _layer(float_graph, a, b, n, terms)
        stats[n] = st
        found += diags
    return stats, found


@dataclass(frozen=True)
class _Ctx:
    """What the checks of one layer share."""
    float_graph: Graph      # A as given (BatchNorm unfolded)
    a: Graph                # A prepared (folded, shortcuts explicit)
    b: Graph                # B prepared
    neuron: str


def _layer(float_graph: Graph, a: Graph, b: Graph, n: str, terms: list):
    cx = _Ctx(float_graph, a, b, n)
    main = primary(a, terms)
    syn, s_in = main.weight, main.amplitude
    syn_a, syn_b, na, nb = a.nodes[syn], b.nodes[syn], a.nodes[n], b.nodes[n]
    where = dict(layer=n, synapse=syn)
    f = fit(syn_b.weight, syn_a.weight)
    range_used = _range_used(syn_b)
    k = s_in * f.scale
    st = {"synapse": syn, "scale": f.scale, "input_scale": s_in, "expected_scale": k, **_fit_stats(f),
          "wrapped": f.wrapped, "weights": int(syn_a.weight.size), "range_used": range_used,
          "scale_sigma_rel": f.sigma_rel}
    diags = _weights(cx, main, syn_a, syn_b, f, where)
    diags += _reset(na, nb, where)
    if any(d.code != "reset_mode" for d in diags):
        return st, diags                       # scales mean nothing while the weights are the wrong ones
    bias = _bias_ratio(syn_a, syn_b, k)
    thr = float(nb.threshold) / (k * float(na.threshold)) if na.threshold and k else np.inf
    st.update(bias_ratio=None if bias is None else bias[0], threshold_ratio=thr)
    scale_diags = _scales(syn, n, syn_a, na, nb, k, s_in, main.source == a.input, bias, thr, f, range_used, where)
    diags += scale_diags
    # the layer scale the other inputs of a merge must carry: the threshold's when the main weights are the odd one
    weights_odd = any(d.code == "weight_scale" for d in scale_diags)
    k_ref = float(nb.threshold) / float(na.threshold) if weights_odd and na.threshold else k
    others = list({t.weight: t for t in terms if t.weight != main.weight}.values())   # SEW: one conv, two terms
    if others:
        st["synapses"], st["shortcuts"] = {syn: _fit_stats(f)}, {}
        for t in others:
            if t.is_shortcut(a):
                st["shortcuts"][t.weight], more = _shortcut(cx, t, k_ref)
            elif _comparable(a, b, t.weight):
                st["synapses"][t.weight], more = _other_synapse(cx, t, f, k_ref)
            else:
                continue
            diags += more
    if not diags and f.rmse > 0.7:
        diags.append(Diagnosis(
            "quantization_error", n, "warning",
            f"{syn}: the weights differ from {f.scale:.4g} x the float weights by an RMSE of {f.rmse:.2f} "
            "step; round-to-nearest gives 0.29",
            evidence=dict(where, rmse_over_step=f.rmse, sqnr_db=f.sqnr_db),
            fix=f"re-quantize {syn} from the folded float weights with round-to-nearest"))
    if f.clipped > 0.01 * syn_a.weight.size:
        diags.append(_clipped(f, syn, syn_a, where))
    return st, diags


def _comparable(a: Graph, b: Graph, syn: str) -> bool:
    return syn in b.nodes and isinstance(b.nodes[syn], type(a.nodes[syn])) and \
        np.shape(b.nodes[syn].weight) == np.shape(a.nodes[syn].weight)


def _range_used(syn_b) -> float:
    w = np.asarray(syn_b.weight)
    return float(np.abs(w).max()) / INT8 if w.size else 0.0


def _fit_stats(f: Fit) -> dict:
    return {"scale": f.scale, "sqnr_db": f.sqnr_db, "rmse_over_step": f.rmse, "rounding_offset": f.offset,
            "clipped": f.clipped, "sign_flips": f.sign_flips}


def _weights(cx: _Ctx, term, syn_a, syn_b, f: Fit, where) -> list:
    """The checks of one synapse's weights alone: another reading of A's weights, wrapping, truncation."""
    found = _structural(cx, term, syn_a, syn_b, f, where)
    found = found or channels.grid_diagnosis(cx.neuron, term.weight, syn_b.weight, syn_a.weight, where)
    if found:
        return found
    if f.wrapped:
        found.append(_overflow(f, term.weight, syn_a, where))
    nonzero = int(np.count_nonzero(syn_a.weight))
    # truncation is one-sided residuals that no single scale rounds away (few weights: some scale always does)
    if f.feasible is None and f.offset < TRUNCATION_OFFSET and abs(f.offset) > 4 * 0.29 / np.sqrt(max(1, nonzero)):
        found.append(Diagnosis(
            "rounding", cx.neuron, "error",
            f"the weights of {term.weight} were truncated toward zero, not rounded: their residuals against "
            f"{f.scale:.4g} x the float weights sit {f.offset:+.2f} step toward zero on average (rounding: 0), "
            f"RMSE {f.rmse:.2f} step (rounding: 0.29)",
            evidence=dict(where, rounding_offset=f.offset, rmse_over_step=f.rmse, scale=f.scale),
            fix=f"quantize {term.weight} with round-to-nearest and saturation (np.clip(np.rint(w * s), -128, 127)), "
                "not .to(torch.int8) or int()"))
    return found or channels.channel_diagnosis(cx.neuron, term.weight, syn_b.weight, syn_a.weight, f.scale,
                                               f.rmse, where)


def _clipped(f: Fit, syn: str, syn_a, where) -> Diagnosis:
    return Diagnosis(
        "weight_overflow", where["layer"], "info",
        f"{f.clipped} of {syn_a.weight.size} weights of {syn} saturate at the int8 range "
        f"(scale {f.scale:.4g}); clipping is a choice of some conversion rules",
        evidence=dict(where, clipped=f.clipped, scale=f.scale),
        fix=f"none if the rule clips on purpose (percentile, search); else quantize {syn} with a scale "
            f"of at most {_full_range(syn_a):.4g}")


# ------------------------------------------------------------------------------------------------ merges
def _other_synapse(cx: _Ctx, t, main_fit: Fit, k_ref: float):
    """A second synapse into a merge: its own weight checks, then its scale and bias against the layer's."""
    syn_a, syn_b = cx.a.nodes[t.weight], cx.b.nodes[t.weight]
    where = dict(layer=cx.neuron, synapse=t.weight)
    f = fit(syn_b.weight, syn_a.weight)
    found = _weights(cx, t, syn_a, syn_b, f, where)
    if found:
        return _fit_stats(f), found
    k_t = t.amplitude * f.scale
    ratio = k_t / k_ref if k_ref else np.inf
    tol = max(4 * (f.sigma_rel + main_fit.sigma_rel), SCALE_TOL)
    exact = f.feasible is not None and f.feasible[0] * t.amplitude <= k_ref * (1 + SCALE_TOL) and \
        k_ref * (1 - SCALE_TOL) <= f.feasible[1] * t.amplitude
    if abs(ratio - 1) > tol and not exact:
        found.append(Diagnosis(
            "weight_scale", cx.neuron, "error",
            f"the weights of {t.weight} carry {_ratio_words(ratio)} the scale of the other inputs of {cx.neuron} "
            f"(scale {k_t:.6g} against {k_ref:.6g}): every synapse into one neuron layer shares its scale",
            evidence=dict(where, weight_scale=f.scale, input_scale=t.amplitude, expected_scale=k_ref,
                          factor=_factor(1 / ratio), range_used=_range_used(syn_b)),
            fix=f"{_scale_words(1 / ratio, 'the weights of ' + t.weight)} (re-quantize them at the layer's scale "
                f"{k_ref:.6g})"))
    bias = _bias_ratio(syn_a, syn_b, k_ref)
    if bias is not None and not bias[1]:
        found.append(_bias_diagnosis(t.weight, cx.neuron, bias, k_ref, False, t.amplitude, (),
                                     dict(where, expected_scale=k_ref, bias_ratio=bias[0]), syn_a))
    if f.clipped > 0.01 * syn_a.weight.size:
        found.append(_clipped(f, t.weight, syn_a, where))
    return dict(_fit_stats(f), bias_ratio=None if bias is None else bias[0]), found


def _shortcut(cx: _Ctx, t, k_ref: float):
    """An identity shortcut: B's factor against A's factor at the merge's scale (threshold_B / threshold_A, as the
    deployed checkpoint format says, or the scale of the layer's weights)."""
    factor_a = float(cx.a.nodes[t.weight].factor)
    node_b = cx.b.nodes.get(t.weight)
    factor_b = float(node_b.factor) if isinstance(node_b, P.Scale) else None
    na, nb = cx.a.nodes[cx.neuron], cx.b.nodes[cx.neuron]
    by_threshold = factor_a * float(nb.threshold) / float(na.threshold) / t.amplitude if na.threshold else None
    by_weights = factor_a * k_ref / t.amplitude
    st = {"factor": factor_b, "expected": by_threshold if by_threshold is not None else by_weights}
    if factor_b is None:
        return st, []

    def near(want):
        return want is not None and abs(factor_b - want) <= 0.5 + SCALE_TOL * abs(want)
    if near(by_threshold) or near(by_weights):
        return st, []
    want = int(np.rint(st["expected"]))
    return st, [Diagnosis(
        "weight_scale", cx.neuron, "error",
        f"the identity shortcut {t.weight} into {cx.neuron} has factor {factor_b:g}, but the layer's scale implies "
        f"{st['expected']:.4g} (threshold {float(nb.threshold):g} / A's threshold {float(na.threshold):g}): it is "
        "not deployed at the scale of the layer it feeds",
        evidence=dict(layer=cx.neuron, synapse=t.weight, factor_b=factor_b, expected_factor=st["expected"],
                      expected_scale=k_ref, factor=want / factor_b if factor_b else None),
        fix=f"set the factor of {t.weight} to {want} (an identity shortcut is deployed at the scale of the layer "
            "it feeds: vthr / threshold_A)")]


# ------------------------------------------------------------------------------------------------ weights
def _structural(cx: _Ctx, term, syn_a, syn_b, f: Fit, where) -> list:
    """B's weights explained far better by another reading of A's weights than by A's folded weights."""
    if f.unexplained <= 1e-3:        # A's own weights explain B: no other reading can do far better (no fits)
        return []
    for code, label, alt, fix in _alternatives(cx, term, syn_a):
        g = fit(syn_b.weight, alt)
        if g.unexplained * STRUCTURAL_GAIN < f.unexplained:
            return [Diagnosis(
                code, cx.neuron, "error",
                f"the weights of {term.weight} are {label}: they match that reading of the float weights "
                f"(unexplained energy {g.unexplained:.2%}) far better than the folded float weights "
                f"({f.unexplained:.2%})",
                evidence=dict(where, unexplained=f.unexplained, unexplained_alternative=g.unexplained,
                              scale_alternative=g.scale),
                fix=fix)]
    return []


def _alternatives(cx: _Ctx, term, syn_a):
    """(code, what B's weights would be, A's weights read that way, fix) for the layer's known mix-ups."""
    name = term.weight
    w = np.asarray(syn_a.weight, np.float64)
    bn = folded_from(cx.float_graph).get(name)
    if bn is not None:
        yield ("bn_not_folded", f"the weights from before folding BatchNorm {bn}",
               cx.float_graph.nodes[name].weight, f"fold {bn} into {name} (W' = W*gamma/sqrt(var+eps), "
               f"b' = (b-mean)*gamma/sqrt(var+eps)+beta) before quantizing, and carry the folded bias")
    if isinstance(syn_a, P.Conv2d) and w.shape[2] * w.shape[3] > 1:
        for label, kernel in _orientations(w):
            yield ("kernel_orientation", f"A's kernels {label}", kernel,
                   f"export {name}'s kernels as torch stores them (OIHW, cross-correlation), not {label}")
    if isinstance(syn_a, P.Linear):
        shape = flattened_shape(cx.a, term)
        if shape is not None:
            c, h, wd = shape
            yield ("flatten_order", "in HWC order (channels last) while the flattened input is CHW",
                   w.reshape(w.shape[0], c, h, wd).transpose(0, 2, 3, 1).reshape(w.shape[0], -1),
                   f"permute the columns of {name} from HWC to CHW order: "
                   f"w.reshape(out, {h}, {wd}, {c}).transpose(0, 3, 1, 2).reshape(out, -1)")
        yield ("transposed_weights", "transposed (stored in PAIBox FullConn's (in, out) layout)",
               w.T.reshape(w.shape), f"store {name}.weight as (out, in), torch's Linear layout "
                                     "(PAIBox's FullConn takes its transpose)")


def _orientations(w: np.ndarray):
    """(label, A's kernels read that way) for the rotations and transposes an exporter may apply."""
    yield "rotated by 180 degrees (convolution taken for cross-correlation)", w[..., ::-1, ::-1]
    if w.shape[2] == w.shape[3]:
        yield "transposed (H and W swapped)", w.transpose(0, 1, 3, 2)
        yield "rotated by 90 degrees", np.rot90(w, 1, axes=(2, 3))
        yield "rotated by 270 degrees", np.rot90(w, 3, axes=(2, 3))


def flattened_shape(graph: Graph, term) -> Optional[tuple]:
    """(C, H, W) entering the Flatten on a term's path before its synapse, if C > 1 and H*W > 1."""
    for n in term.path[:term.path.index(term.weight)]:
        if isinstance(graph.nodes[n], P.Flatten):
            shape = graph.shapes[graph.inputs_of(n)[0]]
            if len(shape) == 3 and shape[0] > 1 and shape[1] * shape[2] > 1:
                return tuple(shape)
    return None


def _overflow(f: Fit, syn: str, syn_a, where) -> Diagnosis:
    return Diagnosis(
        "weight_overflow", where["layer"], "error",
        f"{f.wrapped} weights of {syn} wrapped around the int8 range: at scale {f.scale:.4g} they exceed "
        f"127 in magnitude and came out with the opposite sign ({f.sign_flips} sign flips in all)",
        evidence=dict(where, wrapped=f.wrapped, sign_flips=f.sign_flips, scale=f.scale, clipped=f.clipped),
        fix=f"saturate instead of wrapping (np.clip(np.rint(w * s), -128, 127); .to(torch.int8) wraps), or use "
            f"a scale of at most {_full_range(syn_a):.4g} for {syn}")


# ------------------------------------------------------------------------------------------------ scales
def _bias_ratio(syn_a, syn_b, k):
    """(B's bias scale / k, whether it is consistent) or None when A has no bias to compare."""
    a = None if syn_a.bias is None else np.asarray(syn_a.bias, np.float64)
    if a is None or not np.any(a):
        return None
    b = np.zeros_like(a) if syn_b.bias is None else np.asarray(syn_b.bias, np.float64)
    ratio = float(a @ b / (a @ a)) / k
    rms = float(np.sqrt(np.mean((k * a) ** 2)))
    return ratio, abs(ratio - 1) <= BIAS_TOL + 1.0 / max(rms, 1e-12), syn_b.bias is not None


def _scales(syn: str, n: str, syn_a, na, nb, k, s_in, first, bias, thr, f: Fit, range_used, where) -> list:
    """The odd one out among weights, bias, threshold (and input scale, first layer)."""
    theta_a = float(na.threshold)
    lo, hi = threshold_interval(theta_a, k, s_in, f)
    theta_ok = lo <= float(nb.threshold) <= hi
    bias_ok = bias is None or bias[1]
    if theta_ok and bias_ok:
        return _suspect_threshold(syn, n, na, nb, k, f, where)
    ev = dict(where, weight_scale=f.scale, input_scale=s_in, expected_scale=k, threshold_ratio=thr,
              bias_ratio=None if bias is None else bias[0], threshold_a=float(na.threshold),
              threshold_b=float(nb.threshold), range_used=range_used)
    want_theta = int(max(1, round(k * float(na.threshold))))
    snap = (s_in,) if first else ()
    together = not theta_ok and bias is not None and not bias_ok and abs(bias[0] / thr - 1) <= BIAS_TOL
    # a first layer with no bias whose threshold misses exactly the input scale: the input scale was forgotten
    together = together or (first and bias is None and not theta_ok and s_in != 1 and abs(s_in * thr - 1) < 0.05)
    if (together or (bias is None and not theta_ok)) and range_used < RANGE_USED:
        return [Diagnosis(
            "weight_scale", n, "error",
            f"the weights of {syn} carry {_ratio_words(1 / thr)} the scale that its "
            f"{'bias and threshold' if bias is not None else 'threshold'} imply (weights use only "
            f"{range_used:.0%} of the int8 range): they look exported before normalisation",
            evidence=dict(ev, factor=_factor(thr)),
            fix=f"{_scale_words(thr, 'the weights of ' + syn)} (re-quantize them from "
                "the folded, normalised float weights with the layer's scale)")]
    if together and first:
        implied = s_in * thr
        what = "the bias and threshold" if bias is not None else "the threshold"
        if abs(implied - 1) < 0.05 and s_in != 1:
            msg = (f"{what} of the first layer ({syn}, {n}) ignore the input scale {s_in:g}: "
                   f"{_ratio_words(thr, snap)} what input multiplied by {s_in:g} needs")
            target = f"the bias of {syn} and the threshold of {n}" if bias is not None else f"the threshold of {n}"
            fix = (f"{_scale_words(1 / thr, target, snap)} (threshold {want_theta}), i.e. convert with "
                   f"input_scale={s_in:g}")
        else:
            msg = (f"{what} of the first layer ({syn}, {n}) expect the input "
                   f"multiplied by {implied:.4g}, but it is multiplied by {s_in:g}")
            fix = (f"feed round(x * {implied:.4g}) (--input-scale {implied:.4g}), or re-convert with "
                   f"input_scale={s_in:g}")
        return [Diagnosis("input_scale", n, "error", msg, fix=fix,
                          evidence=dict(ev, implied_input_scale=implied, factor=_factor(1 / thr, snap)))]
    out = []
    if bias is not None and not bias_ok:
        out.append(_bias_diagnosis(syn, n, bias, k, first, s_in, snap, ev, syn_a))
    if not theta_ok:
        out.append(Diagnosis(
            "vthr_scale", n, "error",
            f"the threshold of {n} is {float(nb.threshold):g}, {_ratio_words(thr, snap)} what the weights of "
            f"{syn} imply (their scale {k:.6g} x A's threshold {float(na.threshold):g} = {want_theta})",
            evidence=dict(ev, factor=_factor(1 / thr, snap)),
            fix=f"set the threshold of {n} to {want_theta} ({_scale_words(1 / thr, 'it', snap)})"))
    return out


def _suspect_threshold(syn: str, n: str, na, nb, k: float, f: Fit, where) -> list:
    """A threshold within the uncertainty of a scale that no value fits exactly, yet SUSPECT_SIGMAS standard errors
    off: a warning that the runs make an error (`dynamic.combine`: the layer's own spikes move beyond quantization)."""
    want = k * float(na.threshold)
    off = float(nb.threshold) - want
    if f.feasible is not None or abs(off) <= 0.5 + SUSPECT_SIGMAS * f.sigma_rel * abs(want):
        return []
    return [Diagnosis(
        "vthr_scale", n, "warning",
        f"the threshold of {n} is {float(nb.threshold):g}, {off / want:+.2%} from what the weights of {syn} imply "
        f"({want:.6g}): within the uncertainty of their fitted scale, but {abs(off) / (f.sigma_rel * abs(want)):.1f} "
        "standard errors off",
        evidence=dict(where, suspect=True, threshold_b=float(nb.threshold), expected_threshold=want,
                      scale_sigma_rel=f.sigma_rel),
        fix=f"set the threshold of {n} to {int(max(1, round(want)))} if the layer's own spikes move (isolated mode)")]


def threshold_interval(theta_a: float, k: float, s_in: float, f: Fit) -> tuple:
    """The integer thresholds a correct conversion can give (docs/diagnoses.md, "one quantization step"): theta_A
    times any layer scale that rounds A's weights to B's exactly, rounded once (+-0.5); when no scale does (B's
    weights are not A's rounded), k * theta_A within 4 standard errors of the fitted scale (at least
    THRESHOLD_TOL), +-0.5."""
    if f.feasible is not None:
        lo, hi = sorted((f.feasible[0] * s_in * theta_a, f.feasible[1] * s_in * theta_a))
    else:
        d = max(4 * f.sigma_rel, THRESHOLD_TOL) * k * abs(theta_a)
        lo, hi = k * theta_a - d, k * theta_a + d
    return lo - 0.5, hi + 0.5


def _bias_diagnosis(syn: str, n: str, bias: tuple, k: float, first: bool, s_in: float, snap, ev,
                    syn_a) -> Diagnosis:
    r, _, given = bias
    unscaled = first and s_in != 1 and abs(r * s_in - 1) < 0.05
    want = float(np.abs(np.asarray(syn_a.bias, np.float64)).max() * k)
    msg = (f"the bias of {syn} is {_ratio_words(r, snap)} what its weights and threshold imply"
           + (f": it was not multiplied by the input scale {s_in:g}" if unscaled else "")) if r else \
        (f"the bias of {syn} is all zeros in B although its folded float bias times the layer's scale {k:.6g} "
         f"reaches {want:.4g}: it was scaled or rounded away" if given else
         f"{syn} has no bias in B although its folded float bias is not zero")
    return Diagnosis(
        "bias_scale", n, "error", msg, evidence=dict(ev, factor=_factor(1 / r, snap) if r else None),
        fix=_scale_words(1 / r, f"the bias of {syn}", snap) if r else
        f"give {syn} its folded bias times {k:.6g}, rounded")


def _reset(na, nb, where) -> list:
    if na.reset == nb.reset:
        return []
    name = where["layer"]
    mode = {"soft": "soft (subtracts the threshold)", "hard": "hard (to v_reset)"}
    return [Diagnosis(
        "reset_mode", name, "error",
        f"{name} resets {mode[na.reset]} in A but {mode[nb.reset]} in B",
        evidence=dict(where, reset_a=na.reset, reset_b=nb.reset),
        fix=("build B's layer with a hard reset: pb.IF(..., reset_v=0) with a Python int (PAIBox resets softly by "
             "default) / convert with --reset hard") if na.reset == "hard" else
        "build B's layer with a soft reset (pb.IF without reset_v) / convert with --reset soft")]


# ------------------------------------------------------------------------------------------------ helpers
def _candidates(a, b, usable) -> list:
    """Scale guesses: median ratios over the smallest quarter, half and all of the weights (small weights do not
    wrap), and least squares; the fit keeps the one that the most entries agree with."""
    big = usable & (np.abs(b) >= 2)
    out = [fit_scale(b[usable], a[usable])]
    size = np.abs(a)
    cuts = np.percentile(size[usable], (25, 50, 100)) if usable.any() else (None,) * 3    # one partition
    ratio, size_big = b[big] / a[big], size[big]        # every band's ratios, taken once
    for cut in cuts:
        band = ratio if cut is None else ratio[size_big <= cut]
        if band.size >= 3:
            out.append(median(band))
    return out


def median(x: np.ndarray) -> float:
    """`float(np.median(x))` of a 1-D float64 array, by one selection (np.median partitions at both middle entries
    and at the last, for its NaN check): the middle entry, or np.mean of the two middle ones in the order
    np.median averages them."""
    if not x.size or np.isnan(x).any():
        return float(np.median(x))
    k = x.size // 2
    part = np.partition(x, k)
    return float(part[k]) if x.size % 2 else float(np.mean(np.array([part[:k].max(), part[k]])))


def _full_range(syn_a) -> float:
    """The largest weight scale that keeps A's weights within int8."""
    return INT8 / max(1e-12, float(np.abs(syn_a.weight).max()))


def _db(signal, noise) -> float:
    if noise <= 0:
        return float("inf")
    return float(10 * np.log10(max(float(signal), 1e-300) / float(noise)))


def _scale_words(f: float, what: str, snap=()) -> str:
    """'multiply the bias of conv_fc.0 by 255' / 'divide ... by 2', as a person says it."""
    return f"multiply {what} by {_nice(f, snap)}" if f >= 1 else f"divide {what} by {_nice(1 / f, snap)}"


def _nice(x: float, snap=()) -> str:
    v = _nice_value(x, snap)
    return str(int(v)) if v == int(v) else f"{v:.4g}"


def _nice_value(x: float, snap=()) -> float:
    """A factor >= 1 as a person writes it: a known one (the input scale) or an integer when the fit is that close."""
    for v in snap:
        if v > 1 and abs(x / v - 1) <= 0.02:
            return float(v)
    return float(round(x)) if abs(x - round(x)) <= 0.02 * x else x


def _factor(f: float, snap=()) -> float:
    """The multiplier a fix names (0.5 for 'divide by 2')."""
    return _nice_value(f, snap) if f >= 1 else 1 / _nice_value(1 / f, snap)


def _ratio_words(r: float, snap=()) -> str:
    return f"{_nice(r, snap)}x" if r >= 1 else f"1/{_nice(1 / r, snap)} of"
