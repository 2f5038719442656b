"""The Jinja2 environment every HTML piece of the report is rendered with: templates from
snncheck/report/templates, autoescape on (text from users' files is always escaped), undefined names are errors."""
from __future__ import annotations

import functools
import json


@functools.lru_cache(maxsize=1)
def environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
    env = Environment(loader=PackageLoader("snncheck.report", "templates"), undefined=StrictUndefined,
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["tuple"] = lambda v: str(tuple(v)) if isinstance(v, (list, tuple)) else str(v)
    env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=1, default=str)
    return env
