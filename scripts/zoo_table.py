"""SpikingJelly 2.0's own models, as shipped, through snncheck's command line: the table of issue 10.

Per model (cases/zoo.py: IFNode, seeded random weights with random biases and BatchNorm statistics, input scale
255): does it import; `snncheck convert` exit code; `snncheck diff A B` verdict on the correct conversion and
whether PAIBox equals the reference bit for bit; then two planted bugs in B, each diffed (reference and
SpikingJelly) and the top error diagnosis compared with the layer the bug was planted in: the first layer's bias
/255 (mutation bias_unscaled) and the second spiking layer's threshold x2 (vthr_scale). The LIF and
ParametricLIF variants have no integer form: `snncheck diff A` checks SpikingJelly against the reference.

    python scripts/zoo_table.py [--models csnn,mnist_net] [--samples 4] [--timesteps 4] [--json out.json]

Prints a markdown table. Timings are wall seconds on whatever machine runs it.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import io
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "cases"))

import zoo  # noqa: E402

from snncheck import checkpoint, convert, mutations  # noqa: E402
from snncheck.cli import main as cli  # noqa: E402
from snncheck.errors import InputError  # noqa: E402
from snncheck.frontends import models  # noqa: E402

IF_MODELS = ["csnn", "mnist_net", "fashion_mnist_net", "nmnist_net", "cifar10_net", "dvs_gesture_net", "vgg11",
             "vgg11_bn", "resnet18", "sew_resnet18"]
LIF_MODELS = {"mnist_net_lif": "mnist_net", "mnist_net_plif": "mnist_net", "cifar10_net_plif": "cifar10_net"}
INPUT_SCALE = 255


def run_cli(argv: list) -> tuple:
    """(exit code, what it printed) of one snncheck command, in this process."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = cli(argv)
    return code, out.getvalue()


def spec(name: str) -> str:
    return f"{ROOT / 'cases' / 'zoo.py'}:{name}"


def common(name: str, shape: tuple, args) -> list:
    return ["--model", spec(name), "--input-shape", ",".join(map(str, shape)), "--samples", str(args.samples),
            "--timesteps", str(args.timesteps)]


def diff(a: Path, b, name: str, shape: tuple, args, tmp: Path, tag: str, runners=None) -> dict:
    j = tmp / f"{name}-{tag}.json"
    argv = ["diff", str(a)] + ([str(b)] if b else []) + common(name, shape, args) + \
        ["--json", str(j), "--out", str(tmp / f"{name}-{tag}.html")] + (["--runners", runners] if runners else [])
    code, said = run_cli(argv)
    return json.loads(j.read_text()) if j.exists() else {"error": said.strip().splitlines()[-1:], "code": code}


def top_error(rep: dict):
    errors = [d for d in rep.get("diagnoses", []) if d["severity"] == "error"]
    return (errors[0]["code"], errors[0]["layer"]) if errors else None


def planted(a: Path, name: str, shape: tuple, args, tmp: Path, bug: dict, pick, graph, conv) -> str:
    """Plants `bug` in `conv` (the correct conversion of A's float `graph`; mutations leave it as it is), diffs
    A against it; 'code @ layer' and whether it is the layer."""
    layer = pick(conv, graph)
    bug = dict(bug, layer=layer)
    path = tmp / f"{name}-{bug['name']}.pth"
    checkpoint.save_deployed(dataclasses.replace(conv, graph=mutations.apply(conv.graph, graph, bug, conv)), path)
    top = top_error(diff(a, path, name, shape, args, tmp, bug["name"], "reference,spikingjelly"))
    hit = top is not None and top[1] == mutations.target(conv.graph, graph, conv, bug["name"], layer)
    return f"{'named' if hit else 'MISSED'}: {top[0]} @ {top[1]}" if top else "MISSED: no error"


