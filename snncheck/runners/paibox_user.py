"""Runner for a user's own PAIBox network (snncheck.frontends.paibox.UserNetwork), timing kept as the user wrote it.

It records the matched neuron layers under A's layer names and returns raw, unaligned records like the PAIBox
runner does: the expected lag comes from A's pipeline stages, and alignment finds the lag the user's network
really has, so a wrong tick_wait_start shows up as a timing finding instead of being silently fixed.
"""
from __future__ import annotations

import time

import numpy as np

from .. import ir
from ..errors import require
from .base import LayerRecord, Runner, RunResult
from .paibox import Built, simulate


class PAIBoxUserRunner(Runner):
    name = "paibox"

    def __init__(self, user, label=None, record_v: bool = True, progress: bool = False):
        super().__init__(user.int_net, label, record_v)
        self.user = user
        self.progress = progress

    def _run(self, inputs: np.ndarray) -> RunResult:
        start = time.perf_counter()
        require(bool(np.all(inputs == np.round(inputs))) and inputs.min() >= 0 and inputs.max() <= 255,
                "PAIBox input must be integers in 0..255 (InputProj casts to uint8)")
        expected = ir.expected_lags(self.network)
        built = self._built(max(expected.values()))
        raw = simulate(built, inputs.astype(np.uint8), self.record_v, self.progress)
        shapes = self.network.neuron_shapes()
        layers = []
        for n in self.network.neurons:
            s, v = raw[n.name]
            full = (s.shape[0], s.shape[1]) + tuple(shapes[n.name])
            layers.append(LayerRecord(n.name, s.reshape(full), None if v is None else v.reshape(full), None,
                                      float(n.threshold)))
        meta = {"seconds": time.perf_counter() - start, "timing": "user", "raw": True, "expected_lag": expected,
                "steps": int(layers[0].steps), "paibox_nodes": {k: v.name for k, v in self.user.matched.items()}}
        return RunResult(self.name, self.label, layers, meta)

    def _built(self, max_lag: int) -> Built:
        """The user's network with a spike and a voltage probe per matched layer (kept in a NodeList attribute,
        where PAIBox finds probes). It runs long enough to see the expected lag and the user's own, plus one."""
        import paibox as pb
        user = self.user
        if not user.probes:
            user.probes = {name: (pb.Probe(node, "spike"), pb.Probe(node, "voltage"))
                           for name, node in user.matched.items()}
            user.network.snncheck_probes = pb.NodeList([p for pair in user.probes.values() for p in pair])
        extra = max(max_lag, user.max_wait - 1) + 1
        return Built(user.network, user.inp, user.probes, extra + 1)
