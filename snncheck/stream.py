"""Streaming comparison: whole test sets in chunks, with memory that does not grow with the number of samples.

Samples go through the runners a chunk at a time; each chunk is compared with `snncheck.compare.compare` and
folded into running aggregates (`PairAccumulator`, `LagAccumulator`) that give exactly the numbers `compare` and
`align` give on the whole set at once: counts are summed, first divergences and the listed flips are the
smallest by the comparator's own order (with global sample indices), firing rates are spike counts over the
total. Full records are kept only for the sample of each pair's first divergence (`evidence`).

A `Summary` of one chunk or of many merges with another, so chunks can run anywhere (`snncheck.parallel`:
worker processes or a Dask cluster) and only summaries travel back.

    job = stream.Job.from_case("cases/x.toml", split="all", paibox_samples=200)
    report = stream.run(job, chunk=256)                    # or executor=parallel.executor("dask")
"""
from __future__ import annotations

import dataclasses
import threading
import time
from typing import Optional

import numpy as np

from . import api, ir
from .align import align, lag_verdict
from .compare import MAX_FLIPS_LISTED, LayerComparison, PairComparison, compare
from .errors import require
from .runners.base import LayerRecord, RunResult


# ------------------------------------------------------------------------------------------------ accumulators
class PairAccumulator:
    """Running aggregate of `compare(a, b)` over chunks of samples; `result()` is the whole-set PairComparison."""

    def __init__(self, a: str, b: str):
        self.a, self.b = a, b
        self.samples, self.steps, self.agree = 0, None, 0
        self.layers: list = []          # per layer: dict of sums (see _layer_sums)
        self.evidence: Optional[dict] = None

    def add(self, ra: RunResult, rb: RunResult, sample_ids) -> "PairAccumulator":
        """Folds in one chunk: `ra`, `rb` aligned runs of the same samples, `sample_ids` their global indices."""
        ids = np.asarray(sample_ids)
        pair = compare(ra, rb)
        n = pair.samples
        chunk = PairAccumulator(self.a, self.b)
        chunk.samples, chunk.steps = n, pair.steps
        chunk.agree = int(round(pair.output_agreement * n))
        chunk.layers = [_layer_sums(lc, n * pair.steps, ids) for lc in pair.layers]
        first = _first_key(chunk.layers)
        if first is not None:
            local = int(np.flatnonzero(ids == first[2])[0])
            chunk.evidence = {"key": first, "sample": first[2], "layer": chunk.layers[first[0]]["name"],
                              "a": subset(ra, [local]), "b": subset(rb, [local])}
        return self.merge(chunk)

    def merge(self, other: "PairAccumulator") -> "PairAccumulator":
        if not other.samples:
            return self
        if not self.samples:
            self.__dict__.update({k: v for k, v in other.__dict__.items() if k not in ("a", "b")})
            return self
        require(self.steps == other.steps, f"{self.a}~{self.b}: chunks with {self.steps} and {other.steps} steps")
        self.layers = [_merge_sums(x, y) for x, y in zip(self.layers, other.layers)]
        if other.evidence and (not self.evidence or other.evidence["key"] < self.evidence["key"]):
            self.evidence = other.evidence
        self.samples += other.samples
        self.agree += other.agree
        return self

    def result(self) -> PairComparison:
        rows = self.samples * self.steps
        layers = [LayerComparison(s["name"], s["index"], s["shape"], s["mismatches"], s["total"],
                                  s["first"][1] if s["first"] else None, s["count_a"] / rows, s["count_b"] / rows,
                                  s["v_max"], s["v_mismatches"], s["explained"], s["unexplained"], s["propagated"],
                                  [f for _, f in s["flips"]])
                  for s in self.layers]
        return PairComparison(self.a, self.b, layers, self.agree / self.samples, self.samples, self.steps)


def _layer_sums(lc: LayerComparison, rows: int, ids: np.ndarray) -> dict:
    """One chunk's LayerComparison as sums, with its sample indices made global."""
    first = None
    if lc.first_divergence:
        fd = dict(lc.first_divergence, sample=int(ids[lc.first_divergence["sample"]]))
        first = ((fd["t"], fd["sample"], fd["index"]), fd)
    flips = []
    for f in lc.flips:
        f = dict(f, sample=int(ids[f["sample"]]))
        flips.append(((f["explained"], f["t"], f["sample"], int(np.ravel_multi_index(f["neuron"], lc.shape))), f))
    return {"name": lc.name, "index": lc.index, "shape": lc.shape, "mismatches": lc.mismatches, "total": lc.total,
            "first": first, "count_a": np.rint(lc.rate_a * rows).astype(np.int64),
            "count_b": np.rint(lc.rate_b * rows).astype(np.int64), "v_max": lc.v_max_abs_diff,
            "v_mismatches": lc.v_mismatches, "explained": lc.primary_explained,
            "unexplained": lc.primary_unexplained, "propagated": lc.propagated, "flips": flips}


