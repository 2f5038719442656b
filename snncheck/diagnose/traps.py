"""The known traps between implementations, tested on the runs: which one turns the graph into what a run did.

When a run disagrees with its network's reference in a layer, that layer alone is replayed with the reference
(`evaluate`), fed the run's own recorded spikes at its inputs (the input for the first layer), once as the graph
says and once per trap applied to the layer; a trap whose replay reproduces the run's spikes of that layer
(at most 1/20 of the as-is mismatches, and fewer; the count left is in the evidence) names the cause.
Traps, one registry entry each:

- `bn_not_folded`: the layer's weights taken before BatchNorm folding (the BatchNorm on its path left out);
- `fire_rule`: `>` where the graph says `>=`, or the reverse (NIR fires on `>`, SpikingJelly and PAIBox on `>=`);
- `reset_mode`: soft reset where the graph says hard, or the reverse (an exporter writing soft reset as hard);
- `initial_membrane`: another initial membrane, v_init (theta/2 as QCFS starts, theta, or 0);
- `leaky_if`: an IF run as a leaky neuron (snnTorch 1.0 imports NIR's IF as Leaky(beta=0.9) with its own
  subtractive reset, `_SnnTorchLeaky`);
- `dt_scaling`: the synaptic input (r) or a LIF's tau scaled by dt or 1/dt (NIR's r and tau are per second;
  tools step with dt).

If no single trap reproduces the run, pairs of traps are tried (an IF imported leaky with a subtractive reset).
Pure: returns new diagnoses; the `simulator_mismatch` a trap explains is replaced by the trap's diagnosis.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

from ..backends.reference import evaluate, is_exact
from ..graph import Graph, fold_batchnorm
from ..graph import primitives as P
from . import Diagnosis

REPRODUCED = 20            # a trap explains a run when it leaves at most 1/20 of the as-is mismatches
REPLAY_SAMPLES = 32        # samples a layer is replayed on (each trap and pair of traps costs one evaluation)
DT_FACTORS = (1e-4, 1e4, 1e-3, 1e3)
V_INIT_FRACTIONS = (0.5, 1.0, 0.0)


@dataclasses.dataclass(frozen=True)
class Trap:
    code: str
    variants: Callable          # (graph, layer) -> [(what, graph')] or [(what, graph', other codes it implies)]
    fix: str


def _neuron_edit(graph: Graph, layer: str, what: str, **changes) -> tuple:
    return what, graph.with_node(layer, **changes)


def _bn(graph: Graph, layer: str) -> list:
    out = []
    for term in graph.terms(layer):
        for n in term.path:
            if isinstance(graph.nodes[n], P.BatchNorm):
                (src,) = graph.inputs_of(n)
                nodes = {k: v for k, v in graph.nodes.items() if k != n}
                edges = [(src if a == n else a, b) for a, b in graph.edges if b != n]
                out.append((f"uses the weights of {src} from before folding BatchNorm {n}",
                            Graph(nodes, edges, graph.name, graph.input_scale, graph.meta)))
    return out


def _fire(graph: Graph, layer: str) -> list:
    rule = graph.nodes[layer].fire_rule
    other = ">" if rule == ">=" else ">="
    return [_neuron_edit(graph, layer, f"fires on H {other} threshold (the graph says {rule})", fire_rule=other)]


def _reset(graph: Graph, layer: str) -> list:
    node = graph.nodes[layer]
    other = "soft" if node.reset == "hard" else "hard"
    return [_neuron_edit(graph, layer, f"resets {other} (the graph says {node.reset})", reset=other,
                         v_reset=0 if other == "hard" else node.v_reset)]


def _v_init(graph: Graph, layer: str) -> list:
    node = graph.nodes[layer]
    theta = node.threshold
    out = []
    for f in V_INIT_FRACTIONS:
        v0 = theta * f if not (P.is_integer_valued(theta) and float(theta * f).is_integer()) else int(theta * f)
        if v0 != node.initial_v:
            out.append(_neuron_edit(graph, layer, f"starts at v = {v0:g} (the graph starts at {node.initial_v:g})",
                                    v_init=v0))
    return out


def _leaky(graph: Graph, layer: str) -> list:
    node = graph.nodes[layer]
    if type(node) is not P.IF:
        return []
    fields = {f.name: getattr(node, f.name) for f in dataclasses.fields(P.Neuron)}
    out = [(f"leaks as LIF(tau={tau:g}, decay_input=False), i.e. v <- {1 - 1 / tau:g} v + x, where the graph "
            "integrates without leak", graph.replace({layer: P.LIF(**fields, tau=tau, decay_input=False)}))
           for tau in (10.0, 2.0)]
    out.append(("runs as snnTorch's Leaky(beta=0.9) with its subtractive reset (v <- 0.9 v + x - S*theta; a neuron "
                "left above threshold by a reset must exceed 2*theta to fire again), where the graph integrates "
                "without leak and resets " + node.reset,
                graph.replace({layer: _SnnTorchLeaky(**fields)}), ("reset_mode",) if node.reset == "hard" else ()))
    return out


@dataclasses.dataclass(frozen=True, eq=False)
class _SnnTorchLeaky(P.Neuron):
    """snnTorch 1.0's `Leaky(beta, reset_mechanism="subtract", reset_delay=False)` as measured (what its NIR
    importer makes of an IF), with R = (V[t-1] > threshold), the previous step's reset:

        H = beta * V[t-1] + X        S = (H - R*threshold) > threshold        V[t] = H - S*threshold
    """
    beta: float = 0.9
    fractional = True

    def charge(self, v, x, out=None):
        # the step's R is kept for after_fire (run_neuron calls charge, fire, after_fire in turn, one step at a time)
        object.__setattr__(self, "_held", (v > self.threshold).astype(v.dtype) * np.asarray(self.threshold, v.dtype))
        return P._into(np.asarray(self.beta, v.dtype) * v + x - self._held, out)

    def after_fire(self, h, s, out=None):
        return P._into(h + self._held - s.astype(h.dtype) * np.asarray(self.threshold, h.dtype), out)


def _dt(graph: Graph, layer: str) -> list:
    node = graph.nodes[layer]
    out = [_neuron_edit(graph, layer, f"leaks with tau = {node.tau * c:g} steps (the graph says {node.tau:g}: "
                                      f"tau scaled by {c:g})", tau=node.tau * c)
           for c in DT_FACTORS if isinstance(node, P.LIF) and node.tau * c > 1]
    for c in DT_FACTORS:        # H = V + cX fires at theta exactly when V/c + X fires at theta/c
        changes = {"threshold": node.threshold / c, "v_reset": node.v_reset / c}
        if node.v_init is not None:
            changes["v_init"] = node.v_init / c
        out.append(_neuron_edit(graph, layer, f"receives its input scaled by {c:g} (dt or 1/dt)", **changes))
    return out


TRAPS = (
    Trap("bn_not_folded", _bn, "export the weights after folding BatchNorm into them (W' = W*k, "
                               "b' = (b - mean)*k + beta, k = gamma/sqrt(var + eps))"),
    Trap("fire_rule", _fire, "give both the same firing rule; across NIR (>) and SpikingJelly/PAIBox (>=) an "
                             "integer threshold theta under > equals theta + 1 under >="),
    Trap("reset_mode", _reset, "give the layer the same reset in both; NIR has no soft reset, so an exporter that "
                               "writes one as reset-to-zero changes the network"),
    Trap("initial_membrane", _v_init, "start both from the same membrane potential (SpikingJelly: set_reset_value('v', x) "
                            "or HalfThresholdIFNode for theta/2)"),
    Trap("leaky_if", _leaky, "import the IF as a non-leaking neuron (beta = 1), or compare against a LIF"),
    Trap("dt_scaling", _dt, "write and read r and tau with the same dt (NIR's r and tau are per second: an IF "
                            "steps v += dt*r*I)"),
)


# ----------------------------------------------------------------------------------------------- replay
def _mismatches(graph: Graph, layer: str, feeds: dict, spikes: np.ndarray) -> int:
    graph = fold_batchnorm(graph)
    exact = is_exact(graph, feeds[graph.input])       # a trap may make the layer fractional (a leak)
    got = evaluate(graph, feeds, exact=exact, record_v=False, targets=[layer])[layer][0]
    return int(np.sum(got != spikes))


def explain_layer(graph: Graph, layer: str, run, inputs: np.ndarray) -> dict:
    """{"as_is": mismatches, "best": (codes, whats, mismatches) or None} for one layer of `run` replayed from the
    run's own upstream spikes, as the graph says and under each trap (then pairs of traps)."""
    upstream = graph.neurons[:graph.neurons.index(layer)]
    feeds = {graph.input: inputs}
    feeds.update({n: run.layer(n).spikes for n in upstream if n in run.names})
    target = run.layer(layer).spikes
    as_is = _mismatches(graph, layer, feeds, target)
    if as_is == 0:
        return {"as_is": 0, "best": None}
    singles = [((t.code,) + tuple(more[0] if more else ()), (what,), g)
               for t in TRAPS for what, g, *more in t.variants(graph, layer)]
    best = _best(singles, layer, feeds, target)
    if best is None or best[2] * REPRODUCED > as_is:
        pairs = [(c1 + (t.code,), (w1, what), g2) for c1, (w1,), g1 in singles for t in TRAPS if t.code not in c1
                 for what, g2, *_ in t.variants(g1, layer)]
        best = min([b for b in (best, _best(pairs, layer, feeds, target)) if b is not None],
                   key=lambda b: b[2], default=None)
    found = best is not None and best[2] * REPRODUCED <= as_is and best[2] < as_is
    return {"as_is": as_is, "best": best if found else None}


