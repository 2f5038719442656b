"""How fast is snncheck at the sizes users run, and on what machine?  Reproducible: every figure says where.

    .venv/bin/python benchmarks/run.py              # the scale table: 4 networks x T=8, 32; 5 rounds (~3 min quiet)
    .venv/bin/python benchmarks/run.py --rounds 9 --samples 2      # bigger: 9 rounds, twice the samples
    .venv/bin/python benchmarks/run.py --nets csnn28 vgg_cifar --T 8 32 64
    .venv/bin/python benchmarks/run.py --rss        # peak memory of `snncheck fullset` at N=100, 1000, 1797
    .venv/bin/python benchmarks/run.py --digits-all # all 1797 digits through the three runners, wall time
    .venv/bin/python benchmarks/run.py --malloc-default   # without parallel.keep_freed_memory (see below)

It prints the machine first (CPU model, cores, BLAS vendor, kernel and threads, numpy and torch versions, whether
the int8 kernel is exact here, load average), then one block per network and T, each in its own process (its
peak RSS is the block's), with every variant timed in interleaved rounds and reported as min / median:
- the runners alone (ms/sample): the reference and SpikingJelly on the float network A and the integer network B,
  and the reference's throughput over SpikingJelly's on B;
- PAIBox variants over the plain one-sample-at-a-time run as PAIBox ships it (no fast path, PAIBox's own graph
  walk every step), each checked to give its spikes and voltages on every layer;
- `api.diff` (what `snncheck diff` runs: A and B on the reference and SpikingJelly, B on PAIBox batched) with and
  without the conversion diagnosis, over its own runners' seconds inside the same call (immune to load changing
  between calls) and over the runners timed alone;
and a summary table at the end. Each block's process keeps freed memory for reuse (`parallel.keep_freed_memory`,
as the `snncheck` command and its worker processes do): with glibc's defaults, whether a run's big arrays were
faulted in afresh at every run differed from one process to the next, and so did the timings of the reference and
SpikingJelly alike (vgg_cifar, T=8: 11-38 ms and 46-57 ms per run; `--malloc-default` shows it).

Networks: the embedded digits CSNN (trained, 1x8x8), csnn28 (1x28x28, 16/32 channels), a CIFAR-size VGG (3x32x32,
32/64 channels) and a 2x128x128 event net (benchmarks/nets.py); the last two with thresholds calibrated so that
every layer fires (10-20%). Seeded weights, converted with `convert.convert`.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
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

NETS = Path(__file__).resolve().parent / "nets.py"
# network: (model spec, input scale, samples for the runners and diff, samples for PAIBox as shipped)
NETWORKS = {
    "digits": ({"name": "digits_csnn", "weights": "trained"}, 255, 64, 16),
    "csnn28": ({"name": "csnn28", "weights": "seed:0"}, 255, 32, 8),
    "vgg_cifar": ({"name": f"{NETS}:vgg_cifar", "weights": "seed:0", "input_shape": [3, 32, 32]}, 255, 8, 2),
    "event128": ({"name": f"{NETS}:event128", "weights": "seed:0", "input_shape": [2, 128, 128]}, 1, 4, 2),
}
CALIBRATED = ("vgg_cifar", "event128")
CALIBRATION = 8          # samples the thresholds of CALIBRATED networks are calibrated on
COLD = ("pb as shipped",)      # slow, and nothing of its own to warm up


# ------------------------------------------------------------------------------------------------ machine
def machine() -> dict:
    import torch
    from threadpoolctl import threadpool_info
    from snncheck import parallel
    from snncheck.backends import exact_gemm
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() \
        else platform.processor()
    blas = [f"{i['internal_api']} {i.get('version')} kernel={i.get('architecture')} threads={i['num_threads']}"
            for i in threadpool_info() if i["user_api"] == "blas"]
    return {"cpu": cpu, "cores": os.cpu_count(), "usable cores": len(os.sched_getaffinity(0)),
            "python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "torch threads": torch.get_num_threads(), "numpy BLAS": "; ".join(blas) or "none found",
            "int8 kernel exact here": exact_gemm.int8_exact(),
            "reference conv threads": f"{parallel.frame_threads()} (frames split from "
                                      f"{exact_gemm.SPLIT_MACS / 2 ** 20:.0f}M multiply-adds)",
            "load average (1, 5, 15 min)": tuple(round(v, 2) for v in os.getloadavg())}


# ------------------------------------------------------------------------------------------------ one block
def network(name: str, n: int, t: int):
    """(model, float graph, int graph, float inputs [n, t, ...], input scale)."""
    from snncheck import case as cases, convert, data
    spec, scale, _, _ = NETWORKS[name]
    graph, model = cases.build_float(cases.Case.from_dict({"model": spec}))
    m = max(n, CALIBRATION)
    if name == "event128":
        x = np.minimum(data.events(m, t, size=128, events_per_sample=6000), 3)
    else:
        x, _ = data.digits("all")
        x = data.direct(x[:m] if name == "digits" else data.resize(x[:m], graph.input_shape), t)
    if name in CALIBRATED:          # on the same samples whatever n, so that every n runs the same network
        graph, model = cases.calibrate_thresholds(model, graph, x[:CALIBRATION], 0.9, name)
    return model, graph, convert.convert(graph, scale, "max").graph, x[:n], scale


def sample_counts(name: str, t: int, scale: float = 1.0) -> tuple:
    """(samples for the runners and diff, samples for the PAIBox variants) of a block, times `scale`; beyond T=16,
    16/T of them: the block's time grows less than T."""
    _, _, n, n_pb = NETWORKS[name]
    per_t = min(1.0, 16 / t)
    return max(2, int(n * scale * per_t)), max(2, int(n_pb * scale * per_t))


