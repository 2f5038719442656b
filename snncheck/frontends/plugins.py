"""Plugins: a user's own Python file that teaches snncheck their own neuron classes (and layers), imported only
where the user names it: `--plugin FILE.py` on the command line, `plugins = ["FILE.py"]` in a case file.

    # my_neurons.py
    import snncheck
    from snncheck.graph import primitives as P

    snncheck.register_neuron(MyIF, lambda m: P.IF(threshold=float(m.theta), reset="soft",
                                                  v_init=float(m.theta) / 2))

`to_graph(module)` returns the graph neuron the module computes (snncheck.graph.primitives: IF, LIF,
ParametricLIF, AdditiveLIF), optionally followed by stateless primitives applied to its spikes (a `Scale(theta)`
for spikes of amplitude theta). The import's self-check then runs the module's own forward against that graph,
so a `to_graph` that misses something (an initial membrane, an amplitude) is named at the neuron.
"""
from __future__ import annotations

import os
from typing import Callable, Iterable

from ..errors import InputError, require
from ..graph import primitives as P

_LOADED: dict = {}          # absolute path -> the imported plugin module (a plugin is imported once)


def register_neuron(cls: type, to_graph: Callable) -> None:
    """Teaches the torch importer the neuron class `cls` (matched exactly; traced as a leaf, recorded like
    SpikingJelly's neurons): `to_graph(module)` -> a neuron primitive, or [neuron, primitives after it]."""
    import torch.nn as nn
    from .spikingjelly import BY_SOURCE, register_module, source_key
    require(isinstance(cls, type) and issubclass(cls, nn.Module),
            lambda: f"register_neuron: {cls!r} is not a torch.nn.Module class")
    require(callable(to_graph), lambda: f"register_neuron({cls.__name__}): to_graph must be callable")

    def convert(path: str, module) -> list:
        prims = _neuron_primitives(cls, path, module, to_graph)
        return [("", prims[0])] + [(f"{p.kind.lower()}{i or ''}", p) for i, p in enumerate(prims[1:])]

    register_module(cls, convert)
    BY_SOURCE[source_key(cls)] = convert


def _neuron_primitives(cls: type, path: str, module, to_graph: Callable) -> list:
    try:
        out = to_graph(module)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"register_neuron({cls.__name__}): to_graph failed on module {path!r}: "
                         f"{type(exc).__name__}: {exc}") from None
    prims = list(out) if isinstance(out, (list, tuple)) else [out]
    require(prims and P.is_neuron(prims[0]) and
            all(isinstance(p, P.Primitive) and not p.stateful for p in prims[1:]),
            lambda: f"register_neuron({cls.__name__}): to_graph returned {out!r} for module {path!r}; it must "
                    "return a neuron primitive (IF, LIF, ParametricLIF, AdditiveLIF from "
                    "snncheck.graph.primitives), optionally followed by stateless primitives on its spikes")
    return prims


def load(paths: Iterable) -> None:
    """Imports each plugin file once (its folder on sys.path while it is imported)."""
    from .models import _import_file
    for path in paths:
        path = str(path)
        require(path.endswith(".py"), lambda: f"plugin {path}: a plugin is a Python file (FILE.py)")
        key = os.path.abspath(path)
        if key not in _LOADED:
            _LOADED[key] = _import_file(path)
