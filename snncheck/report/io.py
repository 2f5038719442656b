"""Writing report files atomically: a run that is interrupted or fails leaves no half-written file."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np


def atomic_write_text(path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o666 & ~_umask())          # mkstemp creates 0600; a report is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


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


def write_json(report, path) -> None:
    atomic_write_text(path, to_json(_finite(report.to_dict())))


def _finite(obj):
    """JSON has no inf/NaN: they become strings (e.g. a margin where no run recorded H)."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not np.isfinite(obj):
        return str(obj)
    return obj


def write_outputs(report, json_path=None, html_path=None, quiet: bool = False) -> None:
    """Renders first, then writes each file atomically: an interrupted run leaves no half-written report."""
    page = None
    if html_path:
        from . import html
        page = html.render(report)
    if json_path:
        write_json(report, json_path)
        if not quiet:
            print(f"JSON report: {json_path}")
    if html_path:
        atomic_write_text(html_path, page)
        if not quiet:
            print(f"HTML report: {html_path}")
