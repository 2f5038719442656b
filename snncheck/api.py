"""The Python API: run networks in several simulators, align, compare, diagnose. The CLI is a thin layer on this.

    from snncheck import api
    runs = api.run_network(int_net, inputs, tag="b")          # {"reference:b": ..., "paibox:b": ..., ...}
    report = api.check(int_net, inputs)                       # one network, every runner, every pair
"""
from __future__ import annotations

from typing import Iterable, Optional

import numpy as np

from . import ir
from .align import align
from .compare import compare
from .diagnose import runs as run_diagnoses
from .errors import InputError
from .report import Report

RUNNERS = ("reference", "spikingjelly", "paibox")


def make_runner(kind: str, network: ir.Network, tag: str, module=None, timing: str = "pipeline",
                progress: bool = False, record_v: bool = True, factories: Optional[dict] = None,
                options: Optional[dict] = None):
    """factories: {kind: callable(network, label) -> Runner} replacing a built-in runner (e.g. a user's own
    PAIBox network, snncheck.runners.paibox_user). options: more keyword arguments for the runner, e.g.
    {"batch": 32, "workers": 2} for PAIBox (samples per simulation, worker processes)."""
    options = options or {}
    label = f"{kind}:{tag}"
    if factories and kind in factories:
        return factories[kind](network, label)
    if kind == "reference":
        from .runners.reference import ReferenceRunner
        return ReferenceRunner(network, label, record_v=record_v, **options)
    if kind == "spikingjelly":
        from .runners.spikingjelly import SpikingJellyRunner
        return SpikingJellyRunner(network, label, module=module, record_v=record_v, **options)
    if kind == "paibox":
        from .runners.paibox import PAIBoxRunner
        return PAIBoxRunner(network, label, timing=timing, record_v=record_v, progress=progress, **options)
    raise InputError(f"unknown runner {kind!r}; known: {', '.join(RUNNERS)}")


def run_network(network: ir.Network, inputs: np.ndarray, runners: Iterable[str] = RUNNERS, tag: str = "b",
                module=None, timing: str = "pipeline", progress: bool = False,
                factories: Optional[dict] = None, options: Optional[dict] = None) -> dict:
    """Runs one network in each runner; pipelined runs come back aligned to the reference (lags in meta).

    `module`: the user's own SpikingJelly module for the spikingjelly runner (e.g. BatchNorm unfolded);
    the other runners get the network with BatchNorm folded. `options`: {kind: runner keyword arguments}."""
    folded = ir.fold_batchnorm(network)
    runners = list(runners)
    if "paibox" in runners and "reference" not in runners:
        runners.insert(0, "reference")       # alignment needs the same-step reference
    results = {}
    for kind in runners:
        net = network if (kind == "spikingjelly" and module is not None) else folded
        runner = make_runner(kind, net, tag, module=module if kind == "spikingjelly" else None,
                             timing=timing, progress=progress, factories=factories,
                             options=(options or {}).get(kind))
        results[runner.label] = runner.run(inputs)
    ref = results.get(f"reference:{tag}")
    return {label: align(res, ref) if res.meta.get("raw") else res for label, res in results.items()}


def pairs_for(labels: list) -> list:
    """Every runner against the reference of the same network, then A against B (float against integer)."""
    out = []
    for label in labels:
        kind, tag = label.split(":")
        if kind != "reference" and f"reference:{tag}" in labels:
            out.append((label, f"reference:{tag}"))
    if "spikingjelly:a" in labels and "reference:b" in labels:
        out.append(("spikingjelly:a", "reference:b"))
    return out


def lags_of(results: dict) -> dict:
    for res in results.values():
        if "lags" in res.meta:
            return res.meta["lags"]
    return {}


def check(network: ir.Network, inputs: np.ndarray, runners: Iterable[str] = RUNNERS, module=None,
          timing: str = "pipeline", title: Optional[str] = None, inputs_info: Optional[dict] = None,
          progress: bool = False) -> Report:
    """One network in several simulators: every runner against the reference, the lags, the diagnoses."""
    tag = "b" if ir.fold_batchnorm(network).is_integer else "a"
    results = run_network(network, inputs, runners, tag, module, timing, progress)
    return report_from_runs(results, title or network.name, inputs_info or {}, networks={tag: summary(network)})


