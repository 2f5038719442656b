"""PAIBox without paying Python per sample: many samples in one simulation, stacked along the rows of every node.

PAIBox has no batch dimension, and its cost is Python overhead per node and per step. So B samples share every
node: sample b occupies rows [b*P, b*P + H) of a (C, B*P, W) node, where H is the layer's own height and P its
*period*; the P - H rows in between are a gap. The same `pb.Conv2d` then runs on all samples at once, and
- a Conv2d with padding p needs gaps of at least p zero rows, and strides dividing the period;
- a Linear becomes a Conv2d whose kernel covers one sample (C, H, W) with row stride P: output (O, B, 1);
- max pooling (a depthwise ones-kernel conv into a BypassNeuron) must keep its gap outputs zero by itself;
- the neurons in gap rows of a neuron layer see a mix of neighbouring samples, so they get a negative bias that
  keeps them silent: -(max |input| + threshold + 1), small enough that their membrane neither wraps nor reaches
  PAIBox's floor within the run (checked). Their spikes and voltages are never reported.
The real neurons compute exactly what one-sample-at-a-time runs compute (tests/test_batched_paibox.py checks
spikes and voltages on every layer). The smallest input gap that satisfies every layer is searched; a network
that admits none runs one sample at a time.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .. import ir
from ..errors import InputError
from .paibox import Layout, build, neuron_drive, run_frames, _pool_conv

V_LIMIT = 2 ** 29 - 1      # |v| must stay below PAIBox's 30-bit range and its default negative floor


@dataclass
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
        r = np.arange(self.rows)
        return r % self.period >= self.height


class StackedLayout(Layout):
    """`batch` samples per node (see module docstring). Raises InputError when the network cannot be stacked."""

    def __init__(self, net: ir.Network, batch: int, steps: int, gap: Optional[int] = None):
        super().__init__(net)
        self.net, self.batch, self.steps = net, int(batch), int(steps)
        first = _as3d(tuple(net.input_shape))
        gaps = [gap] if gap is not None else range(0, 4 * first[1] + 9)
        for g in gaps:
            self.input_rows = Rows(first, first[1] + g, self.batch * (first[1] + g))
            try:
                self.plan = self._plan(self.input_rows)
                break
            except _Unstackable as exc:
                reason = str(exc)
        else:
            raise InputError(f"network {net.name!r} cannot be stacked for batched PAIBox: {reason}")
        self.input_shape = (first[0], self.input_rows.rows, first[2])

    # ------------------------------------------------------------------------------------------------ planning
    def _plan(self, rows: Rows) -> dict:
        """Per layer name, what its node or synapse needs: rows in and out, the silencing bias."""
        plan, x_max, prev = {}, 255, rows
        for l in self.net.layers:
            if isinstance(l, ir.Conv2d):
                out = _conv_rows(l.name, prev, l.weight.shape[2:], l.stride, l.padding, l.weight.shape[0], self.batch)
                plan[l.name] = {"in": prev, "out": out, "reach": _reach(l.weight, x_max)}
                prev = out
            elif isinstance(l, ir.Linear):
                if prev.rows > self.batch * prev.period:
                    raise _Unstackable(f"layer {l.name!r}: more rows than samples")
                out = Rows((l.weight.shape[0], 1, 1), 1, self.batch)
                plan[l.name] = {"in": prev, "out": out, "reach": _reach(l.weight, x_max)}
                prev = out
            elif isinstance(l, ir.NEURON_TYPES):
                syn = self.net.input_of(l.name)
                if syn is None:
                    raise _Unstackable(f"layer {l.name!r} is not fed by a Conv2d/Linear")
                plan[l.name] = {"rows": prev, "silence": self._silence(l, plan[syn.name]["reach"], prev)}
                x_max = 1
            elif isinstance(l, ir.MaxPool2d):
                out = _conv_rows(l.name, prev, l.kernel, l.stride, l.padding, prev.shape[0], self.batch)
                _check_clean_gaps(l, prev, out)
                plan[l.name] = {"in": prev, "rows": out}
                prev = out
            elif not isinstance(l, ir.Flatten):
                raise _Unstackable(f"layer {l.name!r} ({type(l).__name__}) is not supported stacked")
        return plan

    def _silence(self, l: ir.Neuron, reach: float, rows: Rows) -> int:
        """Bias that keeps a gap neuron silent for the whole run without wrapping its 30-bit membrane."""
        if not rows.gap_rows().any():
            return 0
        thr = int(l.threshold)
        bias = -(int(reach) + thr + 1)
        if self.steps * (2 * reach + thr + 1) + reach >= V_LIMIT:
            raise _Unstackable(f"layer {l.name!r}: gap neurons would leave PAIBox's 30-bit range in "
                               f"{self.steps} steps")
        return bias

    # ------------------------------------------------------------------------------------------------ building
    def neuron(self, l: ir.Neuron, synapse):
        rows, silence = self.plan[l.name]["rows"], self.plan[l.name]["silence"]
        shape = (rows.shape[0], rows.rows, rows.shape[2])
        bias, leak = neuron_drive(l, self.shapes[l.name], synapse)
        if bias is None and silence == 0:
            return shape, None, leak
        per_sample = np.zeros(rows.shape, np.int64) + leak
        if bias is not None:
            per_sample += np.asarray(bias, np.int64).reshape(rows.shape)
        stacked = self.stack(np.broadcast_to(per_sample, (1, self.batch) + rows.shape), rows=rows)[0]
        stacked[:, rows.gap_rows()] = silence
        return shape, stacked, 0

    def connect(self, pb, src, dst, synapse):
        if isinstance(synapse, ir.Conv2d):
            return pb.Conv2d(src, dst, synapse.weight.astype(np.int8), stride=synapse.stride,
                             padding=synapse.padding, groups=synapse.groups)
        rows = self.plan[synapse.name]["in"]
        kernel = synapse.weight.reshape((synapse.weight.shape[0],) + rows.shape).astype(np.int8)
        return pb.Conv2d(src, dst, kernel, stride=(rows.period, 1), padding=0)

    def pool(self, l: ir.MaxPool2d):
        rows = self.plan[l.name]["rows"]
        return (rows.shape[0], rows.rows, rows.shape[2]), _pool_conv(rows.shape[0], l.kernel, l.stride, l.padding)

    # ------------------------------------------------------------------------------------------------ data
    def stack(self, x: np.ndarray, fill=0, rows: Optional[Rows] = None) -> np.ndarray:
        """[T, B, C, H, W] per-sample arrays (B <= batch) -> [T, C, R, W] stacked, gaps and missing samples filled."""
        rows = rows or self.input_rows
        c, h, w = rows.shape
        t, b = x.shape[:2]
        out = np.full((t, c, self.batch, rows.period, w), fill, dtype=x.dtype)
        out[:, :, :b, :h] = x.reshape(t, b, c, h, w).transpose(0, 2, 1, 3, 4)
        return out.reshape(t, c, self.batch * rows.period, w)[:, :, :rows.rows]

    def unstack(self, name: str, data: np.ndarray, samples: int) -> np.ndarray:
        """A probe's (steps, C*R*W) record -> [samples, steps, *layer shape] of the real neurons."""
        rows = self.plan[name]["rows"]
        c, h, w = rows.shape
        steps = data.shape[0]
        data = data.reshape(steps, c, rows.rows, w)
        full = self.batch * rows.period
        if rows.rows < full:
            data = np.concatenate([data, np.zeros((steps, c, full - rows.rows, w), data.dtype)], axis=2)
        real = data.reshape(steps, c, self.batch, rows.period, w)[:, :, :samples, :h]
        return np.ascontiguousarray(real.transpose(2, 0, 1, 3, 4))


