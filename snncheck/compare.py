"""Comparing two aligned runs. Knows nothing of simulators: only RunResults (arrays `[N, T, *shape]`).

Per layer: mismatched spikes, the first divergence (step, sample, neuron), spike counts per neuron, membrane
differences where both runs record them, and a classification of every mismatch:
- *primary*: the first mismatch of that neuron in that sample while the layer's input still agreed in that sample.
  A primary flip is *explained by rounding* when its margin |H - threshold| is within the float32 error bound of
  the runs (0 for exact integer runs), otherwise *unexplained*;
- *propagated*: caused by an earlier difference (upstream in the same sample, or this neuron's own earlier flip).

Everything is held as counts that merge: comparing a whole set chunk by chunk and merging gives the comparison of
the whole set at once (`PairComparison.merge`), with sample indices made global by the chunk's offset.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .backends.base import LayerRecord, OutputRecord, RunResult
from .kernels import membrane_diff, seen_before, spike_counts

MAX_FLIPS_LISTED = 20
SPARSE = 16                      # mismatches in at most 1/16 of a layer's entries: located by their indices
FLOAT_READOUT_TOLERANCE = 1e-4   # relative: float32 sums of a readout (a 4096-input head) in two orders (as the import)


@dataclass(frozen=True, eq=False)
class LayerComparison:
    name: str
    index: int
    shape: tuple
    mismatches: int
    total: int
    first_divergence: Optional[dict]           # {"t", "sample", "neuron", "index"} or None
    count_a: np.ndarray                        # spikes per neuron, summed over samples and steps
    count_b: np.ndarray
    rows: int                                  # samples x steps the counts are over
    v_max_abs_diff: Optional[float] = None
    v_mismatches: Optional[int] = None         # None where membranes are in different units (A against B)
    primary_explained: int = 0
    primary_unexplained: int = 0
    propagated: int = 0
    flips: tuple = ()                          # primary flips: t, sample, neuron, margin, bound, explained

    @property
    def rate(self) -> float:
        return self.mismatches / self.total if self.total else 0.0

    @property
    def rate_a(self) -> np.ndarray:
        return self.count_a / max(self.rows, 1)

    @property
    def rate_b(self) -> np.ndarray:
        return self.count_b / max(self.rows, 1)

    @property
    def exact(self) -> bool:
        return self.mismatches == 0 and not self.v_mismatches

    def merge(self, other: "LayerComparison") -> "LayerComparison":
        return dataclasses.replace(
            self, mismatches=self.mismatches + other.mismatches, total=self.total + other.total,
            first_divergence=min((f for f in (self.first_divergence, other.first_divergence) if f),
                                 key=_divergence_key, default=None),
            count_a=self.count_a + other.count_a, count_b=self.count_b + other.count_b, rows=self.rows + other.rows,
            v_max_abs_diff=_combine(max, self.v_max_abs_diff, other.v_max_abs_diff),
            v_mismatches=_combine(lambda x, y: x + y, self.v_mismatches, other.v_mismatches),
            primary_explained=self.primary_explained + other.primary_explained,
            primary_unexplained=self.primary_unexplained + other.primary_unexplained,
            propagated=self.propagated + other.propagated,
            flips=tuple(sorted(self.flips + other.flips, key=_flip_key)[:MAX_FLIPS_LISTED]))

    def to_dict(self) -> dict:
        return {
            "name": self.name, "index": self.index, "mismatches": self.mismatches, "total": self.total,
            "rate": self.rate, "first_divergence": self.first_divergence,
            "firing_rate_a": float(self.rate_a.mean()), "firing_rate_b": float(self.rate_b.mean()),
            "v_max_abs_diff": self.v_max_abs_diff, "v_mismatches": self.v_mismatches,
            "primary_explained_by_rounding": self.primary_explained,
            "primary_unexplained": self.primary_unexplained, "propagated": self.propagated,
            "flips": list(self.flips),
        }


@dataclass(frozen=True, eq=False)
class OutputComparison:
    """One readout (a rate, a vote, a Linear head computed off-chip) of two runs, compared as numbers: B's values
    divided by `scale` (B's units per A's unit; 1 between runs of one network). Counts merge like a layer's."""
    name: str
    shape: tuple
    scale: float
    max_abs_diff: float
    sum_abs_diff: float
    differing: int                 # values further apart than `tolerance`
    total: int
    tolerance: float               # 0 for an exact pair, float32 rounding of the values otherwise
    class_agree: int               # samples whose class (argmax of the readout summed over time) agrees
    samples: int
    max_abs_a: float = 0.0

    @property
    def mean_abs_diff(self) -> float:
        return self.sum_abs_diff / self.total if self.total else 0.0

    @property
    def class_agreement(self) -> float:
        return self.class_agree / self.samples if self.samples else 0.0

    @property
    def exact(self) -> bool:
        return self.differing == 0

    def merge(self, other: "OutputComparison") -> "OutputComparison":
        return dataclasses.replace(
            self, max_abs_diff=max(self.max_abs_diff, other.max_abs_diff),
            sum_abs_diff=self.sum_abs_diff + other.sum_abs_diff, differing=self.differing + other.differing,
            total=self.total + other.total, tolerance=max(self.tolerance, other.tolerance),
            class_agree=self.class_agree + other.class_agree, samples=self.samples + other.samples,
            max_abs_a=max(self.max_abs_a, other.max_abs_a))

    def to_dict(self) -> dict:
        return {"name": self.name, "shape": list(self.shape), "scale": self.scale, "max_abs_diff": self.max_abs_diff,
                "mean_abs_diff": self.mean_abs_diff, "differing": self.differing, "total": self.total,
                "tolerance": self.tolerance, "class_agreement": self.class_agreement, "max_abs_a": self.max_abs_a}


