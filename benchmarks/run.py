"""How fast is snncheck, and where does the time go?  One process, the same inputs for every variant.

    .venv/bin/python benchmarks/run.py              # short run (about 2-3 minutes on 2 cores)
    .venv/bin/python benchmarks/run.py --full       # more samples and rounds
    .venv/bin/python benchmarks/run.py --rss        # peak memory of `snncheck fullset` at N=100 and N=1000
    .venv/bin/python benchmarks/run.py --digits-all # all 1797 digits through the three runners, wall time

For the embedded digits CSNN (int8, 1x8x8) and a 28x28 CSNN with 16 and 32 channels (seeded weights, converted
with convert.convert), T=8, it times every runner alone and the full `api.diff` (what `snncheck compare` and
`snncheck diff` run) and prints: the harness overhead over the bare runners, the reference's throughput over
SpikingJelly's on the integer network, and every PAIBox strategy over the plain one-sample-at-a-time run
(checking that each gives the plain run's spikes and voltages). Variants are interleaved round by round and
reported as min and median: the machine is shared and noisy.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")

from snncheck import api, case as cases, convert, data, parallel, pipeline  # noqa: E402
from snncheck.backends.paibox import PAIBoxBackend  # noqa: E402
from snncheck.backends.paibox.build import GraphSource  # noqa: E402
from snncheck.backends.paibox.simulate import simulate  # noqa: E402
from snncheck.backends.reference import ReferenceBackend  # noqa: E402
from snncheck.backends.spikingjelly import SpikingJellyBackend  # noqa: E402
from snncheck.commands import DEFAULT_CASE  # noqa: E402

T = 8


# ------------------------------------------------------------------------------------------------ networks
def network(name: str, n: int):
    """(model, float graph, int graph, float inputs [n, T, ...]) of a benchmark network."""
    spec = {"digits": {"name": "digits_csnn", "weights": "trained"},
            "csnn28": {"name": "csnn28", "weights": "seed:0"}}[name]
    graph, model = cases.build_float(cases.Case.from_dict({"model": spec}))
    int_graph = convert.convert(graph, 255, "max").graph
    x, _ = data.digits("all")
    x = x[:n] if name == "digits" else data.resize(x[:n], (1, 28, 28))
    return model, graph, int_graph, data.direct(x, T)


def plain_as_shipped(graph, x):
    """PAIBox as it comes: its own graph walk at every step, one sample per simulation."""
    return simulate(GraphSource(graph, cache_components=False)(), x.astype(np.uint8))


# ------------------------------------------------------------------------------------------------ timing
def rounds(variants: dict, repeats: int, inside: dict = None) -> dict:
    """{name: [seconds per round]}, variants interleaved within every round; results of the last round kept.
    `inside` collects, per diff variant and round, its wall time over the seconds its own runners reported."""
    times, last = {k: [] for k in variants}, {}
    for _ in range(repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            last[name] = fn()
            times[name].append(time.perf_counter() - start)
            if inside is not None and name.startswith("diff"):
                runners = sum(m["seconds"] for m in last[name].runs.values())
                inside.setdefault(name, []).append(times[name][-1] / runners)
    return times, last


def one_blas_thread(fn):
    with parallel.blas_threads(1):
        return fn()


def stats(ts: list) -> tuple:
    return min(ts), statistics.median(ts)


def bench_network(name: str, n: int, n_paibox: int, repeats: int, pool) -> None:
    model, float_net, int_net, x = network(name, n)
    xb = np.rint(x.astype(np.float64) * 255)
    xp = xb[:n_paibox]
    reference, jelly = ReferenceBackend(), SpikingJellyBackend()
    bare = {
        "reference:a": lambda: reference.run(float_net, x),
        "spikingjelly:a": lambda: SpikingJellyBackend(module=model).run(float_net, x),
        "reference:b": lambda: reference.run(int_net, xb),
        "spikingjelly:b": lambda: jelly.run(int_net, xb),
    }
    bare["reference:b (1 BLAS thread)"] = lambda: one_blas_thread(lambda: reference.run(int_net, xb))
    paibox = {
        "plain, as shipped": lambda: plain_as_shipped(int_net, xp),
        "plain, components cached": lambda: PAIBoxBackend().run(int_net, xp),
        "batched 16": lambda: PAIBoxBackend(batch=16).run(int_net, xp),
        "batched 32": lambda: PAIBoxBackend(batch=32).run(int_net, xp),
        "batched 64": lambda: PAIBoxBackend(batch=64).run(int_net, xp),
        f"{pool.workers} workers, plain": lambda: PAIBoxBackend(executor=pool).run(int_net, xp),
        f"{pool.workers} workers x batched 32": lambda: PAIBoxBackend(batch=32, executor=pool).run(int_net, xp),
    }
    batched = {"paibox": {"batch": 32}}
    xd = x[:n_paibox]
    full = {
        "diff, plain PAIBox": lambda: api.diff(float_net, int_net, xd, 255, module=model),
        "diff, batched PAIBox": lambda: api.diff(float_net, int_net, xd, 255, module=model, backend_options=batched),
        "diff, batched PAIBox, no conversion diagnosis": lambda: api.diff(
            float_net, int_net, xd, 255, module=model, backend_options=batched, diagnose=False),
    }
    small = {        # the bare runners on the diff's samples, for the overhead ratio
        "reference:a": lambda: reference.run(float_net, xd),
        "spikingjelly:a": lambda: SpikingJellyBackend(module=model).run(float_net, xd),
        "reference:b": lambda: reference.run(int_net, xp),
        "spikingjelly:b": lambda: jelly.run(int_net, xp),
    }
    PAIBoxBackend(batch=32, executor=pool).run(int_net, xp[:4])      # workers import PAIBox before timing
    print(f"\n=== {name}: {int_net.input_shape}, T={T}; reference/SpikingJelly on {n} samples, PAIBox and diff on "
          f"{n_paibox}; {repeats} rounds (min / median) ===")
    t_bare, _ = rounds(bare, repeats)
    for k, ts in t_bare.items():
        lo, med = stats(ts)
        print(f"  {k:34s} {1e3 * lo / n:8.3f} / {1e3 * med / n:8.3f} ms/sample")
    ref, sj = stats(t_bare["reference:b"]), stats(t_bare["spikingjelly:b"])
    ref1 = stats(t_bare["reference:b (1 BLAS thread)"])
    print(f"  reference throughput / SpikingJelly's (integer net B): {sj[0] / ref[0]:.2f}x (min), "
          f"{sj[1] / ref[1]:.2f}x (median); with 1 BLAS thread {sj[0] / ref1[0]:.2f}x / {sj[1] / ref1[1]:.2f}x")

    variants = {**{f"paibox {k}": f for k, f in paibox.items()}, **{f"bare {k}": f for k, f in small.items()}, **full}
    inside = {}
    t_all, last = rounds(variants, repeats, inside)
    base = last["paibox plain, as shipped"]
    plain = stats(t_all["paibox plain, as shipped"])
    cached = stats(t_all["paibox plain, components cached"])
    for k in paibox:
        lo, med = stats(t_all[f"paibox {k}"])
        same = all(np.array_equal(base[rec.name][0], rec.spikes) and np.array_equal(base[rec.name][1], rec.v)
                   for rec in _layers(last[f"paibox {k}"]))
        print(f"  paibox {k:27s} {1e3 * lo / n_paibox:8.2f} / {1e3 * med / n_paibox:8.2f} ms/sample   "
              f"x{plain[0] / lo:5.1f} / x{plain[1] / med:5.1f} vs plain as shipped, "
              f"x{cached[0] / lo:5.1f} / x{cached[1] / med:5.1f} vs cached; spikes and v identical: {same}")
    bare_sum = {m: sum(stats(t_all[f"bare {k}"])[m] for k in small) for m in (0, 1)}
    for k, pb_key in (("diff, plain PAIBox", "paibox plain, components cached"),
                      ("diff, batched PAIBox", "paibox batched 32"),
                      ("diff, batched PAIBox, no conversion diagnosis", "paibox batched 32")):
        lo, med = stats(t_all[k])
        den = [bare_sum[m] + stats(t_all[pb_key])[m] for m in (0, 1)]
        print(f"  {k:46s} {lo:6.2f} / {med:6.2f} s; harness overhead: over the runners timed alone "
              f"{lo / den[0]:.2f}x / {med / den[1]:.2f}x, over its own runners' time in the same call "
              f"{min(inside[k]):.2f}x / {statistics.median(inside[k]):.2f}x")


def _layers(result):
    """LayerRecords of a run, or of the plain simulation's {name: (spikes, v)}."""
    from snncheck.backends.base import LayerRecord
    if isinstance(result, dict):
        return [LayerRecord(name, s, v) for name, (s, v) in result.items()]
    return result.layers