def _best(candidates: list, layer: str, feeds: dict, target):
    scored = []
    for codes, whats, g in candidates:
        try:
            scored.append((codes, whats, _mismatches(g, layer, feeds, target)))
        except Exception:        # a trap that makes no runnable graph here (a float threshold in int64...) is no answer
            continue
    return min(scored, key=lambda s: s[2], default=None)


def refine(found: list, plan, evidence: dict, inputs) -> list:
    """The diagnoses with each `simulator_mismatch` that a trap explains replaced by the trap's diagnosis."""
    if inputs is None:
        return list(found)
    out = []
    for d in found:
        pair = next((p for p in plan.pairs if p.key == d.evidence.get("pair")), None)
        if d.code != "simulator_mismatch" or pair is None or pair.a.label not in evidence:
            out.append(d)
            continue
        subject = plan.subject(pair.a.role)
        run = evidence[pair.a.label].rows(slice(0, REPLAY_SAMPLES))
        result = explain_layer(subject.graph, d.layer, run, subject.inputs(inputs[:run.samples]))
        out.append(d if result["best"] is None else _diagnosis(d, pair, result))
    return out


def _diagnosis(d: Diagnosis, pair, result: dict) -> Diagnosis:
    codes, whats, left = result["best"]
    fixes = {t.code: t.fix for t in TRAPS}
    words = " and ".join(whats)
    return Diagnosis(
        codes[0], d.layer, "error",
        f"{pair.a.label} disagrees with {pair.b.label} in {d.layer} because it {words}: replayed from "
        f"{pair.a.label}'s own input spikes, the layer {'reproduces' if left == 0 else 'nearly reproduces'} "
        f"{pair.a.label} ({left} mismatches, {result['as_is']} as the graph says)",
        evidence=dict(d.evidence, traps=list(codes), replay={"as_is": result["as_is"], "with_trap": left,
                                                              "what": list(whats)}),
        fix="; ".join(fixes[c] for c in codes))
