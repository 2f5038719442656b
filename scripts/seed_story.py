"""The seed's story replayed on the embedded digits CSNN, and the conversion rules measured against each other.

1. The input goes from 0-1 to 0-255 and only the threshold of the first layer is multiplied by 255, not its bias
   (mutation "bias_unscaled"). snncheck diffs A against that B, names the layer and parameter and prints the fix;
   the fix is applied as printed. Accuracy on the digits test split: float | buggy | fixed, side by side.
2. The seed's rule (mult = int(127 / max(|w|, |b|))) against the others, "search" (data-aware, calibrated on the
   train split): spikes of B that differ from A's per layer, in the full run and in isolation, and accuracy.

B's accuracies come from the reference runner, which is bit-exact with PAIBox on integer networks (the diff in
part 1 shows paibox:b~reference:b on a subset). Usage: python scripts/seed_story.py [--timesteps 8] [--json F]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from snncheck import api, checkpoint, compare, convert, data, mutations
from snncheck.backends.reference import ReferenceBackend
from snncheck.backends.spikingjelly import SpikingJellyBackend
from snncheck.frontends import models as zoo
from snncheck.diagnose import dynamic, static

INPUT_SCALE = 255


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--timesteps", type=int, default=8)
    ap.add_argument("--diff-samples", type=int, default=64, help="samples for the diff with PAIBox (part 1)")
    ap.add_argument("--calibration", type=int, default=256, help="train samples the data-aware rule calibrates on")
    ap.add_argument("--json", help="write the numbers here")
    args = ap.parse_args()
    fm = checkpoint.load_float(zoo.DIGITS_CHECKPOINT)
    x, y = data.digits("test")
    inputs = data.direct(x, args.timesteps)
    a_run = SpikingJellyBackend(module=fm.model).run(fm.graph, inputs, "spikingjelly:a")
    out = {"float_accuracy": accuracy(a_run, y), "samples": len(y), "timesteps": args.timesteps}
    out["story"] = story(fm, inputs, y, a_run, args.diff_samples)
    out["rules"] = rules(fm, inputs, y, a_run, args.calibration, args.timesteps)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


def story(fm, inputs, y, a_run, n_diff) -> dict:
    conv = convert.convert(fm.graph, INPUT_SCALE, "max")
    buggy = mutations.apply(conv.graph, fm.graph, {"name": "bias_unscaled"}, conv)
    t0 = time.perf_counter()
    report = api.diff(fm.graph, buggy, inputs[:n_diff], INPUT_SCALE, module=fm.model, title="seed story")
    top = report.diagnoses[0]
    print(f"== 1. The seed's story: 0-255 input, only the threshold x255 ({n_diff} samples, all three simulators, "
          f"{time.perf_counter() - t0:.1f} s)")
    print(f"verdict: {report.verdict}; paibox:b~reference:b mismatches: "
          f"{sum(lc.mismatches for lc in report.pair('paibox:b~reference:b').layers)}")
    print(f"top diagnosis: [{top.severity}] {top.code} @ {top.layer}: {top.message}")
    print(f"fix: {top.fix}")
    factor = top.evidence["factor"]                      # the number the printed fix names
    synapse = top.evidence["synapse"]
    fixed = buggy.with_node(synapse, bias=np.rint(buggy.nodes[synapse].bias * factor))
    after = static.analyse(fm.graph, fixed, INPUT_SCALE)[1]
    runs = {name: b_run(net, inputs) for name, net in (("buggy", buggy), ("fixed", fixed), ("correct", conv.graph))}
    acc = {"float (SpikingJelly)": accuracy(a_run, y), "buggy (bias not x255)": accuracy(runs["buggy"], y),
           f"fixed as printed (bias x{factor:g})": accuracy(runs["fixed"], y),
           "converted correctly": accuracy(runs["correct"], y)}
    print(f"after the fix, errors left: {[d.code for d in after if d.severity == 'error'] or 'none'}")
    print(f"accuracy on the digits test split ({len(y)} samples, T={inputs.shape[1]}):")
    print("  " + " | ".join(f"{k}: {v:.1%}" for k, v in acc.items()))
    return {"top": top.to_dict(), "accuracy": acc, "errors_after_fix": [d.code for d in after if d.severity == "error"]}


def rules(fm, inputs, y, a_run, n_cal, timesteps) -> dict:
    xtr, _ = data.digits("train")
    calibration = data.direct(xtr[:n_cal], timesteps)
    print(f"\n== 2. Conversion rules on the digits test split ({len(y)} samples, T={timesteps}); "
          f"'search' calibrated on {n_cal} train samples")
    print("   spikes of B differing from A's, per layer: full run (isolated: the layer fed A's own input)")
    rows, out = [], {}
    for rule in convert.RULES:
        if rule not in ("seed", "max", "percentile", "search"):
            continue
        conv = convert.convert(fm.graph, INPUT_SCALE, rule, calibration=calibration)
        run = b_run(conv.graph, inputs)
        pair = compare.compare(a_run, run, "quantization")
        stats, _ = static.analyse(fm.graph, conv.graph, INPUT_SCALE)
        iso = dynamic.isolated(fm.graph, conv.graph, a_run, inputs, INPUT_SCALE,
                               {k: v["scale"] for k, v in stats.items()})
        out[rule] = {"accuracy": accuracy(run, y), "output_agreement": pair.output_agreement,
                     "full": {lc.name: lc.rate for lc in pair.layers},
                     "isolated": {k: v["rate"] for k, v in iso.items()},
                     "differing_spikes": int(sum(lc.mismatches for lc in pair.layers))}
        rows.append([rule] + [f"{lc.rate:.2%} ({iso[lc.name]['rate']:.2%})" for lc in pair.layers]
                    + [f"{out[rule]['differing_spikes']}", f"{out[rule]['accuracy']:.1%}",
                       f"{pair.output_agreement:.1%}"])
    head = ["rule"] + [lc.name for lc in pair.layers] + ["all differing", "accuracy", "same class as A"]
    widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
    for r in [head] + rows:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    seed, best = out["seed"], out["search"]
    print(f"  search vs seed: {seed['differing_spikes'] - best['differing_spikes']:+d} fewer differing spikes "
          f"({1 - best['differing_spikes'] / seed['differing_spikes']:.1%}), accuracy "
          f"{best['accuracy'] - seed['accuracy']:+.1%}, same class as A {best['output_agreement'] - seed['output_agreement']:+.1%}")
    return out


def b_run(graph, inputs):
    return ReferenceBackend().run(graph, np.rint(inputs.astype(np.float64) * INPUT_SCALE), "reference:b")


def accuracy(run, y) -> float:
    return float(np.mean(compare.classes(run) == y))


if __name__ == "__main__":
    main()
