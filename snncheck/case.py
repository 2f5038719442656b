"""A case: a network, its parameters, an optional conversion, inputs and expectations, declared in a TOML file.

    name = "csnn_digits_hard"
    [model]       name = "digits_csnn"  options = {reset = "hard"}  weights = "trained" | "seed:0" | "path.pth"
                  calibrate = 0.9   (each spiking layer's threshold := this quantile of its input on the case's inputs)
                  or an inline network: input_shape = [...]  [[model.layers]] type = "Conv2d" weight = [...] ...
    [conversion]  rule = "max"  input_scale = 255  reset = "hard"   (omit the table for a float-only case)
    [inputs]      source = "digits" | "random_spikes" | "events" | "file:x.npy" | "inline"   samples = 32  timesteps = 8
                  seed = 0   (inline: values = [N][T][...])
    [run]         runners = ["reference", "spikingjelly", "paibox"]  timing = "pipeline" | "flat"  marks = ["slow"]
                  xfail = "why" (a known open bug: pytest reports XPASS once it is fixed)
    [expect]      verdict = "consistent"  exact = ["paibox:b~reference:b"]  diagnoses = [{code = "timing", layer = "conv_fc.6"}]
                  (code may be a list: any of them)  unsupported = {paibox = "initial membrane"}

A runner that refuses the network (PAIBox cannot express everything) is left out of the run and reported as an
`unsupported` diagnosis (severity warning); the case fails unless it lists that runner under expect.unsupported.

Paths in a case are relative to the case file.
"""
from __future__ import annotations

import dataclasses
import re
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


def build(case: Case) -> tuple:
    """(module, float network, inputs, inputs description): the case's model, its thresholds calibrated on the
    case's inputs if it asks (seeded weights need it for every layer to fire)."""
    module, net = build_float(case)
    inputs, info = build_inputs(case, net.input_shape)
    quantile = case.section("model").get("calibrate")
    if quantile is not None:
        require(module is not None and 0 < float(quantile) < 1,
                f"case {case.name}: calibrate needs a model module and a quantile in (0, 1), got {quantile!r}")
        net = calibrate_thresholds(module, net, inputs, float(quantile))
    return module, net, inputs, info


def build_float(case: Case):
    """(module, float ir.Network) for the case's model and weights; (None, network) for an inline network."""
    model = case.section("model")
    if "layers" in model:
        return None, network_from_spec(model, case.name)
    import torch
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


def calibrate_thresholds(module, net: ir.Network, inputs: np.ndarray, quantile: float) -> ir.Network:
    """Threshold balancing, layer by layer in order: each spiking layer's threshold becomes the given quantile of
    its synaptic input X over the inputs, so that untrained weights still give every layer spikes. A soft-reset
    neuron's initial membrane keeps its fraction of the threshold (QCFS's theta/2). Returns the re-imported net."""
    import torch
    from spikingjelly.activation_based import functional
    from .frontends.spikingjelly import from_module
    functional.set_step_mode(module, "m")
    by_path = dict(module.named_modules())
    x = torch.from_numpy(np.ascontiguousarray(np.swapaxes(inputs, 0, 1), dtype=np.float32))
    for layer in net.neurons:
        node, seen = by_path[layer.name], {}
        hook = node.register_forward_pre_hook(lambda m, args: seen.__setitem__("x", args[0].numpy().copy()))
        try:
            with torch.no_grad():
                functional.reset_net(module)
                module(x)
        finally:
            hook.remove()
        old, new = float(node.v_threshold), max(float(np.quantile(seen["x"], quantile)), 1e-3)
        node.v_threshold = new
        if node.v_reset is None:
            node.set_reset_value("v", float(node._memories_rv["v"]) * new / old)
    functional.reset_net(module)
    return from_module(module, net.input_shape, name=net.name)


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
    elif source == "inline":
        arr = np.asarray(spec.get("values", []), dtype=np.float32)
        require(arr.ndim == len(input_shape) + 2 and arr.shape[2:] == tuple(input_shape),
                f"case {case.name}: inline inputs have shape {arr.shape}, expected [N, T, {list(input_shape)}]")
    else:
        raise InputError(f"case {case.name}: unknown input source {source!r}")
    return arr, {"source": source, "samples": int(arr.shape[0]), "timesteps": int(arr.shape[1]), "seed": seed}


