"""`snncheck diff A B`: a float SpikingJelly checkpoint against its deployed integer version, or against a user's
own PAIBox network (`--paibox FILE.py:FACTORY` in place of B). Without B, against A's own conversion (rule max);
where A has no integer form (LIF, ParametricLIF), A alone: SpikingJelly against the reference, with B left out and
the reason said. Prints the verdict and a per-layer table, writes the HTML report (and JSON with --json).
Exit 0 consistent, 1 inconsistent, 2 bad input, 3 inconclusive."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError, require
from ..files import safe_name
from . import (add_plugin_option, backends_list, check_outputs, existing_file, finish, input_flags, input_shape,
               load_plugins, positive_float, positive_int, spec_files, spec_text)

DEFAULT_SAMPLES = 32
DEFAULT_TIMESTEPS = 8


def register(sub) -> None:
    p = sub.add_parser("diff", help="compare a float checkpoint with its deployed integer version, layer by layer",
                       description=__doc__)
    p.add_argument("a", metavar="A", nargs="?", type=existing_file,
                   help="float SpikingJelly checkpoint (.pth state_dict), or a NIR graph (.nir)")
    p.add_argument("b", metavar="B", nargs="?", type=existing_file, help="deployed integer checkpoint (.pth); "
                   "default: A converted (rule max), or A alone where it has no integer form")
    p.add_argument("--paibox", metavar="FILE.py:FACTORY", type=spec_text,
                   help="a user's own PAIBox network in place of B")
    p.add_argument("--model", metavar="SPEC", type=spec_text,
                   help="FILE.py:FACTORY, module:FACTORY or a built-in model name")
    p.add_argument("--input-shape", type=input_shape, metavar="C,H,W",
                   help="the model's per-sample input shape, where neither the model nor --inputs says it")
    p.add_argument("--vthr", help="B's thresholds: comma-separated ints in spiking-layer order, or name=value pairs")
    p.add_argument("--input-scale", type=positive_float, help="what B's input is multiplied by (255 for 0-255 pixels)")
    p.add_argument("--reset", choices=("hard", "soft"), help="B's reset mode")
    p.add_argument("--inputs", metavar="FILE.npy", type=existing_file,
                   help="[N, C, H, W] frames or [N, T, C, H, W] sequences, in A's range; or an events file "
                        "FILE.npz (t, x, y, p)")
    p.add_argument("--samples", type=positive_int, help=f"number of samples (default {DEFAULT_SAMPLES})")
    p.add_argument("--timesteps", type=positive_int, help=f"time steps (default {DEFAULT_TIMESTEPS}; ignored for "
                                                          "sequences)")
    p.add_argument("--runners", type=backends_list, help="comma-separated subset of reference,spikingjelly,paibox "
                                                         "(and sj_nir, snntorch: through NIR)")
    p.add_argument("--out", metavar="FILE.html", help="HTML report (default: reports/<A>-vs-<B>.html)")
    p.add_argument("--json", metavar="FILE.json", help="also write the report as JSON")
    recorded_arguments(p)
    input_flags.register(p)
    add_plugin_option(p)
    p.set_defaults(func=run)


def recorded_arguments(p) -> None:
    """Flags of a recorded run in place of a simulated one (docs/records.md)."""
    p.add_argument("--run-b", metavar="FILE", type=existing_file, help="a recorded run (NIR data .h5, or .npz) of B, or of A when no B "
                                                   "is given, compared like a simulated one")
    p.add_argument("--layout", choices=("sample", "time", "merged"),
                   help="how the recorded arrays are laid out: [N,T,...], [T,N,...] or [T*N,...] (MergeTemporalDim)")
    p.add_argument("--spike-amplitude", metavar="theta|X", help="recorded spikes have this value instead of 1")
    p.add_argument("--first-spike", action="store_true", help="recorded spikes are first-spike times [N, ...]")
    p.add_argument("--pipelined", action="store_true", help="the recorded run is a pipeline's raw output (stage k "
                                                            "answers k-1 steps late, T+L-1 steps): realigned, lags "
                                                            "detected")
    p.add_argument("--nir-dt", type=positive_float, default=None, help="time step for a NIR graph's r and tau (default 1e-4)")


def run(args) -> int:
    from .. import pipeline
    inputs = run_inputs(args)
    check_outputs(args, inputs, "json", "out")
    plan = plan_from_args(args)
    return finish(pipeline.execute(plan), args.json, args.out or f"reports/{safe_name(plan.title)}.html", inputs)


def run_inputs(args) -> list:
    """Every file the run reads: no output may be written over one of them."""
    return [args.a, args.b, args.inputs, args.run_b, *getattr(args, "plugin", []),
            *spec_files(args.model, args.paibox)]


def plan_from_args(args):
    """The diff plan the arguments describe: A, B (or the user's PAIBox network), the inputs, a recorded run."""
    from .. import plan as plans
    load_plugins(args)
    if args.run_b and args.b is None and args.paibox is None:
        return _recorded_plan(args)
    plan = _diff_plan(args)
    return plans.with_recorded(plan, args.run_b, plans.Role.DEPLOYED, **_layout(args)) if args.run_b else plan


def _recorded_plan(args):
    """A's network (a checkpoint and its model, or a NIR graph) in its backends, and the recorded run of it."""
    from .. import plan as plans
    model = _model_a(args)
    inputs = _recorded_inputs(args, model.graph) or load_inputs(args, model.graph.input_shape)
    plan = plans.check(model.graph, inputs, backends=args.runners or ["reference"], module=model.model,
                       title=f"{Path(args.a or args.model).stem}-vs-{Path(args.run_b).stem}")
    return plans.with_recorded(plan, args.run_b, **_layout(args))


def _model_a(args):
    """A as a FloatModel: a NIR graph (A or --model ending in .nir), or a checkpoint loaded into --model."""
    from .. import checkpoint
    from ..frontends import nir as nir_files
    source = args.a if nir_files.is_nir(args.a) else args.model if nir_files.is_nir(args.model) else None
    if source is not None:
        return checkpoint.FloatModel(nir_files.load(source, args.nir_dt or nir_files.DT), None, str(source))
    require(args.a is not None, "give A (a float checkpoint) or --model graph.nir")
    return _load_float(args)


def _layout(args) -> dict:
    amp = args.spike_amplitude
    return {"order": args.layout, "amplitude": amp if amp in (None, "theta") else _number(amp),
            "first_spike": args.first_spike or None, "pipelined": args.pipelined or None}


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise InputError(f"--spike-amplitude: expected 'theta' or a number, got {text!r}") from None


def _recorded_inputs(args, graph):
    """The inputs a records file was made with (when it carries them and --inputs is not given)."""
    from .. import records
    from ..plan import Inputs
    if args.inputs:
        return None
    raw = records.read(args.run_b)
    if raw.inputs is None:
        return None
    x = np.asarray(raw.inputs)
    x = x.reshape(x.shape[:2] + tuple(graph.input_shape))
    return Inputs.sequences(x[:args.samples] if args.samples else x, source=f"recorded with {Path(args.run_b).name}")


def _diff_plan(args):
    from .. import checkpoint, plan as plans
    from ..inputs import deployed_scale
    from ..plan import Role, Subject
    require(args.b is None or args.paibox is None, "give either B (a deployed checkpoint) or --paibox "
                                                   "FILE.py:FACTORY, not both")
    require(args.a is not None, "give A (a float checkpoint)")
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
        scale, note = deployed_scale(inputs, dep.input_scale)
        deployed = Subject(Role.DEPLOYED, dep.graph, input_scale=scale)
        notes = dict({"inferred": dep.inferred} if dep.inferred else {}, **note)
        b_name = Path(args.b).stem
    return plans.diff(Subject(Role.FLOAT, model.graph, module=model.model), deployed, inputs,
                      args.runners or plans.BACKENDS, title=f"{Path(args.a).stem}-vs-{b_name}", notes=notes)


def _load_float(args):
    """A, its wrong input shape named against the shape it takes (not an inner layer's message)."""
    from .. import checkpoint
    from ..frontends.spikingjelly import ShapeError
    try:
        return checkpoint.load_float(args.a, args.model, input_shape=args.input_shape,
                                     shape_hint=_shape_hint(args.inputs))
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
    scale, notes = _conversion_scale(args, inputs)
    try:
        conv = convert.convert(model.graph, scale, reset=args.reset)
    except InputError as exc:
        float_only = plans.check(model.graph, inputs, [b for b in (args.runners or plans.BACKENDS) if b != "paibox"],
                                 module=model.model, title=f"{Path(args.a).stem}-float")
        why = Refusal("convert", None, f"A has no deployed integer twin: {exc}")
        return float_only.replace(skipped=float_only.skipped + (Skipped(RunSpec("paibox", Role.DEPLOYED), (why,)),))
    require(args.vthr is None, "--vthr describes a deployed checkpoint B; give B")
    b = Subject(Role.DEPLOYED, conv.graph, input_scale=conv.input_scale)
    return plans.diff(a, b, inputs, args.runners or plans.BACKENDS, title=f"{Path(args.a).stem}-vs-converted",
                      notes=notes)


def _conversion_scale(args, inputs) -> tuple:
    """(input scale, report notes) of A's conversion: --input-scale; else 1 for spikes and counts (already the
    chip's units), 255 for analog inputs (0-1 images fed as 0-255 pixels)."""
    from ..graph import is_integer_valued
    from ..inputs import unscaled
    if args.input_scale is not None:
        return float(args.input_scale), {}
    if unscaled(inputs) or is_integer_valued(inputs.chunk(0, 64)):
        return 1.0, {}
    return 255.0, {"inferred": ["input_scale=255 (analog inputs converted as 0-255 pixels; --input-scale to change)"]}


def _user_paibox(args, model, inputs):
    """(B's subject, report notes, B's name) for a user's own PAIBox network."""
    from ..frontends import paibox as user_paibox
    deployed, notes = user_paibox.subject(args.paibox, model.graph, inputs, args.input_scale)
    return deployed, notes, args.paibox.rpartition(":")[2]


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
    """The --inputs file (cut to --samples; an events file integrated into frames), or default_inputs; then
    encoded as --encoding says, once for every simulator."""
    from .. import inputs as encoded
    from ..inputs.events import Framing
    t = args.timesteps or DEFAULT_TIMESTEPS
    require(args.encoding_seed is None or args.encoding == "poisson", "--encoding-seed goes with --encoding poisson")
    framing = Framing.from_options(args.frames, args.split_by, args.frame_ms)
    if args.inputs:
        found = encoded.load(args.inputs, input_shape, t, framing, args.samples)
    else:
        require(framing is None, "--frames/--frame-ms integrate an events file: give it with --inputs EVENTS.npz")
        found = default_inputs(input_shape, args.samples or DEFAULT_SAMPLES, t)
    return encoded.encode(found, args.encoding or "direct", args.encoding_seed or 0)


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
    from ..inputs import is_events
    if not path or is_events(path):                # an events file: its frames take the model's shape
        return None
    shape = _file_shape(path)
    return tuple(shape[2:]) if len(shape) in (3, 5) else tuple(shape[1:])


def _file_shape(path) -> tuple:
    from .. import data
    return tuple(data.open_array(path).shape)
