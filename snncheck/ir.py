"""Framework-neutral description of a feed-forward spiking network (NIR-style).

One small dataclass per primitive; each states its equations, and the NumPy functions that implement them
(`charge`, `fire`, `reset`) are the single written-down semantics that the reference runner executes and that
the SpikingJelly runner uses to reconstruct the charged potential H.

Tensors are per sample: a layer maps an input of shape `in_shape` (C, H, W) or (F,) to its output. Time is
handled by the neurons, which carry a membrane potential V from one step to the next. Parameters are NumPy
arrays; a network whose parameters are all integer-valued is an *integer network* and can run on PAIBox.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np

from .errors import InputError, require

Shape = tuple


# ----------------------------------------------------------------------------------------------- synapses
@dataclass
class Conv2d:
    """2-D cross-correlation, PyTorch semantics.

    y[o, i, j] = b[o] + sum_{c in group(o), u, v} W[o, c, u, v] * x_pad[c, s*i + u, s*j + v]

    `weight` is OIHW (O, C/groups, kH, kW); `bias` is (O,) or None. Zero padding; no dilation (PAIBox's
    dilation is wrong in simulation, so the importer refuses it).
    """
    name: str
    weight: np.ndarray
    bias: Optional[np.ndarray] = None
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    groups: int = 1

    def out_shape(self, in_shape: Shape) -> Shape:
        c, h, w = _expect_rank(self, in_shape, 3)
        o, ci, kh, kw = self.weight.shape
        require(c == ci * self.groups, f"layer {self.name!r}: expects {ci * self.groups} input channels, got {c}")
        oh = (h + 2 * self.padding[0] - kh) // self.stride[0] + 1
        ow = (w + 2 * self.padding[1] - kw) // self.stride[1] + 1
        require(oh > 0 and ow > 0, f"layer {self.name!r}: input {in_shape} is smaller than the kernel")
        return (o, oh, ow)


@dataclass
class Linear:
    """Fully connected: y[o] = b[o] + sum_i W[o, i] * x[i]. `weight` is (out, in), PyTorch layout."""
    name: str
    weight: np.ndarray
    bias: Optional[np.ndarray] = None

    def out_shape(self, in_shape: Shape) -> Shape:
        f = _expect_rank(self, in_shape, 1)[0]
        require(f == self.weight.shape[1],
                f"layer {self.name!r}: expects {self.weight.shape[1]} input features, got {f} (shape {in_shape})")
        return (self.weight.shape[0],)


@dataclass
class Flatten:
    """y = x reshaped to (C*H*W,), C-major (torch.flatten order, also PAIBox FullConn's)."""
    name: str

    def out_shape(self, in_shape: Shape) -> Shape:
        return (int(np.prod(in_shape)),)


@dataclass
class MaxPool2d:
    """y[c, i, j] = max_{u,v < k} x[c, s*i + u, s*j + v]; on spikes this is an OR over the window.

    Applied to spikes it is a pipeline stage of its own in PAIBox (one step of lag).
    """
    name: str
    kernel: tuple = (2, 2)
    stride: tuple = (2, 2)
    padding: tuple = (0, 0)

    def out_shape(self, in_shape: Shape) -> Shape:
        c, h, w = _expect_rank(self, in_shape, 3)
        return (c, (h + 2 * self.padding[0] - self.kernel[0]) // self.stride[0] + 1,
                (w + 2 * self.padding[1] - self.kernel[1]) // self.stride[1] + 1)


@dataclass
class AvgPool2d:
    """y[c, i, j] = mean_{u,v < k} x[c, s*i + u, s*j + v]  (emits fractions on spikes).

    PAIBox has no exact equivalent (its SpikingAvgPool2d is a majority vote), so PAIBox refuses it.
    """
    name: str
    kernel: tuple = (2, 2)
    stride: tuple = (2, 2)

    out_shape = MaxPool2d.out_shape
    padding = (0, 0)


@dataclass
class BatchNorm:
    """Eval-mode batch normalisation over channel axis 0:
    y[c] = (x[c] - mean[c]) / sqrt(var[c] + eps) * gamma[c] + beta[c].

    Never executed: `fold_batchnorm` merges it into the preceding Conv2d/Linear with
    k = gamma / sqrt(var + eps), W' = W * k, b' = (b - mean) * k + beta  (= torch's fuse_conv_bn_eval).
    """
    name: str
    mean: np.ndarray
    var: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    eps: float = 1e-5

    def out_shape(self, in_shape: Shape) -> Shape:
        require(in_shape[0] == self.mean.shape[0],
                f"layer {self.name!r}: {self.mean.shape[0]} channels, input has {in_shape[0]}")
        return tuple(in_shape)


# ----------------------------------------------------------------------------------------------- neurons
@dataclass
class Neuron:
    """Common part of every spiking neuron, one step t for each element:

        H[t] = charge(V[t-1], X[t])               (per type, below)
        S[t] = H[t] >= threshold                  (equality fires, in SpikingJelly and PAIBox alike)
        V[t] = v_reset         if S[t] (hard reset, v_reset is a number)
             = H[t] - threshold if S[t] (soft reset, v_reset is None)
             = H[t]            otherwise
        V[-1] = v_init (defaults to v_reset for hard reset, 0 for soft)

    Float networks run in float32 with exactly SpikingJelly's operation order; integer networks in int64.
    """
    name: str
    threshold: float = 1.0
    v_reset: Optional[float] = 0.0
    v_init: Optional[float] = None

    @property
    def soft_reset(self) -> bool:
        return self.v_reset is None

    @property
    def initial_v(self) -> float:
        if self.v_init is not None:
            return self.v_init
        return 0.0 if self.v_reset is None else self.v_reset

    def out_shape(self, in_shape: Shape) -> Shape:
        return tuple(in_shape)

    def charge(self, v: np.ndarray, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def fire(self, h: np.ndarray) -> np.ndarray:
        return h >= _scalar(self.threshold, h)

    def reset(self, h: np.ndarray, s: np.ndarray) -> np.ndarray:
        if self.v_reset is None:
            return h - s.astype(h.dtype) * _scalar(self.threshold, h)
        return np.where(s, _scalar(self.v_reset, h), h)


@dataclass
class IF(Neuron):
    """Integrate-and-fire: H[t] = V[t-1] + X[t].  (SpikingJelly IFNode; PAIBox IF, or LIF with bias.)"""

    def charge(self, v, x):
        return v + x


@dataclass
class LIF(Neuron):
    """SpikingJelly's leaky integrate-and-fire, a division by tau (not a multiply by 1/tau):

        decay_input:     H[t] = V[t-1] + (X[t] - (V[t-1] - Vr)) / tau
        not decay_input: H[t] = V[t-1] - (V[t-1] - Vr) / tau + X[t]
    with Vr = v_reset (0 for soft reset). PAIBox has no multiplicative leak: it cannot run this exactly.
    """
    tau: float = 2.0
    decay_input: bool = True

    def charge(self, v, x):
        vr = _scalar(self.v_reset or 0.0, v)
        tau = _scalar(self.tau, v)
        if self.decay_input:
            return v + (x - (v - vr)) / tau
        return v - (v - vr) / tau + x


@dataclass
class ParametricLIF(Neuron):
    """SpikingJelly ParametricLIFNode: LIF with the decay sigmoid(w) multiplied in, w learned:

        decay_input:     H[t] = V[t-1] + (X[t] - (V[t-1] - Vr)) * sigmoid(w)
        not decay_input: H[t] = V[t-1] - (V[t-1] - Vr) * sigmoid(w) + X[t]
    """
    w: float = 0.0
    decay_input: bool = True

    @property
    def decay(self) -> np.float32:
        import torch  # sigmoid computed exactly as SpikingJelly does, in float32 torch
        return np.float32(torch.tensor(self.w, dtype=torch.float32).sigmoid().item())

    def charge(self, v, x):
        vr = _scalar(self.v_reset or 0.0, v)
        k = self.decay.astype(v.dtype)
        if self.decay_input:
            return v + (x - (v - vr)) * k
        return v - (v - vr) * k + x


@dataclass
class AdditiveLIF(Neuron):
    """PAIBox's leaky neuron (pb.LIF): a constant added every step, H[t] = V[t-1] + X[t] + leak.

    `leak` is a scalar or per-neuron array (PAIBox leak_v). A bias after a Conv/Linear is the same thing, so
    the PAIBox runner turns layer biases into this leak; this type is for networks that carry the leak itself.
    """
    leak: Union[float, np.ndarray] = 0.0

    def charge(self, v, x):
        return v + x + np.asarray(self.leak, dtype=v.dtype)


NEURON_TYPES = (IF, LIF, ParametricLIF, AdditiveLIF)
SYNAPSE_TYPES = (Conv2d, Linear)
Layer = Union[Conv2d, Linear, Flatten, MaxPool2d, AvgPool2d, BatchNorm, IF, LIF, ParametricLIF, AdditiveLIF]


# ----------------------------------------------------------------------------------------------- network
@dataclass
class Network:
    """A chain of layers applied in order to an input of `input_shape` (per sample, per time step)."""
    layers: list
    input_shape: Shape
    name: str = "network"
    input_scale: float = 1.0   # what the input was multiplied by (255 for 0-255 pixels); informational

    def __post_init__(self):
        names = [layer.name for layer in self.layers]
        dup = {n for n in names if names.count(n) > 1}
        require(not dup, f"duplicate layer names: {sorted(dup)}")
        self.shapes()  # validates every shape once, with a message naming the layer

    def shapes(self) -> list:
        """Output shape of every layer, in order."""
        out, shape = [], tuple(self.input_shape)
        for layer in self.layers:
            shape = layer.out_shape(shape)
            out.append(shape)
        return out

    @property
    def neurons(self) -> list:
        return [layer for layer in self.layers if isinstance(layer, NEURON_TYPES)]

    def neuron_shapes(self) -> dict:
        return {l.name: s for l, s in zip(self.layers, self.shapes()) if isinstance(l, NEURON_TYPES)}

    def layer(self, name: str):
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(name)

    def input_of(self, name: str):
        """The synaptic layer (Conv2d/Linear) that feeds neuron `name`, or None."""
        prev = None
        for layer in self.layers:
            if layer.name == name:
                return prev
            if isinstance(layer, SYNAPSE_TYPES):
                prev = layer
            elif isinstance(layer, NEURON_TYPES):
                prev = None
        raise KeyError(name)

    @property
    def is_integer(self) -> bool:
        return all(is_integer_valued(a) for a in self.parameters())

    def parameters(self):
        for layer in self.layers:
            for f in dataclasses.fields(layer):
                if f.name in ("name", "stride", "padding", "kernel", "groups", "decay_input", "eps", "tau", "w"):
                    continue
                value = getattr(layer, f.name)
                if value is not None and not isinstance(value, bool):
                    yield np.asarray(value)

    def replace(self, **changes) -> "Network":
        return dataclasses.replace(self, **changes)

    def with_layer(self, name: str, **changes) -> "Network":
        """A copy with one layer's fields changed (parameters are copied, never shared)."""
        layers = [dataclasses.replace(l, **changes) if l.name == name else copy_layer(l) for l in self.layers]
        return dataclasses.replace(self, layers=layers)


def copy_layer(layer):
    return dataclasses.replace(layer, **{f.name: np.array(getattr(layer, f.name), copy=True)
                                         for f in dataclasses.fields(layer)
                                         if isinstance(getattr(layer, f.name), np.ndarray)})


def fold_batchnorm(net: Network) -> Network:
    """Merge every BatchNorm into the Conv2d/Linear right before it (float64 arithmetic, then float32)."""
    layers: list = []
    for layer in net.layers:
        if not isinstance(layer, BatchNorm):
            layers.append(copy_layer(layer))
            continue
        prev = layers[-1] if layers else None
        require(isinstance(prev, SYNAPSE_TYPES),
                f"BatchNorm {layer.name!r} does not follow a Conv2d/Linear, so it cannot be folded")
        k = layer.gamma.astype(np.float64) / np.sqrt(layer.var.astype(np.float64) + layer.eps)
        bias = prev.bias if prev.bias is not None else np.zeros(prev.weight.shape[0])
        w = prev.weight.astype(np.float64) * k.reshape((-1,) + (1,) * (prev.weight.ndim - 1))
        b = (bias.astype(np.float64) - layer.mean) * k + layer.beta
        layers[-1] = dataclasses.replace(prev, weight=w.astype(np.float32), bias=b.astype(np.float32))
    return dataclasses.replace(net, layers=layers)


def stages(net: Network) -> list:
    """PAIBox pipeline stages in order: each neuron layer, and each pooling layer applied to spikes.

    Stage k (1-based) answers k-1 steps late in PAIBox; the expected lag of a neuron layer follows from this.
    """
    out, spiking_input = [], False
    for layer in net.layers:
        if isinstance(layer, NEURON_TYPES):
            out.append(layer.name)
            spiking_input = True
        elif isinstance(layer, (MaxPool2d, AvgPool2d)) and spiking_input:
            out.append(layer.name)
    return out


def segments(net: Network) -> list:
    """[(neuron name, [layers after the previous neuron up to and including this one])], in order.

    A segment is what one spiking layer computes from the previous one's spikes (or the input)."""
    out, current = [], []
    for layer in net.layers:
        current.append(layer)
        if isinstance(layer, NEURON_TYPES):
            out.append((layer.name, current))
            current = []
    return out


def parameters_of(layer) -> list:
    """The numeric parameters of one layer (weights, bias, threshold, reset value)."""
    return [np.asarray(getattr(layer, f.name)) for f in dataclasses.fields(layer)
            if f.name in ("weight", "bias", "threshold", "v_reset") and getattr(layer, f.name) is not None]


def expected_lags(net: Network) -> dict:
    return {name: k for k, name in enumerate(stages(net)) if isinstance(net.layer(name), NEURON_TYPES)}


def is_integer_valued(a: np.ndarray) -> bool:
    if a.dtype.kind in "iub":
        return True
    return bool(np.all(np.isfinite(a)) and np.all(a == np.round(a)))


def _expect_rank(layer, in_shape: Shape, rank: int) -> Shape:
    if len(in_shape) != rank:
        raise InputError(f"layer {layer.name!r} ({type(layer).__name__}) expects a {rank}-d input per sample, "
                         f"got shape {tuple(in_shape)}")
    return in_shape


def _scalar(value, like: np.ndarray):
    return np.asarray(value, dtype=like.dtype) if like.dtype.kind == "f" else np.asarray(value).astype(like.dtype)
