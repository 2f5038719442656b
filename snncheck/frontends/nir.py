"""NIR graph files as a model source (`--model graph.nir`): `nir.read`, then the exact mapping of
`snncheck.graph.nir` (fire rule, reset, r, tau and dt as NIR defines them; what has no twin refused by name)."""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError, require
from ..graph import Graph
from ..graph.nir import DT, to_graph


def is_nir(spec) -> bool:
    return spec is not None and str(spec).lower().endswith(".nir")


def load(path, dt: float = DT) -> Graph:
    """A NIR file as a graph."""
    import nir
    path = Path(path)
    require(path.is_file(), lambda: f"NIR graph not found: {path}")
    try:
        g = nir.read(str(path))
    except Exception as exc:      # h5py and nir raise many types on a file that is not a NIR graph
        raise InputError(f"{path}: not a readable NIR graph ({type(exc).__name__}: {str(exc)[:160]})") from None
    return to_graph(g, dt, name=path.stem)
