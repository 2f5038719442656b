"""`snncheck demo`: the embedded digits CSNN (float, SpikingJelly) against two int8 conversions for PAIBox: the
correct one and the seed project's bug (input rescaled to 0-255, first layer's bias not scaled with it). Both are
diffed in the three simulators; HTML and JSON reports land under reports/. Exit 0 when both come out as they
should: the correct conversion consistent, the seed bug inconsistent with the bias/input-scale diagnosis at the
first spiking layer."""
from __future__ import annotations

import time
from pathlib import Path

from ..errors import require
from . import positive_int

INPUT_SCALE = 255
STEMS = ("demo_correct", "demo_seed_bug")
EXPECTED_CODES = ("bias_scale", "input_scale")   # the seed bug, named from the bias' or the input's side


def register(sub) -> None:
    p = sub.add_parser("demo", help="the embedded network, its correct and its seed-bug conversion, both diffed",
                       description=__doc__)
    p.add_argument("--out-dir", default="reports", help="where the reports go (default: reports/)")
    p.add_argument("--samples", type=positive_int, default=32, help="digits to run (default 32)")
    p.add_argument("--timesteps", type=positive_int, default=8, help="time steps (default 8)")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import checkpoint, convert, mutations, pipeline, plan as plans
    from ..frontends.models import DIGITS_CHECKPOINT
    from ..plan import Role, Subject
    from ..report.io import write_outputs
    from .diff import default_inputs
    from ..files import check_targets
    out = Path(args.out_dir)
    require(str(args.out_dir).strip() and (not out.exists() or out.is_dir()),
            lambda: f"--out-dir {args.out_dir!r}: not a directory")
    check_targets([out / f"{stem}.{ext}" for stem in STEMS for ext in ("json", "html")])
    start = time.perf_counter()
    model = checkpoint.load_float(DIGITS_CHECKPOINT, "digits_csnn")
    inputs = default_inputs(model.graph.input_shape, args.samples, args.timesteps)
    conv = convert.convert(model.graph, INPUT_SCALE, "max")
    seed_bug = mutations.apply(conv.graph, model.graph, {"name": "bias_unscaled"}, conv)
    first = model.graph.neurons[0]
    print(f"snncheck demo: the digits CSNN (float, SpikingJelly) against its int8 conversions for PAIBox, "
          f"{len(inputs)} digits x {inputs.timesteps} steps, input 0-255")
    ok = True
    for stem, graph, label in zip(STEMS, (conv.graph, seed_bug), ("correct conversion", "seed-bug conversion")):
        plan = plans.diff(Subject(Role.FLOAT, model.graph, module=model.model),
                          Subject(Role.DEPLOYED, graph, input_scale=conv.input_scale), inputs, title=stem)
        report = pipeline.execute(plan)
        write_outputs(report, out / f"{stem}.json", out / f"{stem}.html", quiet=True)
        good = _as_expected(report, stem == "demo_correct", first)
        ok &= good
        print(f"  {label:<20} {report.verdict.upper():<13} {_headline(report)}")
        print(f"  {'':<20} {'' if good else 'UNEXPECTED  '}report: {out / (stem + '.html')}  (JSON beside it)")
    print(f"done in {time.perf_counter() - start:.1f} s" + ("" if ok else "; a report did not come out as expected"))
    return 0 if ok else 1


def _as_expected(report, correct: bool, first_layer: str) -> bool:
    if correct:
        return report.verdict == "consistent"
    return report.verdict == "inconsistent" and any(
        d.code in EXPECTED_CODES and d.layer == first_layer and d.severity == "error" for d in report.diagnoses)


def _headline(report) -> str:
    """The top diagnosis, or how far B drifts from A when nothing is wrong."""
    errors = [d for d in report.diagnoses if d.severity == "error"]
    if errors:
        d = errors[0]
        return f"{d.code} at {d.layer}: {d.message[:110]}{'...' if len(d.message) > 110 else ''}"
    exact = [p.key for p in report.pairs if p.expect == "exact" and p.exact]
    drift = [p for p in report.pairs if p.expect == "quantization"]
    text = f"{', '.join(exact)} bit-exact" if exact else "no error"
    if drift:
        rates = [lc.rate for lc in drift[0].layers]
        text += f"; A~B spike drift {min(rates):.1%}-{max(rates):.1%} per layer (quantization)"
    return text
