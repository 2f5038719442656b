"""Recording any torch module through forward hooks: every neuron-like submodule's output at every step, named by
its module path, whatever its class (SpikingJelly, snnTorch, a user's own IF written from scratch).

A neuron module is one whose class is named in `classes`, or, by default, a SpikingJelly `BaseNode`, a snnTorch
`SpikingNeuron`, or a leaf module whose class name ends in IF, LIF, Node or Neuron or holds "Spik" or "Leaky".
An output value other than 0 is a spike (a neuron that emits theta instead of 1 is read right); the membrane is
the module's `v` (or `mem`) after the step, where it keeps one. Single-step modules (`step_mode="s"`) are called
once per step on [N, ...]; multi-step ones once on [T, N, ...], their outputs [T, N, ...] or [T*N, ...] (time
merged into the batch) read with `snncheck.records`' layouts, an ambiguous one refused; SpikingJelly modules are
switched to multi-step mode for it, keeping `v_seq`.
"""
from __future__ import annotations

import re
from typing import Optional

import numpy as np

from .. import records
from ..backends.base import LayerRecord, RunResult
from ..errors import require

NEURON_NAME = re.compile(r"(?i)((if|lif|node|neuron)$|spik|leaky)")


def neuron_modules(module, classes: Optional[list] = None) -> dict:
    """{module path: submodule} of the neuron-like submodules, in module order."""
    out = {}
    for name, m in module.named_modules():
        if name and _is_neuron(m, classes):
            out[name] = m
    require(out, lambda: "no neuron-like module found to record" + (f" of class {', '.join(classes)}" if classes
                                                                    else "; name their classes (--neuron-class)"))
    return {n: m for n, m in out.items() if not any(n.startswith(o + ".") for o in out)}   # outermost only


def _is_neuron(m, classes) -> bool:
    kind = type(m).__name__
    if classes:
        return kind in classes
    bases = {t.__name__ for t in type(m).__mro__}
    return bool({"BaseNode", "SpikingNeuron"} & bases) or (not list(m.children()) and bool(NEURON_NAME.search(kind)))


def record(module, inputs: np.ndarray, classes: Optional[list] = None, step_mode: str = "s",
           label: str = "recorded") -> RunResult:
    """The module's neuron outputs for inputs [N, T, ...] as a RunResult (spikes, and v where kept)."""
    import torch
    require(step_mode in ("s", "m"), lambda: f"step mode must be 's' or 'm', got {step_mode!r}")
    neurons = neuron_modules(module, classes)
    seen = {n: ([], []) for n in neurons}
    hooks = [m.register_forward_hook(lambda mod, args, out, rec=seen[n]: _keep(rec, mod, out))
             for n, m in neurons.items()]
    n, t = inputs.shape[:2]
    if step_mode == "m":                     # SpikingJelly layers and neurons take [T, N, ...] in multi-step mode
        from spikingjelly.activation_based import functional
        functional.set_step_mode(module, "m")   # leaves the children of SeqToANNContainer & co. as they are
        for m in module.modules():
            if hasattr(m, "store_v_seq"):
                m.store_v_seq = True
    _reset(module)
    try:
        with torch.no_grad():
            x = torch.from_numpy(np.ascontiguousarray(inputs, dtype=np.float32))
            if step_mode == "s":
                for step in range(t):
                    module(x[:, step])
            else:
                module(x.transpose(0, 1).contiguous())
    finally:
        for h in hooks:
            h.remove()
    layers = [_layer(name, *seen[name], n, t, step_mode) for name in neurons]
    classes_seen = {name: type(m).__name__ for name, m in neurons.items()}
    return RunResult("hooks", label, layers, {"classes": classes_seen, "step_mode": step_mode})


def _reset(module) -> None:
    """Fresh state: SpikingJelly's reset_net, and `reset()` of any other module that has one."""
    for m in module.modules():
        for attr in ("reset", "reset_mem"):       # SpikingJelly and user modules; snnTorch
            fn = getattr(m, attr, None)
            if callable(fn):
                fn()


def _keep(rec: tuple, module, out) -> None:
    out = out[0] if isinstance(out, (tuple, list)) else out
    rec[0].append(out.detach().cpu().numpy().copy())
    for attr in ("v_seq", "v", "mem"):          # SpikingJelly multi-step keeps v_seq; others the last v
        v = getattr(module, attr, None)
        if hasattr(v, "detach") and v.numel() == out.numel():
            rec[1].append(v.detach().cpu().numpy().reshape(out.shape).copy())
            return


def _layer(name: str, outs: list, vs: list, n: int, t: int, step_mode: str) -> LayerRecord:
    where = f"module {name!r}"
    require(outs, lambda: f"{where} was never called")
    if step_mode == "s":
        require(len(outs) == t, lambda: f"{where} was called {len(outs)} times in {t} steps")
        spikes = np.stack(outs, axis=1)
        v = np.stack(vs, axis=1) if len(vs) == t else None
    else:
        shape = outs[0].shape[2:] if outs[0].shape[:2] == (t, n) else outs[0].shape[1:]
        spikes = records.arrange(outs[0], None, n, t, tuple(shape), where)
        v = records.arrange(vs[-1], None, n, t, tuple(shape), where) if vs and vs[-1].size == outs[0].size else None
    return LayerRecord(name, spikes != 0, v=v)
