"""What to run and what to compare, as data: the plan that every entry point builds and one pipeline executes.

    subjects (networks, each with its role and input transform) x backends -> runs
    pairs of runs, each with what it must show (exact | float rounding | quantization drift)

The CLI commands, case files, whole-set runs and the Python API only build a `Plan`; `snncheck.pipeline.execute`
runs it. Roles are typed (`Role.FLOAT` is the float model A, `Role.DEPLOYED` the integer network B); the labels
"spikingjelly:a" or "paibox:b~reference:b" are only how runs and pairs are written out.
"""
from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from . import memory
from .errors import require
from .graph import Graph, is_integer_valued

BACKENDS = ("reference", "spikingjelly", "paibox")      # the built-in ones, in the order reports list them


class Role(enum.Enum):
    FLOAT = "a"          # the float model (A), as trained
    DEPLOYED = "b"       # the deployed integer network (B)

    @property
    def tag(self) -> str:
        return self.value


class Expect(enum.Enum):
    """What a pair of runs must show."""
    EXACT = "exact"                      # the same integer network: bit for bit
    FLOAT_ROUNDING = "float_rounding"    # the same float network: flips only within float32 rounding
    QUANTIZATION = "quantization"        # A against B: drift that quantization explains


@dataclass(frozen=True, eq=False)
class Subject:
    """A network in one role, with how it receives the plan's inputs: B gets round(x * input_scale)."""
    role: Role
    graph: Graph
    input_scale: float = 1.0
    module: Any = None            # the user's own torch module (A as trained, BatchNorm unfolded), if any
    source: Any = None            # where B came from when it is not a checkpoint (a user's PAIBox network)

    @property
    def integer(self) -> bool:
        return self.graph.is_integer

    def inputs(self, x: np.ndarray) -> np.ndarray:
        """What this subject receives for the plan's inputs x (in A's range)."""
        if self.role is Role.DEPLOYED and (self.input_scale != 1 or not is_integer_valued(x)):
            return np.rint(np.asarray(x, np.float64) * self.input_scale)
        return x


@dataclass(frozen=True)
class RunSpec:
    """One backend on one subject. `options` are the backend's keyword options (PAIBox: timing, batch...)."""
    backend: str
    role: Role
    options: tuple = ()           # sorted (key, value) pairs, so that a RunSpec is hashable plain data

    @property
    def label(self) -> str:
        return f"{self.backend}:{self.role.tag}"

    @property
    def opts(self) -> dict:
        return dict(self.options)


@dataclass(frozen=True)
class Pair:
    a: RunSpec
    b: RunSpec
    expect: Expect

    @property
    def key(self) -> str:
        return f"{self.a.label}~{self.b.label}"

    @property
    def same_network(self) -> bool:
        return self.a.role is self.b.role


@dataclass(frozen=True)
class Inputs:
    """The plan's inputs, in A's range: frames [N, *shape] repeated over `timesteps` steps (direct encoding),
    or sequences [N, T, *shape]. Sliced before they are expanded over time, so a large set costs one chunk."""
    data: np.ndarray
    timesteps: int
    direct: bool
    info: dict = field(default_factory=dict)      # where they came from, for the report

    @classmethod
    def frames(cls, x: np.ndarray, timesteps: int, **info) -> "Inputs":
        require(timesteps > 0, lambda: f"timesteps must be positive, got {timesteps}")
        return cls(np.asarray(x), int(timesteps), True, info)

    @classmethod
    def sequences(cls, x: np.ndarray, **info) -> "Inputs":
        x = np.asarray(x)
        return cls(x, int(x.shape[1]), False, info)

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def chunk(self, lo: int = 0, hi: Optional[int] = None) -> np.ndarray:
        """Samples [lo, hi) as [n, T, *shape] float arrays."""
        part = self.data[lo:hi]
        steps = self.timesteps if self.direct else 1
        memory.require_fits(part.size * steps * 4, f"{part.shape[0]} input samples x {self.timesteps} steps")
        require(part.dtype.kind not in "fc" or bool(np.isfinite(part).all()),
                lambda: f"inputs ({self.info.get('source', 'given')}) contain NaN or inf")
        if self.direct:
            part = np.broadcast_to(part[:, None], (part.shape[0], self.timesteps) + part.shape[1:])
        return np.ascontiguousarray(part, dtype=np.float32 if part.dtype.kind != "f" else part.dtype)

    def describe(self) -> dict:
        return dict({"encoding": "direct" if self.direct else "sequence"}, **self.info, samples=len(self),
                    timesteps=self.timesteps)