def if_row(name: str, args, tmp: Path) -> dict:
    shape, row, start = zoo.INPUT_SHAPES[name], {"model": name}, time.perf_counter()
    a = tmp / f"{name}.pth"
    try:
        module = models.build_module(spec(name))
        from snncheck.frontends.spikingjelly import import_module
        graph, _ = import_module(module, shape, name)
        row["import"] = f"ok ({len(graph.neurons)} spiking layers; readout {', '.join(graph.readouts) or '-'})"
        import torch
        torch.save(module.state_dict(), a)
    except InputError as exc:
        return dict(row, **{"import": f"refused: {exc}"})
    b = tmp / f"{name}-int8.pth"
    code, said = run_cli(["convert", str(a), "--model", spec(name), "--input-shape", ",".join(map(str, shape)),
                          "--input-scale", str(INPUT_SCALE), "--out", str(b)])
    row["convert"] = str(code) if code != 2 else f"2: {said.strip().splitlines()[-1]}"
    if code == 2:
        return dict(row, seconds=time.perf_counter() - start)
    rep = diff(a, b, name, shape, args, tmp, "correct", "reference,spikingjelly" if args.no_paibox else None)
    pb = rep.get("pairs", {}).get("paibox:b~reference:b")
    row["diff"] = rep.get("verdict", rep.get("error"))
    row["paibox = reference"] = ("bit-exact" if pb["exact"] else f"DIFFERS ({pb['first_divergence']})") if pb else \
        f"left out: {rep.get('extras', {}).get('unsupported', {}).get('paibox', '?')}"
    firing = [l.get("reference:b~spikingjelly:a", l.get("spikingjelly:a~reference:b", {})).get("firing_rate_b")
              for l in rep.get("layers", [])]
    row["firing B"] = "/".join(f"{f:.2f}" for f in firing if f is not None)
    conv = convert.convert(graph, INPUT_SCALE, "max")     # A as imported above (what `a` holds), for both bugs
    row["bias /255"] = planted(a, name, shape, args, tmp, {"name": "bias_unscaled"},
                               lambda conv, g: mutations.target(conv.graph, g, conv, "bias_unscaled"), graph, conv)
    row["threshold x2"] = planted(a, name, shape, args, tmp, {"name": "vthr_scale", "factor": 2},
                                  lambda conv, g: conv.graph.neurons[min(1, len(conv.graph.neurons) - 1)], graph, conv)
    return dict(row, seconds=time.perf_counter() - start)


def lif_row(name: str, args, tmp: Path) -> dict:
    shape, start = zoo.INPUT_SHAPES[LIF_MODELS[name]], time.perf_counter()
    a = tmp / f"{name}.pth"
    import torch
    torch.save(models.build_module(spec(name)).state_dict(), a)
    zoo.INPUT_SHAPES[name] = shape
    rep = diff(a, None, name, shape, args, tmp, "float")
    pair = rep.get("pairs", {}).get("spikingjelly:a~reference:a", {})
    return {"model": name, "diff": rep.get("verdict", rep.get("error")),
            "SpikingJelly ~ reference": f"{sum(l['mismatches'] for l in pair.get('layers', []))} flips, "
                                        f"{pair.get('unexplained_flips')} unexplained",
            "B": rep.get("extras", {}).get("unsupported", {}).get("paibox", "-"),
            "seconds": time.perf_counter() - start}


def markdown(rows: list) -> str:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    cell = lambda v: f"{v:.0f}" if isinstance(v, float) else str(v).replace("|", "/")   # noqa: E731
    return "\n".join(["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)] +
                     ["| " + " | ".join(cell(r.get(k, "")) for k in keys) + " |" for r in rows])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", help="comma-separated subset (default: all, LIF variants included)")
    ap.add_argument("--samples", type=int, default=4)
    ap.add_argument("--timesteps", type=int, default=4)
    ap.add_argument("--json", help="write the rows here")
    ap.add_argument("--no-paibox", action="store_true", help="diff the correct conversion in the reference and "
                                                             "SpikingJelly only (for networks too large to simulate)")
    args = ap.parse_args()
    wanted = args.models.split(",") if args.models else IF_MODELS + list(LIF_MODELS)
    rows_if, rows_lif = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for name in wanted:
            rows, row = (rows_lif, lif_row) if name in LIF_MODELS else (rows_if, if_row)
            try:
                rows.append(row(name, args, Path(tmp)))
            except Exception as exc:        # a crash is a row of the table too, not the end of it
                traceback.print_exc()
                rows.append({"model": name, "import": f"CRASH: {type(exc).__name__}: {exc}"})
            print(f"{name}: {json.dumps(rows[-1])}", file=sys.stderr, flush=True)     # each row as soon as known
    print(f"samples {args.samples}, timesteps {args.timesteps}, input scale {INPUT_SCALE}, seeded random weights\n")
    for rows in (rows_if, rows_lif):
        if rows:
            print(markdown(rows) + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(rows_if + rows_lif, indent=1))


if __name__ == "__main__":
    main()
