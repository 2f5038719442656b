"""The primitives of a network, NIR-style: one small frozen dataclass per primitive, its equations in its docstring.

Shapes are per sample: (C, H, W) or (F,). A primitive has no name; the graph names it. Time is the neurons'
business: every other primitive is applied to each step's frame on its own.

Each field says how it behaves when a float network is converted to integers (`scale` in its metadata):
- "weight": multiplied by the synapse's weight scale s_w, rounded and saturated to int8;
- "layer": multiplied by the layer scale k = s_in * s_w of the neuron it drives (bias, threshold, reset value,
  initial potential, additive leak), rounded;
- absent: a hyper-parameter, kept as it is (stride, tau, reset mode, fire rule...).
`snncheck.convert` reads this metadata instead of knowing each primitive.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Optional, Union

import numpy as np

from ..errors import InputError, require

Shape = tuple
Number = Union[int, float]


def weight(default=dataclasses.MISSING):
    return field(default=default, metadata={"scale": "weight"})


def scaled(default=dataclasses.MISSING):
    return field(default=default, metadata={"scale": "layer"})


def scale_role(node, name: str) -> Optional[str]:
    """"weight", "layer" or None for field `name` of a primitive."""
    return next(f.metadata.get("scale") for f in dataclasses.fields(node) if f.name == name)


class Primitive:
    """Base of every primitive: `out_shape(*in_shapes)` validates the inputs and says the output shape."""
    arity = 1            # number of inputs (None: one or more)
    stateful = False     # carries state from one step to the next (neurons)
    fractional = False   # makes fractions of integers (an average, a multiplicative leak): no exact integer run

    def out_shape(self, *in_shapes: Shape) -> Shape:
        return tuple(in_shapes[0])

    @property
    def kind(self) -> str:
        return type(self).__name__


# ----------------------------------------------------------------------------------------------- input
@dataclass(frozen=True, eq=False)
class Input(Primitive):
    """The network's input: one frame x[t] of `shape` per step (analog values, or spikes)."""
    shape: tuple
    arity = 0

    def out_shape(self, *in_shapes):
        return tuple(self.shape)


# ----------------------------------------------------------------------------------------------- synapses
@dataclass(frozen=True, eq=False)
class Conv2d(Primitive):
    """2-D cross-correlation, PyTorch semantics:

        y[o, i, j] = b[o] + sum_{c in group(o), u, v} W[o, c, u, v] * x_pad[c, s*i + u, s*j + v]

    `weight` is OIHW (O, C/groups, kH, kW); `bias` is (O,) or None. Zero padding, no dilation.
    """
    weight: np.ndarray = weight()
    bias: Optional[np.ndarray] = scaled(None)
    stride: tuple = (1, 1)
    padding: tuple = (0, 0)
    groups: int = 1

    def out_shape(self, in_shape):
        c, h, w = _rank(self, in_shape, 3)
        o, ci, kh, kw = self.weight.shape
        require(c == ci * self.groups, lambda: f"expects {ci * self.groups} input channels, got {c}")
        oh = (h + 2 * self.padding[0] - kh) // self.stride[0] + 1
        ow = (w + 2 * self.padding[1] - kw) // self.stride[1] + 1
        require(oh > 0 and ow > 0, lambda: f"input {tuple(in_shape)} is smaller than the kernel")
        return (o, oh, ow)


@dataclass(frozen=True, eq=False)
class Linear(Primitive):
    """Fully connected: y[o] = b[o] + sum_i W[o, i] * x[i]. `weight` is (out, in), PyTorch's layout."""
    weight: np.ndarray = weight()
    bias: Optional[np.ndarray] = scaled(None)

    def out_shape(self, in_shape):
        f = _rank(self, in_shape, 1)[0]
        require(f == self.weight.shape[1],
                lambda: f"expects {self.weight.shape[1]} input features, got {f} (shape {tuple(in_shape)})")
        return (self.weight.shape[0],)


@dataclass(frozen=True, eq=False)
class Scale(Primitive):
    """y = factor * x. A residual shortcut is Scale(1) in a float network; deployed, it carries the scale of the
    layer it feeds (an identity synapse of weight factor, one-to-one)."""
    factor: Number = weight(1.0)


@dataclass(frozen=True, eq=False)
class Add(Primitive):
    """y = sum of all inputs (same shape): a residual merge. Before a neuron it sums currents (one neuron layer fed
    by several synapses); after neurons it sums spikes (SEW ResNet's ADD), which every consumer then receives."""
    arity = None

    def out_shape(self, *in_shapes):
        require(len(in_shapes) >= 2, "an Add needs two or more inputs")
        require(len({tuple(s) for s in in_shapes}) == 1, lambda: f"adds inputs of different shapes {in_shapes}")
        return tuple(in_shapes[0])


