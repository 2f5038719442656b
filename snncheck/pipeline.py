"""One pipeline: a plan runs chunk by chunk (the whole set is one chunk), each chunk's runs are aligned and
compared into counts that merge, the first samples' runs are kept as evidence, the diagnoses are pure functions of
all that, and the report is built once.

    report = pipeline.execute(plan)                          # here, in one process
    report = pipeline.execute(loader, executor=ex)           # chunks in worker processes or on a Dask cluster

`loader` is a picklable zero-argument callable returning the plan (a case file and its overrides), so that a worker
builds the networks once instead of receiving them with every chunk.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional, Union

import numpy as np

from . import memory, parallel
from .align import align
from .backends import make
from .backends.base import RunResult
from .compare import compare
from .diagnose import rank
from .graph import fold_batchnorm
from .inputs import encoded_sums, merge_received, received, statistics
from .plan import Expect, Plan, Role
from .report import Evidence, Report


EDGE_LAG_SAMPLES = 32


@dataclass(frozen=True, eq=False)
class Chunk:
    """What some samples of a plan gave: comparisons and lag scores (counts, mergeable), run facts, and the runs
    of the first `plan.evidence` samples."""
    pairs: dict                                      # key -> PairComparison
    lags: dict                                       # label -> Lags
    runs: dict                                       # label -> meta, samples and seconds summed
    evidence: dict = field(default_factory=dict)     # label -> RunResult (rows = the first samples)
    inputs: Optional[np.ndarray] = None              # the plan's inputs of the evidence samples
    analyses: dict = field(default_factory=dict)     # key -> what plan.analyses made of these samples (mergeable)

    def merge(self, other: "Chunk", limit: int) -> "Chunk":
        pairs = {k: self.pairs[k].merge(other.pairs[k]) if k in self.pairs else other.pairs[k]
                 for k in dict.fromkeys(list(self.pairs) + list(other.pairs))}
        lags = {k: self.lags[k].merge(other.lags[k]) if k in self.lags else other.lags[k]
                for k in dict.fromkeys(list(self.lags) + list(other.lags))}
        runs = {k: _sum_meta(self.runs.get(k), other.runs.get(k)) for k in dict.fromkeys(list(self.runs) +
                                                                                          list(other.runs))}
        evidence, inputs = self.evidence, self.inputs
        if other.evidence and (inputs is None or len(inputs) < limit):
            take = limit - (0 if inputs is None else len(inputs))
            evidence = {k: _concat(evidence.get(k), other.evidence[k].rows(slice(0, take))) for k in other.evidence}
            inputs = other.inputs[:take] if inputs is None else np.concatenate([inputs, other.inputs[:take]])
        analyses = {k: self.analyses[k].merge(other.analyses[k]) for k in self.analyses}
        return Chunk(pairs, lags, runs, evidence, inputs, analyses)


# ----------------------------------------------------------------------------------------------- execute
def execute(plan: Union[Plan, Callable[[], Plan]], executor=None, progress: bool = False) -> Report:
    """Runs a plan (or a loader of one) and returns its report."""
    from tqdm import tqdm
    loaded = plan() if callable(plan) else plan
    memory.check(loaded)
    spans = parallel.chunks(len(loaded.inputs), loaded.chunk or len(loaded.inputs))
    context = conversion_context(loaded)
    ex = executor or parallel.LocalExecutor()
    start, total = time.perf_counter(), None
    items = [(plan if executor is not None else loaded, lo, hi, context.get("v_scales"), progress and len(spans) == 1,
              context.get("out_scales")) for lo, hi in spans]
    with tqdm(total=len(loaded.inputs), desc="samples", unit="sample", leave=False,
              disable=not progress or len(spans) == 1) as bar:
        for (lo, hi), part in zip(spans, parallel.imap(ex, run_chunk, items)):
            total = part if total is None else total.merge(part, loaded.evidence)
            bar.update(hi - lo)
    coverage = {"samples": len(loaded.inputs), "chunk": loaded.chunk, "chunks": len(spans),
                "executor": type(ex).__name__, "workers": getattr(ex, "workers", 1),
                "wall_seconds": time.perf_counter() - start}
    return conclude(loaded, total, context, coverage)


def run_chunk(plan, lo: int, hi: int, v_scales: Optional[dict] = None, progress: bool = False,
              out_scales: Optional[dict] = None) -> Chunk:
    """Samples [lo, hi) of a plan through its runs: aligned, compared, and the evidence rows kept. One chunk at a
    time per process: PAIBox (a global step counter, node names) and a SpikingJelly module (hooks, state) are not
    thread-safe, and a Dask worker may run several threads (two chunks at once gave false mismatches)."""
    with _ONE_AT_A_TIME:
        return _run_chunk(_loaded(plan), lo, hi, v_scales, progress, out_scales)


_ONE_AT_A_TIME = threading.Lock()


def _run_chunk(plan: Plan, lo: int, hi: int, v_scales: Optional[dict], progress: bool,
               out_scales: Optional[dict] = None) -> Chunk:
    x = plan.inputs.chunk(lo, hi)
    ids = np.arange(lo, hi)
    results, lags, metas, rows_of, fed = {}, {}, {}, {}, _Received(x)
    for spec in _references_first(plan):
        subject = plan.subject(spec.role)
        rows = _rows(plan, spec, ids)
        if rows is not None and not len(rows):
            continue
        backend = make(spec, subject, progress=progress)
        xs = subject.inputs(x if rows is None else x[rows])
        res = backend.run(subject.graph, xs, spec.label)
        if res.raw:
            ref = results[plan.reference(spec.role).label]
            res, lags[spec.label] = align(res, ref if rows is None else ref.rows(rows))
        results[spec.label], rows_of[spec.label] = res, rows
        metas[spec.label] = dict({k: v for k, v in res.meta.items() if k != "lags"}, samples=res.samples,
                                 backend=spec.backend, role=spec.role.tag, pipelined=type(backend).pipelined,
                                 input_received=res.meta["input_received"] if "input_received" in res.meta else
                                 fed(spec.role, xs, subject, rows))
    pairs = {}
    for pair in plan.pairs:
        if pair.a.label not in results or pair.b.label not in results:
            continue
        ra, rb, common = _common(results[pair.a.label], results[pair.b.label], rows_of[pair.a.label],
                                 rows_of[pair.b.label], ids)
        a_to_b = pair.expect is Expect.QUANTIZATION
        pairs[pair.key] = compare(ra, rb, pair.expect.value, common, v_scales if a_to_b else None,
                                  out_scales if a_to_b else None)
    keep = max(0, min(hi, plan.evidence) - lo)
    evidence = {label: res.rows(slice(0, keep)) for label, res in results.items() if rows_of[label] is None} \
        if keep else {}
    analyses = {a.key: a.run(plan, x, ids, results) for a in plan.analyses}
    return Chunk(pairs, lags, metas, evidence, x[:keep].copy() if keep else None, analyses)


class _Received:
    """What the runs of one chunk x received (`inputs.received`): the runs of every sample all receive their
    subject's inputs of the same x, so once per subject, with the plan's side (x's sums) once for all; a run of
    some rows only, on its own."""

    def __init__(self, x: np.ndarray):
        self.x, self.sums, self.by_role = x, None, {}

    def __call__(self, role: Role, xs: np.ndarray, subject, rows) -> dict:
        if rows is not None:
            return received(xs, subject.input_scale, self.x[rows])
        if role not in self.by_role:
            if self.sums is None:
                self.sums = encoded_sums(self.x)
            self.by_role[role] = received(xs, subject.input_scale, self.x, self.sums)
        return dict(self.by_role[role])


def _loaded(plan) -> Plan:
    """The plan itself, or (in a worker) the plan its loader builds, built once per process."""
    if isinstance(plan, Plan):
        return plan
    key = id(plan) if not hasattr(plan, "key") else plan.key
    if _LOADED.get("key") != key:
        _LOADED.update(key=key, plan=plan())
    return _LOADED["plan"]


_LOADED: dict = {}


def _references_first(plan: Plan) -> list:
    """Every pipelined run aligns to the reference of its own subject: the references run first."""
    return sorted(plan.runs, key=lambda r: r.backend != "reference")


def _rows(plan: Plan, spec, ids: np.ndarray):
    """Rows of this chunk a run covers (None: all of them), for runs limited to a subset of the samples."""
    subset = plan.subsets.get(spec.backend)
    return None if subset is None else np.flatnonzero(np.isin(ids, subset))


def _common(ra: RunResult, rb: RunResult, rows_a, rows_b, ids):
    """The two runs restricted to the samples both ran, and those samples' global indices."""
    if rows_a is None and rows_b is None:
        return ra, rb, ids
    all_rows = np.arange(len(ids))
    a = all_rows if rows_a is None else rows_a
    b = all_rows if rows_b is None else rows_b
    both = np.intersect1d(a, b)
    return ra.rows(np.searchsorted(a, both)), rb.rows(np.searchsorted(b, both)), ids[both]


def _sum_meta(x: Optional[dict], y: Optional[dict]) -> dict:
    if x is None or y is None:
        return dict(x or y)
    merged = dict(x, samples=x["samples"] + y["samples"], seconds=x.get("seconds", 0.0) + y.get("seconds", 0.0))
    if "input_received" in x:          # None: a run that cannot say what it received (a record without inputs)
        a, b = x["input_received"], y.get("input_received")
        merged["input_received"] = merge_received(a, b) if a and b else None
    return merged


def _concat(a: Optional[RunResult], b: RunResult) -> RunResult:
    if a is None:
        return b
    cat = lambda x, y: None if x is None or y is None else np.concatenate([x, y])    # noqa: E731
    return a.replace(layers=[ra.replace(spikes=cat(ra.spikes, rb.spikes), v=cat(ra.v, rb.v), h=cat(ra.h, rb.h))
                             for ra, rb in zip(a.layers, b.layers)],
                     outputs=[oa.replace(values=cat(oa.values, ob.values)) for oa, ob in zip(a.outputs, b.outputs)])


# ----------------------------------------------------------------------------------------------- diagnose
def conversion_context(plan: Plan) -> dict:
    """The static comparison of B's parameters with A's, when the plan has both and asks for the conversion
    diagnosis: per-layer statistics, findings, and the layer scales that bring B's membranes to A's units."""
    if not (plan.diagnose and Role.FLOAT in plan.subjects and Role.DEPLOYED in plan.subjects):
        return {}
    from .diagnose import readouts, static
    a, b = plan.subject(Role.FLOAT), plan.subject(Role.DEPLOYED)
    with parallel.blas_threads(1):     # dot products of a few 100k weights: a second thread waits on a busy core
        stats, found = static.analyse(a.graph, b.graph, b.input_scale)
    out_scales = readouts.scales(a.graph, b.graph)
    return {"stats": stats, "static": found + readouts.zeroed(out_scales),
            "v_scales": {name: st["expected_scale"] for name, st in stats.items()}, "out_scales": out_scales}


def conclude(plan: Plan, total: Chunk, context: dict, coverage: dict) -> Report:
    """Diagnoses from everything gathered, and the report, built once."""
    from .diagnose import inputs_encoding, phrase_for_user, readouts, runs as run_diagnoses, traps
    lags = {label: scores.verdicts() for label, scores in total.lags.items()}
    deployed = plan.subjects.get(Role.DEPLOYED) or next(iter(plan.subjects.values()))
    edge_lags = _edge_lags(plan, deployed, total)
    static = list(context.get("static", []))
    dyn_extras, conversion = _dynamic(plan, total, context)
    found = conversion[:len(static)] if conversion else static          # static findings, with run evidence joined
    found += run_diagnoses.refused(plan.skipped)
    late = {}
    for label, verdicts in lags.items():
        timing = run_diagnoses.timing(verdicts, label) + run_diagnoses.merge_timing(edge_lags.get(label, {}), label)
        late[label] = {d.layer for d in timing}
        found += timing
    pairs = [total.pairs[p.key] for p in plan.pairs if p.key in total.pairs]
    layers = tuple(next(iter(total.evidence.values())).names if total.evidence else deployed.graph.neurons)
    for spec, pc in ((p, total.pairs[p.key]) for p in plan.pairs if p.key in total.pairs):
        if spec.expect is Expect.QUANTIZATION:
            continue
        skip = run_diagnoses.downstream(late.get(spec.a.label, set()) | late.get(spec.b.label, set()), list(layers))
        found += run_diagnoses.disagreement(pc, spec.expect is Expect.EXACT, skip)
        found += readouts.disagreement(pc, skip=bool(skip))
    found += _inputs_and_vacuity(plan, deployed, total, pairs, layers)
    found = traps.refine(found, plan, total.evidence, total.inputs)
    found = inputs_encoding.different_inputs(plan.pairs, total.pairs, total.runs, list(layers)) + found
    extras = {"coverage": dict(coverage, runs={label: {"samples": m["samples"]} for label, m in total.runs.items()})}
    if total.inputs is not None:
        extras["input_stats"] = statistics(total.inputs)
    extras.update(dyn_extras)
    if readouts.units(context.get("out_scales")):
        extras["readout_units"] = readouts.units(context.get("out_scales"))
    extras.update(plan.notes)
    for analysis in plan.analyses:
        extras[analysis.key], more = analysis.conclude(total.analyses[analysis.key])
        found += more
    if plan.skipped:
        extras["unsupported"] = {s.run.backend: str(s.refusals[0]) for s in plan.skipped}
    diagnoses = phrase_for_user(rank(found + conversion[len(static):]), plan.notes.get("user_nodes"))
    graphs = {role.tag: fold_batchnorm(s.graph) for role, s in plan.subjects.items()}
    return Report(
        title=plan.title, layers=layers, pairs=tuple(pairs), diagnoses=tuple(diagnoses), lags=lags,
        edge_lags=edge_lags, runs=total.runs, inputs=dict(plan.inputs.describe(), input_scale=deployed.input_scale),
        networks={role.tag: s.graph.summary() for role, s in plan.subjects.items()},
        weights=context.get("stats", {}), extras=extras,
        evidence=Evidence(total.evidence, graphs, total.inputs))


def _inputs_and_vacuity(plan: Plan, deployed, total: Chunk, pairs: list, layers: tuple) -> list:
    """B's input encoding (when A's inputs are converted for B) and what could not show a difference."""
    from .diagnose import inputs, vacuity
    both = Role.FLOAT in plan.subjects and Role.DEPLOYED in plan.subjects
    found = []
    if both and plan.diagnose and total.inputs is not None and deployed.graph.neurons:
        found += inputs.check(total.inputs, deployed.input_scale, deployed.graph.neurons[0])
    a_vs_b = any(p.expect is Expect.QUANTIZATION and p.key in total.pairs for p in plan.pairs)
    return found + vacuity.check(pairs, layers, both, a_vs_b, len(plan.inputs))


def _edge_lags(plan: Plan, subject, total: Chunk) -> dict:
    """Per pipelined run of B, the step at which each merge reads each of its inputs (evidence samples)."""
    from .diagnose import runs as run_diagnoses
    graph = fold_batchnorm(subject.graph)
    if total.inputs is None or not any(len(graph.terms(n)) > 1 for n in graph.neurons):
        return {}
    n = EDGE_LAG_SAMPLES          # 2 x max shift + 1 evaluations per merge input: a few samples tell the offset
    feeds = {graph.input: subject.inputs(total.inputs[:n])}
    return {label: run_diagnoses.edge_lags(graph, total.evidence[label].rows(slice(0, n)), feeds)
            for label in total.lags if label in total.evidence}


def _dynamic(plan: Plan, total: Chunk, context: dict) -> tuple:
    """(extras, diagnoses) of the isolated per-layer mode and the run signatures, on the evidence samples: the
    static findings first (with the run evidence that supports them joined), then what only the runs show.
    ({}, []) when there is nothing to analyse."""
    if not context or total.inputs is None:
        return {}, []
    from .diagnose import dynamic
    a_spec = next((r for r in plan.runs_of(Role.FLOAT) if r.backend == "spikingjelly"), None) or \
        next(iter(plan.runs_of(Role.FLOAT)), None)
    b_runs = {r.label: total.evidence[r.label] for r in plan.runs_of(Role.DEPLOYED) if r.label in total.evidence}
    if a_spec is None or a_spec.label not in total.evidence or not b_runs:
        return {}, list(context["static"])
    a, b = plan.subject(Role.FLOAT), plan.subject(Role.DEPLOYED)
    scales = {name: st["scale"] for name, st in context["stats"].items()}
    extras, found = dynamic.analyse(a.graph, b.graph, total.evidence[a_spec.label], b_runs, total.inputs,
                                    b.input_scale, scales, context["static"], b.inputs(total.inputs))
    extras["membrane_units"] = {"A~B pairs": "A's units: v_B / k, k = input scale x fitted weight scale",
                                "k": context["v_scales"]}
    return extras, found