def run(case: Case):
    """Runs a case: the float network, and the integer one if the case converts; returns the Report."""
    module, float_net, inputs, info = build(case)
    runs = case.section("run")
    conv_spec = case.section("conversion")
    # PAIBox runs integer networks only: a float-only case runs the other two unless it asks for PAIBox
    integer = bool(conv_spec) or ir.fold_batchnorm(float_net).is_integer
    runners = runs.get("runners", list(api.RUNNERS) if integer else ["reference", "spikingjelly"])
    timing = runs.get("timing", "pipeline")
    if not conv_spec:
        runners, refused = _accepting(float_net, runners, timing)
        report = api.check(float_net, inputs, runners, module=module, timing=timing, title=case.name,
                           inputs_info=info)
        return _report_refusals(report, refused)
    conv = convert.convert(float_net, float(conv_spec.get("input_scale", 1.0)), conv_spec.get("rule", "max"),
                           conv_spec.get("reset"))
    int_net = conv.network
    if conv_spec.get("mutation"):
        from . import mutations
        int_net = mutations.apply(int_net, float_net, dict(conv_spec["mutation"]), conv)
    runners, refused = _accepting(int_net, runners, timing)
    report = api.diff(module, float_net, int_net, inputs, conv.input_scale, runners=runners, timing=timing,
                      title=case.name, inputs_info=info)
    return _report_refusals(report, refused)


def _accepting(net: ir.Network, runners: list, timing: str) -> tuple:
    """(runners that accept the network, {runner: why it refuses}): PAIBox refuses what it cannot express."""
    folded, refused = ir.fold_batchnorm(net), {}
    for kind in runners:
        try:
            api.make_runner(kind, folded, "b", timing=timing)
        except InputError as exc:
            refused[kind] = str(exc)
    kept = [r for r in runners if r not in refused]
    require(kept, f"no runner accepts {net.name}: " + "; ".join(f"{k}: {m}" for k, m in refused.items()))
    return kept, refused


def _report_refusals(report, refused: dict):
    from .diagnose import Diagnosis
    for kind, message in refused.items():
        layer = re.search(r"layer '([^']+)'", message)
        report.diagnoses.append(Diagnosis(
            "unsupported", layer and layer.group(1), "warning",
            f"{kind} cannot run this network, so it was left out: {message}", evidence={"runner": kind},
            fix=f"change the construct {kind} cannot express, or compare without {kind}"))
    report.extras["unsupported"] = dict(refused)
    return report


def check_expectations(case: Case, report) -> list:
    """The case's expectations that the report does not meet, as readable strings (empty: all met)."""
    exp = case.section("expect")
    failures = []
    if "verdict" in exp and report.verdict != exp["verdict"]:
        errors = ", ".join(f"{d.code} @ {d.layer}" for d in report.diagnoses if d.severity == "error")
        failures.append(f"verdict is {report.verdict}{f' ({errors})' if errors else ''}, expected {exp['verdict']}")
    for key in exp.get("exact", []):
        pair = next((p for p in report.pairs if p.key == key), None)
        if pair is None:
            failures.append(f"pair {key} was not compared (pairs: {[p.key for p in report.pairs]})")
        elif not pair.exact:
            where = "; ".join(f"{lc.name}: {lc.mismatches} spikes, {lc.v_mismatches or 0} membranes differ"
                              for lc in pair.layers if not lc.exact)
            failures.append(f"{key} is not bit-exact ({where}); first spike divergence {pair.first_divergence}")
    for key, tol in exp.get("max_unexplained", {}).items():
        pair = next((p for p in report.pairs if p.key == key), None)
        if pair is None or pair.unexplained > tol:
            failures.append(f"{key}: {None if pair is None else pair.unexplained} unexplained flips > {tol}")
    if exp.get("lags") == "expected":
        bad = {k: v for k, v in report.lags.items() if v["anomaly"]}
        if bad:
            failures.append(f"lag anomalies at {sorted(bad)}")
    for want in exp.get("diagnoses", []):
        if not any(_matches(d, want) for d in report.diagnoses):
            failures.append(f"expected diagnosis {want} not found; got "
                            f"{[(d.code, d.layer, d.severity) for d in report.diagnoses]}")
    if exp.get("top_diagnosis"):
        want = exp["top_diagnosis"]
        from .diagnose import rank
        top = rank(report.diagnoses)[0] if report.diagnoses else None
        if top is None or not _matches(top, want):
            failures.append(f"top diagnosis is {None if top is None else (top.code, top.layer)}, expected {want}")
    failures += _unsupported_failures(exp.get("unsupported", {}), report.extras.get("unsupported", {}))
    return failures