@dataclass(frozen=True, eq=False)
class Flatten(Primitive):
    """y = x reshaped to (C*H*W,), C-major (torch.flatten's order, also PAIBox FullConn's)."""

    def out_shape(self, in_shape):
        return (int(np.prod(in_shape)),)


@dataclass(frozen=True, eq=False)
class _Pool(Primitive):
    """A window of `kernel` moved by `stride` over the zero- (or -inf-) padded input, per channel."""
    kernel: tuple = (2, 2)
    stride: tuple = (2, 2)
    padding: tuple = (0, 0)

    def out_shape(self, in_shape):
        c, h, w = _rank(self, in_shape, 3)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel, self.stride, self.padding
        oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        require(oh > 0 and ow > 0, lambda: f"input {tuple(in_shape)} is smaller than the pooling window")
        return (c, oh, ow)


@dataclass(frozen=True, eq=False)
class MaxPool2d(_Pool):
    """y[c, i, j] = max_{u,v < k} x_pad[c, s*i + u, s*j + v] (padding with -inf); on spikes, an OR over the window."""


@dataclass(frozen=True, eq=False)
class AvgPool2d(_Pool):
    """torch's AvgPool2d (floor mode), zero padding:

        y[c, i, j] = 1/n[i, j] * sum_{u,v < k} x_pad[c, s*i + u, s*j + v]
        n[i, j] = kH*kW                                       if count_include_pad (torch's default)
                = the window's cells inside the unpadded input  otherwise

    Linear, and on spikes it emits fractions. An AdaptiveAvgPool2d whose input size is a multiple of its output
    size is this pool with kernel = stride = input // output."""
    fractional = True
    count_include_pad: bool = True


@dataclass(frozen=True, eq=False)
class SumPool2d(_Pool):
    """y[c, i, j] = sum_{u,v < k} x_pad[c, s*i + u, s*j + v] (zero padding): an average pooling deployed on integers,
    its 1/(kH*kW) folded into the synapse next to it (`snncheck.graph.pooling`). Linear; integers stay integers."""


@dataclass(frozen=True, eq=False)
class AdaptiveAvgPool2d(Primitive):
    """torch's AdaptiveAvgPool2d to a fixed `size` (OH, OW), per channel, windows of varying size:

        y[c, i, j] = mean_{r in R_i, q in Q_j} x[c, r, q]
        R_i = [floor(i*H/OH), ceil((i+1)*H/OH)),   Q_j likewise over W and OW

    Imported only where no AvgPool2d computes it (an input size that is not a multiple of the output's, e.g. a
    1x1 map spread to 7x7 by SpikingVGG's head on 32x32 inputs). Linear; on spikes it emits fractions unless every
    window holds one cell."""
    size: tuple = (1, 1)
    fractional = True

    def out_shape(self, in_shape):
        c, _, _ = _rank(self, in_shape, 3)
        return (c,) + tuple(int(s) for s in self.size)

    def windows(self, in_size: int, axis: int) -> np.ndarray:
        """[out, in] 0/1 matrix: which input rows (axis 0) or columns (axis 1) each output averages."""
        out = int(self.size[axis])
        i = np.arange(out)
        lo, hi = (i * in_size) // out, -((-(i + 1) * in_size) // out)
        r = np.arange(in_size)
        return ((r[None, :] >= lo[:, None]) & (r[None, :] < hi[:, None])).astype(np.float32)

    def cells(self, in_shape) -> Optional[int]:
        """n, the cells every window holds for an input [C, H, W], or None when windows differ in size."""
        rows, cols = self.windows(in_shape[1], 0).sum(1), self.windows(in_shape[2], 1).sum(1)
        return int(rows[0] * cols[0]) if len(set(rows)) == 1 and len(set(cols)) == 1 else None


@dataclass(frozen=True, eq=False)
class AdaptiveSumPool2d(Primitive):
    """y[c, i, j] = sum_{r in R_i, q in Q_j} x[c, r, q], the windows of AdaptiveAvgPool2d: an adaptive average pool
    whose windows all hold n cells, deployed on integers with its 1/n folded into the synapse next to it
    (`snncheck.graph.pooling`). Linear; integers stay integers."""
    size: tuple = (1, 1)

    out_shape = AdaptiveAvgPool2d.out_shape
    windows = AdaptiveAvgPool2d.windows
    cells = AdaptiveAvgPool2d.cells


