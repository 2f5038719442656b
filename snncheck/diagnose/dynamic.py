"""Diagnoses read off the runs of A (float) and B (integer): where B's own error lives and what it looks like.

- *Isolated mode* (as TFLite's quantization debugger): every spiking layer of B is fed the very spikes that A's run
  produced at the sources of its terms (the deployed input for the input), so its mismatches are its own and not
  what earlier layers propagate into it. The yardstick is the same layer requantized correctly (round-to-nearest,
  saturated) at a scale B may have meant: a layer that misses far more spikes than that has an error beyond
  quantization.
- Membranes before the first own flip: the slope of B's charged potential against A's is the layer's effective
  scale; it should equal the threshold ratio theta_B / theta_A.
- Reset signature: after a spike, a hard reset leaves exactly v_reset, a soft one leaves H - theta.
- Layers that fall silent (or saturate) in B while A's fire, and samples that end without a single output spike.

Pure functions: parts of a graph run with the reference's `evaluate`; nothing given is edited, and a dynamic finding
that supports a static error joins it as a new Diagnosis (`combine`).
"""
from __future__ import annotations

import dataclasses

import numpy as np

from ..backends.reference import evaluate
from ..convert import layer_scale, prepare, primary, requantize, weighted_terms
from ..errors import InputError
from ..graph import Graph
from ..graph import primitives as P
from ..kernels import rate, seen_before
from . import Diagnosis

EXCESS_FACTOR = 3.0        # isolated mismatches this many times the requantized layer's ...
EXCESS_ABS = 0.005         # ... and this much above it (fraction of all spikes) are beyond quantization
EXCESS_MIN = 10            # ... and by at least this many spikes (a few flips in a small layer are noise)
SILENT_RATE = 0.01         # A fires at least this often where B never fires: silent
SATURATED = 0.95           # B fires this often where A fires at most half as often: saturated
HARD_SIGNATURE = 0.99      # share of post-spike potentials equal to v_reset that says "hard reset"


# ------------------------------------------------------------------------------------------- isolated mode
def isolated(float_graph: Graph, int_graph: Graph, a_run, inputs: np.ndarray, input_scale: float,
             scales: dict, b_ref=None, b_inputs=None) -> dict:
    """Per spiking layer: B's layer fed A's own spikes at its term sources (the deployed input for the input),
    against A's spikes; beside it, as yardstick, the same layer of A requantized correctly at a scale B may have
    meant (`scales`: {neuron: B's fitted weight scale of its main synapse}), and the membrane slope of B against A
    up to each neuron's first own flip. `b_ref`, `b_inputs`: B's reference run on the same samples and the inputs
    it received; a layer whose feeds are exactly what that run had there is that run's layer (`_replayed`)."""
    a, b = prepare(float_graph), prepare(int_graph)
    deployed = np.rint(np.asarray(inputs, np.float64) * input_scale)
    exact_b = b.is_integer and not b.fractional
    exact_a = not a.fractional
    replayed = _replayed(b, exact_b, b_ref, b_inputs)
    out = {}
    for n in a.neurons:
        if n not in b.nodes or not P.is_neuron(b.nodes[n]) or n not in a_run.names:
            continue
        try:
            terms = weighted_terms(a, n, input_scale)
        except InputError:
            continue
        feeds = {a.input: deployed}
        feeds.update({t.source: a_run.layer(t.source).spikes for t in terms if t.source != a.input})
        rec = a_run.layer(n)
        try:
            spikes, h = replayed(n, feeds) or evaluate(b, feeds, exact=exact_b, targets=[n])[n][::2]
        except InputError:       # B reaches this layer from elsewhere than A: no isolated run
            continue
        theta_ratio = float(b.nodes[n].threshold) / float(a.nodes[n].threshold)
        total = int(rec.spikes.size)
        own = int(np.count_nonzero(np.not_equal(spikes, rec.spikes)))
        yard = None
        # the yardstick is the best requantization; stop as soon as one explains B's own mismatches
        for k in _plausible_scales(a, n, terms, scales.get(n), theta_ratio):
            trial = a.replace(requantize(a, n, terms, k))
            same = exact_a and exact_b and _same_part(trial, b, n, feeds)     # B is this requantization: its spikes
            mine = spikes if same else evaluate(trial, feeds, exact=exact_a, record_v=False, targets=[n])[n][0]
            count = int(np.count_nonzero(np.not_equal(mine, rec.spikes)))
            yard = count if yard is None else min(yard, count)
            if not _beyond(own, yard, total):
                break
        yard = own if yard is None else yard
        slope = _slope(rec, spikes, h)
        out[n] = {
            "total": total, "mismatches": own, "rate": own / total, "requantized_mismatches": yard,
            "requantized_rate": yard / total, "firing_rate_a": rate(rec.spikes),
            "firing_rate_b": rate(spikes), "membrane_slope": slope, "threshold_ratio": theta_ratio,
            "slope_over_threshold_ratio": None if slope is None else slope / theta_ratio,
            "beyond_quantization": _beyond(own, yard, total),
        }
    return out


