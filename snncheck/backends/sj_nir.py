"""SpikingJelly through NIR: the graph written as NIR and read by SpikingJelly 2.0's own importer
(`spikingjelly.activation_based.nir_exchange.import_from_nir`, single-step, state passed back every step).

What it measures is the importer: NIR fires on v > threshold, SpikingJelly's IFNode on v >= threshold, and the
importer keeps SpikingJelly's rule, so an integer network's spikes at H == threshold differ from NIR's own
semantics (diagnosed `fire_rule`). r must be 1/dt for an IF, tau/dt > 1 for a LIF (its own checks)."""
from __future__ import annotations

from .nir_torch import NIRTorchBackend


class SpikingJellyNIRBackend(NIRTorchBackend):
    name = "sj_nir"
    importable = frozenset({"Affine", "Linear", "Conv1d", "Conv2d", "AvgPool2d", "Flatten", "IF", "LIF", "CubaLIF"})

    def build(self, nir_graph):
        from spikingjelly.activation_based.nir_exchange import import_from_nir
        return import_from_nir(nir_graph, dt=self.dt).eval()