def report_from_runs(results: dict, title: str, inputs_info: dict, networks: dict,
                     pairs: Optional[list] = None, compared: Optional[list] = None) -> Report:
    """`compared`: the PairComparisons already made (snncheck.stream compares chunk by chunk); `results` then
    only need their layer names and meta."""
    pairs = compared if compared is not None else \
        [compare(results[a], results[b]) for a, b in (pairs or pairs_for(list(results)))]
    lags = lags_of(results)
    diagnoses = run_diagnoses.timing(lags)
    late = {d.layer for d in diagnoses}
    exact_tags = {tag for tag, info in networks.items() if info.get("integer")}
    for p in pairs:
        same_net = p.a.split(":")[1] == p.b.split(":")[1]
        if same_net:
            tag = p.a.split(":")[1]
            diagnoses += run_diagnoses.disagreement(p, exact_required=tag in exact_tags,
                                                     skip_layers=_downstream(late, results[p.a].names))
    first = next(iter(results.values()))
    runs = {label: {k: v for k, v in res.meta.items() if k not in ("lags",)} for label, res in results.items()}
    return Report(title=title, layers=first.names, pairs=pairs, diagnoses=diagnoses, lags=lags, runs=runs,
                  inputs=inputs_info, networks=networks)


def summary(network: ir.Network) -> dict:
    folded = ir.fold_batchnorm(network)
    return {"name": network.name, "integer": folded.is_integer, "input_shape": list(network.input_shape),
            "layers": [f"{l.name}:{type(l).__name__}" for l in network.layers],
            "spiking_layers": [n.name for n in network.neurons],
            "expected_lags": ir.expected_lags(folded)}


def _downstream(layers: set, order: list) -> set:
    """Layers at or after the first of `layers`: a timing fault explains every mismatch from there on."""
    if not layers:
        return set()
    first = min(order.index(l) for l in layers)
    return set(order[first:])


def deployed_inputs(inputs: np.ndarray, input_scale: float) -> np.ndarray:
    """What the integer network receives: round(x * input_scale)."""
    return np.rint(np.asarray(inputs, np.float64) * input_scale)


def diff(module, float_net: ir.Network, int_net: ir.Network, inputs: np.ndarray, input_scale: float,
         runners: Iterable[str] = RUNNERS, timing: str = "pipeline", title: str = "diff",
         inputs_info: Optional[dict] = None, progress: bool = False, factories: Optional[dict] = None,
         keep_runs: bool = True, diagnose: bool = True) -> Report:
    """A float network (A) and its deployed integer version (B) on the same inputs.

    A runs in SpikingJelly (the user's module) and the reference; B in every runner. Pairs: each runner against
    its reference, and A (SpikingJelly) against B (reference). `factories` replaces B's runners (see make_runner);
    `keep_runs` keeps the aligned runs and both networks in report.figures for the HTML figures; `diagnose` adds
    the static diagnosis of B's parameters against A's and the dynamic one of the runs (see diagnose_conversion)."""
    runners = list(runners)
    results = run_network(float_net, inputs, [r for r in ("spikingjelly", "reference") if r in runners] or
                          ["reference"], "a", module, progress=progress)
    results.update(run_network(int_net, deployed_inputs(inputs, input_scale), runners, "b", timing=timing,
                               progress=progress, factories=factories))
    networks = {"a": summary(float_net), "b": summary(int_net)}
    report = report_from_runs(results, title, dict(inputs_info or {}, input_scale=input_scale), networks)
    if diagnose:
        diagnose_conversion(report, float_net, int_net, results, inputs, input_scale)
    if keep_runs:
        report.figures.update(runs=results, networks={"a": ir.fold_batchnorm(float_net), "b": int_net})
    return report


def diagnose_conversion(report: Report, float_net: ir.Network, int_net: ir.Network, results: dict,
                        inputs: np.ndarray, input_scale: float) -> Report:
    """Adds to a diff report: per-layer weight statistics (report.weights), the static diagnoses first (they name
    the parameter), then the dynamic ones that no static finding explains, the isolated per-layer mode
    (report.extras["isolated"]), and the A~B membrane differences in A's units (B's potentials divided by the
    layer's scale k = s_in * s_w; raw integer-against-float differences mean nothing)."""
    from .diagnose import dynamic, static
    stats, found = static.analyse(float_net, int_net, input_scale)
    report.weights.update(stats)
    extras, more = dynamic.analyse(float_net, int_net, results, inputs, input_scale,
                                   {name: st["scale"] for name, st in stats.items()})
    report.extras.update(extras)
    report.diagnoses = found + report.diagnoses + dynamic.merge(found, more, report.layers)
    scales = {name: st["expected_scale"] for name, st in stats.items()}
    for p in report.pairs:
        if p.a.endswith(":a") and p.b.endswith(":b"):
            scaled = dynamic.scaled_membrane_diff(results[p.a], results[p.b], scales)
            for lc in p.layers:
                lc.v_max_abs_diff, lc.v_mismatches = scaled.get(lc.name), None
    report.extras["membrane_units"] = {"A~B pairs": "A's units: v_B / k, k = input scale x fitted weight scale",
                                       "k": scales}
    return report
