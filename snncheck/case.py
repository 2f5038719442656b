"""A case: a network, its parameters, an optional conversion, inputs and expectations, declared in a TOML file.

    name = "csnn_digits_hard"
    plugins = ["my_neurons.py"]   (files registering the user's own neuron classes: snncheck.register_neuron)
    [model]       name = "digits_csnn"  options = {reset = "hard"}  weights = "trained" | "seed:0" | "path.pth"
                  calibrate = 0.9   (each spiking layer's threshold := this quantile of its input on the case's inputs)
                  or an inline network: input_shape = [...]  [[model.layers]] type = "Conv2d" name = "c1" weight = [...]
    [conversion]  rule = "max"  input_scale = 255  reset = "hard"   (omit the table for a float-only case)
                  mutation = {name = "vthr_scale", layer = "...", factor = 2}   (a known bug, snncheck.mutations)
    [paibox]      factory = "net.py:build"  input_scale = 1   (B is a user's own PAIBox network, not a conversion)
    [ann2snn]     timesteps = [1, 2, 4, 8]  variants = ["half", "zero"]  snn = "FILE.py:FACTORY"   (instead of a
                  conversion: model.name builds an ANN with QCFS activations, model.weights is its checkpoint)
    [inputs]      source = "digits" | "random_spikes" | "events" | "file:x.npy" | "file:events.npz" | "inline"
                  samples = 32  timesteps = 8  encoding = "direct" | "poisson" | "latency"  encoding_seed = 0
                  frames = 8  split_by = "number" | "time"  or  frame_ms = 50   (an events file: docs/inputs.md)
    [run]         runners = ["reference", "spikingjelly", "paibox"]  timing = "pipeline" | "flat"  marks = ["slow"]
                  xfail = "why" (a known open bug: pytest reports XPASS once it is fixed)
    [expect]      verdict = "consistent" (or a list: any of them)  exact = ["paibox:b~reference:b"]  lags = "expected"
                  diagnoses = [{code = "timing", layer = "conv_fc.6"}]  (code may be a list: any of them)
                  top_diagnosis = {code = ...}  max_unexplained = {"spikingjelly:a~reference:a" = 0}
                  unsupported = {paibox = "initial membrane"}   (a backend expected to refuse, and why)
                  min_accuracy = {"half:4" = 0.95, "ann:0" = 0.95}   (ann2snn: least accuracy of a run at T)

The file is validated once, against the schema below (unknown keys are errors). A backend that refuses the network
is left out of the plan and reported as an `unsupported` diagnosis; the case fails unless it expects that refusal.
Paths in a case are relative to the case file. Model files are code, like conftest.py: a case runs its factory.
"""
from __future__ import annotations

import dataclasses
import functools
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Optional, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, ValidationError, field_validator

from . import data, plan as plans
from .errors import InputError, require
from .graph import Graph, is_integer_valued
from .graph import primitives as P
from .plan import Inputs, Role, Subject


# ----------------------------------------------------------------------------------------------- schema
class _Strict(BaseModel):
    """Unknown keys are errors, and values are not coerced ("4" is not a number, 2.5 not a count)."""
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ModelSpec(_Strict):
    name: str = "digits_csnn"
    options: dict[str, Any] = Field(default_factory=dict)
    weights: str = "trained"
    calibrate: Optional[float] = Field(None, gt=0, lt=1)
    input_shape: Optional[list[PositiveInt]] = Field(None, min_length=1)
    layers: Optional[list[dict[str, Any]]] = None


class ConversionSpec(_Strict):
    rule: str = "max"
    input_scale: float = Field(1.0, gt=0, le=2 ** 31, allow_inf_nan=False)
    reset: Optional[Literal["hard", "soft"]] = None
    mutation: Optional[dict[str, Any]] = None


class InputsSpec(_Strict):
    source: str = "digits"
    samples: int = Field(32, ge=1)
    timesteps: int = Field(8, ge=1, le=100_000)
    seed: int = 0
    split: Literal["train", "test", "all"] = "test"
    rate: float = Field(0.2, ge=0, le=1, allow_inf_nan=False)
    events: int = Field(400, ge=0)
    values: Optional[list] = None
    encoding: Literal["direct", "poisson", "latency"] = "direct"
    encoding_seed: int = 0
    frames: Optional[int] = Field(None, ge=1)
    split_by: Optional[Literal["number", "time"]] = None
    frame_ms: Optional[float] = Field(None, gt=0, allow_inf_nan=False)


