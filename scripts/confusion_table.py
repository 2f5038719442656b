"""The confusion table of the conversion diagnosis: every bug class of `snncheck.mutations.CATALOG` planted in a
correct conversion of several architectures, and the top diagnosis the pipeline names (code and layer); beside it,
correct conversions under every conversion rule and reset mode, which must raise no error.

    .venv/bin/python scripts/confusion_table.py              # writes docs/confusion.md
    .venv/bin/python scripts/confusion_table.py --quick      # two architectures, prints only

Architectures: tests/convert_nets.py (the trained digits CSNN, an AlexNet-style stack with biases and soft
reset, a 28x28 CSNN with BatchNorm), tests/helpers.py's residual graphs (spiking_resnet- and SEW-style) made float,
and SpikingJelly 2.0's own example models (examples.conv_fashion_mnist.CSNN,
model.parametric_lif_net MNISTNet, NMNISTNet and CIFAR10Net built with IFNode), narrowed to 8 channels and with
thresholds balanced on resized digits so that every layer fires. Runs: the reference backend, as the pipeline
runs `snncheck diff --runners reference`.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import helpers  # noqa: E402
from convert_nets import balance_thresholds, digits_inputs, model  # noqa: E402

from snncheck import convert, mutations, pipeline, plan  # noqa: E402
from snncheck.diagnose import rank  # noqa: E402
from snncheck.graph import primitives as P  # noqa: E402

RESETS = ("hard", "soft")
RULES = ("seed", "max", "percentile", "search")      # snncheck's own conversion rules (tests register others)
SAMPLES, CALIBRATION = 16, 32


@dataclass(frozen=True)
class Arch:
    name: str
    build: Callable          # (reset) -> (float graph, inputs [N, T, ...], calibration inputs)
    note: str = ""


def _tests_arch(name: str) -> Callable:
    def build(reset):
        graph, x, cal = model(name, reset)
        return graph, x[:SAMPLES], cal
    return build


def _residual(make: Callable) -> Callable:
    """A tests/helpers.py residual graph (integer) made float: weights and biases over 20 plus noise, identity
    shortcuts of weight 1, thresholds balanced on digits."""
    def build(reset):
        graph = floated(make(reset=reset))
        cal = digits_inputs(CALIBRATION, shape=graph.input_shape, split="train")
        return balance_thresholds(graph, cal), digits_inputs(SAMPLES, shape=graph.input_shape), cal
    return build


def floated(graph, c: float = 20.0, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = {}
    for n, p in graph.nodes.items():
        if isinstance(p, (P.Conv2d, P.Linear)):
            w = np.asarray(p.weight, np.float64) / c + rng.normal(0, 0.01, np.shape(p.weight))
            out[n] = dataclasses.replace(p, weight=w.astype(np.float32), bias=None if p.bias is None else
                                         (np.asarray(p.bias, np.float64) / c).astype(np.float32))
        elif isinstance(p, P.Scale):
            out[n] = P.Scale(1.0)
        elif P.is_neuron(p):
            out[n] = dataclasses.replace(p, threshold=float(p.threshold) / c, v_reset=0.0)
    return graph.replace(out)


def _sj(factory: Callable, shape: tuple) -> Callable:
    """A SpikingJelly model, imported as snncheck imports a user's module, thresholds balanced on digits."""
    def build(reset):
        import torch
        from snncheck import api
        torch.manual_seed(0)
        graph, _ = api.import_module(factory(), shape, name=factory.__name__)
        graph = trained_like_batchnorm(with_reset(graph, reset))
        cal = digits_inputs(CALIBRATION, shape=shape, split="train")
        return balance_thresholds(graph, cal), digits_inputs(SAMPLES, shape=shape), cal
    return build


def fashion_csnn():
    from snncheck.frontends.models import import_sj
    return import_sj("examples.conv_fashion_mnist").CSNN(T=4, channels=8)


def _plif(cls: str) -> Callable:
    def factory():
        from spikingjelly.activation_based import neuron
        from snncheck.frontends.models import import_sj
        net = getattr(import_sj("model.parametric_lif_net"), cls)(channels=8, spiking_neuron=neuron.IFNode)
        return net
    factory.__name__ = f"plif_{cls}"
    return factory


