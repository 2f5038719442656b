"""`snncheck record --model SPEC [A.pth] --inputs X.npy --out RUN.h5`: any torch module run on the inputs, every
neuron-like module's output recorded through forward hooks (names from the module), written as NIR data with the
inputs (docs/records.md). `snncheck diff ... --run-b RUN.h5` then compares it like a simulated run."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import require
from ..files import path_writer, write_together
from . import existing_file, output_file, positive_int, spec_files, spec_text


def register(sub) -> None:
    p = sub.add_parser("record", help="record a torch module's neuron outputs through hooks into a NIR data file",
                       description=__doc__)
    p.add_argument("checkpoint", metavar="A.pth", nargs="?", type=existing_file, help="weights to load into the module (optional)")
    p.add_argument("--model", metavar="SPEC", type=spec_text, required=True, help="FILE.py:FACTORY, module:FACTORY or a built-in "
                                                                  "name; FACTORY() returns the torch module")
    p.add_argument("--inputs", metavar="X.npy", type=existing_file, required=True,
                   help="[N, T, ...] sequences, or [N, ...] frames repeated over --timesteps steps")
    p.add_argument("--timesteps", type=positive_int, help="repeat [N, ...] frames over this many steps")
    p.add_argument("--out", metavar="RUN.h5", required=True, help="the NIR data file to write")
    p.add_argument("--neuron-class", metavar="NAMES", help="comma-separated class names to record (default: "
                                                           "SpikingJelly/snnTorch neurons and classes named *IF, "
                                                           "*LIF, *Node, *Neuron, *Spik*, *Leaky*)")
    p.add_argument("--step-mode", choices=("s", "m"), default="s",
                   help="call the module once per step on [N, ...] (s, default) or once on [T, N, ...] (m)")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import checkpoint, records
    from ..frontends import hooks, models
    inputs = [args.checkpoint, args.inputs, *spec_files(args.model)]
    out = output_file(args, inputs, records.NIR_SUFFIXES)
    module = models.build_module(args.model)
    if args.checkpoint:
        checkpoint.load_into(module, checkpoint.load_state_dict(args.checkpoint), args.checkpoint)
    x = _inputs(args.inputs, args.timesteps)
    classes = [c.strip() for c in args.neuron_class.split(",")] if args.neuron_class else None
    run_ = hooks.record(module.eval(), x, classes, args.step_mode, label=f"recorded:{Path(args.model).stem}")
    write_together({out: path_writer(lambda tmp: records.save(run_, tmp, inputs=x,
                                                               source=f"snncheck record --model {args.model}"))},
                   inputs)
    names = ", ".join(f"{r.name} ({run_.meta['classes'][r.name]})" for r in run_.layers)
    print(f"recorded {len(run_.layers)} layer(s) x {x.shape[0]} samples x {x.shape[1]} steps: {names} -> {out}")
    return 0


def _inputs(path, timesteps) -> np.ndarray:
    from .. import data, memory
    x = data.open_array(path)
    memory.require_fits(x.size * (timesteps or 1) * 8, f"{len(x)} input samples x {timesteps or 1} steps")
    require(x.dtype.kind in "biuf" and x.ndim >= 2, lambda: f"inputs {path}: a numeric [N, T, ...] or [N, ...] "
                                                            f"array is expected, got {x.dtype} {x.shape}")
    return np.repeat(x[:, None], timesteps, axis=1) if timesteps else x
