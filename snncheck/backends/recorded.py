"""A run made elsewhere, read from a records file (`snncheck.records`): another implementation, another simulator,
a chip's output. It is a backend like any other, so a recorded run is one more RunSpec of the plan and goes through
alignment, comparison and diagnosis unchanged; its meta says where it came from (`recorded_from`, `layout`).

Its options (plain data, so a RunSpec stays hashable): `path`, the layout (`order`, `amplitude`, `first_spike`) of
`snncheck.records.Layout`, and `pipelined`: the file holds a pipeline's raw output (a chip: stage k answers k-1
steps late, T + L - 1 steps), which the pipeline realigns with the reference and whose lags it detects.
A file that lacks a layer, or whose shapes fit no layout or several, is the user's input gone wrong: an InputError
(exit 2), not a refusal.
"""
from __future__ import annotations

import numpy as np

from .. import records
from ..errors import require
from ..graph import Graph
from .base import Backend, RunResult, check_inputs


class RecordedBackend(Backend):
    name = "recorded"
    conformance = False       # it replays a file, it does not simulate: no part of tests/test_conformance.py

    def __init__(self, module=None, source=None, progress: bool = False, path: str = "", order=None,
                 amplitude=None, first_spike: bool = False, pipelined: bool = False):
        super().__init__(module, source, progress)
        self.path, self.pipelined = path, bool(pipelined)
        self.layout = records.Layout(order, amplitude, first_spike)

    def accepts(self, graph: Graph) -> list:
        raw = records.read(self.path)
        missing = raw.missing(graph)
        require(not missing, lambda: f"{self.path}: no records of layer(s) {', '.join(missing)} (it has: "
                                     f"{', '.join(sorted(raw.layers)) or 'none'})")
        return []

    def run(self, graph: Graph, inputs: np.ndarray, label: str = "recorded:b", record_v: bool = True) -> RunResult:
        inputs = check_inputs(graph, inputs)
        raw = records.read(self.path)
        if raw.inputs is not None:
            seen = np.asarray(raw.inputs)[:inputs.shape[0]]          # a comparison may take the first samples
            require(seen.size == inputs.size and np.array_equal(seen.reshape(inputs.shape), inputs),
                    lambda: f"{self.path} was recorded on other inputs ({seen.shape[0]} samples x "
                            f"{seen.shape[1]} steps) than this comparison's ({inputs.shape[0]} x {inputs.shape[1]})")
        run = self._load(graph, inputs, label, raw)
        # a record without its inputs cannot say what it received: nothing is claimed for it (input_encoding)
        return run if raw.inputs is not None else run.replace(meta=dict(run.meta, input_received=None))

    def _load(self, graph: Graph, inputs: np.ndarray, label: str, raw) -> RunResult:
        if not self.pipelined:
            return records.load(self.path, graph, inputs.shape[0], inputs.shape[1], self.layout, label, raw)
        from .paibox.lower import expected_lags, pipeline_length
        steps = inputs.shape[1] + pipeline_length(graph) - 1
        run = records.load(self.path, graph, inputs.shape[0], steps, self.layout, label, raw)
        return run.replace(meta=dict(run.meta, expected_lag=expected_lags(graph)))
