"""A report is plain data, built once by the pipeline and never edited: what ran, how the runs compare, what is
diagnosed. Renderers (terminal text, JSON, HTML) read it; nothing here runs a simulator.

The JSON layout is documented in docs/report.md (`schema_version` 2).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..diagnose import rank, verdict

SCHEMA_VERSION = 2


@dataclass(frozen=True, eq=False)
class Evidence:
    """What the HTML figures draw, kept for the first samples of the set; never serialised."""
    runs: dict = field(default_factory=dict)          # {label: aligned RunResult}
    graphs: dict = field(default_factory=dict)        # {role tag: Graph, BatchNorm folded}
    inputs: object = None                             # the plan's inputs for these samples (A's range)


@dataclass(frozen=True, eq=False)
class Report:
    title: str
    layers: tuple                        # spiking layer names, in order
    pairs: tuple                         # PairComparison
    diagnoses: tuple = ()                # ranked: most severe first
    lags: dict = field(default_factory=dict)          # {run label: {layer: lag verdict}} of pipelined runs
    edge_lags: dict = field(default_factory=dict)     # {run label: {merge: [input offsets]}}
    runs: dict = field(default_factory=dict)          # {label: meta} (wall time, samples, exactness, ...)
    inputs: dict = field(default_factory=dict)        # where the inputs came from
    networks: dict = field(default_factory=dict)      # {"a": summary, "b": summary}
    weights: dict = field(default_factory=dict)       # {layer: weight statistics of B against A}
    extras: dict = field(default_factory=dict)        # isolated mode, coverage, notes from the plan, ...
    evidence: Evidence = field(default_factory=Evidence)

    @property
    def verdict(self) -> str:
        return verdict(self.diagnoses)

    @property
    def first_divergence(self) -> Optional[dict]:
        found = [dict(p.first_divergence, pair=p.key) for p in self.pairs if p.first_divergence]
        order = {name: i for i, name in enumerate(self.layers)}
        return min(found, key=lambda d: (order.get(d["layer"], 0), d["t"], d["sample"])) if found else None

    def pair(self, key: str):
        return next(p for p in self.pairs if p.key == key)

    @property
    def pipelined_lags(self) -> dict:
        """{layer: lag verdict} of the first pipelined run (the per-layer lag columns show this one)."""
        return next(iter(self.lags.values()), {})

    @property
    def readouts(self) -> list:
        """Names of the readouts some pair compared, in order."""
        return list(dict.fromkeys(oc.name for p in self.pairs for oc in p.outputs))

    def readouts_dict(self) -> list:
        """One entry per readout: per pair (keyed like layers) its comparison as numbers."""
        return [{"name": r, **{p.key: p.output(r).to_dict() for p in self.pairs if p.output(r)}}
                for r in self.readouts]

    def to_dict(self) -> dict:
        lags = self.pipelined_lags
        layers = []
        for i, name in enumerate(self.layers):
            lag = lags.get(name, {})
            entry = {"name": name, "index": i, "expected_lag": lag.get("expected"),
                     "detected_lag": lag.get("detected"), "lag_anomaly": lag.get("anomaly", False)}
            for p in self.pairs:
                lc = p.layer(name)
                entry[p.key] = {"mismatches": lc.mismatches, "total": lc.total, "rate": lc.rate,
                                "first_divergence": lc.first_divergence, "v_max_abs_diff": lc.v_max_abs_diff,
                                "firing_rate_a": float(lc.rate_a.mean()), "firing_rate_b": float(lc.rate_b.mean()),
                                "primary_explained_by_rounding": lc.primary_explained,
                                "primary_unexplained": lc.primary_unexplained, "propagated": lc.propagated}
            if name in self.weights:
                entry["weights"] = self.weights[name]
            layers.append(entry)
        return {
            "schema_version": SCHEMA_VERSION, "title": self.title, "verdict": self.verdict,
            "first_divergence": self.first_divergence, "diagnoses": [d.to_dict() for d in rank(self.diagnoses)],
            "layers": layers, "readouts": self.readouts_dict(), "pairs": {p.key: p.to_dict() for p in self.pairs},
            "lags": lags,
            "lags_by_run": self.lags, "merge_inputs": self.edge_lags, "runs": self.runs, "inputs": self.inputs,
            "networks": self.networks, "weights": self.weights, "extras": self.extras,
        }
