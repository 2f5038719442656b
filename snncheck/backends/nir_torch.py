"""Simulators reached through NIR: the graph is written as a NIR graph (`snncheck.graph.nir.export`), read back by
the simulator's own NIR importer into a torch module (a nirtorch GraphModule), and stepped one time step at a time
with its state passed back in, as the importers document. Forward hooks on the neuron modules (named after the
NIR nodes, '.' written '_') record spikes and, where the module returns it, the membrane after the step.

A graph the exporter cannot write (soft reset, v_init, max pooling...) is refused naming the node; the importer's
own refusals are its business and are reported as they come (one line). Subclasses say how to import and run.
"""
from __future__ import annotations

import time

import numpy as np

from ..errors import InputError
from ..graph import Graph
from ..graph.nir import DT, export
from .base import Backend, LayerRecord, Refusal, RunResult, check_inputs


class NIRTorchBackend(Backend):
    name = "nir"
    conformance = False       # it measures an importer, traps included (tests/test_nir.py), not the graph's semantics
    importable = frozenset()  # the NIR node types its importer maps (read from its source; Input/Output always)
    per_sample = False         # the importer's modules take one sample at a time (a Flatten over every dim)

    def __init__(self, module=None, source=None, progress: bool = False, dt: float = DT):
        super().__init__(module, source, progress)
        self.dt = float(dt)

    def exported(self, graph: Graph):
        return export(graph, self.dt)

    def accepts(self, graph: Graph) -> list:
        try:
            out = self.exported(graph)
        except InputError as exc:
            return [Refusal(self.name, None, f"cannot be written as NIR: {exc}")]
        return [Refusal(self.name, n, f"its NIR importer has no mapping for NIR {type(node).__name__}")
                for n, node in out.graph.nodes.items()
                if type(node).__name__ not in self.importable | {"Input", "Output"}]

    def build(self, nir_graph):
        """The simulator's torch module for a NIR graph."""
        raise NotImplementedError

    def run(self, graph: Graph, inputs: np.ndarray, label: str = "nir", record_v: bool = True) -> RunResult:
        start = time.perf_counter()
        inputs = check_inputs(graph, inputs)
        out = self.exported(graph)
        try:
            module = self.build(out.graph)
        except (AssertionError, ValueError, NotImplementedError, KeyError) as exc:
            raise InputError(f"{self.name} cannot import the NIR graph: {type(exc).__name__}: {exc}") from None
        batches = [inputs[i:i + 1] for i in range(len(inputs))] if self.per_sample else [inputs]
        parts = [self._run_batch(module, graph, x) for x in batches]
        layers = []
        for name in graph.neurons:
            spikes = np.concatenate([p[name][0] for p in parts])
            vs = [p[name][1] for p in parts]
            v = np.concatenate(vs) if record_v and all(x is not None for x in vs) else None
            layers.append(LayerRecord(name, spikes.reshape((len(inputs), inputs.shape[1]) + graph.shapes[name]),
                                      v=None if v is None else v.reshape(spikes.shape[:2] + graph.shapes[name]),
                                      threshold=float(graph.nodes[name].threshold)))
        return RunResult(self.name, label, layers, {"seconds": time.perf_counter() - start, "via": "nir",
                                                    "dt": self.dt, "nir_ties": list(out.ties)})

    def _run_batch(self, module, graph: Graph, x: np.ndarray) -> dict:
        """{neuron: (spikes [n, T, F] bool, v [n, T, F] or None)} of one batch, stepped with its state."""
        import torch
        children = dict(module.named_modules())
        seen = {n: ([], []) for n in graph.neurons}
        hooks = [children[n.replace(".", "_")].register_forward_hook(
            lambda m, args, out, rec=seen[n]: _keep(rec, m, out)) for n in graph.neurons]
        n = x.shape[0]
        self.reset(module)
        try:
            with torch.no_grad():
                state = None
                for t in range(x.shape[1]):
                    frame = torch.from_numpy(np.ascontiguousarray(x[:, t], dtype=np.float32))
                    result = module(frame, state=state)
                    state = result[1] if isinstance(result, tuple) and len(result) == 2 and \
                        isinstance(result[1], dict) else None
        finally:
            for h in hooks:
                h.remove()
        return {name: (np.stack([s.reshape(n, -1) for s in spikes], axis=1) > 0,
                       np.stack([v.reshape(n, -1) for v in vs], axis=1) if vs and len(vs) == len(spikes) else None)
                for name, (spikes, vs) in seen.items()}

    def reset(self, module) -> None:
        """Fresh state before a batch (the step loop starts from state=None)."""


def _keep(rec: tuple, module, out) -> None:
    """Spikes (and the membrane, where the module returns one or keeps it as `mem`) from a neuron module."""
    import torch
    spikes, v = out, getattr(module, "mem", None)
    if isinstance(out, tuple):
        spikes, rest = out[0], out[1]
        while isinstance(rest, (tuple, list)) and rest:
            rest = rest[0]
        v = rest if isinstance(rest, torch.Tensor) else None
    rec[0].append(spikes.detach().cpu().numpy().copy())
    if v is not None:
        rec[1].append(v.detach().cpu().numpy().copy())
