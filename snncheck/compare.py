"""Comparing two aligned runs. Knows nothing of simulators: only RunResults (arrays `[N, T, *shape]`).

Per layer: mismatched spikes, the first divergence (step, sample, neuron), firing-rate maps, membrane
differences where both runs record them, and a classification of every mismatch:
- *primary*: the first mismatch of that neuron in that sample while the layer's input still agreed in that sample.
  A primary flip is *explained by rounding* when its margin |H - threshold| is within the float32 error bound of
  the runs (0 for exact integer runs), otherwise *unexplained*;
- *propagated*: caused by an earlier difference (upstream in the same sample, or this neuron's own earlier flip).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from .runners.base import LayerRecord, RunResult

MAX_FLIPS_LISTED = 20


@dataclass
class LayerComparison:
    name: str
    index: int
    shape: tuple
    mismatches: int
    total: int
    first_divergence: Optional[dict]           # {"t", "sample", "neuron", "index"} or None
    rate_a: np.ndarray                         # firing rate per neuron, mean over samples and steps
    rate_b: np.ndarray
    v_max_abs_diff: Optional[float] = None
    v_mismatches: Optional[int] = None
    primary_explained: int = 0
    primary_unexplained: int = 0
    propagated: int = 0
    flips: list = field(default_factory=list)  # primary flips: t, sample, neuron, margin, bound, explained

    @property
    def rate(self) -> float:
        return self.mismatches / self.total if self.total else 0.0

    @property
    def exact(self) -> bool:
        return self.mismatches == 0 and not self.v_mismatches

    def to_dict(self) -> dict:
        return {
            "name": self.name, "index": self.index, "mismatches": self.mismatches, "total": self.total,
            "rate": self.rate, "first_divergence": self.first_divergence,
            "firing_rate_a": float(self.rate_a.mean()), "firing_rate_b": float(self.rate_b.mean()),
            "v_max_abs_diff": self.v_max_abs_diff, "v_mismatches": self.v_mismatches,
            "primary_explained_by_rounding": self.primary_explained,
            "primary_unexplained": self.primary_unexplained, "propagated": self.propagated,
            "flips": self.flips,
        }


@dataclass
class PairComparison:
    a: str
    b: str
    layers: list
    output_agreement: float       # fraction of samples whose class (argmax of last-layer spike counts) agrees
    samples: int
    steps: int

    @property
    def key(self) -> str:
        return f"{self.a}~{self.b}"

    @property
    def first_divergence(self) -> Optional[dict]:
        for lc in self.layers:
            if lc.first_divergence is not None:
                return {"layer": lc.name, **lc.first_divergence}
        return None

    @property
    def exact(self) -> bool:
        return all(lc.exact for lc in self.layers)

    @property
    def unexplained(self) -> int:
        return sum(lc.primary_unexplained for lc in self.layers)

    def layer(self, name: str) -> LayerComparison:
        return next(lc for lc in self.layers if lc.name == name)

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "exact": self.exact, "unexplained_flips": self.unexplained,
                "output_agreement": self.output_agreement, "first_divergence": self.first_divergence,
                "samples": self.samples, "steps": self.steps, "layers": [lc.to_dict() for lc in self.layers]}


def compare(a: RunResult, b: RunResult) -> PairComparison:
    """Compares two runs of the same layers (same names, same [N, T, *shape])."""
    names_a, names_b = a.names, b.names
    if names_a != names_b:
        raise ValueError(f"runs record different layers: {names_a} vs {names_b}")
    layers, upstream_first = [], None
    for i, (ra, rb) in enumerate(zip(a.layers, b.layers)):
        if ra.spikes.shape != rb.spikes.shape:
            raise ValueError(f"layer {ra.name!r}: shapes {ra.spikes.shape} and {rb.spikes.shape} differ")
        lc, differ = _compare_layer(i, ra, rb, upstream_first)
        layers.append(lc)
        upstream_first = _first_step_per_sample(differ)
    return PairComparison(a.label, b.label, layers, output_agreement(a, b),
                          samples=a.layers[0].spikes.shape[0], steps=a.layers[0].steps)


def classes(run: RunResult) -> np.ndarray:
    """Predicted class per sample: argmax of the last layer's spike counts over time (ties: lowest index)."""
    counts = run.layers[-1].spikes.reshape(run.layers[-1].spikes.shape[0], run.layers[-1].steps, -1).sum(axis=1)
    return counts.argmax(axis=1)