def compare_output(a: OutputRecord, b: OutputRecord, scale: float = 1.0, exact: bool = False) -> OutputComparison:
    """A readout of run a against the same readout of run b, in a's units (b / scale)."""
    va, vb = a.values.astype(np.float64), b.values.astype(np.float64) / scale
    if va.shape != vb.shape:
        raise ValueError(f"readout {a.name!r}: shapes {va.shape} and {vb.shape} differ")
    diff = np.abs(va - vb)
    top = float(np.abs(va).max(initial=0.0))
    tol = 0.0 if exact else FLOAT_READOUT_TOLERANCE * (1.0 + top)
    n = va.shape[0]
    ca, cb = (v.reshape(n, v.shape[1], -1).sum(axis=1).argmax(axis=1) for v in (va, vb))
    return OutputComparison(a.name, tuple(va.shape[2:]), float(scale), float(diff.max(initial=0.0)),
                            float(diff.sum()), int((diff > tol).sum()), int(diff.size), tol, int((ca == cb).sum()), n,
                            top)


@dataclass(frozen=True, eq=False)
class PairComparison:
    a: str                        # run labels, for the report
    b: str
    expect: str                   # what the pair must show (plan.Expect's value)
    layers: tuple
    agree: int                    # samples whose class (argmax of last-layer spike counts) agrees
    samples: int
    steps: int
    outputs: tuple = ()           # OutputComparison per readout both runs carry

    @property
    def key(self) -> str:
        return f"{self.a}~{self.b}"

    @property
    def output_agreement(self) -> float:
        return self.agree / self.samples if self.samples else 0.0

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

    def output(self, name: str) -> Optional[OutputComparison]:
        return next((oc for oc in self.outputs if oc.name == name), None)

    def merge(self, other: "PairComparison") -> "PairComparison":
        return dataclasses.replace(self, layers=tuple(x.merge(y) for x, y in zip(self.layers, other.layers)),
                                   agree=self.agree + other.agree, samples=self.samples + other.samples,
                                   outputs=tuple(x.merge(y) for x, y in zip(self.outputs, other.outputs)))

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "expect": self.expect, "exact": self.exact,
                "unexplained_flips": self.unexplained, "output_agreement": self.output_agreement,
                "first_divergence": self.first_divergence, "samples": self.samples, "steps": self.steps,
                "layers": [lc.to_dict() for lc in self.layers], "readouts": [oc.to_dict() for oc in self.outputs]}


