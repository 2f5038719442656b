"""`snncheck diff A B`: a float SpikingJelly checkpoint against its deployed integer version, or against a user's
own PAIBox network (`--paibox FILE.py:FACTORY` in place of B). Without B, against A's own conversion (rule max);
where A has no integer form (LIF, ParametricLIF), A alone: SpikingJelly against the reference, with B left out and
the reason said. Prints the verdict and a per-layer table, writes the HTML report (and JSON with --json).
Exit 0 consistent, 1 inconsistent, 2 bad input, 3 inconclusive."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError, require
from . import add_plugin_option, backends_list, finish, input_shape, load_plugins, positive_int

DEFAULT_SAMPLES = 32
DEFAULT_TIMESTEPS = 8


def register(sub) -> None:
    p = sub.add_parser("diff", help="compare a float checkpoint with its deployed integer version, layer by layer",
                       description=__doc__)
    p.add_argument("a", metavar="A", help="float SpikingJelly checkpoint (.pth state_dict)")
    p.add_argument("b", metavar="B", nargs="?", help="deployed integer checkpoint (.pth); default: A converted "
                                                    "(rule max), or A alone where it has no integer form")
    p.add_argument("--paibox", metavar="FILE.py:FACTORY", help="a user's own PAIBox network in place of B")
    p.add_argument("--model", metavar="SPEC", help="FILE.py:FACTORY, module:FACTORY or a built-in model name")
    p.add_argument("--input-shape", type=input_shape, metavar="C,H,W",
                   help="the model's per-sample input shape, where neither the model nor --inputs says it")
    p.add_argument("--vthr", help="B's thresholds: comma-separated ints in spiking-layer order, or name=value pairs")
    p.add_argument("--input-scale", type=float, help="what B's input is multiplied by (255 for 0-255 pixels)")
    p.add_argument("--reset", choices=("hard", "soft"), help="B's reset mode")
    p.add_argument("--inputs", metavar="FILE.npy", help="[N, C, H, W] frames or [N, T, C, H, W] sequences, in A's range")
    p.add_argument("--samples", type=positive_int, help=f"number of samples (default {DEFAULT_SAMPLES})")
    p.add_argument("--timesteps", type=positive_int, help=f"time steps (default {DEFAULT_TIMESTEPS}; ignored for "
                                                          "sequences)")
    p.add_argument("--runners", type=backends_list, help="comma-separated subset of reference,spikingjelly,paibox")
    p.add_argument("--out", metavar="FILE.html", help="HTML report (default: reports/<A>-vs-<B>.html)")
    p.add_argument("--json", metavar="FILE.json", help="also write the report as JSON")
    add_plugin_option(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import pipeline
    plan = plan_from_args(args)
    return finish(pipeline.execute(plan), args.json, args.out or f"reports/{safe_name(plan.title)}.html")


def plan_from_args(args):
    """The diff plan the arguments describe: A, B (or the user's PAIBox network) and the inputs."""
    from .. import checkpoint, plan as plans
    from ..plan import Role, Subject
    load_plugins(args)
    require(args.b is None or args.paibox is None, "give either B (a deployed checkpoint) or --paibox "
                                                   "FILE.py:FACTORY, not both")
    model = _load_float(args)
    inputs = load_inputs(args, model.graph.input_shape)
    if args.b is None and args.paibox is None:
        return _against_conversion(args, model, inputs)
    if args.paibox:
        require(args.vthr is None and args.reset is None, "--vthr and --reset describe a deployed checkpoint; "
                                                         "a PAIBox network carries its own thresholds and reset")
        deployed, notes, b_name = _user_paibox(args, model, inputs)
    else:
        dep = checkpoint.load_deployed(args.b, model.graph, vthr=parse_vthr(args.vthr),
                                       input_scale=args.input_scale, reset=args.reset)
        deployed = Subject(Role.DEPLOYED, dep.graph, input_scale=dep.input_scale)
        notes = {"inferred": dep.inferred} if dep.inferred else {}
        b_name = Path(args.b).stem
    return plans.diff(Subject(Role.FLOAT, model.graph, module=model.model), deployed, inputs,
                      args.runners or plans.BACKENDS, title=f"{Path(args.a).stem}-vs-{b_name}", notes=notes)


def _load_float(args):
    """A, its wrong input shape named against the shape it takes (not an inner layer's message)."""
    from .. import checkpoint
    from ..frontends.spikingjelly import ShapeError
    try:
        return checkpoint.load_float(args.a, args.model, input_shape=args.input_shape or _shape_hint(args.inputs))
    except ShapeError as exc:
        takes = ", ".join(map(str, exc.takes))
        given = f"--input-shape {','.join(map(str, args.input_shape))}" if args.input_shape else \
            f"inputs {args.inputs} have shape {_file_shape(args.inputs)}"
        raise InputError(f"{given}; the model takes [N, {takes}] or [N, T, {takes}]") from None


def _against_conversion(args, model, inputs):
    """A against its conversion (rule max) made here; where A has no integer form, A alone in SpikingJelly and the
    reference (float rounding), B left out with the conversion's reason."""
    from .. import convert, plan as plans
    from ..backends.base import Refusal
    from ..plan import Role, RunSpec, Skipped, Subject
    a = Subject(Role.FLOAT, model.graph, module=model.model)
    try:
        conv = convert.convert(model.graph, args.input_scale or 1.0, reset=args.reset)
    except InputError as exc:
        float_only = plans.check(model.graph, inputs, [b for b in (args.runners or plans.BACKENDS) if b != "paibox"],
                                 module=model.model, title=f"{Path(args.a).stem}-float")
        why = Refusal("convert", None, f"A has no deployed integer twin: {exc}")
        return float_only.replace(skipped=float_only.skipped + (Skipped(RunSpec("paibox", Role.DEPLOYED), (why,)),))
    require(args.vthr is None, "--vthr describes a deployed checkpoint B; give B")
    b = Subject(Role.DEPLOYED, conv.graph, input_scale=conv.input_scale)
    return plans.diff(a, b, inputs, args.runners or plans.BACKENDS, title=f"{Path(args.a).stem}-vs-converted")


def _user_paibox(args, model, inputs):
    """(B's subject, report notes, B's name) for a user's own PAIBox network."""
    from ..frontends import paibox as user_paibox
    from ..plan import Role, Subject
    user = user_paibox.load(args.paibox, model.graph)
    notes = {"paibox_matching": user.matching, "user_nodes": user_paibox.user_nodes(user.matching)}
    scale = args.input_scale
    if scale is None:
        scale, reason = user_paibox.infer_input_scale(user, model.graph, inputs.chunk(0, 64))
        notes["inferred"] = [f"input_scale={scale:g} ({reason})"]
    return Subject(Role.DEPLOYED, user.graph, input_scale=float(scale), source=user), notes, \
        args.paibox.rpartition(":")[2]


def parse_vthr(text):
    """'12,7,30' -> ['12', '7', '30'] (validated by the loader); 'conv.2=12,fc.1=7' -> {name: value}."""
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    require(items, "--vthr is empty")
    if all("=" in t for t in items):
        return {k.strip(): v.strip() for k, v in (t.split("=", 1) for t in items)}
    require(not any("=" in t for t in items), lambda: f"--vthr mixes name=value pairs and plain values: {text!r}")
    return items


def load_inputs(args, input_shape):
    """The --inputs file (cut to --samples), or default_inputs."""
    import dataclasses
    from .. import data
    t = args.timesteps or DEFAULT_TIMESTEPS
    if not args.inputs:
        return default_inputs(input_shape, args.samples or DEFAULT_SAMPLES, t)
    inputs = data.load_inputs(args.inputs, tuple(input_shape), t)
    return dataclasses.replace(inputs, data=inputs.data[:args.samples]) if args.samples else inputs


def default_inputs(input_shape, n: int, t: int):
    """Digits (test split, resized to the model's input) for image models, seeded random spikes otherwise."""
    from .. import data
    from ..plan import Inputs
    shape = tuple(input_shape)
    if len(shape) == 3:
        x, _ = data.digits("test")
        require(n <= len(x), lambda: f"--samples {n}: the digits test split has {len(x)} samples")
        resized = x.shape[1:] != shape
        x = data.resize(x[:n], shape) if resized else x[:n]
        desc = "scikit-learn digits (test split" + (f", resized to {'x'.join(map(str, shape))}" if resized else "")
        return Inputs.frames(x, t, source="digits", description=desc + "), direct encoding")
    return Inputs.sequences(data.random_spikes(n, t, shape, seed=0), source="random_spikes",
                            description="seeded random spikes (rate 0.2, seed 0)", seed=0)


def _shape_hint(path):
    """The per-sample input shape of an inputs file ([N, *shape] or [N, T, *shape]), read from its header."""
    if not path:
        return None
    shape = _file_shape(path)
    return tuple(shape[2:]) if len(shape) in (3, 5) else tuple(shape[1:])


def _file_shape(path) -> tuple:
    try:
        return tuple(np.load(path, mmap_mode="r", allow_pickle=False).shape)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read inputs {path}: {exc}") from None


def safe_name(name: str) -> str:
    """A file name from a report title: letters, digits, '-', '_' and '.' only."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:120] or "report"
