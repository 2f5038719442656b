"""ANN against SNN, layer by layer, as an analysis the pipeline runs on every chunk of a plan's inputs
(`Plan.analyses`): counts that merge across chunks (`Tally`), concluded once into the report's
`extras["ann2snn"]` (docs/report.md) and diagnoses.

Per chunk: the ANN's activations (its QCFS target) and, for each SNN variant (runs.py), every activation layer's
input and spikes over the largest T; for each T of the sweep, the first T steps give that T's run (an IF layer is
causal), so one run per variant gives the whole accuracy-against-T table. Errors are in units of each layer's
threshold theta: the paper's clipping, quantization and unevenness errors (qcfs.py) against ReLU of the SNN's own
mean input, and the deviation from the ANN's own activation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from . import qcfs, runs

STATS = ("sum", "sum_abs", "nonzero")
ERRORS = qcfs.COMPONENTS + ("total", "vs_ann")
V0 = {"half": 0.5, "zero": 0.0, "signed": 0.5}          # variants whose neuron is known: decomposed
DESCRIPTIONS = {"ann": "the ANN (T = 0)", "half": "IF, initial membrane theta/2", "zero": "IF, initial membrane 0",
                "signed": "signed IF (negative spikes), initial membrane theta/2",
                "ifnode": "SpikingJelly IFNode as it comes", "user": "the user's own SNN module"}
BINS = np.linspace(-1.0, 1.0, 33)        # histogram of the non-zero unevenness errors, in units of theta
NONZERO = 1e-6                            # |error| / theta above this counts as an error


@dataclass(frozen=True, eq=False)
class Tally:
    """Sums that merge by addition, and the initial-membrane bounds that merge by intersection."""
    sums: dict
    v0: dict = field(default_factory=dict)     # variant -> (lower, upper) in units of theta

    def merge(self, other: "Tally") -> "Tally":
        sums = {k: self.sums[k] + other.sums[k] for k in self.sums}
        v0 = {k: (max(self.v0[k][0], other.v0[k][0]), min(self.v0[k][1], other.v0[k][1])) for k in self.v0}
        return Tally(sums, v0)


@dataclass(frozen=True, eq=False)
class Ann2Snn:
    """The analysis: the ANN module, its activation layers, the T sweep, the variants, the labels of the plan's
    samples and, optionally, the user's own SNN module (compared with SpikingJelly's IFNode)."""
    ann: object
    layers: tuple
    timesteps: tuple
    variants: tuple
    labels: np.ndarray
    table_steps: int
    user: Optional[object] = None
    key: str = "ann2snn"

    @property
    def runs(self) -> tuple:
        return self.variants + (("user", "ifnode") if self.user is not None else ())

    # ------------------------------------------------------------------------------------------- per chunk
    def run(self, plan, x: np.ndarray, ids: np.ndarray, results: dict) -> Tally:
        with runs.one_thread():
            return self._run(x[:, 0], self.labels[ids])

    def _run(self, frames: np.ndarray, y: np.ndarray) -> Tally:
        steps = max(self.timesteps)
        acts, logits = runs.run_ann(self.ann, self.layers, frames)
        sums = {"samples": np.array(len(y)), "correct:ann": np.array(int((logits.argmax(1) == y).sum())),
                "elements": np.array([acts[l.name][0].size for l in self.layers])}
        v0 = {}
        for name in self.runs:
            snn = self.user if name == "user" else runs.variant(self.ann, self.layers, name, steps)
            recs, out = runs.run_snn(snn, self.layers, frames, steps)
            total = np.cumsum(out, axis=1)
            sums[f"correct:{name}"] = np.array([int((total[:, t - 1].argmax(1) == y).sum()) for t in self.timesteps])
            sums[f"errors:{name}"], sums[f"hist:{name}"] = self._errors(name, recs, acts)
            v0[name] = initial_membrane(*recs[self.layers[0].name], self.layers[0].threshold)
        return Tally(sums, v0)

    def _errors(self, name: str, recs: dict, acts: dict) -> tuple:
        """[layer, T, error, stat] sums and [layer, bin] unevenness histograms at table_steps (all `conclude` shows)."""
        errs = np.zeros((len(self.layers), len(self.timesteps), len(ERRORS), len(STATS)))
        hist = np.zeros((len(self.layers), len(BINS) + 1), np.int64)
        for i, layer in enumerate(self.layers):
            x, s = recs[layer.name]
            theta = layer.threshold
            for j, t in enumerate(self.timesteps):
                z = x[:, :t].mean(axis=1, dtype=np.float64)
                r = theta * s[:, :t].sum(axis=1, dtype=np.float64) / t
                parts = {"vs_ann": r - acts[layer.name][1]}
                if name in V0:
                    d = qcfs.decompose(z, r, theta, t, V0[name])
                    parts.update(clipping=d.clipping, quantization=d.quantization, unevenness=d.unevenness,
                                 total=d.total)
                    if t == self.table_steps:
                        u = d.unevenness.ravel() / theta
                        hist[i] = np.bincount(np.digitize(u[np.abs(u) > NONZERO], BINS), minlength=len(BINS) + 1)
                for k, e in enumerate(ERRORS):
                    if e in parts:
                        u = parts[e] / theta
                        errs[i, j, k] = (u.sum(), np.abs(u).sum(), np.count_nonzero(np.abs(u) > NONZERO))
        return errs, hist

    # ------------------------------------------------------------------------------------------- conclusion
    def conclude(self, tally: Tally) -> tuple:
        """(the JSON-able extras entry, [Diagnosis])."""
        from ..diagnose import Diagnosis
        n = int(tally.sums["samples"])
        out = {"levels": [l.levels for l in self.layers], "timesteps": list(self.timesteps),
               "table_steps": self.table_steps, "samples": n, "units": "errors in units of each layer's threshold",
               "variants": {k: DESCRIPTIONS[k] for k in ("ann",) + self.runs},
               "accuracy": {"ann": float(tally.sums["correct:ann"]) / n}, "layers": [],
               "histogram": {"edges": BINS.tolist()},
               "unevenness_dominates_from": {}, "initial_membrane": {k: list(v) for k, v in tally.v0.items()}}
        for name in self.runs:
            out["accuracy"][name] = dict(zip(map(str, self.timesteps), (tally.sums[f"correct:{name}"] / n).tolist()))
        for i, layer in enumerate(self.layers):
            elements = int(tally.sums["elements"][i])
            entry = {"name": layer.name, "threshold": layer.threshold, "levels": layer.levels,
                     "neurons": elements // n}
            for name in self.runs:
                entry[name] = {str(t): self._stats(tally.sums[f"errors:{name}"][i, j2], elements, name)
                               for j2, t in enumerate(self.timesteps)}
            out["layers"].append(entry)
        for name in self.runs:
            if name in V0:
                out["histogram"][name] = {l.name: tally.sums[f"hist:{name}"][i].tolist()
                                          for i, l in enumerate(self.layers)}
                out["unevenness_dominates_from"][name] = {str(t): dominates_from(out["layers"], name, str(t))
                                                          for t in self.timesteps}
        diagnoses = [Diagnosis(**d) for d in membrane_findings(tally.v0, self.layers[0].name)]
        return out, diagnoses

    @staticmethod
    def _stats(a: np.ndarray, count: int, name: str) -> dict:
        keep = ERRORS if name in V0 else ("vs_ann",)
        return {e: {"mean": a[k, 0] / count, "mean_abs": a[k, 1] / count, "share": a[k, 2] / count}
                for k, e in enumerate(ERRORS) if e in keep}


def dominates_from(layers: list, name: str, steps: str) -> Optional[str]:
    """The first layer whose mean |unevenness error| exceeds its mean |clipping| + mean |quantization| errors."""
    for entry in layers:
        st = entry[name][steps]
        if st["unevenness"]["mean_abs"] > st["clipping"]["mean_abs"] + st["quantization"]["mean_abs"]:
            return entry["name"]
    return None


def initial_membrane(x: np.ndarray, s: np.ndarray, threshold: float) -> tuple:
    """Bounds (lower, upper), in units of theta, on the initial membrane v0 of a soft-reset IF layer fed a constant
    input z per neuron (x [N, T, ...] equal over t), from its spike counts: N(t) = floor((v0 + t z) / theta) gives
    theta N(t) - t z <= v0 < theta (N(t) + 1) - t z at every step of every neuron with 0 < z < theta."""
    if not np.array_equal(x, np.broadcast_to(x[:, :1], x.shape)):
        return (-np.inf, np.inf)
    z = x[:, :1].astype(np.float64)
    inside = np.broadcast_to((z > 0) & (z < threshold), x.shape)
    t = np.arange(1, x.shape[1] + 1).reshape((1, -1) + (1,) * (x.ndim - 2))
    n = np.cumsum(s, axis=1, dtype=np.float64)
    low, high = threshold * n - t * z, threshold * (n + 1) - t * z
    if not inside.any():
        return (-np.inf, np.inf)
    slack = 4 * x.shape[1] * float(np.finfo(np.float32).eps)     # the float32 sums of v0 + x[1] + ... + x[t]
    return (float(low[inside].max()) / threshold - slack, float(high[inside].min()) / threshold + slack)


def membrane_findings(v0: dict, first: str) -> list:
    """An `initial_membrane` diagnosis when the user's own SNN and SpikingJelly's IFNode start apart."""
    if "user" not in v0 or "ifnode" not in v0:
        return []
    (ul, uh), (il, ih) = v0["user"], v0["ifnode"]
    if max(ul, il) < min(uh, ih):
        return []
    return [dict(code="initial_membrane", layer=first, severity="warning",
                 message=f"your SNN's neurons start at v0 = {interval(ul, uh)} theta, SpikingJelly's IFNode at "
                         f"{interval(il, ih)} theta (read off the first IF layer's spikes under constant input): "
                         "the two conversions differ in the initial membrane potential",
                 evidence={"user": [ul, uh], "ifnode": [il, ih]},
                 fix="to match a theta/2 start in SpikingJelly: neuron.HalfThresholdIFNode, or "
                     "node.set_reset_value('v', theta / 2) on each IFNode")]


def interval(lo: float, hi: float) -> str:
    """Bounds on an initial membrane (units of theta) as text."""
    if lo > hi:
        return "none (not a soft-reset IF with one initial membrane)"
    if lo == float("-inf"):
        return "unknown (the first layer's input is not constant)"
    return f"{(lo + hi) / 2:.4f} +- {(hi - lo) / 2:.1g}"