class RunOptions(_Strict):
    runners: Optional[list[Literal["reference", "spikingjelly", "paibox"]]] = None
    timing: Literal["pipeline", "flat"] = "pipeline"
    marks: list[str] = Field(default_factory=list)
    xfail: Optional[str] = None


class DiagnosisWant(_Strict):
    code: Union[str, list[str]]
    layer: Optional[str] = None
    severity: Optional[Literal["error", "warning", "info"]] = None

    def matches(self, d) -> bool:
        codes = [self.code] if isinstance(self.code, str) else self.code
        return d.code in codes and self.layer in (None, d.layer) and self.severity in (None, d.severity)

    def __str__(self) -> str:
        return f"{self.code} @ {self.layer or 'any layer'}" + (f" ({self.severity})" if self.severity else "")


Verdict = Literal["consistent", "inconsistent", "inconclusive"]


class Ann2SnnSpec(_Strict):
    """An ANN (model.name, weights = its checkpoint) against its SNNs (snncheck ann2snn) instead of a conversion."""
    timesteps: list[PositiveInt] = Field(default_factory=lambda: [1, 2, 4, 8], min_length=1)
    variants: list[Literal["half", "zero", "signed"]] = Field(default_factory=lambda: ["half", "zero"])
    snn: Optional[str] = None
    table_steps: Optional[PositiveInt] = None


class ExpectSpec(_Strict):
    verdict: Optional[Union[Verdict, list[Verdict]]] = None     # a list: any of these
    exact: list[str] = Field(default_factory=list)
    max_unexplained: dict[str, NonNegativeInt] = Field(default_factory=dict)
    lags: Optional[Literal["expected"]] = None
    diagnoses: list[DiagnosisWant] = Field(default_factory=list)
    top_diagnosis: Optional[DiagnosisWant] = None
    unsupported: Union[list[str], dict[str, str]] = Field(default_factory=dict)
    min_accuracy: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(default_factory=dict)     # "variant:T" -> least accuracy (ann2snn)

    @field_validator("exact")
    @classmethod
    def _pairs(cls, keys):
        for k in keys:
            if "~" not in k:
                raise ValueError(f"{k!r} is not a pair of runs (write 'paibox:b~reference:b')")
        return keys


class PAIBoxSpec(_Strict):
    factory: str                       # FILE.py:FACTORY (relative to the case file): a user's own pb.Network as B
    input_scale: Optional[float] = Field(None, gt=0, allow_inf_nan=False)


class CaseSpec(_Strict):
    name: Optional[str] = Field(None, min_length=1, max_length=200)
    description: Optional[str] = None
    plugins: list[str] = Field(default_factory=list)
    model: ModelSpec = Field(default_factory=ModelSpec)
    conversion: Optional[ConversionSpec] = None
    paibox: Optional[PAIBoxSpec] = None
    ann2snn: Optional[Ann2SnnSpec] = None
    inputs: InputsSpec = Field(default_factory=InputsSpec)
    run: RunOptions = Field(default_factory=RunOptions)
    expect: ExpectSpec = Field(default_factory=ExpectSpec)


