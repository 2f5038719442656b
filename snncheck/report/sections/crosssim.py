"""The cross-simulator table (`snncheck.report.crosssim`) on the HTML page, when the report compares simulators
reached through NIR or a recorded run against a reference: per layer and run, the exact mismatches, the first
divergence, the NIR paper's activity cosine and the trap the layer's own replay needs."""
from __future__ import annotations

KEY = "cross_simulator"


def render(report, env):
    from ..crosssim import table
    if not any(m.get("via") == "nir" or m.get("recorded_from") for m in report.runs.values()):
        return None
    return env.get_template("crosssim.html.j2").render(rows=table(report))