def _merge_sums(x: dict, y: dict) -> dict:
    out = dict(x)
    for key in ("mismatches", "total", "count_a", "count_b", "explained", "unexplained", "propagated"):
        out[key] = x[key] + y[key]
    out["first"] = min((f for f in (x["first"], y["first"]) if f), key=lambda f: f[0], default=None)
    out["v_max"] = None if x["v_max"] is None or y["v_max"] is None else max(x["v_max"], y["v_max"])
    out["v_mismatches"] = None if x["v_mismatches"] is None else x["v_mismatches"] + y["v_mismatches"]
    out["flips"] = sorted(x["flips"] + y["flips"], key=lambda f: f[0])[:MAX_FLIPS_LISTED]
    return out


def _first_key(layers: list) -> Optional[tuple]:
    """(layer index, t, sample, neuron) of the pair's first divergence: first layer in order, then its earliest."""
    return next(((s["index"],) + s["first"][0] for s in layers if s["first"]), None)


class LagAccumulator:
    """Whole-set lag scores from per-chunk `align` results: mismatch counts per shift, summed."""

    def __init__(self):
        self.layers: dict = {}      # name -> {"expected", "counts": [per shift], "size"}

    def add(self, run: RunResult) -> "LagAccumulator":
        for rec in run.layers:
            lag = run.meta["lags"][rec.name]
            size = rec.spikes.size
            counts = np.rint(np.asarray(lag["scores"]) * size).astype(np.int64)
            self._fold(rec.name, {"expected": lag["expected"], "counts": counts, "size": size,
                                  "early": lag.get("early_activity", False)})
        return self

    def merge(self, other: "LagAccumulator") -> "LagAccumulator":
        for name, entry in other.layers.items():
            self._fold(name, entry)
        return self

    def _fold(self, name: str, entry: dict) -> None:
        if name not in self.layers:
            self.layers[name] = dict(entry)
            return
        mine = self.layers[name]
        mine.update(counts=mine["counts"] + entry["counts"], size=mine["size"] + entry["size"],
                    early=mine["early"] or entry["early"])

    def result(self) -> dict:
        return {name: lag_verdict([float(c) / e["size"] for c in e["counts"]], e["expected"], e["early"])
                for name, e in self.layers.items()}


@dataclasses.dataclass
class Summary:
    """Mergeable aggregate of some chunks: per pair, lags, per run label the samples and seconds."""
    pairs: dict = dataclasses.field(default_factory=dict)         # key -> PairAccumulator
    lags: LagAccumulator = dataclasses.field(default_factory=LagAccumulator)
    runs: dict = dataclasses.field(default_factory=dict)          # label -> meta (seconds, samples summed)
    names: list = dataclasses.field(default_factory=list)         # spiking layers in order

    def add_runs(self, results: dict, pairs: list, ids: dict) -> "Summary":
        """results: aligned runs of one chunk; pairs: [(a, b)]; ids: label -> global sample indices."""
        for label, res in results.items():
            self.names = self.names or res.names
            meta = {k: v for k, v in res.meta.items() if k != "lags"}
            meta["samples"] = len(ids[label])
            self._fold_meta(label, meta)
            if "lags" in res.meta:
                self.lags.add(res)
        for a, b in pairs:
            ra, rb, common = _common(results[a], results[b], ids[a], ids[b])
            self.pairs.setdefault(f"{a}~{b}", PairAccumulator(a, b)).add(ra, rb, common)
        return self

    def merge(self, other: "Summary") -> "Summary":
        for key, acc in other.pairs.items():
            self.pairs.setdefault(key, PairAccumulator(acc.a, acc.b)).merge(acc)
        self.lags.merge(other.lags)
        for label, meta in other.runs.items():
            self._fold_meta(label, meta)
        self.names = self.names or other.names
        return self

    def _fold_meta(self, label: str, meta: dict) -> None:
        mine = self.runs.setdefault(label, dict(meta, samples=0, seconds=0.0))
        mine["samples"] += meta.get("samples", 0)
        mine["seconds"] += meta.get("seconds", 0.0)

    def report(self, title: str, inputs_info: dict, networks: dict, total: int):
        """The Report of the whole set (run diagnoses included), with the coverage in extras["coverage"]."""
        labels = sorted(self.runs, key=_label_order)
        keys = [f"{a}~{b}" for a, b in api.pairs_for(labels) if f"{a}~{b}" in self.pairs]
        lags = self.lags.result()
        heads = {label: RunResult(label.split(":")[0], label, [LayerRecord(n, np.zeros((0, 0), bool))
                                                              for n in self.names], dict(self.runs[label], lags=lags))
                 for label in labels}
        report = api.report_from_runs(heads, title, inputs_info, networks,
                                      compared=[self.pairs[k].result() for k in keys])
        report.extras["coverage"] = coverage(self.runs, total)
        report.figures["first_divergences"] = {k: acc.evidence for k, acc in self.pairs.items() if acc.evidence}
        return report