def compare(a: RunResult, b: RunResult, expect: str = "exact", ids=None,
            v_scales: Optional[dict] = None, out_scales: Optional[dict] = None) -> PairComparison:
    """Compares two runs of the same layers (same names, same [N, T, *shape]). `ids`: the global index of each
    sample (a chunk of a larger set; default 0..N-1). `v_scales` {layer: k}: b's membranes are compared as
    v_b / k (an integer network against its float original); without it membranes must agree exactly.
    Readouts that both runs carry are compared as numbers, b's divided by `out_scales` {readout: k} (default 1)."""
    ids = np.arange(a.samples) if ids is None else np.asarray(ids)
    if a.names != b.names:
        raise ValueError(f"runs record different layers: {a.names} vs {b.names}")
    layers, upstream_first = [], None
    for i, (ra, rb) in enumerate(zip(a.layers, b.layers)):
        if ra.spikes.shape != rb.spikes.shape:
            raise ValueError(f"layer {ra.name!r}: shapes {ra.spikes.shape} and {rb.spikes.shape} differ")
        scale = None if v_scales is None else v_scales.get(ra.name)
        lc, upstream_first = _compare_layer(i, ra, rb, upstream_first, ids, scale, v_scales is not None)
        layers.append(lc)
    names_b = {o.name for o in b.outputs}
    outputs = tuple(compare_output(o, b.output(o.name), (out_scales or {}).get(o.name, 1.0), expect == "exact")
                    for o in a.outputs if o.name in names_b)
    return PairComparison(a.label, b.label, expect, tuple(layers), int(np.sum(classes(a) == classes(b))),
                          samples=a.samples, steps=a.layers[0].steps, outputs=outputs)


def classes(run: RunResult) -> np.ndarray:
    """Predicted class per sample: argmax of the last layer's spike counts over time (ties: lowest index)."""
    last = run.layers[-1].spikes
    return last.reshape(last.shape[0], last.shape[1], -1).sum(axis=1).argmax(axis=1)


def _compare_layer(index: int, ra: LayerRecord, rb: LayerRecord, upstream_first, ids, scale, scaled: bool):
    """(LayerComparison, each sample's first step with a mismatch (T if none))."""
    differ = np.not_equal(ra.spikes, rb.spikes)
    n, t = differ.shape[:2]
    flat = differ.reshape(n, t, -1)
    mismatches = int(np.count_nonzero(flat))
    v_max = v_mis = None
    if ra.v is not None and rb.v is not None and (not scaled or scale):
        v_max, v_mis = membrane_diff(ra.v, rb.v, scale)       # (no scale without v_scales; a count only without)
    explained = unexplained = propagated = 0
    flips, first, first_steps = (), None, np.full(n, t)
    if mismatches:
        found = _Sparse(flat) if mismatches * SPARSE <= flat.size else _Dense(flat)
        first, first_steps = found.first(ra.shape, ids), found.first_steps()
        explained, unexplained, propagated, flips = _classify(found.primary(upstream_first), mismatches, ra, rb,
                                                              ids)
    return LayerComparison(ra.name, index, ra.shape, mismatches, int(flat.size), first, spike_counts(ra.spikes),
                           spike_counts(rb.spikes), n * t, v_max, v_mis, explained, unexplained, propagated,
                           flips), first_steps


class _Dense:
    """Where the mismatches [N, T, K] of a layer are, read off the whole boolean array."""

    def __init__(self, flat: np.ndarray):
        self.flat = flat

    def first(self, shape, ids) -> dict:
        """Earliest step with a mismatch, then lowest sample, then lowest neuron index (in that step only)."""
        t = int(self.flat.any(axis=2).any(axis=0).argmax())
        sample, idx = (int(v) for v in np.argwhere(self.flat[:, t])[0])
        return _divergence(t, sample, idx, shape, ids)

    def first_steps(self) -> np.ndarray:
        """For each sample, the first step at which any neuron differs (T if none)."""
        any_t = self.flat.any(axis=2)
        return np.where(any_t.any(axis=1), any_t.argmax(axis=1), self.flat.shape[1])

    def primary(self, upstream_first) -> np.ndarray:
        """[sample, step, neuron] of each neuron's first mismatch in a sample, while the layer's input still agreed
        in that sample (before `upstream_first`), in C order."""
        t = self.flat.shape[1]
        primary = self.flat & ~seen_before(self.flat)            # a neuron's own earlier flip propagates
        if upstream_first is not None:
            primary[np.arange(t)[None, :] >= upstream_first[:, None]] = False
        return np.argwhere(primary)


