"""`snncheck fullset [CASE]`: a case over its whole input set, streamed in chunks (memory does not grow with the
number of samples). The reference and SpikingJelly see every sample; PAIBox all of them or `--paibox N` spread
evenly, many samples per simulation (`--paibox-batch`). Chunks run here, in worker processes or on Dask
(`--executor dask`, a LocalCluster, or `--scheduler ADDRESS` for a running cluster). The report states how many
samples each run saw (JSON: extras.coverage). Exit 0 consistent, 1 inconsistent, 2 bad input."""
from __future__ import annotations

from ..errors import require


def register(sub) -> None:
    from ..cli import DEFAULT_CASE
    p = sub.add_parser("fullset", help="run a case over its whole input set, streamed in chunks",
                       description=__doc__)
    p.add_argument("case", nargs="?", default=str(DEFAULT_CASE), help="case file (.toml); default: the embedded CSNN")
    p.add_argument("--split", help="digits split: all, train or test (default: the case's)")
    p.add_argument("--samples", type=int, help="at most this many samples (default: the whole set)")
    p.add_argument("--timesteps", type=int)
    p.add_argument("--runners", help="comma-separated subset of reference,spikingjelly,paibox")
    p.add_argument("--timing", choices=("pipeline", "flat"))
    p.add_argument("--paibox", type=int, metavar="N", help="PAIBox on N samples spread over the set (default: all)")
    p.add_argument("--paibox-batch", type=int, default=32, help="samples per PAIBox simulation (default 32)")
    p.add_argument("--chunk", type=int, default=256, help="samples per chunk (default 256)")
    p.add_argument("--executor", choices=("local", "process", "dask"), default="local")
    p.add_argument("--workers", type=int, help="worker processes (default: one per core)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler, e.g. tcp://host:8786 (implies dask)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", help="write the JSON report here")
    p.add_argument("--out", help="write the HTML report here")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import parallel, stream
    from ..cli import write_outputs
    from ..report import text
    for name in ("samples", "timesteps", "paibox", "paibox_batch", "chunk", "workers"):
        value = getattr(args, name)
        require(value is None or value >= 1, f"--{name.replace('_', '-')} must be at least 1, got {value}")
    runners = [r.strip() for r in args.runners.split(",") if r.strip()] if args.runners else None
    job = stream.Job.from_case(args.case, split=args.split, samples=args.samples, timesteps=args.timesteps,
                               runners=runners, paibox_samples=args.paibox, paibox_batch=args.paibox_batch,
                               timing=args.timing)
    kind = "dask" if args.scheduler else args.executor
    with parallel.executor(kind, args.workers, args.scheduler) as ex:
        report = stream.run(job, args.chunk, ex, progress=not args.no_progress)
    print(text.render(report))
    print(coverage_line(report.extras["coverage"]))
    write_outputs(report, args.json, args.out)
    return 0 if report.verdict == "consistent" else 1


def coverage_line(cov: dict) -> str:
    runs = ", ".join(f"{label} {c['samples']}" + ("" if c["samples"] == cov["samples"] else f" ({c['share']:.0%})")
                     for label, c in cov["runs"].items())
    return (f"coverage: {cov['samples']} samples; {runs}; {cov['wall_seconds']:.1f} s wall, "
            f"{cov['workers']} worker(s) ({cov['executor']}), chunks of {cov['chunk']}")