class _Unstackable(Exception):
    pass


def _as3d(shape: tuple) -> tuple:
    return shape if len(shape) == 3 else (int(np.prod(shape)), 1, 1)


def _reach(weight: np.ndarray, x_max: float) -> float:
    """Largest |synaptic input| one output can receive: max_o sum_i |W_oi| * max x."""
    return float(np.abs(weight.astype(np.int64)).reshape(weight.shape[0], -1).sum(axis=1).max() * x_max)


def _conv_rows(name: str, rows: Rows, kernel, stride, padding, channels: int, batch: int) -> Rows:
    """Rows after a convolution or pooling window, or _Unstackable if samples would mix."""
    (kh, kw), (sh, sw), (ph, pw) = tuple(kernel), tuple(stride), tuple(padding)
    c, h, w = rows.shape
    if rows.period % sh:
        raise _Unstackable(f"layer {name!r}: row stride {sh} does not divide the period {rows.period}")
    if rows.period - h < ph:
        raise _Unstackable(f"layer {name!r}: gap {rows.period - h} is narrower than the padding {ph}")
    shape = (channels, (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1)
    out = Rows(shape, rows.period // sh, (rows.rows + 2 * ph - kh) // sh + 1)
    if out.height > out.period or not (batch - 1) * out.period + out.height <= out.rows <= batch * out.period:
        raise _Unstackable(f"layer {name!r}: output rows of neighbouring samples overlap")
    return out


def _check_clean_gaps(l: ir.MaxPool2d, rows: Rows, out: Rows) -> None:
    """A pooling node has no bias to silence its gap outputs: their windows must see gap rows only."""
    k, s, p = l.kernel[0], l.stride[0], l.padding[0]
    for j in range(out.height, out.period):
        lo, hi = s * j - p, s * j - p + k - 1
        if lo < rows.height or hi > rows.period - 1:
            raise _Unstackable(f"layer {l.name!r}: pooling windows in the gap reach a sample")


def simulate_batched(net: ir.Network, inputs: np.ndarray, batch: int, timing: str = "pipeline",
                     record_v: bool = True, progress: bool = False) -> dict:
    """({name: (spikes, v)} raw like `paibox.simulate`, samples per simulation), `batch` samples at most."""
    import paibox as pb
    from tqdm import tqdm
    n, t = inputs.shape[:2]
    batch = _balanced(n, batch)
    steps = t + len(ir.stages(net)) - 1
    layout = StackedLayout(net, batch, steps)
    built = build(net, timing, layout)
    sim = pb.Simulator(built.network, start_time_zero=False)
    parts = {name: ([], []) for name in built.probes}
    with tqdm(total=n, desc="paibox", unit="sample", disable=not progress, leave=False) as bar:
        for lo in range(0, n, batch):
            chunk = inputs[lo:lo + batch]
            frames = layout.stack(chunk.swapaxes(0, 1).astype(np.uint8))
            for name, (s, v) in run_frames(sim, built, frames, steps, record_v).items():
                parts[name][0].append(layout.unstack(name, s, len(chunk)))
                if record_v:
                    parts[name][1].append(layout.unstack(name, v, len(chunk)))
            bar.update(len(chunk))
    shapes = net.neuron_shapes()
    records = {name: (np.concatenate(s).reshape((n, steps) + tuple(shapes[name])),
                      np.concatenate(v).reshape((n, steps) + tuple(shapes[name])) if record_v else None)
               for name, (s, v) in parts.items()}
    return records, batch


def _balanced(n: int, batch: int) -> int:
    """The smallest batch that runs n samples in as many simulations as `batch` would (less padding)."""
    batch = max(1, min(int(batch), n))
    runs = -(-n // batch)
    return -(-n // runs)
