"""How the samples of a run become PAIBox nodes: one sample per simulation, or many stacked along the rows.

A layout says, for the stages of `lower.stages`, each node's shape and drive (bias, leak), how each synapse is
made, how a batch of input frames is fed, and how a probe's record becomes `[samples, steps, *shape]`.

`OneSample`: node shapes are the graph's shapes; one simulation per sample.

`Stacked`: PAIBox has no batch dimension and its cost is Python per node and per step, so B samples share every
node: sample b occupies rows [b*P, b*P + H) of a (C, B*P, W) node, where H is the layer's own height and P its
*period*; the P - H rows in between are a gap. The same `pb.Conv2d` then runs on all samples at once, and
- a Conv2d with padding p needs gaps of at least p zero rows, and strides dividing the period;
- a Linear becomes a Conv2d whose kernel covers one sample (C, H, W) with row stride P: output (O, B, 1);
- max pooling (a depthwise ones-kernel conv into a BypassNeuron) must keep its gap outputs zero by itself;
- the neurons in gap rows of a neuron layer see a mix of neighbouring samples, so they get a negative bias that
  keeps them silent: -(max |input| + threshold + 1), small enough that their membrane neither wraps nor reaches
  PAIBox's floor within the run (checked). Their spikes and voltages are never reported.
The real neurons compute exactly what one-sample-at-a-time runs compute (tests/test_batched_paibox.py checks
spikes and voltages on every layer). The smallest input gap that satisfies every stage is searched; a graph that
admits none (a merge, for now) raises `Unstackable`, and `choose` falls back to one sample per simulation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from ...errors import InputError
from ...graph import Graph
from .. import exact_gemm
from . import limits, lower


class Unstackable(InputError):
    """The graph cannot be stacked for batched PAIBox (the message says where and why)."""


def choose(graph: Graph, batch: int, samples: int, steps: int) -> tuple:
    """(layout, facts): `Stacked` with the smallest batch that needs as many simulations as `batch` would, or
    `OneSample` with the reason it could not stack ({"batch": 1, "batch_fallback": why})."""
    batch = balanced(samples, batch)
    if batch <= 1:
        return OneSample(graph), {"batch": 1}
    try:
        return Stacked(graph, batch, steps), {"batch": batch}
    except Unstackable as exc:
        return OneSample(graph), {"batch": 1, "batch_fallback": str(exc)}


def balanced(n: int, batch: int) -> int:
    """The smallest batch that runs n samples in as many simulations as `batch` would (less padding)."""
    batch = max(1, min(int(batch), n))
    runs = -(-n // batch)
    return -(-n // runs)


# ----------------------------------------------------------------------------------------------- one sample
class OneSample:
    """One sample per simulation; node shapes are the graph's. `input_shape`: the InputProj's shape when it is not
    the graph's (a user's network may take its input flattened)."""
    batch = 1

    def __init__(self, graph: Graph, input_shape: Optional[tuple] = None):
        self.graph = graph
        self.input_shape = tuple(input_shape or graph.input_shape)

    def shape(self, stage: str) -> tuple:
        return self.graph.shapes[stage]

    def drive(self, neuron: str) -> tuple:
        """(per-neuron bias of the node's shape or None, scalar leak)."""
        return lower.drive(self.graph, neuron)

    def synapse(self, pb, src, dst, link: lower.Link):
        node = link.op or (self.graph.nodes[link.node] if link.node else None)
        if link.kind == "conv":
            return pb.Conv2d(src, dst, np.asarray(node.weight).astype(np.int8), stride=tuple(node.stride),
                             padding=tuple(node.padding), groups=int(node.groups))
        if link.kind == "full":        # FullConn flattens a (C, H, W) source C-major, as torch.flatten does
            return pb.FullConn(src, dst, np.asarray(node.weight).T.astype(np.int8))
        if link.kind == "identity":
            return pb.FullConn(src, dst, int(link.factor), conn_type=pb.SynConnType.One2One)
        return pb.Conv2d(src, dst, **lower.pool_kernel(self.graph.shapes[link.source][0], node))

    def frames(self, x: np.ndarray) -> np.ndarray:
        """[1, T, *input] -> [T, *InputProj shape]."""
        return x[0].reshape((x.shape[1],) + self.input_shape)

    def records(self, stage: str, data: np.ndarray, samples: int) -> np.ndarray:
        """A probe's (steps, ...) record -> [1, steps, *stage shape]."""
        return data.reshape((1, data.shape[0]) + tuple(self.graph.shapes[stage]))

    def view(self, stage: str, state: np.ndarray, samples: int) -> np.ndarray:
        """A node's state at one step (spikes or voltages, any shape) -> [samples, *stage shape], a view."""
        return state.reshape((1,) + tuple(self.graph.shapes[stage]))


# ----------------------------------------------------------------------------------------------- stacked
@dataclass(frozen=True)
class Rows:
    """The stacked row axis of one node: per-sample shape (C, H, W), period P, and R rows in all."""
    shape: tuple
    period: int
    rows: int

    @property
    def height(self) -> int:
        return self.shape[1]

    def gap_rows(self) -> np.ndarray:
        """Boolean mask of the rows that belong to no sample."""
        return np.arange(self.rows) % self.period >= self.height


class Stacked(OneSample):
    """`batch` samples per node (see the module docstring); `steps` bounds how long the gap neurons must stay
    silent. Raises Unstackable when the graph cannot be stacked."""

    def __init__(self, graph: Graph, batch: int, steps: int, gap: Optional[int] = None):
        super().__init__(graph)
        self.batch, self.steps = int(batch), int(steps)
        self.stages = lower.stages(graph)
        for stage in self.stages:
            if len(stage.links) != 1:
                raise Unstackable(f"node {stage.name!r} sums {len(stage.links)} synaptic terms (a merge): the "
                                  "stacked layout does chains only, for now")
        first = _as3d(graph.input_shape)
        reason = "no gap fits"
        for g in ([gap] if gap is not None else range(0, 4 * first[1] + 9)):
            rows = Rows(first, first[1] + g, self.batch * (first[1] + g))
            try:
                self.plan = self._plan(rows)
                break
            except Unstackable as exc:
                reason = str(exc)
        else:
            raise Unstackable(f"network {graph.name!r} cannot be stacked for batched PAIBox: {reason}")
        self.input_rows = rows
        self.input_shape = (first[0], rows.rows, first[2])
        self._views = {}

    # ------------------------------------------------------------------------------------------- planning
    def _plan(self, input_rows: Rows) -> dict:
        """{stage: {"in": rows of its source, "rows": its own rows, "silence": bias of its gap neurons}}, and the
        input's {"rows": ...}."""
        plan = {self.graph.input: {"rows": input_rows}}
        for stage in self.stages:
            (link,) = stage.links
            src = plan[link.source]["rows"]
            x_max = limits.INPUT[1] if link.source == self.graph.input else 1
            node = link.op or (self.graph.nodes[link.node] if link.node else None)
            if link.kind == "conv":
                out = _conv_rows(link.node, src, node.weight.shape[2:], node.stride, node.padding,
                                 node.weight.shape[0], self.batch)
                reach = _reach(node.weight, x_max)
            elif link.kind == "full":
                if src.rows > self.batch * src.period:
                    raise Unstackable(f"node {link.node!r}: more rows than samples")
                out = Rows((node.weight.shape[0], 1, 1), 1, self.batch)
                reach = _reach(node.weight, x_max)
            elif link.kind == "identity":
                out, reach = src, abs(link.factor) * x_max
            else:
                out = _conv_rows(stage.name, src, node.kernel, node.stride, node.padding, src.shape[0], self.batch)
                _check_clean_gaps(stage.name, node, src, out)
                reach = 0
            silence = 0 if stage.pool else self._silence(stage.name, reach, out)
            plan[stage.name] = {"in": src, "rows": out, "silence": silence}
        return plan

    def _silence(self, name: str, reach: float, rows: Rows) -> int:
        """Bias that keeps a gap neuron silent for the whole run without wrapping its 30-bit membrane."""
        if not rows.gap_rows().any():
            return 0
        threshold = lower.neuron_params(self.graph.nodes[name])["threshold"]
        if self.steps * (2 * reach + threshold + 1) + reach >= limits.VALUE[1]:
            raise Unstackable(f"node {name!r}: gap neurons would leave PAIBox's 30-bit range in {self.steps} steps")
        return -(int(reach) + threshold + 1)

    # ------------------------------------------------------------------------------------------- building
    def shape(self, stage: str) -> tuple:
        rows = self.plan[stage]["rows"]
        return (rows.shape[0], rows.rows, rows.shape[2])

    def drive(self, neuron: str) -> tuple:
        rows, silence = self.plan[neuron]["rows"], self.plan[neuron]["silence"]
        bias, leak = lower.drive(self.graph, neuron)
        if bias is None and silence == 0:
            return None, leak
        per_sample = np.zeros(rows.shape, np.int64) + leak
        if bias is not None:
            per_sample += bias.reshape(rows.shape)
        stacked = self.stack(np.broadcast_to(per_sample, (1, self.batch) + rows.shape), rows=rows)[0]
        stacked[:, rows.gap_rows()] = silence
        return stacked, 0

    def synapse(self, pb, src, dst, link: lower.Link):
        if link.kind != "full":
            return super().synapse(pb, src, dst, link)
        rows = self.plan[link.source]["rows"]
        weight = np.asarray(link.op.weight)
        kernel = weight.reshape((weight.shape[0],) + rows.shape).astype(np.int8)
        return pb.Conv2d(src, dst, kernel, stride=(rows.period, 1), padding=0)

    # ------------------------------------------------------------------------------------------- data
    def frames(self, x: np.ndarray) -> np.ndarray:
        """[B' <= batch, T, *input] -> [T, C, R, W] stacked."""
        return self.stack(np.swapaxes(x, 0, 1))

    def records(self, stage: str, data: np.ndarray, samples: int) -> np.ndarray:
        return self.unstack(stage, data, samples)

    def view(self, stage: str, state: np.ndarray, samples: int) -> np.ndarray:
        """[samples, *stage shape] of the real neurons of one step's (C*R*W) state (C-contiguous), a strided view
        (no copy), its geometry worked out once per stage, sample count and item size."""
        key = (stage, samples, state.itemsize)
        geometry = self._views.get(key)
        if geometry is None:
            rows = self.plan[stage]["rows"]
            c, h, w = rows.shape
            sw = state.itemsize
            sr, sc = w * sw, rows.rows * w * sw
            geometry = self._views[key] = ((samples, c, h, w), (rows.period * sr, sc, sr, sw))
        shape, strides = geometry
        if not state.flags.c_contiguous:
            state = np.ascontiguousarray(state)
        real = np.ndarray(shape, state.dtype, state, 0, strides)
        return real.reshape((samples,) + tuple(self.graph.shapes[stage]))

    def stack(self, x: np.ndarray, fill=0, rows: Optional[Rows] = None) -> np.ndarray:
        """[T, B, C, H, W] per-sample arrays (B <= batch) -> [T, C, R, W] stacked, gaps and missing samples filled."""
        rows = rows or self.input_rows
        c, h, w = rows.shape
        t, b = x.shape[:2]
        out = np.full((t, c, self.batch, rows.period, w), fill, dtype=x.dtype)
        out[:, :, :b, :h] = x.reshape(t, b, c, h, w).transpose(0, 2, 1, 3, 4)
        return out.reshape(t, c, self.batch * rows.period, w)[:, :, :rows.rows]

    def unstack(self, stage: str, data: np.ndarray, samples: int) -> np.ndarray:
        """A probe's (steps, C*R*W) record -> [samples, steps, *stage shape] of the real neurons."""
        rows = self.plan[stage]["rows"]
        c, h, w = rows.shape
        steps = data.shape[0]
        data = data.reshape(steps, c, rows.rows, w)
        full = self.batch * rows.period
        if rows.rows < full:
            data = np.concatenate([data, np.zeros((steps, c, full - rows.rows, w), data.dtype)], axis=2)
        real = data.reshape(steps, c, self.batch, rows.period, w)[:, :, :samples, :h]
        real = np.ascontiguousarray(real.transpose(2, 0, 1, 3, 4))
        return real.reshape((samples, steps) + tuple(self.graph.shapes[stage]))


def _as3d(shape: tuple) -> tuple:
    return tuple(shape) if len(shape) == 3 else (int(np.prod(shape)), 1, 1)


def _reach(weight: np.ndarray, x_max: float) -> float:
    """Largest |synaptic input| one output can receive: max_o sum_i |W_oi| * max x."""
    return exact_gemm.bound(x_max, np.asarray(weight).reshape(weight.shape[0], -1).T)


def _conv_rows(name: str, rows: Rows, kernel, stride, padding, channels: int, batch: int) -> Rows:
    """Rows after a convolution or pooling window, or Unstackable if samples would mix."""
    (kh, kw), (sh, sw), (ph, pw) = tuple(kernel), tuple(stride), tuple(padding)
    c, h, w = rows.shape
    if rows.period % sh:
        raise Unstackable(f"node {name!r}: row stride {sh} does not divide the period {rows.period}")
    if rows.period - h < ph:
        raise Unstackable(f"node {name!r}: gap {rows.period - h} is narrower than the padding {ph}")
    shape = (channels, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)
    out = Rows(shape, rows.period // sh, (rows.rows + 2 * ph - kh) // sh + 1)
    if out.height > out.period or not (batch - 1) * out.period + out.height <= out.rows <= batch * out.period:
        raise Unstackable(f"node {name!r}: output rows of neighbouring samples overlap")
    return out


def _check_clean_gaps(name: str, node, rows: Rows, out: Rows) -> None:
    """A pooling node has no bias to silence its gap outputs: their windows must see gap rows only."""
    k, s, p = node.kernel[0], node.stride[0], node.padding[0]
    for j in range(out.height, out.period):
        lo, hi = s * j - p, s * j - p + k - 1
        if lo < rows.height or hi > rows.period - 1:
            raise Unstackable(f"node {name!r}: pooling windows in the gap reach a sample")