def _matches(diagnosis, want: dict) -> bool:
    codes = [want["code"]] if isinstance(want["code"], str) else list(want["code"])
    return diagnosis.code in codes and ("layer" not in want or diagnosis.layer == want["layer"])


def _unsupported_failures(expected, refused: dict) -> list:
    """expected: [runner, ...] or {runner: text its refusal must contain}."""
    expected = dict.fromkeys(expected, "") if isinstance(expected, list) else dict(expected)
    out = [f"{kind} refused the network, which the case does not expect: {msg}"
           for kind, msg in refused.items() if kind not in expected]
    for kind, needle in expected.items():
        if kind not in refused:
            out.append(f"expected {kind} to refuse the network (unsupported), but it accepted it")
        elif needle.lower() not in refused[kind].lower():
            out.append(f"{kind} refused the network, but its message does not say {needle!r}: {refused[kind]}")
    return out


# ------------------------------------------------------------------------------------------------- inline networks
# A case may carry its network inline (the fuzzer writes its shrunk counterexamples so): one table per layer,
# `type` naming the snncheck.ir primitive; neurons say `reset = "hard"|"soft"` (TOML has no null).
_LAYER_TYPES = {cls.__name__: cls for cls in (ir.Conv2d, ir.Linear, ir.Flatten, ir.MaxPool2d, ir.AvgPool2d,
                                              ir.IF, ir.LIF, ir.AdditiveLIF)}
_ARRAYS = ("weight", "bias", "leak")


def network_from_spec(model: dict, name: str = "network") -> ir.Network:
    require("input_shape" in model, f"case {name}: an inline network needs model.input_shape")
    layers = []
    for i, spec in enumerate(model["layers"]):
        spec = dict(spec)
        kind = spec.pop("type", None)
        require(kind in _LAYER_TYPES, f"case {name}: layer {i} has type {kind!r}; known: {', '.join(_LAYER_TYPES)}")
        if issubclass(_LAYER_TYPES[kind], ir.Neuron):
            reset = spec.pop("reset", "hard")
            require(reset in ("hard", "soft"), f"case {name}: layer {i}: reset must be 'hard' or 'soft'")
            spec["v_reset"] = None if reset == "soft" else spec.get("v_reset", 0)
        for key, value in spec.items():
            if key in _ARRAYS and isinstance(value, list):
                arr = np.asarray(value)
                spec[key] = arr.astype(np.int64 if _integral(arr) else np.float32)
            elif isinstance(value, list):
                spec[key] = tuple(value)
        try:
            layers.append(_LAYER_TYPES[kind](**spec))
        except TypeError as exc:
            raise InputError(f"case {name}: layer {i} ({kind}): {exc}") from None
    return ir.Network(layers, tuple(model["input_shape"]), name=name)


def network_to_spec(net: ir.Network) -> dict:
    """The inverse of network_from_spec: {"input_shape", "layers"} with plain lists and numbers."""
    layers = []
    for layer in net.layers:
        spec = {"type": type(layer).__name__}
        for f in dataclasses.fields(layer):
            value = getattr(layer, f.name)
            if f.name == "v_reset":
                spec["reset"] = "soft" if value is None else "hard"
            if value is None:
                continue
            spec[f.name] = _plain(value)
        layers.append(spec)
    return {"input_shape": [int(d) for d in net.input_shape], "layers": layers}


def _integral(arr: np.ndarray) -> bool:
    return arr.dtype.kind in "iub" or bool(np.all(arr == np.round(arr)))


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