def json_schema() -> dict:
    """The JSON schema of a case file, generated from CaseSpec: docs/case.schema.json is this, written out by
    `python -m snncheck.case --schema` (editors validate TOML against it, e.g. with taplo or Even Better TOML)."""
    schema = CaseSpec.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "snncheck case file"
    return schema


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    path: Optional[Path]
    spec: CaseSpec

    @classmethod
    def load(cls, path) -> "Case":
        path = Path(path)
        require(path.is_file(), lambda: f"case file not found: {path}")
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{path}: not valid TOML ({exc})") from None
        except UnicodeDecodeError:
            raise InputError(f"{path}: not UTF-8 text") from None
        return cls.from_dict(raw, path)

    @classmethod
    def from_dict(cls, raw: dict, path: Optional[Path] = None) -> "Case":
        where = path or "case"
        try:
            spec = CaseSpec.model_validate(raw)
        except ValidationError as exc:
            err = exc.errors()[0]
            field = ".".join(str(p) for p in err["loc"])
            got = f" (got {err['input']!r:.80})" if err["type"] != "missing" else ""
            raise InputError(f"{where}: {field}: {err['msg']}{got}") from None
        case = cls(spec.name or (path.stem if path else "case"), path, spec)
        if spec.model.layers is None:
            case.model_spec()            # what a case may run is checked when it is read, before anything runs
        if spec.ann2snn is not None:
            case.checked_spec(spec.ann2snn.snn, "ann2snn.snn")
        if spec.paibox is not None:      # B's factory is code too
            case.checked_spec(spec.paibox.factory, "paibox.factory")
        for plugin in spec.plugins:      # plugin files are code too: inside the project, like model files
            require(plugin.endswith(".py"), lambda: f"{case.where}: plugins: {plugin!r} is not a .py file")
            case.checked_spec(f"{plugin}:plugin", "plugins")
        return case

    def resolve(self, p: str) -> Path:
        q = Path(p)
        return q if q.is_absolute() or self.path is None else self.path.parent / q

    def model_spec(self) -> str:
        """The model as a spec to build (see `checked_spec`)."""
        return self.checked_spec(self.spec.model.name, "model.name")

    def checked_spec(self, name: Optional[str], field: str) -> Optional[str]:
        """A spec a case may name: a built-in model (a zoo name, or a factory of a module shipped with snncheck),
        or `FILE.py:FACTORY` resolved against the case's folder and inside its project. Never any other
        `module:attr`: that could call anything importable (`os:system`) with the case's options."""
        from .frontends.models import BUILTIN_MODULES
        target, sep, attr = (name or "").rpartition(":")
        if not sep or target in BUILTIN_MODULES:
            return name
        require(target.endswith(".py") and attr.isidentifier(), lambda: (
            f"{self.where}: {field} {name!r}: a case names a built-in model or FILE.py:FACTORY (a file inside "
            "its project), not module:attr"))
        path = Path(os.path.realpath(self.resolve(target)))
        root = project_root(self.path)
        require(root is None or path.is_relative_to(root), lambda: (
            f"{self.where}: {field} {name!r} is outside the project ({root}); a case may only run model files "
            "inside it"))
        return f"{path}:{attr}"

    @property
    def where(self) -> str:
        return str(self.path or f"case {self.name}")

    def files(self) -> list:
        """Every file the case reads (itself, its model file, weights, inputs file): outputs never go over them."""
        model, out = self.spec.model, [self.path]
        for spec in (model.name if model.layers is None else None, self.spec.ann2snn and self.spec.ann2snn.snn,
                     self.spec.paibox and self.spec.paibox.factory):
            if spec and spec.rpartition(":")[0].endswith(".py"):
                out.append(self.resolve(spec.rpartition(":")[0]))
        if model.weights not in ("trained",) and not model.weights.startswith("seed:"):
            out.append(self.resolve(model.weights))
        out += [self.resolve(p) for p in self.spec.plugins]
        if self.spec.inputs.source.startswith("file:"):
            out.append(self.resolve(self.spec.inputs.source[5:]))
        return [p for p in out if p is not None]


PROJECT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", ".git", "pytest.ini", "tox.ini")


def project_root(case_path: Optional[Path]) -> Optional[Path]:
    """The project a case file belongs to: its nearest folder holding a project marker (pyproject.toml, .git...),
    else the case's own folder; None for a case that is not a file (the fuzzer's inline networks)."""
    if case_path is None:
        return None
    folder = Path(os.path.realpath(case_path)).parent
    return next((d for d in (folder, *folder.parents) if any((d / m).exists() for m in PROJECT_MARKERS)), folder)