def rounds(variants: dict, repeats: int, inside: dict) -> tuple:
    """{name: [seconds per round]}, variants interleaved within every round; results of the last round kept.
    `inside` collects, per diff variant and round, its wall time over the seconds its own runners reported."""
    times, last = {k: [] for k in variants}, {}
    for name, fn in variants.items():       # warm-up, not timed: imports, oneDNN's kernels, worker caches
        if name not in COLD:
            fn()
    for _ in range(repeats):
        for name, fn in variants.items():
            start = time.perf_counter()
            result = fn()
            times[name].append(time.perf_counter() - start)
            if name.startswith("diff"):
                runners = sum(m["seconds"] for m in result.runs.values())
                inside.setdefault(name, []).append(times[name][-1] / runners)
            last[name] = result if name.startswith("pb ") else None     # kept: PAIBox records, to compare
            del result
    return times, last


def fresh(run):
    """`run()` with no built PAIBox network kept from an earlier run (`paibox.reuse`): a process's first run."""
    from snncheck.backends.paibox import reuse
    with reuse.isolated():
        return run()


def block(name: str, t: int, repeats: int, scale: float, workers: int, keep_memory: bool = True) -> dict:
    """Times every variant on one network at T=t; returns plain data (one JSON line for the parent)."""
    import resource
    from snncheck import api, parallel
    from snncheck.backends.paibox import PAIBoxBackend
    from snncheck.backends.paibox.build import GraphSource
    from snncheck.backends.paibox.simulate import simulate
    from snncheck.backends.reference import ReferenceBackend
    from snncheck.backends.spikingjelly import SpikingJellyBackend
    kept = parallel.keep_freed_memory() if keep_memory else False
    n, n_pb = sample_counts(name, t, scale)
    model, a, b, x, input_scale = network(name, n, t)
    xb = np.rint(x.astype(np.float64) * input_scale)
    xp = xb[:n_pb]
    reference, jelly = ReferenceBackend(), SpikingJellyBackend()
    batched = {"paibox": {"batch": 32}}
    with parallel.executor("process", workers) as pool:
        PAIBoxBackend(batch=32, executor=pool).run(b, xp[:1])       # workers import PAIBox before timing
        variants = {
            "reference:a": lambda: reference.run(a, x), "spikingjelly:a": lambda: SpikingJellyBackend(
                module=model).run(a, x),
            "reference:b": lambda: reference.run(b, xb), "spikingjelly:b": lambda: jelly.run(b, xb),
            "paibox:b batched 32": lambda: PAIBoxBackend(batch=32).run(b, xb),
            "diff": lambda: api.diff(a, b, x, input_scale, module=model, backend_options=batched),
            "diff, no conversion diagnosis": lambda: api.diff(a, b, x, input_scale, module=model,
                                                              backend_options=batched, diagnose=False),
            "pb as shipped": lambda: simulate(GraphSource(b, cache_components=False)(), xp.astype(np.uint8)),
            "pb fast": lambda: PAIBoxBackend().run(b, xp),
            "pb fast, batched 8": lambda: PAIBoxBackend(batch=8).run(b, xp),
            "pb fast, batched 32": lambda: PAIBoxBackend(batch=32).run(b, xp),
            "pb fast, batched 32, built anew": lambda: fresh(lambda: PAIBoxBackend(batch=32).run(b, xp)),
            f"pb fast, {pool.workers} workers x batched 32": lambda: PAIBoxBackend(batch=32, executor=pool).run(b, xp),
        }
        inside = {}
        times, last = rounds(variants, repeats, inside)
    shipped = last["pb as shipped"]
    same = {k: all(np.array_equal(shipped[r.name][0], r.spikes) and np.array_equal(shipped[r.name][1], r.v)
                   for r in last[k].layers) for k in variants if k.startswith("pb ") and k != "pb as shipped"}
    samples = {k: (n_pb if k.startswith("pb ") else n) for k in variants}
    return {"net": name, "T": t, "shape": list(b.input_shape), "n": n, "n_pb": n_pb, "times": times,
            "samples": samples, "same": same, "inside": inside, "exact": reference.run(b, xb[:1]).meta["exact"],
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "freed memory kept": kept,
            "load": [round(v, 2) for v in os.getloadavg()]}