def _label_order(label: str) -> tuple:
    kind, tag = label.split(":")
    return (tag, api.RUNNERS.index(kind) if kind in api.RUNNERS else len(api.RUNNERS), kind)


def coverage(runs: dict, total: int) -> dict:
    """How many of the `total` samples each run saw."""
    return {"samples": total, "runs": {label: {"samples": m["samples"], "share": m["samples"] / total if total else 0.0}
                                       for label, m in runs.items()}}


def _common(ra: RunResult, rb: RunResult, ids_a, ids_b):
    """The two runs restricted to the samples both ran (PAIBox may run a subset), and their global indices."""
    ids_a, ids_b = np.asarray(ids_a), np.asarray(ids_b)
    if np.array_equal(ids_a, ids_b):
        return ra, rb, ids_a
    common = np.intersect1d(ids_a, ids_b)
    return subset(ra, np.searchsorted(ids_a, common)), subset(rb, np.searchsorted(ids_b, common)), common


def subset(run: RunResult, rows) -> RunResult:
    """The run restricted to some samples (rows of every record; a list of rows copies, so the rest can go)."""
    pick = lambda a: None if a is None else a[rows]        # noqa: E731
    layers = [dataclasses.replace(r, spikes=pick(r.spikes), v=pick(r.v), h=pick(r.h)) for r in run.layers]
    return RunResult(run.runner, run.label, layers, dict(run.meta))


# ------------------------------------------------------------------------------------------------ full-set jobs
@dataclasses.dataclass
class Job:
    """A case to run over a whole input set, chunk by chunk. Plain data, so that it travels to workers, which
    rebuild the networks and inputs once each (`_setup`)."""
    case_spec: dict
    case_path: Optional[str]
    samples: int
    runners: list
    timing: str = "pipeline"
    paibox_ids: Optional[list] = None      # global sample indices PAIBox runs; None: all
    paibox_batch: int = 32

    @classmethod
    def from_case(cls, path, split: Optional[str] = None, samples: Optional[int] = None,
                  timesteps: Optional[int] = None, runners: Optional[list] = None,
                  paibox_samples: Optional[int] = None, paibox_batch: int = 32, timing: Optional[str] = None) -> "Job":
        """The case at `path`; `split`/`samples`/`timesteps` override its [inputs] (default: every sample of the
        source); `paibox_samples`: PAIBox on that many samples spread evenly over the set (default: all)."""
        from . import case as cases
        case = cases.Case.load(path)
        spec = dict(case.spec)
        inputs = spec["inputs"] = dict(spec.get("inputs", {}))
        if split:
            inputs["split"] = split
        if samples or inputs.get("source", "digits") == "digits" or str(inputs.get("source")).startswith("file:"):
            inputs["samples"] = samples or 10 ** 9          # a data set is cut to what it holds
        if timesteps:
            inputs["timesteps"] = timesteps
        run = spec.get("run", {})
        job = cls(spec, str(case.path), 0, list(runners or run.get("runners", api.RUNNERS)),
                  timing or run.get("timing", "pipeline"), None, int(paibox_batch))
        job.samples = len(_setup(job)["inputs"])
        require(job.samples > 0, f"case {case.name}: no input samples")
        if paibox_samples is not None and "paibox" in job.runners:
            k = max(1, min(int(paibox_samples), job.samples))
            job.paibox_ids = np.unique(np.linspace(0, job.samples - 1, k).round().astype(int)).tolist()
        return job


_SETUPS: dict = {}


