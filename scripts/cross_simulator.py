"""The cross-simulator table for one NIR graph: the reference (NIR's own semantics), SpikingJelly and snnTorch
through their NIR importers, and PAIBox, per layer: exact mismatch counts against the reference, first divergence,
the NIR paper's activity cosine similarity, and the trap that explains each divergence; then what each importer
says of the file exactly as written (snnTorch refuses SpikingJelly's r = 1/dt: the dt trap).

    python scripts/cross_simulator.py [GRAPH.nir] [--samples N] [--timesteps T] [--json OUT.json] [--md OUT.md]

Without GRAPH, the default: an integer conv network (conv-IF x2, linear-IF) built in SpikingJelly and written
with SpikingJelly's own exporter, on seeded random input spikes.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

SIMULATORS = ["reference", "sj_nir", "snntorch", "paibox"]


def default_graph(path: Path) -> Path:
    """An integer conv IF network exported by SpikingJelly's export_to_nir (thresholds are whole numbers: ties)."""
    import torch
    import torch.nn as nn
    from spikingjelly.activation_based import layer, neuron
    from spikingjelly.activation_based.nir_exchange import export_to_nir
    import nir
    rng = np.random.default_rng(0)
    net = nn.Sequential(layer.Conv2d(2, 4, 3, padding=1), neuron.IFNode(v_threshold=3.0),
                        layer.Conv2d(4, 8, 3, stride=2, padding=1), neuron.IFNode(v_threshold=4.0),
                        layer.Flatten(), layer.Linear(8 * 4 * 4, 10), neuron.IFNode(v_threshold=3.0)).eval()
    with torch.no_grad():
        for m, bias in ((net[0], True), (net[2], False), (net[5], False)):
            m.weight.copy_(torch.from_numpy(rng.integers(-2, 3, tuple(m.weight.shape)).astype(np.float32)))
            m.bias.copy_(torch.from_numpy(rng.integers(0, 2, m.bias.shape[0]).astype(np.float32) * bias))
    nir.write(str(path), export_to_nir(net, torch.zeros(1, 2, 8, 8)))
    return path


def run(graph_path, samples: int = 32, timesteps: int = 8, seed: int = 0):
    """(report, rows) of the cross-simulator comparison of one NIR graph file."""
    from snncheck import pipeline, plan as plans
    from snncheck.frontends import nir as nir_files
    from snncheck.report import crosssim
    graph = nir_files.load(graph_path)
    x = (np.random.default_rng(seed).random((samples, timesteps) + graph.input_shape) < 0.3).astype(np.float32)
    plan = plans.check(graph, plans.Inputs.sequences(x, source="random_spikes", seed=seed), backends=SIMULATORS,
                       title=f"cross-simulator:{Path(graph_path).stem}", evidence=samples)
    report = pipeline.execute(plan)
    return report, crosssim.table(report)


def as_written(graph_path) -> list:
    """What each importer says of the file exactly as written (the table runs each on the graph as snncheck writes
    it for that importer): snnTorch asserts r == 1 for an IF, while NIR's r is 1/dt as SpikingJelly writes it."""
    import contextlib
    import io
    import nir
    from snntorch.import_nir import import_from_nir as snntorch_import
    from spikingjelly.activation_based.nir_exchange import import_from_nir as sj_import
    notes = []
    for name, importer in (("sj_nir", sj_import), ("snntorch", snntorch_import)):
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                importer(nir.read(str(graph_path)))
            notes.append(f"{name}: imports the file as written")
        except (AssertionError, ValueError, NotImplementedError) as exc:
            notes.append(f"{name}: refuses the file as written ({type(exc).__name__}: {exc}): dt_scaling, it reads "
                         "r as a per-step gain where NIR's IF steps v += dt*r*I; its column runs the graph written "
                         "with r = 1")
    return notes


def main(argv=None) -> int:
    from snncheck.report import crosssim
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("graph", nargs="?", help="a NIR graph file (default: the built-in conv network)")
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--timesteps", type=int, default=8)
    p.add_argument("--json", help="write the rows and diagnoses as JSON here")
    p.add_argument("--md", help="write the markdown table here")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.graph or default_graph(Path(tmp) / "conv.nir")
        report, rows = run(path, args.samples, args.timesteps)
        notes = as_written(path)
    md = crosssim.markdown(rows)
    print(md)
    print("\n".join(notes))
    for d in report.diagnoses:
        print(f"[{d.severity}] {d.code} @ {d.layer}: {d.message}")
    if args.md:
        Path(args.md).write_text(md + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "diagnoses": [d.to_dict() for d in report.diagnoses],
                                               "as_written": notes,
                                               "skipped": report.extras.get("unsupported", {})}, indent=1,
                                              default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
