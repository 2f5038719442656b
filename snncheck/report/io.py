"""Report files: JSON and HTML, written together and never over an input of the run (`snncheck.files`)."""
from __future__ import annotations

import json
from typing import Iterable

import numpy as np

from ..files import atomic_write_text, safe_name, text_writer, write_together

__all__ = ["atomic_write_text", "report_json", "safe_name", "to_json", "write_json", "write_outputs"]


def to_json(obj) -> str:
    return json.dumps(obj, indent=2, default=_default, allow_nan=False)


def _default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o) if np.isfinite(o) else str(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, (set, tuple)):
        return list(o)
    raise TypeError(f"not JSON-serialisable: {type(o).__name__}")


def write_json(report, path, inputs: Iterable = ()) -> None:
    atomic_write_text(path, report_json(report), inputs)


def report_json(report) -> str:
    return to_json(_finite(report.to_dict()))


def _finite(obj):
    """JSON has no inf/NaN: they become strings (e.g. a margin where no run recorded H)."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return str(obj)
    return obj


def write_outputs(report, json_path=None, html_path=None, quiet: bool = False, inputs: Iterable = ()) -> None:
    """Renders first, then writes both files together (see write_together): never over an input of the run."""
    files = []
    if json_path:
        files.append((json_path, text_writer(report_json(report))))
    if html_path:
        from . import html
        files.append((html_path, text_writer(html.render(report))))
    write_together(files, inputs)
    if not quiet:
        for label, path in (("JSON", json_path), ("HTML", html_path)):
            if path:
                print(f"{label} report: {path}")
