"""One module per sub-command; each registers its parser and turns its arguments into a plan (`snncheck.plan`),
executed by `snncheck.pipeline`. Shared argument types and the exit code of a report live here."""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import require

DEFAULT_CASE = Path(__file__).resolve().parents[1] / "models" / "default_case.toml"
EXIT_CODES = {"consistent": 0, "inconsistent": 1, "inconclusive": 3}


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def input_shape(text: str) -> tuple:
    """'1,28,28' -> (1, 28, 28): the per-sample input shape, for models that do not say it."""
    try:
        shape = tuple(int(d) for d in text.replace("x", ",").split(",") if d.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes like 1,28,28, got {text!r}") from None
    if not shape or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected positive sizes like 1,28,28, got {text!r}")
    return shape


def add_plugin_option(p) -> None:
    """`--plugin FILE.py`, repeatable: a user's file registering their own neuron classes (docs/plugins.md)."""
    p.add_argument("--plugin", action="append", default=[], metavar="FILE.py",
                   help="a Python file that registers your own neuron classes (snncheck.register_neuron); "
                        "repeatable")


def load_plugins(args) -> None:
    from ..frontends import plugins
    plugins.load(getattr(args, "plugin", None) or [])


def backends_list(text: str) -> list:
    """Simulators by name: the built-in three, and those reached through NIR (sj_nir, snntorch)."""
    from ..backends import BACKENDS
    known = [b for b in BACKENDS if b != "recorded"]          # a recorded run comes from --run-b FILE
    names = [r.strip() for r in text.split(",") if r.strip()]
    bad = [r for r in names if r not in known]
    require(names and not bad, lambda: f"--runners: unknown {bad}; known: {', '.join(known)}")
    return names


def exit_code(report) -> int:
    return EXIT_CODES[report.verdict]


def finish(report, json_path=None, html_path=None) -> int:
    """Prints the report, writes its files, and returns the exit code of its verdict."""
    from ..report import io, text
    print(text.render(report))
    io.write_outputs(report, json_path, html_path)
    return exit_code(report)