def _setup(job: Job) -> dict:
    """Networks and inputs of a job, built once per process."""
    import json
    key = json.dumps([job.case_spec, job.case_path], sort_keys=True, default=str)
    if key not in _SETUPS:
        from . import case as cases, convert
        from pathlib import Path
        case = cases.Case(job.case_spec.get("name", "case"), Path(job.case_path) if job.case_path else None,
                          job.case_spec)
        module, float_net = cases.build_float(case)
        inputs, info = cases.build_inputs(case, float_net.input_shape)
        conv_spec = case.section("conversion")
        int_net, scale = None, 1.0
        if conv_spec:
            conv = convert.convert(float_net, float(conv_spec.get("input_scale", 1.0)), conv_spec.get("rule", "max"),
                                   conv_spec.get("reset"))
            int_net, scale = conv.network, conv.input_scale
            if conv_spec.get("mutation"):
                from . import mutations
                int_net = mutations.apply(int_net, float_net, dict(conv_spec["mutation"]), conv)
        _SETUPS.clear()                     # one job per process at a time
        _SETUPS[key] = {"name": case.name, "module": module, "float": float_net, "int": int_net, "scale": scale,
                        "inputs": inputs, "info": info}
    return _SETUPS[key]


def run_chunk(job: Job, lo: int, hi: int) -> Summary:
    """Samples [lo, hi) of a job through its runners, compared: a Summary (small, whatever the chunk size).
    A case with a conversion runs like `api.diff` (A in SpikingJelly and the reference, B in every runner),
    one without like `api.check`. One chunk at a time per process: the SpikingJelly module (hooks, state) and
    PAIBox (global step counter, names) are not thread-safe, and Dask workers may run several threads."""
    with _ONE_AT_A_TIME:
        return _run_chunk(job, lo, hi)


_ONE_AT_A_TIME = threading.Lock()


def _run_chunk(job: Job, lo: int, hi: int) -> Summary:
    s = _setup(job)
    x, ids = s["inputs"][lo:hi], np.arange(lo, hi)
    results = {}
    if s["int"] is not None:
        results.update(api.run_network(s["float"], x, [r for r in ("spikingjelly", "reference") if r in job.runners]
                                       or ["reference"], "a", s["module"]))
        net, xb, tag, module = s["int"], api.deployed_inputs(x, s["scale"]), "b", None
    else:
        net, xb, module = s["float"], x, s["module"]
        tag = "b" if ir.fold_batchnorm(net).is_integer else "a"
    same_step = [r for r in job.runners if r != "paibox"]
    results.update(api.run_network(net, xb, same_step if "reference" in same_step else ["reference"] + same_step,
                                   tag, module))
    id_map = {label: ids for label in results}
    if "paibox" in job.runners:
        rows = np.arange(len(ids)) if job.paibox_ids is None else np.flatnonzero(np.isin(ids, job.paibox_ids))
        if len(rows):
            runner = api.make_runner("paibox", ir.fold_batchnorm(net), tag, timing=job.timing,
                                     options={"batch": job.paibox_batch})
            label = runner.label
            results[label] = align(runner.run(xb[rows]), subset(results[f"reference:{tag}"], rows))
            id_map[label] = ids[rows]
    return Summary().add_runs(results, api.pairs_for(list(results)), id_map)


def run(job: Job, chunk: int = 256, executor=None, progress: bool = False, title: Optional[str] = None):
    """The whole set, `chunk` samples at a time (on `executor`, a snncheck.parallel executor, or here):
    a Report whose extras["coverage"] says how many samples each run saw."""
    from tqdm import tqdm
    from . import parallel
    ex = executor or parallel.LocalExecutor()
    spans = parallel.chunks(job.samples, chunk)
    total = Summary()
    start = time.perf_counter()
    with tqdm(total=job.samples, desc="samples", unit="sample", disable=not progress) as bar:
        for (lo, hi), part in zip(spans, parallel.imap(ex, run_chunk, [(job, lo, hi) for lo, hi in spans])):
            total.merge(part)
            bar.update(hi - lo)
    s = _setup(job)
    networks = {"a": api.summary(s["float"]), "b": api.summary(s["int"])} if s["int"] is not None else \
        {("b" if ir.fold_batchnorm(s["float"]).is_integer else "a"): api.summary(s["float"])}
    info = dict(s["info"], input_scale=s["scale"]) if s["int"] is not None else dict(s["info"])
    report = total.report(title or s["name"], info, networks, job.samples)
    report.extras["coverage"].update(chunk=chunk, executor=type(ex).__name__, workers=getattr(ex, "workers", 1),
                                     wall_seconds=time.perf_counter() - start,
                                     paibox_selection="all" if job.paibox_ids is None else "evenly spread")
    return report