@dataclass(frozen=True)
class Skipped:
    """A run left out of the plan because its backend refuses the subject (the refusals say why)."""
    run: RunSpec
    refusals: tuple


@dataclass(frozen=True, eq=False)
class Plan:
    title: str
    subjects: dict                     # Role -> Subject
    runs: tuple                        # RunSpec, in the order reports list them
    pairs: tuple                       # Pair
    inputs: Inputs
    chunk: Optional[int] = None        # samples per chunk (None: the whole set at once)
    diagnose: bool = True              # the conversion diagnosis (static and isolated) when A and B are both there
    evidence: int = 64                 # samples whose full records the report keeps (figures, isolated mode)
    skipped: tuple = ()                # Skipped runs
    subsets: dict = field(default_factory=dict)   # backend -> sorted sample indices its runs are limited to
    notes: dict = field(default_factory=dict)   # facts for the report: inferred values, matching of a user's net
    analyses: tuple = ()               # more analyses of every chunk: key, run(plan, x, ids, results) -> a part
    #                                    that merges (part.merge), conclude(part) -> (extras[key], [Diagnosis])

    def subject(self, role: Role) -> Subject:
        return self.subjects[role]

    def run(self, label: str) -> RunSpec:
        return next(r for r in self.runs if r.label == label)

    def runs_of(self, role: Role) -> list:
        return [r for r in self.runs if r.role is role]

    def reference(self, role: Role) -> Optional[RunSpec]:
        return next((r for r in self.runs if r.role is role and r.backend == "reference"), None)

    def replace(self, **changes) -> "Plan":
        return dataclasses.replace(self, **changes)


# ----------------------------------------------------------------------------------------------- building
def options(**kwargs) -> tuple:
    """Backend options as a RunSpec holds them: sorted (key, value) pairs, None values left out."""
    return tuple(sorted((k, v) for k, v in kwargs.items() if v is not None))


def check(graph: Graph, inputs: Inputs, backends=None, module=None, title: Optional[str] = None,
          backend_options: Optional[dict] = None, **kw) -> Plan:
    """One network in several backends: each against the reference, exactly for an integer network, within
    float rounding for a float one. By default every backend for an integer network, and the reference and
    SpikingJelly for a float one (PAIBox runs integers only; asked for by name, it refuses, saying why)."""
    role = Role.DEPLOYED if graph.is_integer else Role.FLOAT
    subject = Subject(role, graph, module=module)
    wanted = list(backends or (BACKENDS if role is Role.DEPLOYED else ("reference", "spikingjelly")))
    runs, skipped = _accepted({role: subject}, [(b, role) for b in _with_reference(wanted)], backend_options)
    expect = Expect.EXACT if role is Role.DEPLOYED else Expect.FLOAT_ROUNDING
    ref = next((r for r in runs if r.backend == "reference"), None)
    pairs = tuple(Pair(r, ref, expect) for r in runs if r is not ref and ref is not None)
    return Plan(title or graph.name, {role: subject}, tuple(runs), pairs, inputs, skipped=tuple(skipped), **kw)


