"""`snncheck fuzz --minutes M`: a hypothesis campaign over random small networks; every failure, shrunk to a
minimal example, is written as a new case file (default `cases/found/`), so that it becomes a regression test.

A generated example *is* a case (an inline network, inline inputs, expectations), and the property is that the
case meets its expectations:
- `integer`: a random integer network runs bit-exactly in PAIBox and SpikingJelly against the reference, every
  layer at the lag PAIBox's pipeline predicts;
- `conversion`: a random float network, correctly converted (rule max or seed, 1 or 255 input scale), gets no
  error diagnosis, and its integer version runs bit-exactly in every simulator.
Rounds of hypothesis run until the time is up; a failure already written is not reported again. Needs the test
extra (hypothesis) and a source checkout (the strategies live in tests/strategies.py).
"""
from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path

import numpy as np

from ..errors import InputError, require
from . import positive_float, positive_int

CHECKOUT = Path(__file__).resolve().parents[2]
PROPERTIES = ("integer", "conversion")


def register(sub) -> None:
    p = sub.add_parser("fuzz", help="search random networks for disagreements; write each as a case file",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=positive_float, default=5.0, help="how long to search (default 5)")
    p.add_argument("--out", default=str(CHECKOUT / "cases" / "found"), help="where found cases go")
    p.add_argument("--properties", default=",".join(PROPERTIES), help=f"comma-separated subset of {PROPERTIES}")
    p.add_argument("--seed", type=int, default=None, help="seed of the first round (default: random)")
    p.add_argument("--round", type=positive_int, default=50, help="examples per hypothesis round (default 50)")
    p.set_defaults(func=run)


def run(args) -> int:
    out = Path(args.out)
    require(not out.exists() or out.is_dir(), lambda: f"--out {out}: not a directory")
    props = [p.strip() for p in args.properties.split(",") if p.strip()]
    unknown = sorted(set(props) - set(PROPERTIES))
    require(props and not unknown, f"unknown properties {unknown}; known: {', '.join(PROPERTIES)}")
    campaign = Campaign(Path(args.out), props, args.round, args.seed)
    campaign.search(args.minutes * 60)
    print(campaign.summary())
    return 1 if campaign.written else 0


class Campaign:
    def __init__(self, out: Path, props: list, per_round: int, seed=None):
        self.out, self.props, self.per_round = out, props, per_round
        self.seed = seed if seed is not None else int(np.random.default_rng().integers(2 ** 31))
        self.examples = {p: 0 for p in props}
        self.known = _known_signatures(out)      # failures written before: not reported again
        self.written, self.rounds = [], 0
        self.strategies = _strategies()

    def search(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            prop = self.props[self.rounds % len(self.props)]
            self.one_round(prop, self.seed + self.rounds)
            self.rounds += 1

    def one_round(self, prop: str, seed: int) -> None:
        from hypothesis import HealthCheck, given, seed as hseed, settings
        failing = []

        def check(spec):
            self.examples[prop] += 1
            problem = _problem(spec)
            if problem and _signature(prop, problem) not in self.known:
                failing.append((spec, problem))
                raise AssertionError(problem)

        test = given(self._examples(prop))(check)
        test = settings(max_examples=self.per_round, deadline=None, database=None, derandomize=False,
                        suppress_health_check=list(HealthCheck), print_blob=False)(test)
        try:
            hseed(seed)(test)()
        except Exception as exc:       # hypothesis re-raises the shrunk failure(s) after replaying them last
            if not failing:
                raise                  # not a failing example: a problem of the campaign itself
            count = len(getattr(exc, "exceptions", [exc]))
            for spec, problem in failing[-count:]:
                self._write(prop, spec, problem, seed)

    def _examples(self, prop: str):
        S = self.strategies
        return S.case_specs() if prop == "integer" else S.conversion_case_specs()

    def _write(self, prop: str, spec: dict, problem: str, seed: int) -> None:
        from ..case import to_toml
        sig = _signature(prop, problem)
        if sig in self.known:
            return
        self.known.add(sig)
        name = f"found_{prop}_{sig[:10]}"
        spec = dict(spec, name=name)
        header = (f"Found by `snncheck fuzz` (property {prop!r}, hypothesis seed {seed}), shrunk to a minimal example.\n"
                  f"It failed with: {_first_lines(problem, 6)}\n"
                  f"signature: {sig}\n"
                  "It stays here as a regression case: it passes once the cause is fixed.")
        self.out.mkdir(parents=True, exist_ok=True)
        path = self.out / f"{name}.toml"
        path.write_text(to_toml(spec, header), encoding="utf-8")
        self.written.append(path)
        print(f"fuzz: {prop}: new failure written to {path}: {_first_lines(problem, 1)}", flush=True)

    def summary(self) -> str:
        runs = ", ".join(f"{p}: {n} examples" for p, n in self.examples.items())
        found = "\n".join(f"  {p}" for p in self.written) or "  none"
        return f"fuzz: {self.rounds} rounds from seed {self.seed}; {runs}\nnew failing cases:\n{found}"


def _problem(spec: dict) -> str:
    """Why the case fails ('' if it meets its expectations): unmet expectations, or the error it raised."""
    from ..case import Case, check_expectations, run
    case = Case.from_dict(spec)
    try:
        report = run(case)
    except InputError as exc:
        return f"InputError: {exc}"
    except Exception as exc:     # a crash in a runner is a finding, not the end of the campaign
        return f"{type(exc).__name__}: {exc}"
    return "\n".join(check_expectations(case, report))


def _signature(prop: str, problem: str) -> str:
    """Failures with the same kind of message are the same bug: digits and array contents are dropped."""
    words = "".join(c if not c.isdigit() else "#" for c in _first_lines(problem, 1))
    return hashlib.sha1(f"{prop}:{words[:120]}".encode()).hexdigest()


def _first_lines(text: str, n: int) -> str:
    return " | ".join(text.strip().splitlines()[:n])


def _known_signatures(out: Path) -> set:
    found = set()
    for path in out.glob("*.toml") if out.is_dir() else []:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.startswith("# signature: "):
                found.add(line.split(": ", 1)[1].strip())
    return found


def _strategies():
    try:
        import hypothesis  # noqa: F401
    except ImportError:
        raise InputError("snncheck fuzz needs hypothesis (pip install -e '.[test]')") from None
    tests = CHECKOUT / "tests"
    require((tests / "strategies.py").is_file(),
            f"snncheck fuzz runs from a source checkout: {tests / 'strategies.py'} not found")
    if str(tests) not in sys.path:
        sys.path.insert(0, str(tests))
    import strategies
    return strategies
