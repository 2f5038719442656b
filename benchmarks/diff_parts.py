"""Where `api.diff`'s own time goes (its wall time minus its runners' seconds), part by part, on a benchmark network.

    .venv/bin/python benchmarks/diff_parts.py csnn28 8          # 5 rounds (default)
    .venv/bin/python benchmarks/diff_parts.py vgg_cifar 32 9    # 9 rounds

The network and its samples are built as `benchmarks/run.py` builds a block's. Each round runs `api.diff` with and
without the conversion diagnosis (PAIBox batched 32), and times the pipeline's parts by wrapping them: compare,
align, the static fit's context, the isolated per-layer mode (its reference evaluation and least-squares slope
inside), the reset-mode diagnosis, the trap replay, the inputs' and vacuity checks. Prints min and median over the
rounds, in ms, and the load average. Parts overlap where one calls another (the isolated mode holds its evaluation
and slope); "over" is diff's wall time minus its runners' seconds, "ratio" its wall time over them.
"""
from __future__ import annotations

import collections
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.filterwarnings("ignore")

PARTS = [("pipeline", "compare", "compare"), ("pipeline", "align", "align"),
         ("pipeline", "conversion_context", "static fit (context)"), ("pipeline", "conclude", "conclude"),
         ("pipeline", "_inputs_and_vacuity", "inputs and vacuity"),
         ("dynamic", "isolated", "isolated mode"), ("dynamic", "evaluate", "  its evaluation"),
         ("dynamic", "_slope", "  its slope"), ("dynamic", "_reset_diagnoses", "reset mode"),
         ("traps", "refine", "trap replay")]


def wrap(modules: dict, spent: dict) -> None:
    """Replaces each part by a timed call adding to spent[label]; says which parts this tree does not have."""
    for module, name, label in PARTS:
        fn = getattr(modules[module], name, None)
        if fn is None:
            print(f"  (no {module}.{name} in this tree: not timed)")
            continue

        def timed(*args, _fn=fn, _label=label, **kwargs):
            start = time.perf_counter()
            try:
                return _fn(*args, **kwargs)
            finally:
                spent[_label] += time.perf_counter() - start
        setattr(modules[module], name, timed)


def main() -> None:
    import run as bench
    from snncheck import api, parallel, pipeline
    from snncheck.diagnose import dynamic, traps
    parallel.keep_freed_memory()          # as the snncheck command does (benchmarks/README.md)
    net, t = sys.argv[1], int(sys.argv[2])
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    spent, seen = collections.defaultdict(float), collections.defaultdict(list)
    wrap({"pipeline": pipeline, "dynamic": dynamic, "traps": traps}, spent)
    n, _ = bench.sample_counts(net, t)
    model, a, b, x, scale = bench.network(net, n, t)
    diff = lambda diagnose: api.diff(a, b, x, scale, module=model, backend_options={"paibox": {"batch": 32}},
                                     diagnose=diagnose)
    diff(True), diff(False)                 # warm-up: imports, kept PAIBox networks, oneDNN's kernels
    for _ in range(rounds):
        for diagnose in (True, False):
            spent.clear()
            start = time.perf_counter()
            result = diff(diagnose)
            wall = time.perf_counter() - start
            runners = sum(m["seconds"] for m in result.runs.values())
            key = "with diagnosis" if diagnose else "without diagnosis"
            seen[f"{key}: over"].append((wall - runners) * 1e3)
            seen[f"{key}: ratio"].append(wall / runners)
            if diagnose:
                for label, seconds in spent.items():
                    seen[label].append(seconds * 1e3)
    print(f"{net} T={t}, {n} samples, {rounds} rounds; load {tuple(round(v, 2) for v in os.getloadavg())}")
    for label, values in seen.items():
        unit = "x" if label.endswith("ratio") else "ms"
        print(f"  {label:32s} min {min(values):8.2f} {unit}   median {statistics.median(values):8.2f} {unit}")


if __name__ == "__main__":
    main()
