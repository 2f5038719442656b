"""One module per sub-command; each registers its parser and turns its arguments into a plan (`snncheck.plan`),
executed by `snncheck.pipeline`. Shared argument types and the exit code of a report live here.

Validation at the boundary (docs/ARCHITECTURE.md): give every flag one of the types below (`positive_int`,
`positive_float`, `finite_float`, `existing_file`, `spec_text`), so that a bad value is a usage error (exit 2) before
anything runs; name every file the run reads in `inputs` and call `check_outputs(args, inputs, "out", "json")`
before the run, so that no output is written over an input or over anything that is not a regular file."""
from __future__ import annotations

import argparse
import math
import os
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


def positive_float(text: str) -> float:
    """A finite number > 0 (an input scale, minutes): not nan, inf, 0 or negative."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def existing_file(text: str) -> str:
    """A regular file that exists (a FIFO or a device would block or never end)."""
    if not os.path.isfile(text):
        what = "a directory" if os.path.isdir(text) else "not a regular file" if os.path.exists(text) else "not found"
        raise argparse.ArgumentTypeError(f"{text!r}: {what}")
    return text


def spec_text(text: str) -> str:
    """A model spec as typed: not empty, no control characters (a name, FILE.py:FACTORY or module:FACTORY)."""
    if not text.strip() or any(ord(c) < 32 for c in text):
        raise argparse.ArgumentTypeError(f"expected a model spec (NAME, FILE.py:FACTORY or module:FACTORY), "
                                         f"got {text!r}")
    return text


def spec_files(*specs) -> list:
    """The .py files that model specs (FILE.py:FACTORY) name: inputs of the run."""
    return [s.rpartition(":")[0] for s in specs if s and s.rpartition(":")[0].endswith(".py")]


def check_outputs(args, inputs, *flags) -> None:
    """Refuses, before anything runs, outputs (`args.<flag>`) that would overwrite an input of the run, each
    other, or anything that is not a regular file (snncheck.files.check_target)."""
    from ..files import check_targets
    check_targets([getattr(args, f, None) for f in flags], inputs)


def output_file(args, inputs, suffixes: tuple = ()) -> Path:
    """`--out` checked before anything runs: its folder exists, its suffix is one of `suffixes` (when given), and it
    overwrites no input of the run nor anything but a regular file (`check_outputs`)."""
    out = Path(args.out)
    require(out.parent.is_dir(), lambda: f"--out {out}: directory {out.parent} does not exist")
    require(not suffixes or out.suffix.lower() in suffixes,
            lambda: f"--out {out}: give it one of the suffixes {', '.join(suffixes)}")
    check_outputs(args, inputs, "out")
    return out


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


def finish(report, json_path=None, html_path=None, inputs=()) -> int:
    """Prints the report, writes its files (never over `inputs`), and returns the exit code of its verdict."""
    from ..report import io, text
    print(text.render(report))
    io.write_outputs(report, json_path, html_path, inputs=inputs)
    return exit_code(report)
