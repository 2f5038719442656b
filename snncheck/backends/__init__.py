"""Backends: every simulator behind one small interface (`base.Backend`). Adding one is adding a line here.

    backend = make(RunSpec("paibox", Role.DEPLOYED, options(timing="pipeline")), subject)
    backend.accepts(graph)     # [Refusal]: what it cannot run and why
    backend.run(graph, inputs, label)

Backends are imported when first used: PAIBox and torch cost seconds to import.
"""
from __future__ import annotations

import importlib

from ..errors import InputError

BACKENDS = {
    "reference": "snncheck.backends.reference:ReferenceBackend",
    "spikingjelly": "snncheck.backends.spikingjelly:SpikingJellyBackend",
    "paibox": "snncheck.backends.paibox:PAIBoxBackend",
    "recorded": "snncheck.backends.recorded:RecordedBackend",
    "sj_nir": "snncheck.backends.sj_nir:SpikingJellyNIRBackend",
    "snntorch": "snncheck.backends.snntorch:SnnTorchBackend",
}


def get(name: str):
    """The backend class registered under `name`."""
    if name not in BACKENDS:
        raise InputError(f"unknown backend {name!r}; known: {', '.join(BACKENDS)}")
    module, _, attr = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def make(spec, subject, progress: bool = False):
    """The backend of a RunSpec, configured for its subject (its options, the user's module or source)."""
    return get(spec.backend)(module=subject.module, source=subject.source, progress=progress, **spec.opts)
