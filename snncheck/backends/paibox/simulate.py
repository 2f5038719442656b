"""The one simulate loop, for every source and layout, and its spread over worker processes.

PAIBox has no batch dimension: each simulation runs the layout's samples for T + lag_steps steps (frame t at step
t, zeros after the last frame), from `sim.reset()` (bit-identical reruns; `sim.run(n, reset=True)` would keep the
step counter and the probe data), and its records are taken before the next one: from PAIBox's probes as shipped
(`Probed`), or, with the fast path, copied at every step straight into the run's arrays (`Direct`). A network's
`pb.Simulator` is made once and kept with it (`Built.sim`), so a network reused by the fast path keeps its own.
"""
from __future__ import annotations

import numpy as np

from ... import parallel
from . import reuse


def simulate(built, inputs: np.ndarray, record_v: bool = True, progress: bool = False) -> dict:
    """{neuron: (spikes [N, steps, *shape] bool, v int32 or None)}, raw (unaligned), for inputs [N, T, ...] uint8.
    PAIBox's membranes are int32 (a 30-bit register): kept so, the reference's int32 ones compare without a cast."""
    from tqdm import tqdm
    n, t = inputs.shape[:2]
    steps = t + built.lag_steps
    layout = built.layout
    sim = simulator(built)
    recorder = (Direct if built.fast else Probed)(built, n, steps, record_v)
    zeros = np.zeros(layout.input_shape, dtype=np.uint8)
    with tqdm(total=n, desc="paibox", unit="sample", disable=not progress, leave=False) as bar, \
            parallel.blas_threads(1):          # the fast path's BLAS products: see reference.one_blas_thread
        for lo in range(0, n, layout.batch):
            chunk = inputs[lo:lo + layout.batch]
            frames = layout.frames(chunk)
            sim.reset()
            for step in range(steps):
                built.inp.input = frames[step] if step < t else zeros
                sim.run(1)
                recorder.step(step, lo, len(chunk))
            recorder.chunk(sim, len(chunk))
            bar.update(len(chunk))
    return recorder.records()


def simulator(built):
    """The network's pb.Simulator, made once; with the fast path it keeps no probes (`Direct` records)."""
    import paibox as pb
    if built.sim is None:
        built.sim = pb.Simulator(built.network, start_time_zero=False)
        if built.fast:
            for probe in list(built.sim.probes):
                built.sim.remove_probe(probe)
    return built.sim


class Probed:
    """Records as PAIBox's probes hold them: (steps, ...) per simulation, laid out by the layout, joined."""

    def __init__(self, built, n: int, steps: int, record_v: bool):
        self.built, self.record_v = built, record_v
        self.parts = {name: ([], []) for name in built.probes}

    def step(self, step: int, lo: int, samples: int) -> None:
        pass

    def chunk(self, sim, samples: int) -> None:
        layout = self.built.layout
        for name, (spike, voltage) in self.built.probes.items():
            self.parts[name][0].append(layout.records(name, np.asarray(sim.data[spike], dtype=bool), samples))
            if self.record_v:
                self.parts[name][1].append(layout.records(name, np.asarray(sim.data[voltage], dtype=np.int32),
                                                          samples))

    def records(self) -> dict:
        return {name: (_join(s), _join(v) if self.record_v else None) for name, (s, v) in self.parts.items()}


class Direct:
    """Records written at every step straight into [N, steps, *shape] arrays from the attributes the probes name
    (what PAIBox's probes copy into lists, then stack, then the layout reorders): one copy per step, and the
    arrays returned as they are."""

    def __init__(self, built, n: int, steps: int, record_v: bool):
        self.built, self.record_v = built, record_v
        shapes = built.layout.graph.shapes
        self.out = {name: (np.empty((n, steps) + tuple(shapes[name]), bool),
                           np.empty((n, steps) + tuple(shapes[name]), np.int32) if record_v else None)
                    for name in built.probes}
        # (stage, node, attribute, record) for every record kept: the loop at every step walks this list only
        self.plan = [(name, probe.target, probe.attr, out) for name, probes in built.probes.items()
                     for probe, out in zip(probes, self.out[name]) if out is not None]

    def step(self, step: int, lo: int, samples: int) -> None:
        view = self.built.layout.view
        for name, node, attr, out in self.plan:
            np.copyto(out[lo:lo + samples, step], view(name, getattr(node, attr), samples), casting="unsafe")

    def chunk(self, sim, samples: int) -> None:
        pass

    def records(self) -> dict:
        return self.out


def _join(parts: list) -> np.ndarray:
    """The records of consecutive simulations, in sample order (one simulation: as it is, not copied)."""
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def simulate_source(source, inputs: np.ndarray, record_v: bool = True, progress: bool = False) -> dict:
    """Simulates the network of `source` (a loader, see `build`), built or reused (`reuse`): what a worker process
    runs."""
    with reuse.checkout(source) as built:
        return simulate(built, inputs, record_v, progress)


def simulate_spread(executor, source, inputs: np.ndarray, pieces: list, record_v: bool = True,
                    progress: bool = False) -> dict:
    """Records of `simulate`, the samples cut into contiguous `pieces` [(lo, hi)], each simulated by a worker of
    `executor` (snncheck.parallel) that rebuilds the network from `source`; joined in sample order."""
    from tqdm import tqdm
    items = [(source, inputs[lo:hi], record_v) for lo, hi in pieces]
    done = list(tqdm(parallel.imap(executor, simulate_source, items, ahead=len(items)), total=len(items),
                     desc="paibox", unit="piece", disable=not progress, leave=False))
    return {name: (np.concatenate([d[name][0] for d in done]),
                   np.concatenate([d[name][1] for d in done]) if record_v else None)
            for name in done[0]}