def _same_part(g: Graph, h: Graph, n: str, feeds: dict) -> bool:
    """Whether two graphs compute neuron n from `feeds` with the same nodes, edges and parameter values (then two
    exact evaluations give the same spikes, whatever the dtypes holding those values)."""
    part = [m for m in g.upstream([n], stop=feeds) if m not in feeds]
    return all(m in h.nodes and m != g.input and g.inputs_of(m) == h.inputs_of(m) and
               _same_values(g.nodes[m], h.nodes[m]) for m in part)


def _same_values(p, q) -> bool:
    """Same primitive type and every field equal by value (arrays element by element, whatever their dtype)."""
    if type(p) is not type(q):
        return False
    for f in dataclasses.fields(p):
        x, y = getattr(p, f.name), getattr(q, f.name)
        arrays = isinstance(x, np.ndarray) or isinstance(y, np.ndarray)
        if not (np.array_equal(x, y) if arrays else x == y):
            return False
    return True


def _replayed(b: Graph, exact: bool, b_ref, b_inputs):
    """(neuron, feeds) -> (spikes, h) of B's exact reference run where evaluating the neuron from these feeds is
    what that run did: B exact in both, and every node between the feeds and the neuron stateless, fed exactly
    the values the run had (its input, its spikes); else None (evaluate it). Exact integer arithmetic gives one
    result whatever the order of operations, so the isolated layer is the run's own."""
    if b_ref is None or b_inputs is None or not exact or b_ref.backend != "reference" or \
            not b_ref.meta.get("exact"):
        return lambda n, feeds: None

    def had(node: str, value) -> bool:
        if node == b.input:
            return value.shape == b_inputs.shape and np.array_equal(value, b_inputs)
        return node in b_ref.names and np.array_equal(value, b_ref.layer(node).spikes)

    computed = set(b.neurons) | {b.input}

    def replay(n: str, feeds: dict):
        if n not in b_ref.names:
            return None
        part = b.upstream(b.inputs_of(n), stop=computed.union(feeds))
        if any(m in computed and m not in feeds for m in part):
            return None            # computed, not fed: evaluate says what happens
        if not all(had(m, feeds[m]) for m in part if m in feeds):
            return None
        rec = b_ref.layer(n)
        return rec.spikes, rec.h
    return replay


def _beyond(own: int, yard: int, total: int) -> bool:
    return own > EXCESS_FACTOR * yard and own - yard > max(EXCESS_ABS * total, EXCESS_MIN)


def _plausible_scales(a: Graph, n: str, terms: list, fitted, from_threshold: float) -> list:
    """Layer scales a correct conversion of this layer may have used: the one B's fitted weights imply, the one
    B's threshold implies, and the full int8 range; the yardstick is the best of them."""
    main = primary(a, terms)
    found = [fitted * main.amplitude if fitted else None, from_threshold, layer_scale(a, n, terms)]
    theta = abs(float(a.nodes[n].threshold))     # a scale whose threshold overflows int32 deploys nothing
    return list(dict.fromkeys(float(k) for k in found if k and np.isfinite(k) and 0 < k and theta * k < 2 ** 31))


