"""`snncheck ann2snn [ANN.pth] [--model SPEC] [--snn SPEC]`: an ANN with QCFS activations against its SNNs, layer by
layer (clipping, quantization and unevenness error, Bu et al. ICLR 2022) and accuracy against T (the ANN as T = 0),
IF neurons starting at theta/2 and at 0, optionally signed (negative spikes); the SNN also runs in the reference
and SpikingJelly like any other network. With no argument: the embedded digits QCFS network, its own IF class
compared with SpikingJelly's IFNode."""
from __future__ import annotations

from . import backends_list, check_outputs, existing_file, finish, positive_int, spec_files, spec_text

DEFAULT_MODEL = "snncheck.ann2snn.model:qcfs_vgg_digits"
DEFAULT_SNN = "snncheck.ann2snn.model:own_if_snn"


def steps_list(text: str) -> list:
    import argparse
    try:
        steps = sorted({int(t) for t in text.split(",") if t.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected step counts like 1,2,4,8, got {text!r}") from None
    if not steps or steps[0] < 1:
        raise argparse.ArgumentTypeError(f"expected positive step counts like 1,2,4,8, got {text!r}")
    return steps


def register(sub) -> None:
    p = sub.add_parser("ann2snn", help="an ANN (QCFS) against its SNN: per-layer conversion errors, accuracy vs T",
                       description=__doc__)
    p.add_argument("ann", nargs="?", type=existing_file, help="the ANN's checkpoint (.pth); default: the embedded digits QCFS network")
    p.add_argument("--model", type=spec_text, help=f"FILE.py:FACTORY or module:FACTORY building the ANN (default {DEFAULT_MODEL})")
    p.add_argument("--snn", type=spec_text, help="FILE.py:FACTORY: FACTORY(T=steps) builds your own SNN of the ANN (same state_dict, "
                                 "inputs [T*N, ...] time-major); compared with SpikingJelly's IFNode. Default with "
                                 "the embedded network: its own IF class")
    p.add_argument("--timesteps", type=steps_list, default=[1, 2, 4, 8, 16, 32, 64],
                   help="the T sweep (default 1,2,4,8,16,32,64)")
    p.add_argument("--table-steps", type=positive_int, help="T of the per-layer table (default: the ANN's L)")
    p.add_argument("--v-init", choices=("half", "zero"), default="half",
                   help="initial membrane of the SNN run in the simulators: theta/2 (default) or 0")
    p.add_argument("--signed", action="store_true", help="add signed IF neurons (negative spikes) to the sweep")
    p.add_argument("--inputs", type=existing_file, help=".npy frames [N, C, H, W] (default: the digits test split)")
    p.add_argument("--labels", type=existing_file, help=".npy labels [N] for --inputs")
    p.add_argument("--samples", type=positive_int, help="use the first N inputs")
    p.add_argument("--runners", type=backends_list, default=["reference", "spikingjelly"],
                   help="simulators the SNN runs in (default reference,spikingjelly)")
    p.add_argument("--json", help="write the JSON report here")
    p.add_argument("--out", help="write the HTML report here")
    p.set_defaults(func=run)


def run(args) -> int:
    import time
    from .. import pipeline
    from ..ann2snn import build
    from ..report.sections import ann2snn as section
    start = time.perf_counter()
    inputs = [args.ann, args.inputs, args.labels, *spec_files(args.model, args.snn)]
    check_outputs(args, inputs, "json", "out")
    ann, user = _models(args)
    frames, labels, source = _inputs(args)
    plan = build.build_plan(ann, frames, labels, args.timesteps, ("half", "zero") + (("signed",) if args.signed
                                                                                       else ()),
                            user=user, v0_fraction=0.5 if args.v_init == "half" else 0.0,
                            backends=args.runners, table_steps=args.table_steps, source=source)
    report = pipeline.execute(plan)
    print(section.text(report.extras["ann2snn"]))
    print(f"ann2snn in {time.perf_counter() - start:.1f} s")
    return finish(report, args.json, args.out, inputs)


def _models(args) -> tuple:
    """(the ANN with its weights, the user's own SNN module or None)."""
    from ..ann2snn.build import load_models
    from ..ann2snn.model import DIGITS_QCFS
    from ..errors import require
    require(args.ann or not args.model, "--model needs the ANN's checkpoint (ANN.pth)")
    return load_models(args.model or DEFAULT_MODEL, args.ann or DIGITS_QCFS,
                       args.snn or (None if args.ann else DEFAULT_SNN), max(args.timesteps))


def _inputs(args) -> tuple:
    """(frames [N, ...], labels [N], where they came from)."""
    import numpy as np
    from .. import data
    from ..errors import require
    require(bool(args.inputs) == bool(args.labels), "--inputs and --labels go together")
    if args.inputs:
        frames = data.open_array(args.inputs)
        labels, source = _labels(args.labels, len(frames)), f"file:{args.inputs}"
    else:
        (frames, labels), source = data.digits("test"), "digits"
    n = args.samples or len(frames)
    return np.asarray(frames[:n], np.float32), np.asarray(labels[:n]).astype(np.int64), source


def _labels(path, count: int):
    """The --labels file: one class index per input (an integer array [N], N that of --inputs)."""
    from .. import data
    from ..errors import require
    from ..graph.primitives import is_integer_valued
    labels = data.open_array(path, "labels")
    require(labels.shape == (count,), lambda: f"labels {path}: expected one class index per input, shape "
                                              f"({count},), got {labels.shape}")
    require(is_integer_valued(labels) and (labels >= 0).all(),
            lambda: f"labels {path}: expected class indices (integers >= 0)")
    return labels
