"""`snncheck`: a thin command line over snncheck.api.

Exit codes: 0 consistent, 1 inconsistent (report written), 2 bad input or usage (one line on stderr).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .errors import InputError

DEFAULT_CASE = Path(__file__).parent / "models" / "default_case.toml"


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    _quiet_libraries()
    try:
        return int(args.func(args) or 0)
    except InputError as exc:
        print(f"snncheck: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("snncheck: interrupted; no report written", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="snncheck", description="Cross-simulator consistency checks for spiking networks "
                                "(SpikingJelly, PAIBox, NumPy reference).")
    sub = p.add_subparsers(dest="command")

    c = sub.add_parser("compare", help="run a case in every simulator and compare layer by layer")
    c.add_argument("case", nargs="?", default=str(DEFAULT_CASE), help="case file (.toml); default: the embedded CSNN")
    c.add_argument("--samples", type=int)
    c.add_argument("--timesteps", type=int)
    c.add_argument("--timing", choices=("pipeline", "flat"), help="PAIBox tick_wait_start per stage, or 1 everywhere")
    c.add_argument("--runners", help="comma-separated subset of reference,spikingjelly,paibox")
    c.add_argument("--json", help="write the JSON report here")
    c.add_argument("--out", help="write the HTML report here")
    c.set_defaults(func=cmd_compare)

    for extra in _extensions():
        extra(sub)
    return p


def _extensions():
    """Sub-commands that live in their own modules (diff, convert, demo, fuzz, fullset), registered if present."""
    import importlib
    found = []
    for name in ("diff", "convert", "demo", "fuzz", "fullset"):
        try:
            mod = importlib.import_module(f"snncheck.commands.{name}")
        except ModuleNotFoundError:
            continue
        found.append(mod.register)
    return found


def cmd_compare(args) -> int:
    from . import case as cases
    from .report import text
    case = cases.Case.load(args.case)
    inputs = case.spec.setdefault("inputs", {})
    run = case.spec.setdefault("run", {})
    if args.samples:
        inputs["samples"] = args.samples
    if args.timesteps:
        inputs["timesteps"] = args.timesteps
    if args.timing:
        run["timing"] = args.timing
    if args.runners:
        run["runners"] = [r.strip() for r in args.runners.split(",") if r.strip()]
    report = cases.run(case)
    # a runner that cannot run the network is a usage error here, unless the case says it is expected
    expected = case.section("expect").get("unsupported", {})
    for kind, message in report.extras.get("unsupported", {}).items():
        if kind not in expected:
            raise InputError(f"{kind} cannot run {case.name}: {message}")
    print(text.render(report))
    write_outputs(report, args.json, args.out)
    return 0 if report.verdict == "consistent" else 1


def write_outputs(report, json_path=None, html_path=None, quiet: bool = False) -> None:
    """Renders first, then writes each file atomically: an interrupted run leaves no half-written report."""
    from .report import io
    page = None
    if html_path:
        from .report import html
        page = html.render(report)
    if json_path:
        io.write_json(report, json_path)
        if not quiet:
            print(f"JSON report: {json_path}")
    if html_path:
        io.atomic_write_text(html_path, page)
        if not quiet:
            print(f"HTML report: {html_path}")


def _quiet_libraries() -> None:
    """PAIBox and torch print warnings that say nothing to a user of this tool."""
    import logging
    import warnings
    warnings.filterwarnings("ignore")
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    logging.getLogger("torch").setLevel(logging.ERROR)
    # torch re-configures its loggers on import; a filter survives that (CPU-only: no Triton is expected)
    logging.getLogger("torch._library.triton").addFilter(lambda r: "Triton not available" not in r.getMessage())


if __name__ == "__main__":
    sys.exit(main())