# ----------------------------------------------------------------------------------------------- the plan
def build_plan(case: Case, samples: Optional[int] = None, timesteps: Optional[int] = None,
               runners: Optional[list] = None, timing: Optional[str] = None, split: Optional[str] = None,
               paibox_batch: Optional[int] = None, paibox_samples: Optional[int] = None,
               plugins: tuple = (), **plan_options) -> plans.Plan:
    """The plan a case describes, with overrides from the command line: `paibox_batch` samples per PAIBox
    simulation, PAIBox on `paibox_samples` samples spread evenly over the set, `plugins` besides the case's own;
    `plan_options` (chunk...) go to the Plan."""
    from .frontends import plugins as user_plugins
    user_plugins.load([case.resolve(p) for p in case.spec.plugins] + list(plugins or ()))
    spec = case.spec
    if spec.ann2snn is not None:
        return _ann2snn_plan(case, samples, runners, **plan_options)
    graph, model = build_float(case)
    inputs = build_inputs(case, graph.input_shape, samples, timesteps, split)
    if spec.model.calibrate is not None:
        require(model is not None, lambda: f"case {case.name}: calibrate needs a model module")
        graph, model = calibrate_thresholds(model, graph, inputs.chunk(), spec.model.calibrate, case.name)
    runs = runners or spec.run.runners
    options = {"paibox": {"timing": timing or spec.run.timing, "batch": paibox_batch}}
    if paibox_samples is not None:
        plan_options["subsets"] = {"paibox": _spread(len(inputs), paibox_samples)}
    if spec.paibox is not None:
        return _user_paibox_plan(case, graph, model, inputs, runs, options, plan_options)
    if spec.conversion is None:
        return plans.check(graph, inputs, runs, module=model, title=case.name, backend_options=options,
                           **plan_options)
    from . import convert
    conv = convert.convert(graph, spec.conversion.input_scale, spec.conversion.rule, spec.conversion.reset)
    int_graph = conv.graph
    if spec.conversion.mutation:
        from . import mutations
        int_graph = mutations.apply(int_graph, graph, dict(spec.conversion.mutation), conv)
    from .inputs import deployed_scale
    scale, note = deployed_scale(inputs, conv.input_scale)
    plan_options.setdefault("notes", {}).update(note)
    return plans.diff(Subject(Role.FLOAT, graph, module=model),
                      Subject(Role.DEPLOYED, int_graph, input_scale=scale), inputs,
                      runs or plans.BACKENDS, title=case.name, backend_options=options, **plan_options)


def _user_paibox_plan(case: Case, graph: Graph, model, inputs: Inputs, runs, options: dict,
                      plan_options: dict) -> plans.Plan:
    """A against a user's own PAIBox network ([paibox] factory), as `snncheck diff A --paibox` builds it."""
    from .frontends import paibox as user_paibox
    spec = case.spec.paibox
    require(case.spec.conversion is None, lambda: f"case {case.name}: [paibox] is B; it takes no [conversion]")
    deployed, notes = user_paibox.subject(case.checked_spec(spec.factory, "paibox.factory"), graph, inputs,
                                          spec.input_scale)
    plan_options = dict(plan_options, notes={**plan_options.get("notes", {}), **notes})
    return plans.diff(Subject(Role.FLOAT, graph, module=model), deployed, inputs, runs or plans.BACKENDS,
                      title=case.name, backend_options=options, **plan_options)


def _ann2snn_plan(case: Case, samples: Optional[int], runners: Optional[list], **plan_options) -> plans.Plan:
    """An ANN against its SNNs on the digits (snncheck.ann2snn); model files are found relative to the case."""
    from .ann2snn import build
    spec, a2s = case.spec, case.spec.ann2snn
    require(spec.inputs.source == "digits", lambda: f"case {case.name}: an ann2snn case runs on the digits")
    ann, user = build.load_models(case.model_spec(), case.resolve(spec.model.weights),
                                  case.checked_spec(a2s.snn, "ann2snn.snn"), max(a2s.timesteps))
    x, y = data.digits(spec.inputs.split)
    n = samples or spec.inputs.samples
    return build.build_plan(ann, x[:n], y[:n], a2s.timesteps, tuple(a2s.variants), user,
                            backends=runners or spec.run.runners or ("reference", "spikingjelly"),
                            table_steps=a2s.table_steps, title=case.name, source="digits", **plan_options)


def _spread(total: int, n: int) -> tuple:
    """n sample indices spread evenly over range(total)."""
    return tuple(np.unique(np.linspace(0, total - 1, min(n, total)).round().astype(int)).tolist())


def load_plan(path, overrides: tuple = ()) -> plans.Plan:
    """A case file's plan (for worker processes: picklable with functools.partial)."""
    return build_plan(Case.load(path), **dict(overrides))


def plan_loader(path, **overrides):
    loader = functools.partial(load_plan, str(path), tuple(sorted(overrides.items())))
    loader.key = (str(path), loader.args[1])
    return loader


def run(case: Case, **overrides):
    """Runs a case and returns its report."""
    from . import pipeline
    return pipeline.execute(build_plan(case, **overrides))


