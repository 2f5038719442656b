"""`snncheck export A.pth [B.pth] --model SPEC --out graph.nir`: the network as a NIR graph (`nir.write`): A's float
graph, or with B the deployed integer one, BatchNorm folded. What NIR cannot say (soft reset, an initial membrane,
max pooling) is refused naming the node (exit 2); neurons that fire on `>=` are written with NIR's `>` and listed."""
from __future__ import annotations

from ..files import path_writer, write_together
from . import existing_file, input_shape, output_file, positive_float, spec_files, spec_text


def register(sub) -> None:
    p = sub.add_parser("export", help="write a network as a NIR graph", description=__doc__)
    p.add_argument("a", metavar="A", type=existing_file, help="float SpikingJelly checkpoint (.pth state_dict)")
    p.add_argument("b", metavar="B", nargs="?", type=existing_file, help="deployed integer checkpoint: export it instead of A")
    p.add_argument("--model", metavar="SPEC", type=spec_text, help="FILE.py:FACTORY, module:FACTORY or a built-in model name")
    p.add_argument("--input-shape", type=input_shape, metavar="C,H,W", help="where the model does not say it")
    p.add_argument("--out", metavar="graph.nir", required=True, help="the NIR file to write")
    p.add_argument("--nir-dt", type=positive_float, default=None, help="time step written into r and tau (default 1e-4)")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import checkpoint
    from ..graph import nir
    inputs = [args.a, args.b, *spec_files(args.model)]
    out = output_file(args, inputs)
    graph = checkpoint.load_float(args.a, args.model, input_shape=args.input_shape).graph
    if args.b:
        graph = checkpoint.load_deployed(args.b, graph).graph
    saved = []
    write_together({out: path_writer(lambda tmp: saved.append(nir.save(graph, tmp, args.nir_dt or nir.DT)))},
                   inputs)
    written = saved[0]
    ties = f"; fire on >= here, NIR's > there (ties differ): {', '.join(written.ties)}" if written.ties else ""
    print(f"wrote {out}: {len(written.graph.nodes)} NIR nodes{ties}")
    return 0