VOTING = "as shipped, with its VotingLayer head (a readout)"
ARCHS = [
    Arch("digits", _tests_arch("digits"), "trained, BatchNorm, no bias"),
    Arch("alexnet", _tests_arch("alexnet"), "biases on every layer; planted bugs measured with soft reset too"),
    Arch("csnn28", _tests_arch("csnn28"), "BatchNorm, 28x28"),
    Arch("resnet", _residual(helpers.resnet_graph), "tests/helpers.py: identity and 1x1 conv shortcuts into merges"),
    Arch("sew", _residual(helpers.sew_graph), "tests/helpers.py: SEW adds of spikes, six synapses into one merge"),
    Arch("sj_fashion_csnn", _sj(fashion_csnn, (1, 28, 28)), "SpikingJelly examples.conv_fashion_mnist.CSNN"),
    Arch("sj_plif_mnist", _sj(_plif("MNISTNet"), (1, 28, 28)), "parametric_lif_net.MNISTNet, IFNode; " + VOTING),
    Arch("sj_plif_nmnist", _sj(_plif("NMNISTNet"), (2, 34, 34)), "parametric_lif_net.NMNISTNet, IFNode; " + VOTING),
    Arch("sj_plif_cifar10", _sj(_plif("CIFAR10Net"), (3, 32, 32)), "parametric_lif_net.CIFAR10Net, IFNode; " + VOTING),
]
# the bug classes measured on the soft-reset build of an architecture too (biases and soft reset)
SOFT_TOO = ("alexnet",)


def trained_like_batchnorm(graph, seed: int = 0):
    """BatchNorm statistics spread out as training leaves them (a fresh module's are the identity: folding it
    would change nothing, and the unfolded-BatchNorm bug would be no bug)."""
    rng = np.random.default_rng(seed)
    out = {}
    for n in graph.of_type(P.BatchNorm):
        c = np.shape(graph.nodes[n].mean)[0]
        out[n] = P.BatchNorm(rng.normal(0, 0.1, c).astype(np.float32), (rng.random(c) * 1.5 + 0.25).astype(np.float32),
                             (rng.random(c) + 0.5).astype(np.float32), rng.normal(0, 0.1, c).astype(np.float32))
    return graph.replace(out)


def with_reset(graph, reset: str):
    return graph.replace({n: P.IF(graph.nodes[n].threshold, reset=reset, v_reset=0.0) for n in graph.neurons
                          if isinstance(graph.nodes[n], P.IF)})


# --------------------------------------------------------------------------------------------- measuring
@dataclass(frozen=True)
class Outcome:
    arch: str
    reset: str
    bug: str                  # a catalog name, or "correct:<rule>"
    expected: tuple           # (code, layer), or ("", "") for a correct conversion
    found: tuple              # the top diagnosis (code, layer, severity), or ("", "", "") when none
    verdict: str
    errors: int


def report_of(net, b_graph, inputs, input_scale, backend_options=None):
    a = plan.Subject(plan.Role.FLOAT, net)
    b = plan.Subject(plan.Role.DEPLOYED, b_graph, input_scale)
    return pipeline.execute(plan.diff(a, b, plan.Inputs.sequences(inputs), backends=("reference",),
                                      backend_options=backend_options))


def _top(report) -> tuple:
    ranked = rank(report.diagnoses)
    return (ranked[0].code, ranked[0].layer, ranked[0].severity) if ranked else ("", "", "")


def bugs(arch: Arch, reset: str, net, x, cal, input_scale: float = 255.0) -> list:
    conv = convert.convert(net, input_scale, "max")
    out = []
    for name in mutations.applicable(conv.graph, net, conv):
        bug = mutations.CATALOG[name]
        if bug.inject is None and not bug.inputs:
            continue              # not a network change (timing: PAIBox's build), measured in tests
        scale = bug.inputs.get("input_scale", input_scale) if bug.inputs else input_scale
        c = conv if scale == input_scale else convert.convert(net, scale, "max")
        where = mutations.layers(c.graph, net, c, name)
        for layer in dict.fromkeys((where[0], where[-1])):      # the first and the deepest layer it applies to
            broken = mutations.apply(c.graph, net, {"name": name, "layer": layer}, c) if bug.inject else c.graph
            report = report_of(net, broken, x, scale)
            out.append(Outcome(arch.name, reset, name, (bug.code, layer), _top(report), report.verdict,
                               sum(d.severity == "error" for d in report.diagnoses)))
    return out


def correct(arch: Arch, reset: str, net, x, cal, input_scale: float = 255.0) -> list:
    out = []
    for rule in RULES:
        conv = convert.convert(net, input_scale, rule, calibration=cal)
        report = report_of(net, conv.graph, x, input_scale)
        out.append(Outcome(arch.name, reset, f"correct:{rule}", ("", ""), _top(report), report.verdict,
                           sum(d.severity == "error" for d in report.diagnoses)))
    return out