def build_float(case: Case):
    """(graph, TorchModel or None) for the case's model and weights; (graph, None) for an inline network."""
    model = case.spec.model
    if model.layers is not None:
        return graph_from_spec(model, case.name), None
    import torch
    from .checkpoint import load_into, load_state_dict
    from .frontends import models
    from .frontends.spikingjelly import import_module
    name = case.model_spec()
    factory = models.resolve_factory(name, modules=False)
    if model.weights.startswith("seed:"):
        torch.manual_seed(_seed(model.weights, case.name))
    module = models.call_factory(factory, name, **model.options)
    if model.weights == "trained":
        require(model.name == "digits_csnn", lambda: f"case {case.name}: only digits_csnn ships trained weights")
        load_into(module, load_state_dict(models.DIGITS_CHECKPOINT), models.DIGITS_CHECKPOINT)
    elif model.weights.startswith("seed:"):
        _randomise_batchnorm(module, _seed(model.weights, case.name))
    else:
        path = case.resolve(model.weights)
        load_into(module, load_state_dict(path), path)
    shape = tuple(model.input_shape or models.INPUT_SHAPES.get(model.name) or getattr(module, "input_shape", ()))
    require(shape, lambda: f"case {case.name}: give model.input_shape")
    return import_module(module.eval(), shape, name=case.name)


def _seed(weights: str, name: str) -> int:
    try:
        return int(weights.split(":", 1)[1])
    except ValueError:
        raise InputError(f"case {name}: model.weights {weights!r}: 'seed:N' takes an integer N") from None


def _randomise_batchnorm(module, seed: int) -> None:
    """Seeded BatchNorm statistics, so that folding is exercised with non-trivial values."""
    import torch
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=gen) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)


def calibrate_thresholds(model, graph: Graph, inputs: np.ndarray, quantile: float, name: str):
    """Threshold balancing, layer by layer in order: each spiking layer's threshold becomes the given quantile of
    its synaptic input X over the inputs, so that untrained weights still give every layer spikes. A soft-reset
    neuron's initial membrane keeps its fraction of the threshold (QCFS's theta/2). Returns the re-imported graph."""
    import torch
    from spikingjelly.activation_based import functional
    from .frontends.spikingjelly import import_module
    x = torch.from_numpy(np.ascontiguousarray(np.swapaxes(inputs, 0, 1), dtype=np.float32))
    for layer in graph.neurons:
        node, seen = model.neurons[layer], {}
        hook = node.register_forward_pre_hook(lambda m, args: seen.__setitem__("x", args[0].numpy().copy()))
        try:
            with torch.no_grad():
                functional.reset_net(model.module)
                model.forward_sequence(x)
        finally:
            hook.remove()
        old, new = float(node.v_threshold), max(float(np.quantile(seen["x"], quantile)), 1e-3)
        node.v_threshold = new
        if node.v_reset is None:
            node.set_reset_value("v", float(node._memories_rv["v"]) * new / old)
    functional.reset_net(model.module)
    return import_module(model.module, graph.input_shape, name=name)


def build_inputs(case: Case, input_shape, samples=None, timesteps=None, split=None) -> Inputs:
    """The case's inputs, in the float model's range (overrides from the command line win), encoded as the case
    says (once: every simulator receives the same spikes)."""
    from .inputs import encode
    spec = case.spec.inputs
    require(spec.source.startswith("file:") or (spec.frames, spec.frame_ms, spec.split_by) == (None, None, None),
            lambda: f"case {case.name}: inputs.frames/split_by/frame_ms integrate an events file "
                    "(source = \"file:events.npz\")")
    return encode(_source_inputs(case, input_shape, samples, timesteps, split), spec.encoding, spec.encoding_seed)


