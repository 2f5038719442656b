"""How much memory a plan's runs need, and a budget above which it is refused before anything runs (instead of a
MemoryError, or the machine swapping, half-way through).

A chunk of n samples over T steps records, for each run, every neuron of its network at every step: spikes (1 byte),
the membrane after reset and the charged membrane (8 bytes each); the inputs are expanded over T once per network.
The estimate is a lower bound of the peak: n x T x (recorded neurons x 17 bytes per run + inputs x 8 per network).

The budget is `SNNCHECK_MEMORY_BUDGET` (bytes, or with a unit: 512M, 8G; the command line's `--memory-budget` sets
it), by default DEFAULT_BUDGET.
"""
from __future__ import annotations

import math
import os
import re

from .errors import require

DEFAULT_BUDGET = 8 * 2 ** 30
ENV = "SNNCHECK_MEMORY_BUDGET"
BYTES_PER_NEURON_STEP = 1 + 8 + 8           # spikes, v, h
BYTES_PER_INPUT_STEP = 8
_UNITS = {"": 1, "K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30, "T": 2 ** 40}


def parse_size(text: str) -> int:
    """'8G', '512M', '1000000' -> bytes (units are powers of 1024; a trailing 'B' or 'iB' is allowed)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", str(text), re.IGNORECASE)
    require(m is not None and float(m.group(1)) > 0,
            lambda: f"memory budget {text!r}: expected a positive size such as 512M or 8G")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def budget() -> int:
    text = os.environ.get(ENV)
    return DEFAULT_BUDGET if not text else parse_size(text)


def estimate(plan) -> int:
    """Bytes a chunk of the plan needs at least (see the module docstring)."""
    n = min(plan.chunk or len(plan.inputs), len(plan.inputs))
    steps = plan.inputs.timesteps
    neurons = {role: sum(math.prod(s.graph.shapes[v]) for v in s.graph.neurons) for role, s in plan.subjects.items()}
    per_step = sum(neurons[r.role] for r in plan.runs) * BYTES_PER_NEURON_STEP
    per_step += len(plan.subjects) * math.prod(plan.inputs.data.shape[2 if not plan.inputs.direct else 1:]) \
        * BYTES_PER_INPUT_STEP
    return n * steps * per_step


def check(plan, limit=None) -> None:
    """InputError when the plan's estimate exceeds the budget, saying how to fit."""
    n = min(plan.chunk or len(plan.inputs), len(plan.inputs))
    require_fits(estimate(plan), f"{n} samples x {plan.inputs.timesteps} steps at once", limit)


def require_fits(need: int, what: str, limit=None) -> None:
    limit = budget() if limit is None else limit
    require(need <= limit, lambda: f"this run needs at least {_size(need)} of memory ({what}), over the budget of "
                                   f"{_size(limit)}: use fewer samples or time steps, a smaller chunk (fullset --chunk), or raise "
                                   f"{ENV} (--memory-budget)")


def _size(n: float) -> str:
    units = ("B", "KiB", "MiB", "GiB", "TiB")
    k = 0
    while n >= 1024 and k < len(units) - 1:
        n, k = n / 1024, k + 1
    return f"{n:.0f} {units[k]}" if k == 0 else f"{n:.1f} {units[k]}"