def diff(float_subject: Subject, deployed: Subject, inputs: Inputs, backends=BACKENDS, title: str = "diff",
         backend_options: Optional[dict] = None, **kw) -> Plan:
    """A float network (A) and its deployed integer version (B): A in SpikingJelly and the reference, B in every
    backend. Pairs: each run against the reference of its own network, and A (SpikingJelly, else the reference)
    against B's reference."""
    require(float_subject.role is Role.FLOAT and deployed.role is Role.DEPLOYED, "diff takes A (float) and B")
    wanted = _with_reference(list(backends))
    specs = [(b, Role.FLOAT) for b in wanted if b in ("spikingjelly", "reference")] + \
            [(b, Role.DEPLOYED) for b in wanted]
    subjects = {Role.FLOAT: float_subject, Role.DEPLOYED: deployed}
    runs, skipped = _accepted(subjects, specs, backend_options)
    pairs = []
    for role, expect in ((Role.DEPLOYED, Expect.EXACT), (Role.FLOAT, Expect.FLOAT_ROUNDING)):
        ref = next((r for r in runs if r.role is role and r.backend == "reference"), None)
        pairs += [Pair(r, ref, expect) for r in runs if r.role is role and r is not ref and ref is not None]
    a = next((r for r in runs if r.role is Role.FLOAT and r.backend == "spikingjelly"), None) or \
        next((r for r in runs if r.role is Role.FLOAT), None)
    b = next((r for r in runs if r.role is Role.DEPLOYED and r.backend == "reference"), None)
    if a is not None and b is not None:
        pairs.append(Pair(a, b, Expect.QUANTIZATION))
    return Plan(title, subjects, tuple(runs), tuple(_ordered(pairs)), inputs, skipped=tuple(skipped), **kw)


def _with_reference(backends: list) -> list:
    """Every plan runs the reference: it is the arbiter, and the alignment of a pipelined run needs it."""
    out = list(dict.fromkeys(backends))
    return out if "reference" in out else ["reference"] + out


def _accepted(subjects: dict, specs: list, backend_options: Optional[dict]) -> tuple:
    """(RunSpecs whose backend accepts the subject, [Skipped]); `backend_options`: {backend: {option: value}} or
    {(backend, role): {...}}."""
    from .backends import make
    runs, skipped = [], []
    for name, role in specs:
        opts = dict((backend_options or {}).get(name, {}), **(backend_options or {}).get((name, role), {}))
        spec = RunSpec(name, role, options(**opts))
        refusals = make(spec, subjects[role]).accepts(subjects[role].graph)
        if refusals:
            skipped.append(Skipped(spec, tuple(refusals)))
        else:
            runs.append(spec)
    return runs, skipped


def _ordered(pairs: list) -> list:
    """Same-network pairs first (B, then A), then A against B."""
    rank = {Expect.EXACT: 0, Expect.FLOAT_ROUNDING: 1, Expect.QUANTIZATION: 2}
    return sorted(pairs, key=lambda p: rank[p.expect])


def with_recorded(plan: Plan, path: str, role: Optional[Role] = None, **layout) -> Plan:
    """The plan with one more run, read from a records file (`snncheck.records`), of `role`'s network (default: the
    plan's only one), paired with that network's reference like a simulated run: exact for an integer network,
    within float rounding otherwise. `layout`: order, amplitude, first_spike, pipelined (`backends.recorded`)."""
    from .backends import make
    role = role or (next(iter(plan.subjects)) if len(plan.subjects) == 1 else Role.DEPLOYED)
    require(role in plan.subjects, lambda: f"a recorded run of role {role.tag!r} needs that network in the plan")
    spec = RunSpec("recorded", role, options(path=str(path), **layout))
    make(spec, plan.subject(role)).accepts(plan.subject(role).graph)       # a bad file is an InputError here
    ref = plan.reference(role)
    expect = Expect.EXACT if plan.subject(role).integer else Expect.FLOAT_ROUNDING
    pairs = list(plan.pairs) + ([Pair(spec, ref, expect)] if ref is not None else [])
    # a record is read from its first sample on: the comparison runs as one chunk (each chunk would read sample 0 on)
    return plan.replace(runs=plan.runs + (spec,), pairs=tuple(_ordered(pairs)), chunk=None)
