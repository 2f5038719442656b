"""`snncheck convert A --model SPEC --out B`: a float SpikingJelly checkpoint to the deployed integer checkpoint
of docs/checkpoint.md (BatchNorm folded, int8 weights, bias and threshold scaled by s_in * s_w), then a static self-check
of B against A. Exit 0 written and clean, 1 written but the self-check found an error, 2 bad input."""
from __future__ import annotations


import numpy as np

from ..errors import require
from . import (add_plugin_option, existing_file, input_shape, load_plugins, output_file, positive_float,
               positive_int, spec_files, spec_text)

DEFAULT_CALIBRATION = 256


def register(sub) -> None:
    from ..convert import RULES
    p = sub.add_parser("convert", help="convert a float checkpoint to a deployed int8 checkpoint for PAIBox",
                       description=__doc__)
    p.add_argument("a", metavar="A", type=existing_file, help="float SpikingJelly checkpoint (.pth state_dict)")
    p.add_argument("--model", metavar="SPEC", type=spec_text, help="FILE.py:FACTORY, module:FACTORY or a built-in model name "
                                                   "(default: inferred from the checkpoint)")
    p.add_argument("--out", metavar="B", required=True, help="where to write the deployed checkpoint (.pth)")
    p.add_argument("--input-shape", type=input_shape, metavar="C,H,W",
                   help="the model's per-sample input shape, where the model does not say it")
    p.add_argument("--rule", default="max", help=f"weight scale rule: {', '.join(RULES)} (default max)")
    p.add_argument("--input-scale", type=positive_float, default=1.0,
                   help="what the input is multiplied by on the chip (255 for 0-1 images fed as 0-255 pixels)")
    p.add_argument("--reset", choices=("hard", "soft"), help="hard or soft: B's reset mode (default: A's)")
    p.add_argument("--calibration", metavar="FILE.npy", type=existing_file,
                   help="inputs for the data-aware rules, in A's range ([N, C, H, W] or [N, T, C, H, W]; "
                        f"default: the first {DEFAULT_CALIBRATION} digits of the train split, resized)")
    p.add_argument("--timesteps", type=positive_int, default=8, help="time steps for calibration frames (default 8)")
    add_plugin_option(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import checkpoint, convert
    from ..diagnose import rank, static
    inputs = [args.a, args.calibration, *spec_files(args.model)]
    out = output_file(args, inputs)
    require(args.calibration is None or args.rule in convert.DATA_AWARE,
            lambda: f"--calibration is read by the data-aware rules ({', '.join(sorted(convert.DATA_AWARE))}), "
                    f"not by --rule {args.rule}")
    load_plugins(args)
    model = checkpoint.load_float(args.a, args.model, input_shape=args.input_shape)
    calibration = _calibration(args, model.graph.input_shape) if args.rule in convert.DATA_AWARE else None
    conv = convert.convert(model.graph, args.input_scale, args.rule, args.reset, calibration=calibration)
    checkpoint.save_deployed(conv, out, inputs)
    stats, found = static.analyse(model.graph, conv.graph, conv.input_scale)
    print(f"{out}: rule {conv.rule}, input scale {conv.input_scale:g}, reset {conv.reset}")
    for layer, st in stats.items():
        print(f"  {st['synapse']:<14} -> {layer:<14} s_w {conv.weight_scales.get(st['synapse'], float('nan')):<10.5g} "
              f"threshold {conv.vthr[layer]:<10d} SQNR {st['sqnr_db']:5.1f} dB  "
              f"RMSE/step {st['rmse_over_step']:.2f}  clipped {st['clipped']}")
    for head, k in conv.readout_scales.items():         # computed off-chip from the spikes, in k x A's units
        w = conv.graph.nodes[head].weight
        print(f"  {head:<14} -> readout        k {k:<10.5g} (off-chip; {int(np.count_nonzero(w))} of {w.size} "
              "weights non-zero)")
    for d in rank(found):
        print(f"  [{d.severity}] {d.code} @ {d.layer}: {d.message}")
    return 1 if any(d.severity == "error" for d in found) else 0


def _calibration(args, input_shape):
    from .. import data
    if args.calibration:
        return data.load_inputs(args.calibration, tuple(input_shape), args.timesteps).chunk()
    require(len(input_shape) == 3, lambda: "give --calibration FILE.npy: the default digits are images and this "
                                           f"model's input is {tuple(input_shape)}")
    x, _ = data.digits("train")
    x = x[:DEFAULT_CALIBRATION]
    return data.direct(x if x.shape[1:] == tuple(input_shape) else data.resize(x, input_shape), args.timesteps)