def _slope(rec, spikes_b: np.ndarray, h_b):
    """Least-squares slope of B's charged potential against A's, over each neuron's steps up to its first flip."""
    if rec.h is None or h_b is None:
        return None
    keep = np.logical_not(seen_before(np.not_equal(spikes_b, rec.spikes)))
    # the float64 products of a = h_A and b = h_B (each cast first, as a.astype(float64) * b.astype(float64) does)
    # written into one buffer, then summed by the same np.sum: a * a first, then b * a
    products = np.square(rec.h, dtype=np.float64)
    den = float(np.sum(products, where=keep))
    np.multiply(h_b, rec.h, out=products, dtype=np.float64)
    return float(np.sum(products, where=keep) / den) if den > 0 else None


# ------------------------------------------------------------------------------------------- signatures
def reset_signature(rec, min_spikes: int = 20):
    """"hard" if (almost) every post-spike potential is one value (v_reset), "soft" if they spread (H - theta),
    None with too few spikes or no recorded potential; and the share at the most common value."""
    post = _post_spike(rec, min_spikes)
    if post is None:
        return None, None
    _, counts = np.unique(post, return_counts=True)
    share = float(counts.max() / post.size)
    return ("hard" if share >= HARD_SIGNATURE else "soft"), share


def reset_mode(rec, min_spikes: int = 20):
    """reset_signature's mode without gathering and sorting the post-spike potentials: the share of the value after
    the first spike decides when it is above HARD_SIGNATURE (hard) or above 1 - HARD_SIGNATURE (soft: no other
    value can then pass); only otherwise reset_signature itself."""
    if rec.v is None or rec.spikes.dtype != np.bool_:
        return reset_signature(rec, min_spikes)[0]
    count = np.count_nonzero(rec.spikes)
    if count < min_spikes:
        return None
    first = rec.v[np.unravel_index(np.argmax(rec.spikes), rec.spikes.shape)]
    share = float(np.count_nonzero((rec.v == first) & rec.spikes) / count)
    if share >= HARD_SIGNATURE:
        return "hard"
    # soft when no other value can reach HARD_SIGNATURE, with a margin for the rounding of both shares
    return "soft" if share > (1 - HARD_SIGNATURE) * (1 + 1e-9) else reset_signature(rec, min_spikes)[0]


def _post_spike(rec, min_spikes: int):
    if rec.v is None:
        return None
    post = rec.v[rec.spikes]
    return post if post.size >= min_spikes else None


def _reset_diagnoses(a_run, b_runs: list) -> list:
    out = []
    for rec in a_run.layers:
        mode_a = reset_mode(rec)
        for run in b_runs:
            if rec.name not in run.names:
                continue
            mode_b = reset_mode(run.layer(rec.name))
            if mode_a and mode_b and mode_a != mode_b:
                (_, share_a), (_, share_b) = reset_signature(rec), reset_signature(run.layer(rec.name))
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
        if rec.name not in b_run.names:
            continue
        rate_a, rate_b = rate(rec.spikes), rate(b_run.layer(rec.name).spikes)
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
    last = a_run.layers[-1].name
    share = [float(np.mean(r.spikes.reshape(r.spikes.shape[0], -1).sum(axis=1) == 0))
             for r in (a_run.layer(last), b_run.layer(last))]
    return f"samples without a single output spike: {share[0]:.1%} in A, {share[1]:.1%} in B"


# ------------------------------------------------------------------------------------------- all together
def analyse(float_graph: Graph, int_graph: Graph, a_run, b_runs: dict, inputs: np.ndarray, input_scale: float,
            weight_scales: dict, static: list, b_inputs=None) -> tuple:
    """(extras, diagnoses) from the runs of A (`a_run`) and B (`b_runs`: {label: RunResult}, its reference run
    among them), on A's `inputs` [N, T, ...] (the samples of the runs); `weight_scales`: {neuron: B's fitted
    weight scale}; `static`: the static diagnoses; `b_inputs`: what B's runs received (its reference run then
    stands in for the isolated layers whose feeds it had).

    The diagnoses returned are the static ones, those that a dynamic finding supports replaced by a new Diagnosis
    carrying it as evidence (`combine`), followed by the dynamic findings that no static error explains."""
    b_list = list(b_runs.values())
    b_ref = next((r for r in b_list if r.backend == "reference"), b_list[0] if b_list else None)
    if a_run is None or b_ref is None:
        return {}, list(static)
    iso = isolated(float_graph, int_graph, a_run, inputs, input_scale, weight_scales, b_ref, b_inputs)
    found = _reset_diagnoses(a_run, b_list)
    for name, st in iso.items():
        if not st["beyond_quantization"]:
            continue
        own = _own_error(name, st)
        i = next((i for i, d in enumerate(found) if d.layer == name), None)
        if i is None:
            found.append(own)
        else:                    # the reset signature already names the cause: its evidence
            found[i] = found[i].replace(evidence=dict(found[i].evidence, isolated=own.evidence))
    found += _silence(a_run, b_ref, iso)
    first = next((n for n, st in iso.items() if st["beyond_quantization"]), None)
    return {"isolated": iso, "first_own_error": first}, combine(static, found, float_graph.neurons)


