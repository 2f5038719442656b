"""SpikingJelly runner: multi-step mode, eval, `reset_net` before every batch, plain torch hooks.

It runs either the user's own module (e.g. with BatchNorm unfolded, as trained) or a module built from the
Network. SpikingJelly keeps V after reset (`v_seq`); H is reconstructed exactly as `charge(V[t-1], X[t])` with
X captured by a forward pre-hook, using the equations of `snncheck.ir` in float32.
"""
from __future__ import annotations

import time

import numpy as np

from .. import ir
from .base import LayerRecord, Runner, RunResult, rounding_bounds


class SpikingJellyRunner(Runner):
    name = "spikingjelly"

    def __init__(self, network: ir.Network, label=None, module=None, batch_size: int = 256, record_v: bool = True):
        """`module`: the user's module whose neuron submodules carry the Network's neuron names as paths."""
        super().__init__(network, label, record_v)
        self.module = module
        self.batch_size = batch_size

    def _module(self):
        from ..frontends.spikingjelly import to_module
        if self.module is None:
            return to_module(self.network)
        from spikingjelly.activation_based import functional
        module = self.module.eval()
        functional.set_step_mode(module, "m")
        by_path = dict(module.named_modules())
        return module, {n.name: by_path[n.name] for n in self.network.neurons}

    def _run(self, inputs: np.ndarray) -> RunResult:
        import torch
        from spikingjelly.activation_based import functional
        start = time.perf_counter()
        module, neurons = self._module()
        captured = {name: {} for name in neurons}
        hooks = []
        for name, node in neurons.items():
            node.store_v_seq = self.record_v
            hooks.append(node.register_forward_pre_hook(_saver(captured[name], "x", lambda a: a[0])))
            hooks.append(node.register_forward_hook(_saver(captured[name], "s", lambda out: out, output=True)))
        chunks = {name: [] for name in neurons}
        try:
            with torch.no_grad():
                for lo in range(0, inputs.shape[0], self.batch_size):
                    x = torch.from_numpy(np.ascontiguousarray(inputs[lo:lo + self.batch_size].swapaxes(0, 1),
                                                              dtype=np.float32))
                    functional.reset_net(module)
                    module(x)
                    for name, node in neurons.items():
                        rec = captured[name]
                        v = node.v_seq.numpy().swapaxes(0, 1).copy() if self.record_v else None
                        chunks[name].append((rec["s"].swapaxes(0, 1) > 0, rec["x"].swapaxes(0, 1), v))
        finally:
            for h in hooks:
                h.remove()
        bounds = rounding_bounds(self.network, float(np.abs(inputs).max()))
        records = []
        for n in self.network.neurons:
            spikes = np.concatenate([c[0] for c in chunks[n.name]])
            v = h = None
            if self.record_v:
                v = np.concatenate([c[2] for c in chunks[n.name]])
                h = charged_potential(n, np.concatenate([c[1] for c in chunks[n.name]]), v)
            records.append(LayerRecord(n.name, spikes, v, h, float(n.threshold), bounds[n.name]))
        return RunResult(self.name, self.label, records, {"seconds": time.perf_counter() - start})


def charged_potential(neuron: ir.Neuron, x: np.ndarray, v: np.ndarray) -> np.ndarray:
    """H[t] = charge(V[t-1], X[t]) over [N, T, ...] arrays, V[-1] = the neuron's initial potential."""
    prev = np.concatenate([np.full_like(v[:, :1], neuron.initial_v), v[:, :-1]], axis=1)
    return neuron.charge(prev, x.astype(v.dtype))


def _saver(store: dict, key: str, pick, output: bool = False):
    if output:
        def hook(module, args, out):
            store[key] = pick(out).detach().numpy().copy()
    else:
        def hook(module, args):
            store[key] = pick(args).detach().numpy().copy()
    return hook