@dataclass(frozen=True, eq=False)
class BatchNorm(Primitive):
    """Eval-mode batch normalisation over channel axis 0:
    y[c] = (x[c] - mean[c]) / sqrt(var[c] + eps) * gamma[c] + beta[c].

    Folded into the Conv2d/Linear before it with k = gamma / sqrt(var + eps), W' = W * k, b' = (b - mean) * k + beta
    (= torch's fuse_conv_bn_eval); see `snncheck.graph.transforms.fold_batchnorm`.
    """
    mean: np.ndarray
    var: np.ndarray
    gamma: np.ndarray
    beta: np.ndarray
    eps: float = 1e-5

    def out_shape(self, in_shape):
        require(in_shape[0] == self.mean.shape[0], lambda: f"{self.mean.shape[0]} channels, input has {in_shape[0]}")
        return tuple(in_shape)


# ----------------------------------------------------------------------------------------------- readouts
@dataclass(frozen=True, eq=False)
class MeanOverTime(Primitive):
    """A readout computed off-chip: y = 1/T * sum_t x[t], one value per sample for the whole run (a firing rate
    when x are spikes). What a model returns when its forward ends in `.mean(0)`."""


@dataclass(frozen=True, eq=False)
class Vote(Primitive):
    """SpikingJelly's VotingLayer, a readout computed off-chip: the mean over consecutive groups of `size` along the
    features (torch's avg_pool1d with kernel = stride = size; trailing features that fill no group are dropped):

        y[i] = 1/size * sum_{j < size} x[size*i + j],   i < F // size

    One class per group of `size` output neurons; on spikes it emits fractions."""
    size: int = 10
    fractional = True

    def out_shape(self, in_shape):
        f = _rank(self, in_shape, 1)[0]
        require(self.size >= 1 and f >= self.size,
                lambda: f"votes over groups of {self.size}, input has {f} features")
        return (f // self.size,)


# ----------------------------------------------------------------------------------------------- neurons
RESETS = ("hard", "soft")
FIRE_RULES = (">=", ">")


@dataclass(frozen=True, eq=False)
class Neuron(Primitive):
    """What every spiking neuron shares, one step t for each element:

        H[t] = charge(V[t-1], X[t])                     (per type, below)
        S[t] = H[t] >= threshold    (fire ">=": SpikingJelly and PAIBox; equality fires)
             = H[t] >  threshold    (fire ">":  NIR's definition)
        V[t] = v_reset              if S[t] and reset == "hard"
             = H[t] - threshold     if S[t] and reset == "soft"
             = H[t]                 otherwise
        V[-1] = v_init, or v_reset (hard) / 0 (soft) when v_init is None

    Float networks run in float32 in SpikingJelly's operation order; integer networks exactly in int64.
    """
    threshold: Number = scaled(1.0)
    reset: str = "hard"
    v_reset: Number = scaled(0.0)
    v_init: Optional[Number] = scaled(None)
    fire_rule: str = ">="
    stateful = True

    def __post_init__(self):
        require(self.reset in RESETS, lambda: f"reset must be 'hard' or 'soft', got {self.reset!r}")
        require(self.fire_rule in FIRE_RULES, lambda: f"fire rule must be '>=' or '>', got {self.fire_rule!r}")

    @property
    def soft_reset(self) -> bool:
        return self.reset == "soft"

    @property
    def initial_v(self) -> Number:
        if self.v_init is not None:
            return self.v_init
        return 0.0 if self.soft_reset else self.v_reset

    @property
    def leak_reference(self) -> Number:
        """Vr in the leak term of LIF-type neurons: v_reset for hard reset, 0 for soft (as SpikingJelly does)."""
        return 0.0 if self.soft_reset else self.v_reset

    # Each step function writes into `out` when given (the reference's per-step buffers: allocating three arrays
    # per step and copying them into the records took most of a neuron's time) and returns the result.
    def charge(self, v: np.ndarray, x: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        raise NotImplementedError

    def fire(self, h: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        theta = _scalar(self.threshold, h)
        return np.greater_equal(h, theta, out=out) if self.fire_rule == ">=" else np.greater(h, theta, out=out)

    def after_fire(self, h: np.ndarray, s: np.ndarray, out: Optional[np.ndarray] = None) -> np.ndarray:
        """V[t] from H[t] and S[t] (the reset), in SpikingJelly's order: soft H - S*threshold, hard
        H*(1 - S) + S*v_reset. On integers that is exactly where(S, v_reset, H), and several times faster."""
        if self.soft_reset:
            return np.subtract(h, s * _scalar(self.threshold, h), out=out)
        v = np.multiply(h, ~s, out=out)
        if not self.plain_zero_reset:
            v += s * _scalar(self.v_reset, h)
        return v

    @property
    def plain_zero_reset(self) -> bool:
        """v_reset is a plain 0 (a Python number): a hard reset then adds nothing to H * (1 - S) (no array test
        every step; on floats, H's -0.0 stays -0.0)."""
        return isinstance(self.v_reset, (int, float)) and self.v_reset == 0


@dataclass(frozen=True, eq=False)
class IF(Neuron):
    """Integrate-and-fire: H[t] = V[t-1] + X[t].  (SpikingJelly IFNode; PAIBox IF, or LIF carrying a bias.)"""

    def charge(self, v, x, out=None):
        return np.add(v, x, out=out)


@dataclass(frozen=True, eq=False)
class LIF(Neuron):
    """SpikingJelly's leaky integrate-and-fire, a division by tau (not a multiply by 1/tau):

        decay_input:     H[t] = V[t-1] + (X[t] - (V[t-1] - Vr)) / tau
        not decay_input: H[t] = V[t-1] - (V[t-1] - Vr) / tau + X[t]
    with Vr = v_reset (0 for soft reset). PAIBox has no multiplicative leak: it cannot run this exactly.
    """
    fractional = True
    tau: float = 2.0
    decay_input: bool = True

    def charge(self, v, x, out=None):
        vr, tau = _scalar(self.leak_reference, v), _scalar(self.tau, v)
        if self.decay_input:
            return _into(v + (x - (v - vr)) / tau, out)
        return _into(v - (v - vr) / tau + x, out)


@dataclass(frozen=True, eq=False)
class ParametricLIF(Neuron):
    """SpikingJelly's ParametricLIFNode: LIF with the decay k = sigmoid(w) multiplied in, w learned:

        decay_input:     H[t] = V[t-1] + (X[t] - (V[t-1] - Vr)) * k
        not decay_input: H[t] = V[t-1] - (V[t-1] - Vr) * k + X[t]
    """
    fractional = True
    w: float = 0.0
    decay_input: bool = True

    @property
    def decay(self) -> np.float32:
        import torch  # sigmoid computed exactly as SpikingJelly does, in float32 torch
        return np.float32(torch.tensor(self.w, dtype=torch.float32).sigmoid().item())

    def charge(self, v, x, out=None):
        vr, k = _scalar(self.leak_reference, v), self.decay.astype(v.dtype)
        if self.decay_input:
            return _into(v + (x - (v - vr)) * k, out)
        return _into(v - (v - vr) * k + x, out)


@dataclass(frozen=True, eq=False)
class AdditiveLIF(Neuron):
    """PAIBox's leaky neuron (pb.LIF): a constant added every step, H[t] = V[t-1] + X[t] + leak.

    `leak` is a scalar or a per-neuron array (PAIBox's leak_v). It scales like the threshold on conversion.
    """
    leak: Union[Number, np.ndarray] = scaled(0.0)

    def charge(self, v, x, out=None):
        h = np.add(v, x, out=out)
        h += np.asarray(self.leak, dtype=v.dtype)
        return h


NEURONS = (IF, LIF, ParametricLIF, AdditiveLIF)
SYNAPSES = (Conv2d, Linear)
LINEAR_OPS = (Conv2d, Linear, Scale, Add, Flatten, AvgPool2d, AdaptiveAvgPool2d, SumPool2d, AdaptiveSumPool2d,
              BatchNorm)   # y is linear (affine) in x
READOUTS = (MeanOverTime, Vote)


def is_neuron(node) -> bool:
    return isinstance(node, Neuron)


# ----------------------------------------------------------------------------------------------- helpers
def _rank(node, in_shape, rank: int) -> Shape:
    if len(in_shape) != rank:
        raise InputError(f"{type(node).__name__} expects a {rank}-d input per sample, got shape {tuple(in_shape)}")
    return tuple(in_shape)


def _into(value: np.ndarray, out: Optional[np.ndarray]) -> np.ndarray:
    if out is None:
        return value
    out[...] = value
    return out


def _scalar(value, like: np.ndarray):
    return np.asarray(value, dtype=like.dtype) if like.dtype.kind == "f" else np.asarray(value).astype(like.dtype)


def parameters(node) -> list:
    """The numeric parameters of a primitive that must be integers in an integer network (weights, biases,
    thresholds, reset values, leaks), as arrays; hyper-parameters are not among them."""
    out = []
    for f in dataclasses.fields(node):
        if f.metadata.get("scale") is None:
            continue
        value = getattr(node, f.name)
        if value is None or (f.name == "v_reset" and getattr(node, "soft_reset", False)):
            continue
        out.append(np.asarray(value))
    return out


def is_integer_valued(a) -> bool:
    a = np.asarray(a)
    if a.dtype.kind in "iub":
        return True
    return bool(a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)))
