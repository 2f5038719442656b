"""Two fast paths against their own baseline, interleaved in one process (min / median over rounds), each checked
to give the same records:

- the reference's big integer convolutions split by frames over two threads (`exact_gemm.SPLIT_MACS`) against
  one thread;
- the reference's compiled neuron update (`fused_neuron`) against NumPy's step-by-step update, and its samples
  split over two threads (`fused_neuron.SPLIT_SIZE`) against one thread;
- PAIBox's convolution twin keeping the last input frame's sums (`fastpath.FastConv2d.keep_frames`) against
  computing them at every step (PAIBox batched 32).

    .venv/bin/python benchmarks/fastpaths_ab.py                      # 4 networks x T=8, 32; 9 rounds
    .venv/bin/python benchmarks/fastpaths_ab.py --nets vgg_cifar --T 8 --rounds 15

Networks and samples as `benchmarks/run.py` builds them (its runners' samples for the reference, its PAIBox
variants' for PAIBox). Prints the load average: compare runs only on a quiet machine.
"""
from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

import run as bench  # noqa: E402  (benchmarks/run.py: networks, sample counts, rounds)


def same(x, y) -> bool:
    return all(np.array_equal(a.spikes, b.spikes) and (a.v is None or np.array_equal(a.v, b.v))
               for a, b in zip(x.layers, y.layers))


def line(label: str, times: dict, base: str, fast: str, identical: bool) -> str:
    (b_min, b_med), (f_min, f_med) = (tuple(1e3 * v for v in bench.stats(times[k])) for k in (base, fast))
    return (f"  {label:36s} {base} {b_min:7.2f} / {b_med:7.2f} ms   {fast} {f_min:7.2f} / {f_med:7.2f} ms   "
            f"x{b_min / f_min:5.2f} / {b_med / f_med:5.2f}   same records: {identical}")


def switches():
    """(label, baseline's name, fast path's name, (object, attribute, value that switches it off), runner)."""
    from snncheck.backends import exact_gemm, fused_neuron
    from snncheck.backends.paibox import fastpath
    return [("reference, convolutions split", "1 thread", "split", (exact_gemm, "SPLIT_MACS", float("inf")), "ref"),
            ("reference, neurons compiled", "NumPy", "compiled", (fused_neuron, "ENABLED", False), "ref"),
            ("reference, compiled neurons split", "1 thread", "split", (fused_neuron, "SPLIT_SIZE", float("inf")),
             "ref"),
            ("PAIBox batched 32, frame sums kept", "every step", "kept", (fastpath.FastConv2d, "keep_frames", False),
             "pb")]


def block(name: str, t: int, rounds: int) -> None:
    from unittest import mock
    from snncheck.backends.paibox import PAIBoxBackend
    from snncheck.backends.reference import ReferenceBackend
    n, n_pb = bench.sample_counts(name, t)
    _, _, b, x, scale = bench.network(name, n, t)
    xb = np.rint(x.astype(np.float64) * scale)
    reference, paibox = ReferenceBackend(), PAIBoxBackend(batch=32)
    runners = {"ref": lambda: reference.run(b, xb), "pb": lambda: paibox.run(b, xb[:n_pb])}
    lines = []
    for label, base, fast, off, runner in switches():
        def run(on: bool, off=off, run=runners[runner]):
            if on:
                return run()
            with mock.patch.object(*off):
                return run()
        times, _ = bench.rounds({base: lambda: run(False), fast: lambda: run(True)}, rounds, {})
        lines.append(line(label, times, base, fast, same(run(False), run(True))))
    print(f"{name} T={t} (reference on {n} samples, PAIBox on {n_pb}); load "
          f"{tuple(round(v, 2) for v in os.getloadavg())}")
    print("\n".join(lines))


def main() -> None:
    from snncheck import parallel
    parallel.keep_freed_memory()          # as the snncheck command does (benchmarks/README.md)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nets", nargs="+", default=list(bench.NETWORKS), choices=list(bench.NETWORKS))
    p.add_argument("--T", nargs="+", type=int, default=[8, 32])
    p.add_argument("--rounds", type=int, default=9)
    args = p.parse_args()
    for name in args.nets:
        for t in args.T:
            block(name, t, args.rounds)


if __name__ == "__main__":
    main()
