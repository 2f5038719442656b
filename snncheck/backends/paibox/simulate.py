"""The one simulate loop, for every source and layout, and its spread over worker processes.

PAIBox has no batch dimension: each simulation runs the layout's samples for T + lag_steps steps (frame t at step
t, zeros after the last frame), from `sim.reset()` (bit-identical reruns; `sim.run(n, reset=True)` would keep the
step counter and the probe data), and its probes are read before the next one.
"""
from __future__ import annotations

import numpy as np

from ... import parallel
from . import reuse


def simulate(built, inputs: np.ndarray, record_v: bool = True, progress: bool = False) -> dict:
    """{neuron: (spikes [N, steps, *shape] bool, v int64 or None)}, raw (unaligned), for inputs [N, T, ...] uint8."""
    import paibox as pb
    from tqdm import tqdm
    n, t = inputs.shape[:2]
    steps = t + built.lag_steps
    layout = built.layout
    if built.sim is None:
        built.sim = pb.Simulator(built.network, start_time_zero=False)
    sim = built.sim
    zeros = np.zeros(layout.input_shape, dtype=np.uint8)
    parts = {name: ([], []) for name in built.probes}
    with tqdm(total=n, desc="paibox", unit="sample", disable=not progress, leave=False) as bar, \
            parallel.blas_threads(1):          # the fast path's BLAS products: see reference.one_blas_thread
        for lo in range(0, n, layout.batch):
            chunk = inputs[lo:lo + layout.batch]
            frames = layout.frames(chunk)
            sim.reset()
            for step in range(steps):
                built.inp.input = frames[step] if step < t else zeros
                sim.run(1)
            for name, (spike, voltage) in built.probes.items():
                parts[name][0].append(layout.records(name, np.asarray(sim.data[spike], dtype=bool), len(chunk)))
                if record_v:
                    parts[name][1].append(layout.records(name, np.asarray(sim.data[voltage], dtype=np.int64),
                                                         len(chunk)))
            bar.update(len(chunk))
    return {name: (_join(s), _join(v) if record_v else None) for name, (s, v) in parts.items()}


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
