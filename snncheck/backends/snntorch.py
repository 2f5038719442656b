"""snnTorch 1.0 through NIR: the graph written as NIR and read by `snntorch.import_nir.import_from_nir`.

Measured on snnTorch 1.0.0 (see tests/test_nir.py): its importer turns NIR's IF into `snn.Leaky(beta=0.9)` with
snnTorch's default subtractive reset (a leak and a soft reset NIR's IF does not have: diagnosed `leaky_if` and
`reset_mode`), fires on mem > threshold as NIR does, asserts r == 1 for an IF (the graph is written with r = 1 for
it: NIR's r = 1/dt, as SpikingJelly writes it, is refused), and maps NIR's Flatten(start_dim=0) onto
torch.nn.Flatten(0), which merges the batch: samples run one at a time. Its IF neurons come with
init_hidden=False and return (spikes, mem) tuples that the next layer cannot take: they are set to
init_hidden=True (the membrane kept in the module, read by the hook), as its LIF neurons already are."""
from __future__ import annotations

from ..graph.nir import export
from .nir_torch import NIRTorchBackend


class SnnTorchBackend(NIRTorchBackend):
    name = "snntorch"
    importable = frozenset({"Affine", "Linear", "Conv2d", "Flatten", "AvgPool2d", "IF", "LIF", "CubaLIF"})
    per_sample = True

    def exported(self, graph):
        return export(graph, self.dt, if_r=1.0)

    def build(self, nir_graph):
        import contextlib
        import io
        from snntorch.import_nir import import_from_nir
        import snntorch as snn
        with contextlib.redirect_stdout(io.StringIO()):      # it prints progress lines
            module = import_from_nir(nir_graph).eval()
        for m in module.modules():
            if isinstance(m, snn.SpikingNeuron) and not m.init_hidden:
                m.init_hidden = True
        return module

    def reset(self, module) -> None:
        from snntorch import utils
        utils.reset(module)