# ------------------------------------------------------------------------------------------------ printing
def stats(ts: list) -> tuple:
    return min(ts), statistics.median(ts)


def ratio(num: list, den: list) -> str:
    (a, b), (c, d) = stats(num), stats(den)
    return f"{a / c:5.2f}x / {b / d:5.2f}x"


def report(r: dict) -> dict:
    """Prints one block; returns its row of the summary table."""
    times, samples = r["times"], r["samples"]
    ms = {k: tuple(1e3 * s / samples[k] for s in stats(v)) for k, v in times.items()}
    print(f"\n=== {r['net']} {tuple(r['shape'])}, T={r['T']}: runners and diff on {r['n']} samples, PAIBox variants "
          f"on {r['n_pb']}; {len(times['diff'])} rounds (min / median); peak RSS {r['peak_rss_mb']:.0f} MB; "
          f"freed memory kept: {r['freed memory kept']}; load {r['load']} ===")
    for k in ("reference:a", "spikingjelly:a", "reference:b", "spikingjelly:b", "paibox:b batched 32"):
        print(f"  {k:40s} {ms[k][0]:9.3f} / {ms[k][1]:9.3f} ms/sample")
    print(f"  reference throughput / SpikingJelly's on B (exact: {r['exact']}): "
          f"{ratio(times['spikingjelly:b'], times['reference:b'])};  on A: "
          f"{ratio(times['spikingjelly:a'], times['reference:a'])}")
    shipped = times["pb as shipped"]
    for k in times:
        if k.startswith("pb "):
            extra = "" if k == "pb as shipped" else (f"  x{ratio(shipped, times[k])} vs as shipped; spikes and v "
                                                     f"identical: {r['same'][k]}")
            print(f"  paibox {k[3:]:33s} {ms[k][0]:9.2f} / {ms[k][1]:9.2f} ms/sample{extra}")
    runners = [sum(times[k][i] for k in ("reference:a", "spikingjelly:a", "reference:b", "spikingjelly:b",
                                         "paibox:b batched 32")) for i in range(len(shipped))]
    for k in ("diff", "diff, no conversion diagnosis"):
        print(f"  {k:40s} {ms[k][0]:9.3f} / {ms[k][1]:9.3f} ms/sample; over its own runners in the same call "
              f"{min(r['inside'][k]):.2f}x / {statistics.median(r['inside'][k]):.2f}x, over the runners timed alone "
              f"{ratio(times[k], runners)}")
    cold = "pb fast, batched 32, built anew"      # (a first run: its own column, not a candidate for the best)
    best = min((k for k in times if k.startswith("pb fast") and k != cold), key=lambda k: stats(times[k])[0])
    return {"net": r["net"], "T": r["T"], "ref:b": ms["reference:b"][0], "sj:b": ms["spikingjelly:b"][0],
            "ref/sj": stats(times["spikingjelly:b"])[0] / stats(times["reference:b"])[0],
            "pb shipped": ms["pb as shipped"][0], "pb best": ms[best][0], "pb best is": best[3:],
            "pb x": stats(shipped)[0] / stats(times[best])[0], "pb cold x": stats(shipped)[0] / stats(times[cold])[0],
            "diff": ms["diff"][0], "diag x": min(r["inside"]["diff"]),
            "nodiag x": min(r["inside"]["diff, no conversion diagnosis"]), "rss": r["peak_rss_mb"]}


