"""What every runner returns, and the one interface they share.

A runner takes a `Network` and inputs `[N, T, *input_shape]` and records, for every spiking layer, every
sample and every step: the spikes, the membrane potential after reset (`v`) and, where it can, the charged
potential before firing (`h`). Results are plain data (NumPy arrays + dicts), can be saved to `.npz` and
compared later; runners know nothing of comparison.
"""
from __future__ import annotations

import abc
import json
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..errors import require
from ..ir import Network


@dataclass
class LayerRecord:
    """One spiking layer's trace. Arrays are `[N, steps, *shape]`; `steps` is T once aligned."""
    name: str
    spikes: np.ndarray                 # bool
    v: Optional[np.ndarray] = None     # membrane after reset
    h: Optional[np.ndarray] = None     # charged membrane before firing
    threshold: float = 1.0
    rounding_bound: float = 0.0        # |error| a float32 run may have in h at step 0 (0: exact arithmetic)

    @property
    def shape(self) -> tuple:
        return tuple(self.spikes.shape[2:])

    @property
    def steps(self) -> int:
        return self.spikes.shape[1]


@dataclass
class RunResult:
    """The output of one runner on one network and one input batch."""
    runner: str                   # which simulator: "reference", "spikingjelly", "paibox"
    label: str                    # runner plus which network, e.g. "paibox:b"
    layers: list                  # [LayerRecord] in network order
    meta: dict = field(default_factory=dict)   # JSON-able facts: lags, timing, wall time, ...

    def layer(self, name: str) -> LayerRecord:
        for rec in self.layers:
            if rec.name == name:
                return rec
        raise KeyError(name)

    @property
    def names(self) -> list:
        return [rec.name for rec in self.layers]

    def save(self, path) -> None:
        arrays = {}
        for i, rec in enumerate(self.layers):
            for key in ("spikes", "v", "h"):
                if getattr(rec, key) is not None:
                    arrays[f"{i}/{key}"] = getattr(rec, key)
        header = {"runner": self.runner, "label": self.label, "meta": self.meta,
                  "layers": [{"name": r.name, "threshold": float(r.threshold),
                              "rounding_bound": float(r.rounding_bound)} for r in self.layers]}
        np.savez_compressed(path, __header__=np.array(json.dumps(header)), **arrays)

    @classmethod
    def load(cls, path) -> "RunResult":
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(str(data["__header__"]))
            layers = [LayerRecord(name=info["name"], threshold=info["threshold"],
                                  rounding_bound=info["rounding_bound"],
                                  **{k: data[f"{i}/{k}"] if f"{i}/{k}" in data else None
                                     for k in ("spikes", "v", "h")})
                      for i, info in enumerate(header["layers"])]
        return cls(header["runner"], header["label"], layers, header["meta"])


class Runner(abc.ABC):
    """Runs one network on a batch of inputs. Subclasses set `name` and implement `_run`."""
    name = "runner"

    def __init__(self, network: Network, label: Optional[str] = None, record_v: bool = True):
        self.network = network
        self.label = label or self.name
        self.record_v = record_v

    def run(self, inputs: np.ndarray) -> RunResult:
        inputs = check_inputs(self.network, inputs)
        return self._run(inputs)

    @abc.abstractmethod
    def _run(self, inputs: np.ndarray) -> RunResult:
        ...


def check_inputs(network: Network, inputs) -> np.ndarray:
    """Inputs are `[N, T, *input_shape]`; a `[N, *input_shape]` batch is not accepted here (see inputs.py)."""
    inputs = np.asarray(inputs)
    shape = tuple(network.input_shape)
    require(inputs.ndim == len(shape) + 2 and tuple(inputs.shape[2:]) == shape,
            f"inputs have shape {inputs.shape}; network {network.name!r} expects [N, T, {', '.join(map(str, shape))}]")
    require(inputs.shape[0] > 0 and inputs.shape[1] > 0, f"inputs have shape {inputs.shape}: no sample or no step")
    require(bool(np.all(np.isfinite(inputs))), "inputs contain NaN or infinite values")
    return inputs


def rounding_bounds(network: Network, input_max: float) -> dict:
    """Per neuron layer, a bound on the float32 error of one step's synaptic input X (0 if exact).

    The classic bound for a dot product of n terms is n * u * sum|w_i x_i| (u = 2**-24); with inputs bounded by
    `input_max` (1 for spikes) that is n * u * (max_o sum_i |W_oi| * input_max + |b_o|). A float network that
    went through BatchNorm folding gets the same bound again for the folding itself.
    """
    from ..ir import NEURON_TYPES, SYNAPSE_TYPES
    u = 2.0 ** -24
    bounds, x_max, last = {}, float(input_max), None
    for layer in network.layers:
        if isinstance(layer, SYNAPSE_TYPES):
            w = np.abs(np.asarray(layer.weight, dtype=np.float64)).reshape(layer.weight.shape[0], -1)
            b = np.abs(layer.bias) if layer.bias is not None else 0.0
            n = w.shape[1]
            last = 2 * (n + 2) * u * float(np.max(w.sum(axis=1) * x_max + b))
        elif isinstance(layer, NEURON_TYPES):
            bounds[layer.name] = 0.0 if network.is_integer else (last or 0.0) + 4 * u * abs(layer.threshold)
            x_max, last = 1.0, None
    return bounds
