"""The maths of QCFS conversion (Bu et al., "Optimal ANN-SNN Conversion for High-accuracy and Ultra-low-latency
Spiking Neural Networks", ICLR 2022): the activation an ANN is trained with, what an IF neuron fed the same
input outputs, and the split of their difference into the paper's three errors.

QCFS activation with threshold lambda, L quantization steps and shift phi (phi = 1/2 is the paper's optimum):

    h(z) = lambda * clip( floor(z * L / lambda + phi) / L, 0, 1 )

An IF neuron with threshold theta, soft reset, initial membrane v0 and amplitude theta, fed x[1..T], outputs
r = theta * N(T) / T, N(T) its spike count. Fed its mean input z = mean_t x[t] at every step ("even" arrival):

    r_even(z) = theta * clip( floor((T * z + v0) / theta) / T, 0, 1 )

so with theta = lambda, v0 = theta/2 and T = L, r_even = h exactly: the paper's zero conversion error for
T = L, v0 = theta * phi (and, for any T, zero error in expectation only when phi = 1/2). Against the ReLU
activation a = max(z, 0) of the same input, each neuron's deviation is the sum of the paper's three errors:

    r - a = (min(a, theta) - a)                   clipping error      (<= 0: the ANN exceeds the threshold)
          + (r_even(z) - min(a, theta))           quantization error  (flooring to the grid theta/T)
          + (r - r_even(z))                       unevenness error    (when the input spikes arrive, not how many)

`even_output` runs the neuron itself on its mean input (the simulator's own arithmetic), so that a layer fed a
constant input (the first IF layer under direct encoding) has an unevenness error of exactly zero.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..backends.reference import run_neuron
from ..graph import primitives as P

COMPONENTS = ("clipping", "quantization", "unevenness")


def qcfs_level(z, threshold: float, levels: int, shift: float = 0.5) -> np.ndarray:
    """k = clip(floor(z * L / lambda + phi), 0, L) as int64, so that h(z) = lambda * k / L (computed in z's float
    dtype)."""
    z = np.asarray(z)
    dt = z.dtype if z.dtype.kind == "f" else np.float64
    lam, n = dt.type(threshold), dt.type(levels)
    return np.clip(np.floor(z * n / lam + dt.type(shift)), 0, levels).astype(np.int64)


def qcfs(z, threshold: float, levels: int, shift: float = 0.5) -> np.ndarray:
    """h(z) = lambda * clip(floor(z * L / lambda + phi) / L, 0, 1), in float64."""
    return np.float64(threshold) * qcfs_level(z, threshold, levels, shift) / levels


def if_neuron(threshold: float, v0_fraction: float) -> P.IF:
    """The IF neuron of a QCFS conversion: soft reset, initial membrane v0 = fraction * theta."""
    return P.IF(threshold=float(threshold), reset="soft", v_init=float(v0_fraction) * float(threshold))


def if_output(x: np.ndarray, threshold: float, v0_fraction: float) -> np.ndarray:
    """Spikes {0, 1} [N, T, ...] of the IF neuron fed x [N, T, ...] (the reference's neuron loop)."""
    return run_neuron(if_neuron(threshold, v0_fraction), x, record_v=False)[0]


def even_output(z: np.ndarray, threshold: float, steps: int, v0_fraction: float) -> np.ndarray:
    """r_even(z): theta * N(T) / T of the IF neuron fed its mean input z [N, ...] at each of `steps` steps."""
    x = np.broadcast_to(np.asarray(z)[:, None], (z.shape[0], steps) + z.shape[1:])
    count = if_output(x, threshold, v0_fraction).sum(axis=1, dtype=np.int64)
    return (np.float64(threshold) * count / steps).astype(z.dtype)


@dataclass(frozen=True)
class Decomposition:
    """One layer's per-neuron errors ([N, ...] each), r - max(z, 0) = clipping + quantization + unevenness."""
    clipping: np.ndarray
    quantization: np.ndarray
    unevenness: np.ndarray

    @property
    def total(self) -> np.ndarray:
        return self.clipping + self.quantization + self.unevenness


def decompose(z: np.ndarray, output: np.ndarray, threshold: float, steps: int, v0_fraction: float) -> Decomposition:
    """The paper's errors of a layer whose neurons received mean input z and output `output` (= theta * N(T) / T,
    N counting signed spikes where there are negative ones) over `steps` steps."""
    z = np.asarray(z, np.float64)
    relu = np.maximum(z, 0.0)
    clipped = np.minimum(relu, threshold)
    even = even_output(z.astype(np.float32), threshold, steps, v0_fraction).astype(np.float64)
    return Decomposition(clipped - relu, even - clipped, np.asarray(output, np.float64) - even)