def _source_inputs(case: Case, input_shape, samples, timesteps, split) -> Inputs:
    spec = case.spec.inputs
    n, t, seed = samples or spec.samples, timesteps or spec.timesteps, spec.seed
    source, shape = spec.source, tuple(input_shape)
    if source == "digits":
        x, _ = data.digits(split or spec.split)
        x = x[:n] if shape == x.shape[1:] else data.resize(x[:n], shape)
        return Inputs.frames(x, t, source="digits", split=split or spec.split)
    if source == "random_spikes":
        return Inputs.sequences(data.random_spikes(n, t, shape, spec.rate, seed), source=source, seed=seed)
    if source == "events":
        require(len(shape) == 3 and shape[0] == 2, "event input needs 2 polarity channels")
        return Inputs.sequences(data.events(n, t, shape[1], spec.events, seed), source=source, seed=seed)
    if source.startswith("file:"):
        from .inputs import events, load
        framing = events.Framing.from_options(spec.frames, spec.split_by, spec.frame_ms)
        return load(case.resolve(source[5:]), shape, t, framing, n)
    if source == "inline":
        try:
            arr = np.asarray(spec.values or [], dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InputError(f"case {case.name}: inputs.values: numbers in nested lists expected ({exc})") from None
        require(arr.ndim == len(shape) + 2 and arr.shape[2:] == shape,
                lambda: f"case {case.name}: inline inputs have shape {arr.shape}, expected [N, T, {list(shape)}]")
        return Inputs.sequences(arr, source="inline")
    raise InputError(f"case {case.name}: unknown input source {source!r}")


# ----------------------------------------------------------------------------------------------- expectations
def check_expectations(case: Case, report) -> list:
    """The case's expectations that the report does not meet, as readable strings (empty: all met)."""
    exp = case.spec.expect
    failures = []
    if exp.verdict and report.verdict not in ([exp.verdict] if isinstance(exp.verdict, str) else exp.verdict):
        errors = ", ".join(f"{d.code} @ {d.layer}" for d in report.diagnoses if d.severity == "error")
        failures.append(f"verdict is {report.verdict}{f' ({errors})' if errors else ''}, expected {exp.verdict}")
    for key in exp.exact:
        pair = next((p for p in report.pairs if p.key == key), None)
        if pair is None:
            failures.append(f"pair {key} was not compared (pairs: {[p.key for p in report.pairs]})")
        elif not pair.exact:
            where = "; ".join(f"{lc.name}: {lc.mismatches} spikes, {lc.v_mismatches or 0} membranes differ"
                              for lc in pair.layers if not lc.exact)
            failures.append(f"{key} is not bit-exact ({where}); first spike divergence {pair.first_divergence}")
    for key, tol in exp.max_unexplained.items():
        pair = next((p for p in report.pairs if p.key == key), None)
        if pair is None or pair.unexplained > tol:
            failures.append(f"{key}: {None if pair is None else pair.unexplained} unexplained flips > {tol}")
    if exp.lags == "expected":
        bad = {f"{run}:{k}" for run, lags in report.lags.items() for k, v in lags.items() if v["anomaly"]}
        if bad or not report.lags:
            failures.append(f"lag anomalies at {sorted(bad)}" if bad else "no pipelined run to check lags on")
    for want in exp.diagnoses:
        if not any(want.matches(d) for d in report.diagnoses):
            failures.append(f"expected diagnosis {want} not found; got "
                            f"{[(d.code, d.layer, d.severity) for d in report.diagnoses]}")
    if exp.top_diagnosis:
        top = report.diagnoses[0] if report.diagnoses else None
        if top is None or not exp.top_diagnosis.matches(top):
            failures.append(f"top diagnosis is {None if top is None else (top.code, top.layer)}, "
                            f"expected {exp.top_diagnosis}")
    failures += _accuracy_failures(exp.min_accuracy, report.extras.get("ann2snn", {}).get("accuracy", {}))
    return failures + _unsupported_failures(exp.unsupported, report.extras.get("unsupported", {}))


def _accuracy_failures(least: dict, accuracy: dict) -> list:
    """least: {"half:4": 0.9, "ann:0": 0.95}; accuracy: extras.ann2snn.accuracy."""
    out = []
    for key, bound in least.items():
        run, _, steps = key.partition(":")
        got = accuracy.get(run) if run == "ann" else accuracy.get(run, {}).get(steps)
        if got is None or got < bound:
            out.append(f"accuracy of {key} is {got}, expected at least {bound}")
    return out


def _unsupported_failures(expected, refused: dict) -> list:
    """expected: [backend, ...] or {backend: text its refusal must contain}."""
    expected = dict.fromkeys(expected, "") if isinstance(expected, list) else dict(expected)
    out = [f"{kind} refused the network, which the case does not expect: {msg}"
           for kind, msg in refused.items() if kind not in expected]
    for kind, needle in expected.items():
        if kind not in refused:
            out.append(f"expected {kind} to refuse the network (unsupported), but it accepted it")
        elif needle.lower() not in refused[kind].lower():
            out.append(f"{kind} refused the network, but its message does not say {needle!r}: {refused[kind]}")
    return out


def unexpected_refusals(case: Case, plan: plans.Plan) -> list:
    """The plan's skipped runs that the case does not expect."""
    expected = set(case.spec.expect.unsupported)
    return [s for s in plan.skipped if s.run.backend not in expected]


# ----------------------------------------------------------------------------------------------- inline networks
# A case may carry its network inline (the fuzzer writes its shrunk counterexamples so): one table per node, `type`
# naming the primitive; `inputs = ["a", "b"]` for a node fed by other nodes than the one before it.
LAYER_TYPES = {cls.__name__: cls for cls in (P.Conv2d, P.Linear, P.Flatten, P.MaxPool2d, P.AvgPool2d, P.Add,
                                             P.Scale, P.IF, P.LIF, P.ParametricLIF, P.AdditiveLIF)}
_ARRAYS = ("weight", "bias", "leak")


def graph_from_spec(model: ModelSpec, name: str = "network") -> Graph:
    require(model.input_shape, lambda: f"case {name}: an inline network needs model.input_shape")
    nodes, edges, prev = {"input": P.Input(tuple(model.input_shape))}, [], "input"
    for i, spec in enumerate(model.layers):
        spec = dict(spec)
        kind, node = spec.pop("type", None), spec.pop("name", f"layer{i}")
        require(kind in LAYER_TYPES, lambda: f"case {name}: layer {i} has type {kind!r}; known: {', '.join(LAYER_TYPES)}")
        require(node not in nodes, lambda: f"case {name}: two layers are named {node!r}")
        sources = spec.pop("inputs", [prev])
        fields = {f.name for f in dataclasses.fields(LAYER_TYPES[kind])}
        unknown = sorted(set(spec) - fields)
        require(not unknown, lambda: f"case {name}: layer {node!r} ({kind}): unknown field(s) {unknown}")
        try:
            nodes[node] = LAYER_TYPES[kind](**{k: _field_value(k, v) for k, v in spec.items()})
        except (TypeError, ValueError) as exc:
            raise InputError(f"case {name}: layer {node!r} ({kind}): {exc}") from None
        edges += [(s, node) for s in sources]
        prev = node
    return Graph(nodes, tuple(edges), name=name)


def _field_value(key: str, value):
    if key in _ARRAYS and value is not None:
        arr = np.asarray(value)
        if arr.dtype.kind not in "biuf" or isinstance(value, bool):
            raise ValueError(f"{key} must be a number or nested lists of numbers, got {value!r:.60}")
        if isinstance(value, list):
            return arr.astype(np.int64 if is_integer_valued(arr) else np.float32)
    return tuple(value) if isinstance(value, list) else value


def graph_to_spec(graph: Graph) -> dict:
    """The inverse of graph_from_spec: {"input_shape", "layers"} with plain lists and numbers."""
    layers, prev = [], graph.input
    for n in graph.order:
        node = graph.nodes[n]
        if isinstance(node, P.Input):
            continue
        spec = {"type": node.kind, "name": n}
        if graph.inputs_of(n) != [prev]:
            spec["inputs"] = graph.inputs_of(n)
        for f in dataclasses.fields(node):
            value = getattr(node, f.name)
            if value is not None:
                spec[f.name] = _plain(value)
        layers.append(spec)
        prev = n
    return {"input_shape": [int(d) for d in graph.input_shape], "layers": layers}


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def to_toml(spec: dict, comment: str = "") -> str:
    """A case spec as TOML text (the standard library reads TOML but does not write it)."""
    lines = [f"# {line}".rstrip() for line in comment.splitlines()]
    _emit_table(spec, [], lines)
    return "\n".join(lines).strip() + "\n"


def _emit_table(table: dict, prefix: list, lines: list) -> None:
    nested = {k: v for k, v in table.items() if isinstance(v, dict) or _is_table_list(v)}
    for key, value in table.items():
        if key not in nested:
            lines.append(f"{key} = {_toml_value(value)}")
    for key, value in nested.items():
        path = ".".join(prefix + [key])
        for item in (value if isinstance(value, list) else [value]):
            lines += ["", f"[[{path}]]" if isinstance(value, list) else f"[{path}]"]
            _emit_table(item, prefix + [key], lines)


def _is_table_list(value) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _toml_value(value) -> str:
    import json
    value = _plain(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value) if np.isfinite(value) else ("nan" if value != value else ("inf" if value > 0 else "-inf"))
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    return "[" + ", ".join(_toml_value(v) for v in value) + "]"


if __name__ == "__main__":
    import json
    import sys
    if sys.argv[1:] != ["--schema"]:
        sys.exit("usage: python -m snncheck.case --schema")
    print(json.dumps(json_schema(), indent=2, sort_keys=True))