# ------------------------------------------------------------------------------------------------ memory, full set
def peak_rss(samples: int, streaming: bool) -> tuple:
    """(peak RSS in MB, seconds) of one process checking `samples` digits, streaming or all at once."""
    if streaming:
        body = (f"from snncheck.cli import main; main(['fullset', '--split', 'all', '--samples', '{samples}', "
                "'--chunk', '100', '--no-progress'])")
    else:
        body = ("from snncheck import api, case as cases, convert, data; "
                "g, m = cases.build_float(cases.Case.from_dict({'model': {'name': 'digits_csnn'}})); "
                "b = convert.convert(g, 255, 'max').graph; x, _ = data.digits('all'); "
                f"api.diff(g, b, data.direct(x[:{samples}], 8), 255, module=m, "
                "backend_options={'paibox': {'batch': 32}})")
    code = (f"import resource, time, warnings, io, contextlib; warnings.filterwarnings('ignore'); t = time.time()\n"
            f"with contextlib.redirect_stdout(io.StringIO()): {body}\n"
            "print('RESULT', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.time() - t)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    line = next((l for l in out.stdout.splitlines() if l.startswith("RESULT")), None)
    if line is None:
        raise SystemExit(out.stderr[-2000:])
    _, kb, secs = line.split()
    return int(kb) / 1024, float(secs)


def rss_table() -> None:
    print("\n=== peak RSS, digits T=8, all three runners (PAIBox batched 32, every sample) ===")
    for streaming in (True, False):
        what = "snncheck fullset (streaming, chunks of 100)" if streaming else "api.diff (all samples at once)"
        rows = {n: peak_rss(n, streaming) for n in ((100, 1000, 1797) if streaming else (100, 1000))}
        print(f"  {what}: " + "   ".join(f"N={n}: {mb:.0f} MB ({s:.1f} s)" for n, (mb, s) in rows.items()) +
              f"   ratio N=1000/N=100: {rows[1000][0] / rows[100][0]:.2f}")


def digits_all(workers: int) -> None:
    print("\n=== all 1797 digits, T=8, reference + SpikingJelly + PAIBox (batched 32) on every sample ===")
    loader = cases.plan_loader(DEFAULT_CASE, split="all", samples=10 ** 9, chunk=128, paibox_batch=32)
    for kind in ("local", "process"):
        start = time.perf_counter()
        with parallel.executor(kind, workers) as ex:
            report = pipeline.execute(loader, executor=ex)
        wall = time.perf_counter() - start
        cov = report.extras["coverage"]
        exact = {p.key: p.exact for p in report.pairs if p.expect == "exact"}
        print(f"  {kind:8s} {ex.workers} worker(s): {wall:6.1f} s wall for {cov['samples']} samples "
              f"({ {k: v['samples'] for k, v in cov['runs'].items()} }); verdict {report.verdict}; exact: {exact}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true", help="more samples and rounds")
    p.add_argument("--rss", action="store_true", help="peak RSS of fullset at N=100 and N=1000")
    p.add_argument("--digits-all", action="store_true", help="all 1797 digits through the three runners")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args()
    if args.rss:
        return rss_table()
    if args.digits_all:
        return digits_all(args.workers)
    repeats = 5 if args.full else 3
    start = time.perf_counter()
    with parallel.executor("process", args.workers) as pool:
        cold = time.perf_counter()
        list(parallel.imap(pool, parallel.split, [(2, 1)] * pool.workers))
        print(f"{pool.workers} worker processes started in {time.perf_counter() - cold:.1f} s (not in the timings)")
        bench_network("digits", 256 if args.full else 64, 128 if args.full else 64, repeats, pool)
        bench_network("csnn28", 128 if args.full else 32, 32 if args.full else 8, repeats, pool)
    print(f"\nbenchmark wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