def summary(rows: list) -> None:
    print("\n=== scale table (min over rounds; ms/sample; x: ratios) ===")
    head = (f"{'network':10s} {'T':>3s} {'ref:b':>8s} {'sj:b':>8s} {'ref/sj':>7s} {'pb shipped':>11s} "
            f"{'pb best':>8s} "
            f"{'pb x':>6s} {'anew':>6s} {'diff':>8s} {'diff/runners':>13s} {'no diag':>8s} {'RSS MB':>7s}  best PAIBox")
    print(head)
    for w in rows:
        print(f"{w['net']:10s} {w['T']:3d} {w['ref:b']:8.2f} {w['sj:b']:8.2f} {w['ref/sj']:6.2f}x "
              f"{w['pb shipped']:11.1f} "
              f"{w['pb best']:8.2f} {w['pb x']:5.1f}x {w['pb cold x']:5.1f}x {w['diff']:8.2f} {w['diag x']:12.2f}x {w['nodiag x']:7.2f}x "
              f"{w['rss']:7.0f}  {w['pb best is']}")


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
    from snncheck import case as cases, parallel, pipeline
    from snncheck.commands import DEFAULT_CASE
    print("\n=== all 1797 digits, T=8, reference + SpikingJelly + PAIBox (batched 32) on every sample ===")
    loader = cases.plan_loader(DEFAULT_CASE, split="all", samples=10 ** 9, chunk=128, paibox_batch=32)
    for kind in ("local", "process"):
        start = time.perf_counter()
        with parallel.executor(kind, workers) as ex:
            rep = pipeline.execute(loader, executor=ex)
        wall = time.perf_counter() - start
        cov = rep.extras["coverage"]
        exact = {p.key: p.exact for p in rep.pairs if p.expect == "exact"}
        print(f"  {kind:8s} {ex.workers} worker(s): {wall:6.1f} s wall for {cov['samples']} samples "
              f"({ {k: v['samples'] for k, v in cov['runs'].items()} }); verdict {rep.verdict}; exact: {exact}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nets", nargs="+", default=list(NETWORKS), choices=list(NETWORKS))
    p.add_argument("--T", nargs="+", type=int, default=[8, 32], help="time steps (default 8 32)")
    p.add_argument("--rounds", type=int, default=5, help="interleaved rounds per block (default 5)")
    p.add_argument("--samples", type=float, default=1.0, help="multiply every block's sample counts")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rss", action="store_true", help="peak RSS of fullset at N=100, 1000, 1797")
    p.add_argument("--digits-all", action="store_true", help="all 1797 digits through the three runners")
    p.add_argument("--malloc-default", action="store_true", help="glibc's malloc as it comes (no keep_freed_memory)")
    p.add_argument("--block", nargs=2, metavar=("NET", "T"), help=argparse.SUPPRESS)   # one block, in a child
    args = p.parse_args()
    if args.block:
        result = block(args.block[0], int(args.block[1]), args.rounds, args.samples, args.workers,
                       not args.malloc_default)
        return print("BLOCK " + json.dumps(result))
    if args.rss:
        return rss_table()
    if args.digits_all:
        return digits_all(args.workers)
    start = time.perf_counter()
    for k, v in machine().items():
        print(f"{k:28s} {v}")
    rows = []
    for name in args.nets:
        for t in args.T:
            cmd = [sys.executable, __file__, "--block", name, str(t), "--rounds", str(args.rounds),
                   "--samples", str(args.samples), "--workers", str(args.workers)] + \
                (["--malloc-default"] if args.malloc_default else [])
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            line = next((l for l in out.stdout.splitlines() if l.startswith("BLOCK ")), None)
            if line is None:
                print(f"\n=== {name} T={t} failed ===\n{out.stderr[-3000:]}")
                continue
            rows.append(report(json.loads(line[6:])))
    summary(rows)
    print(f"\nload average at the end {tuple(round(v, 2) for v in os.getloadavg())}; "
          f"benchmark wall time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
