"""`snncheck compare [CASE]`: a case in every backend, compared layer by layer (the embedded CSNN by default).
A backend that refuses the case's network is a usage error (exit 2) unless the case expects the refusal."""
from __future__ import annotations

from . import DEFAULT_CASE, add_plugin_option, backends_list, check_outputs, finish, input_flags, positive_int


def register(sub) -> None:
    c = sub.add_parser("compare", help="run a case in every simulator and compare layer by layer",
                       description=__doc__)
    c.add_argument("case", nargs="?", default=str(DEFAULT_CASE), help="case file (.toml); default: the embedded CSNN")
    c.add_argument("--samples", type=positive_int)
    c.add_argument("--timesteps", type=positive_int)
    c.add_argument("--timing", choices=("pipeline", "flat"), help="PAIBox tick_wait_start per stage, or 1 everywhere")
    c.add_argument("--runners", type=backends_list, help="comma-separated subset of reference,spikingjelly,paibox")
    c.add_argument("--json", help="write the JSON report here")
    c.add_argument("--out", help="write the HTML report here")
    input_flags.register(c)
    add_plugin_option(c)
    c.set_defaults(func=run)


def run(args) -> int:
    from .. import case as cases, pipeline
    from ..errors import InputError
    case = cases.Case.load(args.case)
    if input_flags.overrides(args):
        raw = case.spec.model_dump()
        raw["inputs"].update(input_flags.overrides(args))
        case = cases.Case.from_dict(raw, case.path)
    inputs = case.files()
    check_outputs(args, inputs, "json", "out")
    plan = cases.build_plan(case, samples=args.samples, timesteps=args.timesteps, runners=args.runners,
                            timing=args.timing, plugins=tuple(args.plugin))
    bad = cases.unexpected_refusals(case, plan)
    if bad:
        raise InputError(f"{case.name}: {bad[0].refusals[0]}")
    return finish(pipeline.execute(plan), args.json, args.out, inputs)