def output_agreement(a: RunResult, b: RunResult) -> float:
    return float(np.mean(classes(a) == classes(b)))


def _compare_layer(index: int, ra: LayerRecord, rb: LayerRecord, upstream_first):
    differ = ra.spikes != rb.spikes
    n, t = differ.shape[:2]
    flat = differ.reshape(n, t, -1)
    lc = LayerComparison(ra.name, index, ra.shape, int(flat.sum()), int(flat.size), _first(flat, ra.shape),
                         ra.spikes.mean(axis=(0, 1)), rb.spikes.mean(axis=(0, 1)))
    if ra.v is not None and rb.v is not None:
        dv = np.abs(ra.v.astype(np.float64) - rb.v.astype(np.float64))
        lc.v_max_abs_diff, lc.v_mismatches = float(dv.max()), int((dv > 0).sum())
    if lc.mismatches:
        _classify(lc, flat, ra, rb, upstream_first)
    return lc, differ


def _first(flat: np.ndarray, shape) -> Optional[dict]:
    """Earliest step with a mismatch, then lowest sample, then lowest neuron index."""
    hits = np.argwhere(flat.transpose(1, 0, 2))
    if not len(hits):
        return None
    t, sample, idx = (int(v) for v in hits[0])
    return {"t": t, "sample": sample, "neuron": [int(c) for c in np.unravel_index(idx, shape)], "index": idx}


def _first_step_per_sample(differ: np.ndarray) -> np.ndarray:
    """For each sample, the first step at which any neuron differs (T if none)."""
    n, t = differ.shape[:2]
    any_t = differ.reshape(n, t, -1).any(axis=2)
    return np.where(any_t.any(axis=1), any_t.argmax(axis=1), t)


def _classify(lc: LayerComparison, flat: np.ndarray, ra: LayerRecord, rb: LayerRecord, upstream_first) -> None:
    n, t, k = flat.shape
    # a neuron's own earlier flip makes every later difference of it propagated
    seen_before = np.cumsum(flat, axis=1) - flat > 0
    primary = flat & ~seen_before
    if upstream_first is not None:
        primary &= np.arange(t)[None, :, None] < upstream_first[:, None, None]
    lc.propagated = int(flat.sum() - primary.sum())
    where = np.argwhere(primary)
    if not len(where):
        return
    margin = _margin(ra, rb, where)
    bound = max(ra.rounding_bound, rb.rounding_bound) * (where[:, 1] + 1)     # errors accumulate over steps
    explained = margin <= bound
    lc.primary_explained = int(explained.sum())
    lc.primary_unexplained = int((~explained).sum())
    order = np.lexsort((where[:, 0], where[:, 1], explained))   # unexplained first, then by step, then sample
    for j in order[:MAX_FLIPS_LISTED]:
        s, step, idx = (int(v) for v in where[j])
        lc.flips.append({"t": step, "sample": s, "neuron": [int(c) for c in np.unravel_index(idx, lc.shape)],
                         "margin": float(margin[j]), "bound": float(bound[j]), "explained": bool(explained[j])})


def _margin(ra: LayerRecord, rb: LayerRecord, where: np.ndarray) -> np.ndarray:
    """|H - threshold| at each flip, the smaller over the runs that record H (inf if neither does)."""
    margins = []
    for rec in (ra, rb):
        if rec.h is not None:
            h = rec.h.reshape(rec.h.shape[0], rec.h.shape[1], -1)[where[:, 0], where[:, 1], where[:, 2]]
            margins.append(np.abs(h.astype(np.float64) - float(rec.threshold)))
    return np.min(margins, axis=0) if margins else np.full(len(where), np.inf)