def _own_error(name: str, st: dict) -> Diagnosis:
    return Diagnosis(
        "quantization_error", name, "error",
        f"{name}, fed A's own input spikes, misses {st['rate']:.2%} of A's spikes; requantized correctly it "
        f"would miss {st['requantized_rate']:.2%}: the error is this layer's own, beyond quantization "
        f"(membrane slope {_fmt(st['membrane_slope'])} against threshold ratio {st['threshold_ratio']:.4g})",
        evidence=dict(layer=name, **{k: st[k] for k in ("rate", "requantized_rate", "membrane_slope",
                                                          "threshold_ratio", "slope_over_threshold_ratio")}),
        fix="compare this layer's weights, bias and threshold with A's times the layer's scale")


def combine(primary_found: list, secondary: list, order: list) -> list:
    """The primary (static) diagnoses, each error that a secondary (dynamic) finding on its layer supports replaced
    by a copy carrying that finding under evidence["runs"][code], and each static suspicion (a warning with
    evidence["suspect"]) that the layer's own error beyond quantization confirms made an error in its place; then
    the other secondary findings, a silent layer downstream of an error said to be so (a warning). Nothing given
    is edited."""
    out, secondary = _confirm_suspects(list(primary_found), list(secondary))
    errors = {}
    for i, d in enumerate(out):
        if d.severity == "error":
            errors.setdefault(d.layer, i)
    first_error = min((order.index(l) for l in errors if l in order), default=None)
    rest = []
    for d in secondary:
        if d.layer in errors:
            i = errors[d.layer]
            runs = dict(out[i].evidence.get("runs", {}), **{d.code: d.evidence})
            out[i] = out[i].replace(evidence=dict(out[i].evidence, runs=runs))
            continue
        if first_error is not None and d.layer in order and order.index(d.layer) > first_error \
                and d.code == "silent_layer":
            d = d.replace(severity="warning", message=d.message + f" (downstream of the error in {order[first_error]})")
        rest.append(d)
    return out + rest


def _confirm_suspects(out: list, secondary: list) -> tuple:
    """(static findings, dynamic findings left): a suspicion whose layer has its own error beyond quantization is
    that error's cause, an error itself carrying the run evidence; the generic finding is then consumed."""
    suspects = {d.layer: i for i, d in enumerate(out) if d.evidence.get("suspect")}
    left = []
    for d in secondary:
        if d.code == "quantization_error" and d.severity == "error" and d.layer in suspects:
            i = suspects.pop(d.layer)
            out[i] = out[i].replace(severity="error", message=out[i].message + "; fed A's own input spikes the "
                                    "layer misses A's spikes beyond quantization (isolated mode)",
                                    evidence=dict(out[i].evidence, runs={d.code: d.evidence}))
        else:
            left.append(d)
    return out, left


def scaled_membrane_diff(a_run, b_run, scales: dict) -> dict:
    """{layer: max |v_B / k - v_A|}: B's membranes brought back to A's units with the layer's scale k."""
    out = {}
    for rec in a_run.layers:
        k = scales.get(rec.name)
        if not k or rec.name not in b_run.names:
            continue
        other = b_run.layer(rec.name)
        if rec.v is not None and other.v is not None:
            out[rec.name] = float(np.max(np.abs(other.v / k - rec.v)))
    return out


def _fmt(x) -> str:
    return "n/a" if x is None else f"{x:.4g}"
