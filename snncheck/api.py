"""The Python API: build a plan, execute it, read the report. The CLI is a thin layer over the same calls.

    from snncheck import api
    graph, model = api.import_module(module, (1, 28, 28))            # a torch module as a graph, self-checked
    report = api.check(graph, x)                                      # one network in every backend
    report = api.diff(graph_a, graph_b, x, input_scale=255, module=model)   # float A against deployed B
    report.verdict, report.pairs, report.diagnoses

`x` is [N, T, *input_shape] in A's input range, or an `snncheck.plan.Inputs` (e.g. frames encoded into spikes
by `snncheck.inputs.encode(Inputs.frames(x, T), "poisson", seed)`, or events by `snncheck.inputs.from_events`).
"""
from __future__ import annotations

from typing import Optional

import numpy as np

from . import pipeline, plan as plans
from .graph import Graph
from .plan import Inputs, Role, Subject


def as_inputs(x, **info) -> Inputs:
    if isinstance(x, Inputs):
        return x
    x = np.asarray(x)
    return Inputs.sequences(x, **info)


def check(graph: Graph, x, backends=None, module=None, title: Optional[str] = None,
          backend_options: Optional[dict] = None, progress: bool = False, **plan_options):
    """One network in several backends, each against the reference."""
    plan = plans.check(graph, as_inputs(x), backends, module=module, title=title, backend_options=backend_options,
                       **plan_options)
    return pipeline.execute(plan, progress=progress)


def diff(float_graph: Graph, deployed: Graph, x, input_scale: float = 1.0, module=None,
         backends=plans.BACKENDS, title: str = "diff", source=None, backend_options: Optional[dict] = None,
         progress: bool = False, **plan_options):
    """A float network (A, with the user's own module if given) against its deployed integer version (B, or the
    user's own PAIBox network as `source`), on the same inputs; B receives round(x * input_scale), or encoded
    spikes and event counts (`snncheck.inputs.encode`, `from_events`) as they are."""
    from .inputs import deployed_scale
    inputs = as_inputs(x)
    scale, note = deployed_scale(inputs, input_scale)
    plan_options["notes"] = {**plan_options.get("notes", {}), **note}
    plan = plans.diff(Subject(Role.FLOAT, float_graph, module=module),
                      Subject(Role.DEPLOYED, deployed, input_scale=scale, source=source),
                      inputs, backends, title=title, backend_options=backend_options, **plan_options)
    return pipeline.execute(plan, progress=progress)


def import_module(module, input_shape, name: str = "network"):
    """(Graph, TorchModel): a torch module read by tracing what it executes, checked against its own forward."""
    from .frontends.spikingjelly import import_module as _import
    return _import(module, tuple(input_shape), name=name)