def measure(archs, resets=RESETS, log=print) -> list:
    out = []
    for arch in archs:
        for reset in resets:
            t0 = time.perf_counter()
            net, x, cal = arch.build(reset)
            found = correct(arch, reset, net, x, cal)
            if reset == "hard" or arch.name in SOFT_TOO:
                found += bugs(arch, reset, net, x, cal)
            log(f"{arch.name} ({reset}): {len(found)} runs in {time.perf_counter() - t0:.1f} s")
            out += found
    return out


# --------------------------------------------------------------------------------------------- the table
def hit(o: Outcome) -> bool:
    return o.found[:2] == o.expected


def render(outcomes: list, archs) -> str:
    planted = [o for o in outcomes if not o.bug.startswith("correct:")]
    clean = [o for o in outcomes if o.bug.startswith("correct:")]
    hits = sum(map(hit, planted))
    lines = ["# Confusion table of the conversion diagnosis", "",
             "Generated by `python scripts/confusion_table.py` (do not edit by hand). Every bug class of "
             "`snncheck.mutations.CATALOG` is planted in a correct conversion (rule `max`, input scale 255 unless "
             "the class says otherwise), at the first and at the deepest spiking layer it applies to, and the "
             "report's top diagnosis is read: its code and its layer. The "
             "correct conversions run under every conversion rule and both reset modes and must raise no error.",
             "",
             f"**Top-1 code and layer: {hits} / {len(planted)} ({hits / max(1, len(planted)):.1%}).** "
             f"**Error-severity diagnoses on correct conversions: "
             f"{sum(o.errors for o in clean)} over {len(clean)} runs.**", "",
             "## Architectures", "", "| architecture | verdicts of its correct conversions | note |", "|---|---|---|"]
    lines += [f"| {a.name} | {_verdicts(clean, a.name)} | {a.note} |" for a in archs]
    lines += ["", "## Planted bugs: true class x top diagnosis", "",
              "A cell counts the runs of that class whose top diagnosis had that code; `layer!` marks a right code "
              "at a wrong layer.", ""]
    codes = sorted({o.found[0] or "(none)" for o in planted})
    lines += ["| class (expected code) | " + " | ".join(codes) + " | right |",
              "|---|" + "---|" * (len(codes) + 1)]
    for name in dict.fromkeys(o.bug for o in planted):
        row = [o for o in planted if o.bug == name]
        counts = Counter(o.found[0] or "(none)" for o in row)
        wrong_layer = Counter(o.found[0] for o in row if o.found[0] == o.expected[0] and not hit(o))
        cells = [f"{counts[c]}" + (f" ({wrong_layer[c]} layer!)" if wrong_layer[c] else "") if counts[c] else ""
                 for c in codes]
        lines.append(f"| {name} (`{row[0].expected[0]}`) | " + " | ".join(cells) +
                     f" | {sum(map(hit, row))}/{len(row)} |")
    lines += ["", "## Per architecture", "", "| architecture | reset | planted: right | correct: runs with an error |",
              "|---|---|---|---|"]
    for a in archs:
        for reset in RESETS:
            p = [o for o in planted if o.arch == a.name and o.reset == reset]
            c = [o for o in clean if o.arch == a.name and o.reset == reset]
            if p or c:
                lines.append(f"| {a.name} | {reset} | {sum(map(hit, p))}/{len(p)} | "
                             f"{sum(o.errors > 0 for o in c)}/{len(c)} |")
    misses = [o for o in planted if not hit(o)] + [o for o in clean if o.errors]
    lines += ["", "## Misses", ""]
    lines += [f"- {o.arch} ({o.reset}) {o.bug}: expected {o.expected}, top {o.found}, verdict {o.verdict}"
              for o in misses] or ["none"]
    return "\n".join(lines) + "\n"


def _verdicts(clean: list, name: str) -> str:
    counts = Counter(o.verdict for o in clean if o.arch == name)
    return ", ".join(f"{v} {n}" for v, n in sorted(counts.items()))


def main(argv: Optional[list] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="two architectures, print the table only")
    p.add_argument("--arch", action="append", help="only these architectures")
    p.add_argument("--out", default=str(ROOT / "docs" / "confusion.md"))
    args = p.parse_args(argv)
    archs = [a for a in ARCHS if not args.arch or a.name in args.arch]
    if args.quick:
        archs = archs[:2]
    outcomes = measure(archs, log=lambda m: print(m, file=sys.stderr))
    text = render(outcomes, archs)
    print(text)
    if not args.quick and not args.arch:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
