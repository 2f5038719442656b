"""`snncheck fullset [CASE]`: a case over its whole input set, streamed in chunks (memory does not grow with the
number of samples). The reference and SpikingJelly see every sample; PAIBox all of them or `--paibox N` spread
evenly, many samples per simulation (`--paibox-batch`). Chunks run here, in worker processes or on Dask
(`--executor dask`, a LocalCluster, or `--scheduler ADDRESS` for a running cluster). The report states how many
samples each run saw (JSON: extras.coverage). Exit 0 consistent, 1 inconsistent, 2 bad input."""
from __future__ import annotations

from . import DEFAULT_CASE, add_plugin_option, backends_list, check_outputs, finish, positive_int


def register(sub) -> None:
    p = sub.add_parser("fullset", help="run a case over its whole input set, streamed in chunks",
                       description=__doc__)
    p.add_argument("case", nargs="?", default=str(DEFAULT_CASE), help="case file (.toml); default: the embedded CSNN")
    p.add_argument("--split", choices=("all", "train", "test"), help="digits split (default: the case's)")
    p.add_argument("--samples", type=positive_int, help="at most this many samples (default: the whole set)")
    p.add_argument("--timesteps", type=positive_int)
    p.add_argument("--runners", type=backends_list, help="comma-separated subset of reference,spikingjelly,paibox")
    p.add_argument("--timing", choices=("pipeline", "flat"))
    p.add_argument("--paibox", type=positive_int, metavar="N", help="PAIBox on N samples spread over the set "
                                                                     "(default: all)")
    p.add_argument("--paibox-batch", type=positive_int, default=32, help="samples per PAIBox simulation (default 32)")
    p.add_argument("--chunk", type=positive_int, default=256, help="samples per chunk (default 256)")
    p.add_argument("--executor", choices=("local", "process", "dask"), default="local")
    p.add_argument("--workers", type=positive_int, help="worker processes (default: one per core)")
    p.add_argument("--scheduler", metavar="ADDRESS", help="a Dask scheduler, e.g. tcp://host:8786 (implies dask)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--json", help="write the JSON report here")
    p.add_argument("--out", help="write the HTML report here")
    add_plugin_option(p)
    p.set_defaults(func=run)


WHOLE_SET = 10 ** 9          # samples: a data set is cut to what it holds


def run(args) -> int:
    from .. import case as cases, parallel, pipeline
    overrides = dict(samples=args.samples or WHOLE_SET, timesteps=args.timesteps, runners=args.runners,
                     timing=args.timing, split=args.split, chunk=args.chunk, paibox_batch=args.paibox_batch,
                     paibox_samples=args.paibox, plugins=tuple(args.plugin) or None)
    inputs = cases.Case.load(args.case).files() + list(args.plugin)
    check_outputs(args, inputs, "json", "out")
    loader = cases.plan_loader(args.case, **{k: v for k, v in overrides.items() if v is not None})
    kind = "dask" if args.scheduler else args.executor
    with parallel.executor(kind, args.workers, args.scheduler) as ex:
        report = pipeline.execute(loader, ex if kind != "local" else None, progress=not args.no_progress)
    code = finish(report, args.json, args.out, inputs)
    print(coverage_line(report.extras["coverage"]))
    return code


def coverage_line(cov: dict) -> str:
    runs = ", ".join(f"{label} {c['samples']}" + ("" if c["samples"] == cov["samples"] else
                                                   f" ({c['samples'] / cov['samples']:.0%})")
                     for label, c in cov["runs"].items())
    return (f"coverage: {cov['samples']} samples; {runs}; {cov['wall_seconds']:.1f} s wall, "
            f"{cov['workers']} worker(s) ({cov['executor']}), chunks of {cov['chunk']}")
