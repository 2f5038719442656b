"""The input flags diff and compare share: how frames are encoded into spikes, and how an events file is
integrated into frames (docs/inputs.md)."""
from __future__ import annotations

from . import positive_float, positive_int


def register(p) -> None:
    g = p.add_argument_group("inputs as encoded (docs/inputs.md)")
    g.add_argument("--encoding", choices=("direct", "poisson", "latency"),
                   help="frames as they are at every step (direct), or spikes drawn as SpikingJelly's PoissonEncoder "
                        "or LatencyEncoder draws them; encoded once, the same spikes go to every simulator")
    g.add_argument("--encoding-seed", type=int, metavar="S", help="seed of the Poisson draws (default 0)")
    g.add_argument("--frames", type=positive_int, metavar="N", help="integrate an events file into N frames")
    g.add_argument("--split-by", choices=("number", "time"), help="with --frames: equal event counts or equal "
                                                                  "time spans (default number)")
    g.add_argument("--frame-ms", type=positive_float, metavar="D",
                   help="integrate an events file into one frame per D ms (time stamps in microseconds)")


def overrides(args) -> dict:
    """The flags given, under the keys a case's [inputs] table uses."""
    given = {"encoding": args.encoding, "encoding_seed": args.encoding_seed, "frames": args.frames,
             "split_by": args.split_by, "frame_ms": args.frame_ms}
    return {k: v for k, v in given.items() if v is not None}
