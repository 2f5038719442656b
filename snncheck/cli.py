"""`snncheck`: a thin command line over the plan and the pipeline. Each sub-command lives in
`snncheck.commands.<name>` and only builds a plan (or, for `convert`, a checkpoint).

Exit codes (docs/cli.md): 0 consistent, 1 inconsistent (report written), 2 bad input or usage (one line on
stderr, no traceback), 3 inconclusive (report written: what was compared cannot show a difference).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys

from .errors import InputError

COMMANDS = ("compare", "diff", "convert", "demo", "fuzz", "fullset", "ann2snn", "record", "export")


def main(argv=None) -> int:
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            raise InputError(f"give a command ({', '.join(COMMANDS)}); snncheck --help says more")
        _quiet_libraries()
        from .parallel import keep_freed_memory
        keep_freed_memory()          # (a command's runs reuse memory instead of faulting fresh pages in)
        with _memory_budget(args.memory_budget):
            return int(args.func(args) or 0)
    except InputError as exc:
        print(f"snncheck: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("snncheck: interrupted; no report written", file=sys.stderr)
        return 130


class _Parser(argparse.ArgumentParser):
    """Usage errors are input errors: one line, exit 2 (argparse would print the usage and exit itself)."""

    def error(self, message):
        raise InputError(f"{self.prog}: {message}")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="snncheck", description="Cross-simulator consistency checks for spiking networks "
                                "(SpikingJelly, PAIBox, NumPy reference).")
    p.add_argument("--memory-budget", metavar="SIZE", help="refuse runs estimated to need more memory than this "
                   "(e.g. 512M, 16G; default: $SNNCHECK_MEMORY_BUDGET, else 8G)")
    sub = p.add_subparsers(dest="command")
    for name in COMMANDS:
        importlib.import_module(f"snncheck.commands.{name}").register(sub)
    return p


@contextlib.contextmanager
def _memory_budget(size):
    """--memory-budget for this call only (snncheck.memory reads it from the environment, in workers too)."""
    from . import memory
    old = os.environ.get(memory.ENV)
    if size is not None:
        os.environ[memory.ENV] = str(memory.parse_size(size))
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(memory.ENV, None)
        else:
            os.environ[memory.ENV] = old


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
