"""A report is plain data: what ran, how the runs compare, and what is diagnosed. Renderers (text table, JSON,
HTML) read it; nothing here runs a simulator."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from ..diagnose import rank


@dataclass
class Report:
    title: str
    layers: list                          # spiking layer names, in order
    pairs: list                           # [PairComparison]
    diagnoses: list = field(default_factory=list)
    lags: dict = field(default_factory=dict)          # {layer: lag dict} of the pipelined run
    runs: dict = field(default_factory=dict)          # {label: meta} (wall time, exactness, ...)
    inputs: dict = field(default_factory=dict)        # where the inputs came from
    networks: dict = field(default_factory=dict)      # {"a": summary, "b": summary}
    weights: dict = field(default_factory=dict)       # {layer: weight statistics}
    extras: dict = field(default_factory=dict)        # anything else worth reporting (accuracy, coverage, ...)
    figures: dict = field(default_factory=dict)       # data for the HTML figures; not in JSON

    @property
    def verdict(self) -> str:
        return "inconsistent" if any(d.severity == "error" for d in self.diagnoses) else "consistent"

    @property
    def first_divergence(self) -> Optional[dict]:
        found = [dict(p.first_divergence, pair=p.key) for p in self.pairs if p.first_divergence]
        order = {name: i for i, name in enumerate(self.layers)}
        return min(found, key=lambda d: (order.get(d["layer"], 0), d["t"], d["sample"])) if found else None

    def pair(self, key: str):
        return next(p for p in self.pairs if p.key == key)

    def to_dict(self) -> dict:
        layers = []
        for i, name in enumerate(self.layers):
            lag = self.lags.get(name, {})
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
            "title": self.title, "verdict": self.verdict, "first_divergence": self.first_divergence,
            "diagnoses": [d.to_dict() for d in rank(self.diagnoses)], "layers": layers,
            "pairs": {p.key: p.to_dict() for p in self.pairs}, "lags": self.lags, "runs": self.runs,
            "inputs": self.inputs, "networks": self.networks, "weights": self.weights, "extras": self.extras,
        }
