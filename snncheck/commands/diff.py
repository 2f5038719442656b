"""`snncheck diff A B`: a float SpikingJelly checkpoint against its deployed integer version, or against a user's
own PAIBox network (`--paibox FILE.py:FACTORY` in place of B). Prints the verdict and a per-layer table, writes
the HTML report (and JSON with --json). Exit 0 consistent, 1 inconsistent, 2 bad input."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError, require

DEFAULT_SAMPLES = 32
DEFAULT_TIMESTEPS = 8


def register(sub) -> None:
    p = sub.add_parser("diff", help="compare a float checkpoint with its deployed integer version, layer by layer",
                       description=__doc__)
    p.add_argument("a", metavar="A", help="float SpikingJelly checkpoint (.pth state_dict)")
    p.add_argument("b", metavar="B", nargs="?", help="deployed integer checkpoint (.pth)")
    p.add_argument("--paibox", metavar="FILE.py:FACTORY", help="a user's own PAIBox network in place of B")
    p.add_argument("--model", metavar="SPEC", help="FILE.py:FACTORY, module:FACTORY or a built-in model name")
    p.add_argument("--vthr", help="B's thresholds: comma-separated ints in spiking-layer order, or name=value pairs")
    p.add_argument("--input-scale", type=float, help="what B's input is multiplied by (255 for 0-255 pixels)")
    p.add_argument("--reset", choices=("hard", "soft"), help="B's reset mode")
    p.add_argument("--inputs", metavar="FILE.npy", help="[N, C, H, W] frames or [N, T, C, H, W] sequences, in A's range")
    p.add_argument("--samples", type=int, help=f"number of samples (default {DEFAULT_SAMPLES})")
    p.add_argument("--timesteps", type=int, help=f"time steps (default {DEFAULT_TIMESTEPS}; ignored for sequences)")
    p.add_argument("--runners", help="comma-separated subset of reference,spikingjelly,paibox")
    p.add_argument("--out", metavar="FILE.html", help="HTML report (default: reports/<A>-vs-<B>.html)")
    p.add_argument("--json", metavar="FILE.json", help="also write the report as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..cli import write_outputs
    from ..report import text
    report = diff_from_args(args)
    print(text.render(report))
    write_outputs(report, args.json, args.out or f"reports/{_safe(report.title)}.html")
    return 0 if report.verdict == "consistent" else 1


def diff_from_args(args):
    """Loads A, B (or the user's PAIBox network) and the inputs as the arguments say, and diffs them."""
    from .. import api, checkpoint
    require((args.b is None) != (args.paibox is None), "give either B (a deployed checkpoint) or --paibox "
                                                       "FILE.py:FACTORY, not both and not neither")
    for flag in ("samples", "timesteps"):
        value = getattr(args, flag)
        require(value is None or value > 0, f"--{flag} must be positive, got {value}")
    model = checkpoint.load_float(args.a, args.model, input_shape=_shape_hint(args.inputs))
    inputs, info = load_inputs(args, model.network.input_shape)
    runners = _runners(args.runners)
    extras, factories = {}, None
    if args.paibox:
        require(args.vthr is None and args.reset is None, "--vthr and --reset describe a deployed checkpoint; "
                                                         "a PAIBox network carries its own thresholds and reset")
        int_net, input_scale, factories, extras = _user_paibox(args, model, inputs)
        b_name = args.paibox.rpartition(":")[2]
    else:
        dep = checkpoint.load_deployed(args.b, model.network, vthr=parse_vthr(args.vthr),
                                       input_scale=args.input_scale, reset=args.reset)
        int_net, input_scale = dep.network, dep.input_scale
        if dep.inferred:
            extras["inferred"] = dep.inferred
        b_name = Path(args.b).stem
    title = f"{Path(args.a).stem}-vs-{b_name}"
    report = api.diff(model.module, model.network, int_net, inputs, input_scale, runners=runners, title=title,
                      inputs_info=info, factories=factories)
    report.extras.update(extras)
    if "paibox_matching" in extras:
        name_user_nodes(report, extras["paibox_matching"])
    return report


def name_user_nodes(report, matching: list) -> None:
    """Timing and reset fixes, said in the user's own PAIBox node names: which node gets which setting."""
    upto = {}
    for i, row in enumerate(matching):
        if row.get("layer"):
            upto[row["layer"]] = matching[:i + 1]
    for d in report.diagnoses:
        rows = upto.get(d.layer, [])
        if d.code == "timing":
            wrong = [f"{r['paibox']} tick_wait_start={r['recipe_tick_wait_start']} (has {r['tick_wait_start']})"
                     for r in rows if r["tick_wait_start"] != r["recipe_tick_wait_start"]]
            if wrong:
                d.fix += "; in your network: " + ", ".join(wrong)
        elif d.code == "reset_mode" and rows and rows[-1].get("reset") == "soft":
            d.fix += f"; in your network: give {rows[-1]['paibox']} reset_v=0 (a Python int; without it PAIBox " \
                     "resets softly)"


def _user_paibox(args, model, inputs):
    from ..frontends import paibox as user_paibox
    from ..runners.paibox_user import PAIBoxUserRunner
    user = user_paibox.load(args.paibox, model.network)
    extras = {"paibox_matching": user.matching}
    scale = args.input_scale
    if scale is None:
        scale, reason = user_paibox.infer_input_scale(user, model.network, inputs)
        extras["inferred"] = [f"input_scale={scale:g} ({reason})"]
    factories = {"paibox": lambda net, label: PAIBoxUserRunner(user, label)}
    return user.int_net, float(scale), factories, extras


def parse_vthr(text):
    """'12,7,30' -> ['12', '7', '30'] (validated by the loader); 'conv.2=12,fc.1=7' -> {name: value}."""
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    require(items, "--vthr is empty")
    if all("=" in t for t in items):
        return {k.strip(): v.strip() for k, v in (t.split("=", 1) for t in items)}
    require(not any("=" in t for t in items), f"--vthr mixes name=value pairs and plain values: {text!r}")
    return items


def load_inputs(args, input_shape) -> tuple:
    """(inputs [N, T, ...] in A's range, description): the --inputs file, or default_inputs."""
    from .. import data
    t = args.timesteps or DEFAULT_TIMESTEPS
    if not args.inputs:
        return default_inputs(input_shape, args.samples or DEFAULT_SAMPLES, t)
    arr = data.load_inputs(args.inputs, tuple(input_shape), t)
    arr = arr[:args.samples] if args.samples else arr
    name = Path(args.inputs).name
    return arr, {"source": f"file:{name}", "description": name, "samples": int(arr.shape[0]),
                 "timesteps": int(arr.shape[1])}


def default_inputs(input_shape, n: int, t: int) -> tuple:
    """Digits (test split, resized to the model's input) for image models, seeded random spikes otherwise."""
    from .. import data
    shape = tuple(input_shape)
    if len(shape) == 3:
        x, _ = data.digits("test")
        require(n <= len(x), f"--samples {n}: the digits test split has {len(x)} samples")
        resized = x.shape[1:] != shape
        x = data.resize(x[:n], shape) if resized else x[:n]
        desc = "scikit-learn digits (test split" + (f", resized to {'x'.join(map(str, shape))}" if resized else "")
        return data.direct(x, t), {"source": "digits", "description": desc + "), direct encoding",
                                   "samples": n, "timesteps": t}
    arr = data.random_spikes(n, t, shape, seed=0)
    return arr, {"source": "random_spikes", "description": "seeded random spikes (rate 0.2, seed 0)",
                 "samples": n, "timesteps": t, "seed": 0}


def _shape_hint(path):
    """The per-sample input shape of an inputs file ([N, *shape] or [N, T, *shape]), read from its header."""
    if not path:
        return None
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read inputs {path}: {exc}") from None
    return tuple(arr.shape[2:]) if arr.ndim in (3, 5) else tuple(arr.shape[1:])


def _runners(text):
    from .. import api
    if not text:
        return list(api.RUNNERS)
    names = [r.strip() for r in text.split(",") if r.strip()]
    bad = [r for r in names if r not in api.RUNNERS]
    require(names and not bad, f"--runners: unknown {bad}; known: {', '.join(api.RUNNERS)}")
    return names


def _safe(name: str) -> str:
    """A file name from a report title: letters, digits, '-', '_' and '.' only."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:120] or "report"
