"""The plan of an ANN-to-SNN check: the converted SNN as a graph (each activation an IF neuron with amplitude
theta) run in the reference and SpikingJelly like any other network, and the ANN-against-SNN analysis
(`analysis.Ann2Snn`) on the same inputs, chunk by chunk, through `snncheck.pipeline`."""
from __future__ import annotations

from typing import Optional

import numpy as np

from .. import plan as plans
from ..errors import require
from ..graph import Graph, chain
from ..graph import primitives as P
from . import qcfs, runs
from .analysis import Ann2Snn

TIMESTEPS = (1, 2, 4, 8, 16, 32, 64)
VARIANTS = ("half", "zero")
CHUNK = 60


def load_models(model: str, weights, snn: Optional[str] = None, steps: int = 0) -> tuple:
    """(the ANN `model` builds, with `weights`; the user's own SNN `snn`(T=steps) with the same weights, or None)."""
    from ..checkpoint import load_into, load_state_dict
    from ..frontends.models import build_module, call_factory, resolve_factory
    state = load_state_dict(weights)
    ann = build_module(model, "ANN factory")
    load_into(ann, state, weights)
    if snn is None:
        return ann.eval(), None
    user = call_factory(resolve_factory(snn), snn, "SNN factory", T=steps)
    load_into(user, state, weights)
    return ann.eval(), user.eval()


def snn_graph(ann, layers: tuple, input_shape, v0_fraction: float, name: str = "snn") -> Graph:
    """The ANN's leaf modules in order (an nn.Sequential, nested or not) as a graph, each activation an IF neuron
    (soft reset, v0 = fraction x theta) followed by Scale(theta): its spikes carry amplitude theta."""
    import torch.nn as nn
    from ..frontends.spikingjelly import convert_module
    require(isinstance(ann, nn.Sequential), lambda: f"{type(ann).__name__}: the ANN must be an nn.Sequential to be "
                                                    "run in the simulators (its forward is then its modules in order)")
    acts, items, shape = {l.name: l for l in layers}, [], tuple(input_shape)
    for path, m in ann.named_modules():
        if path in acts:
            theta = acts[path].threshold
            items += [(path, qcfs.if_neuron(theta, v0_fraction)), (f"{path}.amplitude", P.Scale(theta))]
        elif not list(m.children()):     # the frontend's converters, shaped ones (their input shape) and plugins' too
            for suffix, prim in convert_module(path, m, lambda: shape):
                items.append((f"{path}.{suffix}" if suffix else path, prim))
                shape = prim.out_shape(shape)
    return chain(items, input_shape, name=name)


def build_plan(ann, frames: np.ndarray, labels: np.ndarray, timesteps=TIMESTEPS, variants=VARIANTS,
               user=None, v0_fraction: float = 0.5, backends=("reference", "spikingjelly"),
               table_steps: Optional[int] = None, check_steps: Optional[int] = None, title: str = "ann2snn",
               chunk: int = CHUNK, **info) -> plans.Plan:
    """ANN against its SNNs on `frames` [N, *input_shape] with `labels`: the SNN (initial membrane v0_fraction x
    theta) in `backends` over `check_steps` steps (default: the T of the decomposition table), and the analysis
    over every T of `timesteps` for each of `variants`, plus the user's own SNN module against SpikingJelly's
    IFNode when `user` is given."""
    timesteps = tuple(sorted(set(int(t) for t in timesteps)))
    require(timesteps and timesteps[0] >= 1, "timesteps must be positive")
    require(len(labels) == len(frames), lambda: f"{len(labels)} labels for {len(frames)} inputs")
    layers = runs.calibrate(ann, runs.layers_of(ann), frames)
    levels = layers[0].levels
    table = table_steps or (levels if levels in timesteps else timesteps[-1])
    require(table in timesteps, lambda: f"the decomposition table's T ({table}) is not among {list(timesteps)}")
    graph = snn_graph(ann, layers, frames.shape[1:], v0_fraction, name=f"{title}_snn")
    analysis = Ann2Snn(ann.eval(), layers, timesteps, tuple(variants), np.asarray(labels), table, user)
    inputs = plans.Inputs.frames(frames, check_steps or table, **info)
    return plans.check(graph, inputs, list(backends), title=title, analyses=(analysis,), chunk=chunk)
