"""A case: a network, its parameters, an optional conversion, inputs and expectations, declared in a TOML file.

    name = "csnn_digits_hard"
    [model]       name = "digits_csnn"  options = {reset = "hard"}  weights = "trained" | "seed:0" | "path.pth"
    [conversion]  rule = "max"  input_scale = 255  reset = "hard"   (omit the table for a float-only case)
    [inputs]      source = "digits" | "random_spikes" | "events" | "file:x.npy"   samples = 32  timesteps = 8  seed = 0
    [run]         runners = ["reference", "spikingjelly", "paibox"]  timing = "pipeline" | "flat"
    [expect]      verdict = "consistent"  exact = ["paibox:b~reference:b"]  diagnoses = [{code = "timing", layer = "conv_fc.6"}]

Paths in a case are relative to the case file.
"""
from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path
from typing import Optional

import numpy as np

from . import api, checkpoint, convert, data, ir, zoo
from .errors import InputError, require


@dataclasses.dataclass
class Case:
    name: str
    path: Optional[Path]
    spec: dict

    @classmethod
    def load(cls, path) -> "Case":
        path = Path(path)
        require(path.is_file(), f"case file not found: {path}")
        try:
            spec = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise InputError(f"{path}: not valid TOML ({exc})") from None
        return cls(spec.get("name", path.stem), path, spec)

    def section(self, key: str) -> dict:
        return dict(self.spec.get(key, {}))

    def _path(self, p: str) -> Path:
        q = Path(p)
        return q if q.is_absolute() or self.path is None else self.path.parent / q


def build_float(case: Case):
    """(module, float ir.Network) for the case's model and weights."""
    import torch
    model = case.section("model")
    name = model.get("name", "digits_csnn")
    options = model.get("options", {})
    weights = str(model.get("weights", "trained"))
    target, sep, attr = name.rpartition(":")
    if sep and target.endswith(".py"):
        name = f"{case._path(target)}:{attr}"      # a model file is found relative to the case file
    factory = checkpoint.resolve_factory(name)
    if weights.startswith("seed:"):
        torch.manual_seed(int(weights.split(":")[1]))
    module = factory(**options)
    if weights == "trained":
        require(name == "digits_csnn", f"case {case.name}: only digits_csnn ships trained weights")
        checkpoint.load_into(module, checkpoint.load_state_dict(zoo.DIGITS_CHECKPOINT), zoo.DIGITS_CHECKPOINT)
    elif weights.startswith("seed:"):
        _randomise_batchnorm(module, int(weights.split(":")[1]))
    else:
        path = case._path(weights)
        checkpoint.load_into(module, checkpoint.load_state_dict(path), path)
    shape = tuple(model.get("input_shape", zoo.INPUT_SHAPES.get(name, getattr(module, "input_shape", ()))))
    require(shape, f"case {case.name}: give model.input_shape")
    from .frontends.spikingjelly import from_module
    return module.eval(), from_module(module, shape, name=case.name)


def _randomise_batchnorm(module, seed: int) -> None:
    """Seeded BatchNorm statistics, so that folding is exercised with non-trivial values."""
    import torch
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            n = m.num_features
            m.running_mean.copy_(torch.rand(n, generator=gen) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)


def build_inputs(case: Case, input_shape) -> tuple:
    """(float inputs [N, T, ...], description) for the case."""
    spec = case.section("inputs")
    source = spec.get("source", "digits")
    n, t, seed = int(spec.get("samples", 32)), int(spec.get("timesteps", 8)), int(spec.get("seed", 0))
    if source == "digits":
        x, _ = data.digits(spec.get("split", "test"))
        x = x[:n] if tuple(input_shape) == x.shape[1:] else data.resize(x[:n], input_shape)
        arr = data.direct(x, t)
    elif source == "random_spikes":
        arr = data.random_spikes(n, t, input_shape, float(spec.get("rate", 0.2)), seed)
    elif source == "events":
        require(input_shape[0] == 2, "event input needs 2 polarity channels")
        arr = data.events(n, t, input_shape[1], int(spec.get("events", 400)), seed)
    elif source.startswith("file:"):
        arr = data.load_inputs(case._path(source[5:]), input_shape, t)
    else:
        raise InputError(f"case {case.name}: unknown input source {source!r}")
    return arr, {"source": source, "samples": int(arr.shape[0]), "timesteps": int(arr.shape[1]), "seed": seed}


def run(case: Case):
    """Runs a case: the float network, and the integer one if the case converts; returns the Report."""
    module, float_net = build_float(case)
    inputs, info = build_inputs(case, float_net.input_shape)
    runs = case.section("run")
    conv_spec = case.section("conversion")
    # PAIBox runs integer networks only: a float-only case runs the other two unless it asks for PAIBox
    runners = runs.get("runners", list(api.RUNNERS) if conv_spec else ["reference", "spikingjelly"])
    timing = runs.get("timing", "pipeline")
    if not conv_spec:
        return api.check(float_net, inputs, runners, module=module, timing=timing, title=case.name, inputs_info=info)
    conv = convert.convert(float_net, float(conv_spec.get("input_scale", 1.0)), conv_spec.get("rule", "max"),
                           conv_spec.get("reset"))
    int_net = conv.network
    if conv_spec.get("mutation"):
        from . import mutations
        int_net = mutations.apply(int_net, float_net, dict(conv_spec["mutation"]), conv)
    return api.diff(module, float_net, int_net, inputs, conv.input_scale, runners=runners, timing=timing,
                    title=case.name, inputs_info=info)


def check_expectations(case: Case, report) -> list:
    """The case's expectations that the report does not meet, as readable strings (empty: all met)."""
    exp = case.section("expect")
    failures = []
    if "verdict" in exp and report.verdict != exp["verdict"]:
        failures.append(f"verdict is {report.verdict}, expected {exp['verdict']}")
    for key in exp.get("exact", []):
        pair = next((p for p in report.pairs if p.key == key), None)
        if pair is None:
            failures.append(f"pair {key} was not compared (pairs: {[p.key for p in report.pairs]})")
        elif not pair.exact:
            fd = pair.first_divergence
            failures.append(f"{key} is not bit-exact: first divergence {fd}")
    for key, tol in exp.get("max_unexplained", {}).items():
        pair = next((p for p in report.pairs if p.key == key), None)
        if pair is None or pair.unexplained > tol:
            failures.append(f"{key}: {None if pair is None else pair.unexplained} unexplained flips > {tol}")
    if exp.get("lags") == "expected":
        bad = {k: v for k, v in report.lags.items() if v["anomaly"]}
        if bad:
            failures.append(f"lag anomalies at {sorted(bad)}")
    for want in exp.get("diagnoses", []):
        found = [d for d in report.diagnoses if d.code == want["code"]
                 and ("layer" not in want or d.layer == want["layer"])]
        if not found:
            failures.append(f"expected diagnosis {want} not found; got "
                            f"{[(d.code, d.layer, d.severity) for d in report.diagnoses]}")
    if exp.get("top_diagnosis"):
        want = exp["top_diagnosis"]
        from .diagnose import rank
        top = rank(report.diagnoses)[0] if report.diagnoses else None
        if top is None or top.code != want["code"] or ("layer" in want and top.layer != want["layer"]):
            failures.append(f"top diagnosis is {None if top is None else (top.code, top.layer)}, expected {want}")
    return failures