class _Sparse(_Dense):
    """The same from the indices of the mismatches, when they are few: no pass over the whole array but one."""

    def __init__(self, flat: np.ndarray):
        super().__init__(flat)
        n, t, k = flat.shape
        sample, rest = np.divmod(np.flatnonzero(flat), t * k)
        self.where = np.stack([sample, *np.divmod(rest, k)], axis=1)        # C order: by sample, step, neuron

    def first(self, shape, ids) -> dict:
        n, t, k = self.flat.shape
        sample, step, neuron = self.where[np.argmin((self.where[:, 1] * n + self.where[:, 0]) * k + self.where[:, 2])]
        return _divergence(int(step), int(sample), int(neuron), shape, ids)

    def first_steps(self) -> np.ndarray:
        out = np.full(self.flat.shape[0], self.flat.shape[1])
        starts = np.flatnonzero(np.r_[True, self.where[1:, 0] != self.where[:-1, 0]])    # a sample's first row
        out[self.where[starts, 0]] = self.where[starts, 1]
        return out

    def primary(self, upstream_first) -> np.ndarray:
        k = self.flat.shape[2]
        _, firsts = np.unique(self.where[:, 0] * k + self.where[:, 2], return_index=True)    # first occurrences
        where = self.where[np.sort(firsts)]
        if upstream_first is not None:
            where = where[where[:, 1] < upstream_first[where[:, 0]]]
        return where


def _divergence(t: int, sample: int, idx: int, shape, ids) -> dict:
    return {"t": t, "sample": int(ids[sample]), "neuron": [int(c) for c in np.unravel_index(idx, shape)], "index": idx}


def _classify(where: np.ndarray, mismatches: int, ra: LayerRecord, rb: LayerRecord, ids) -> tuple:
    """(explained, unexplained, propagated, the first flips listed) of the primary flips at `where`."""
    propagated = mismatches - len(where)
    if not len(where):
        return 0, 0, propagated, ()
    margin = _margin(ra, rb, where)
    bound = max(ra.rounding_bound, rb.rounding_bound) * (where[:, 1] + 1)     # errors accumulate over steps
    explained = margin <= bound
    order = np.lexsort((where[:, 0], where[:, 1], explained))   # unexplained first, then by step, then sample
    flips = tuple({"t": int(where[j, 1]), "sample": int(ids[where[j, 0]]),
                   "neuron": [int(c) for c in np.unravel_index(int(where[j, 2]), ra.shape)],
                   "margin": float(margin[j]), "bound": float(bound[j]), "explained": bool(explained[j])}
                  for j in order[:MAX_FLIPS_LISTED])
    return int(explained.sum()), int((~explained).sum()), propagated, flips


def _margin(ra: LayerRecord, rb: LayerRecord, where: np.ndarray) -> np.ndarray:
    """|H - threshold| at each flip, the smaller over the runs that record H (inf if neither does)."""
    margins = []
    for rec in (ra, rb):
        if rec.h is not None:
            h = rec.h.reshape(rec.h.shape[0], rec.h.shape[1], -1)[where[:, 0], where[:, 1], where[:, 2]]
            margins.append(np.abs(h.astype(np.float64) - float(rec.threshold)))
    return np.min(margins, axis=0) if margins else np.full(len(where), np.inf)


def _divergence_key(fd: dict) -> tuple:
    return fd["t"], fd["sample"], fd["index"]


def _flip_key(f: dict) -> tuple:
    return f["explained"], f["t"], f["sample"], tuple(f["neuron"])


def _combine(fn, x, y):
    if x is None:
        return y
    return x if y is None else fn(x, y)
