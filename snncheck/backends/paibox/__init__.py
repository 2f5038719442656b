"""PAIBox behind the backend interface.

    limits.py    the chip's numeric limits, once (int8 weights, thresholds, 30-bit values, uint8 input)
    lower.py     what a graph becomes in PAIBox (stages, synapses, neuron parameters, expected lags) and the
                 registry of primitives whose checks are the refusals
    layouts.py   how samples map to nodes: one per simulation, or many stacked along the rows
    build.py     sources (loaders) of the pb.Network: built from the graph, or a user's own network
    simulate.py  the one simulate loop, and its spread over worker processes
    fastpath.py  exact BLAS twins of PAIBox's synaptic products, installed in the built network (`fast=True`)
    reuse.py     built networks (fast path) kept for the next run of the same graph, timing and layout

PAIBox is a pipeline: `run` returns raw records, T + L - 1 steps long for a depth-L network, and the lag it
expects per neuron in `meta["expected_lag"]`; `snncheck.align` crops them to the reference's steps.
"""
from __future__ import annotations

import time

import numpy as np

from ... import parallel
from ...errors import InputError, require
from ...graph import Graph, fold_batchnorm
from ..base import Backend, LayerRecord, Refusal, RunResult, check_inputs, window
from . import fastpath, layouts, limits, lower, reuse
from .build import TIMINGS, GraphSource, UserSource
from .simulate import simulate_source, simulate_spread

__all__ = ["PAIBoxBackend", "expected_lags", "limits"]

expected_lags = lower.expected_lags


class PAIBoxBackend(Backend):
    name = "paibox"
    pipelined = True

    def __init__(self, module=None, source=None, progress: bool = False, timing: str = "pipeline", batch: int = 1,
                 workers: int = 1, executor=None, fast: bool = True):
        """`source`: a user's own network (`snncheck.frontends.paibox.UserNetwork`), run with its timing as
        written; by default the network is built from the graph with `timing` "pipeline" (the recipe) or "flat"
        (tick_wait_start=1 everywhere: the common mistake, kept so that the harness can show it).
        `batch`: samples per simulation (stacked layout; one at a time where the graph cannot be stacked).
        `workers`: processes sharing the samples, or `executor`, a `snncheck.parallel` executor kept across runs.
        `fast`: synaptic products by exact BLAS inside PAIBox's own update (`fastpath`); False: as PAIBox ships."""
        super().__init__(module, source, progress)
        require(timing in TIMINGS, lambda: f"unknown timing {timing!r}; known: {', '.join(TIMINGS)}")
        require(int(batch) >= 1 and int(workers) >= 1, "batch and workers must be at least 1")
        self.timing, self.batch, self.workers, self.executor = timing, int(batch), int(workers), executor
        self.fast = bool(fast)

    def accepts(self, graph: Graph) -> list:
        if self.source is not None:       # the user's network runs as they built it; the harness checks it
            return []
        try:
            graph = fold_batchnorm(graph)
        except InputError as exc:
            return [Refusal(self.name, None, str(exc))]
        return list(reuse.per_graph(graph, lower.refusals, lambda: lower.refusals(graph)))

    def run(self, graph: Graph, inputs: np.ndarray, label: str = "paibox", record_v: bool = True) -> RunResult:
        start = time.perf_counter()
        inputs = check_inputs(graph, inputs)
        reason = limits.input_problem(inputs)
        require(reason is None, lambda: f"PAIBox input: {reason}")
        inputs = inputs.astype(np.uint8)
        graph = fold_batchnorm(graph)
        delay = lower.input_delay(graph) if self.source is None else 0
        require(not delay or inputs.max(initial=0) <= 1,
                lambda: f"PAIBox input: a skip from the input is held back {delay} step(s) by relay neurons, which "
                        f"carry spikes (0/1) only; these inputs reach {int(inputs.max())}")
        refused = self.accepts(graph)
        require(not refused, lambda: "; ".join(map(str, refused)))
        expected = lower.expected_lags(graph)
        n, t = inputs.shape[:2]
        parallel_run = self.executor is not None or self.workers > 1
        ex = self.executor or (parallel.ProcessExecutor(self.workers) if parallel_run else None)
        try:
            pieces = parallel.split(n, (4 if self.progress else 1) * ex.workers) if ex else [(0, n)]
            source, meta = self._source(graph, expected, t, max(hi - lo for lo, hi in pieces))
            source, meta["fast"] = (fastpath.Fast(source) if self.fast else source), self.fast
            if ex is None:
                records = simulate_source(source, inputs, record_v, self.progress)
            else:
                records = simulate_spread(ex, source, inputs, pieces, record_v, self.progress)
                meta["workers"] = ex.workers
        finally:
            if ex is not None and self.executor is None:
                ex.close()
        layers = [LayerRecord(name, *records[name], threshold=float(graph.nodes[name].threshold))
                  for name in graph.neurons]
        outputs = readouts(graph, records, expected, inputs)
        meta.update({"expected_lag": expected, "steps": int(layers[0].steps),
                     "seconds": time.perf_counter() - start})
        return RunResult(self.name, label, layers, meta, outputs)

    def _source(self, graph: Graph, expected: dict, frames: int, samples: int) -> tuple:
        """(source, meta) for a run of `frames` steps with at most `samples` samples per simulation."""
        if self.source is not None:
            user = self.source
            # long enough to see the expected lag and the user's own, plus one
            lag_steps = max(max(expected.values(), default=0), user.max_wait - 1) + 1
            meta = {"timing": "user", "batch": 1, "paibox_nodes": {k: v.name for k, v in user.matched.items()}}
            if self.batch > 1:
                meta["batch_fallback"] = "a user's own network is simulated as written, one sample at a time"
            return UserSource(user, lag_steps), meta
        steps = frames + lower.pipeline_length(graph) - 1
        layout, how = reuse.kept(("layout", reuse.fingerprint(graph), self.batch, samples, steps),
                                 lambda: layouts.choose(graph, self.batch, samples, steps))
        return GraphSource(graph, self.timing, layout), dict(timing=self.timing, **how)


def readouts(graph: Graph, records: dict, expected: dict, inputs: np.ndarray) -> list:
    """[OutputRecord] of the graph's readouts (a Linear head, a vote, a rate), computed off-chip as the chip's host
    would: by the reference, from PAIBox's own spikes, each spiking layer's record taken at its expected lag, so
    the values are in the reference's steps (T of them, or one per run)."""
    if not graph.readouts:
        return []
    from ..reference import evaluate, is_exact, readout_records
    t = inputs.shape[1]
    # the input and every spiking layer: whatever lies between them and a readout (SEW's spike ADD) is recomputed
    feeds = {graph.input: inputs, **{n: window(records[n][0], expected[n], t) for n in graph.neurons}}
    values = evaluate(graph, feeds, exact=is_exact(graph, inputs), record_v=False, targets=[], keep=graph.readouts)
    return readout_records(graph, values, t)
