"""Report sections that other analyses add to the HTML page, in order: each is a module here with

    KEY = "name"                       # the report.extras entry it renders (left out of the Details list)
    def render(report, env) -> str | None   # an HTML fragment from its own template (autoescape on), or None

Adding a section is adding a module and its name to SECTIONS; the page renders them between the layer table and
the per-layer figures.
"""
from __future__ import annotations

import importlib

SECTIONS: list = ["inputs", "ann2snn", "crosssim"]          # module names under snncheck.report.sections, in page order


def _modules() -> list:
    return [importlib.import_module(f"{__name__}.{name}") for name in SECTIONS]


def render_all(report) -> list:
    from markupsafe import Markup
    from ..templating import environment
    out = []
    for module in _modules():
        fragment = module.render(report, environment())
        if fragment:
            out.append(Markup(fragment))
    return out


def keys() -> frozenset:
    return frozenset(module.KEY for module in _modules())
