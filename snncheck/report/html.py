"""The HTML report: one self-contained file (CSS inline, figures as base64 PNG, no script, no external URL).

Order of reading: the verdict and what to fix first, then the per-layer table, then the sections other analyses
add (`snncheck.report.sections`), then per-layer figures. The page is a Jinja2 template with autoescape on
(`templates/report.html.j2`): every string that comes from a user's files (layer names, paths, messages quoting
them) is escaped by the engine; the few cells that carry markup are built with `Markup.format`, which escapes
what it is given.
"""
from __future__ import annotations

from markupsafe import Markup

from . import figures, sections
from .templating import environment
from .text import readout_cell


def render(report) -> str:
    figs = figures.layer_figures(report)
    page = environment().get_template("report.html.j2").render(
        title=report.title, verdict=report.verdict, header=_header(report), diagnoses=report.diagnoses,
        layers=_layer_table(report), matching=_matching(report), sections=sections.render_all(report),
        figures=[{"name": name, "figures": figs[name], "diagnoses": [d for d in report.diagnoses if d.layer == name]}
                 for name in report.layers if figs.get(name)],
        details=_details(report))
    return page + "\n"


# ------------------------------------------------------------------------------------------------ header
def _header(report) -> list:
    nets, inputs = report.networks, report.inputs
    a, b = (nets.get(k, {}).get("name") for k in ("a", "b"))
    parts = []
    if a and b:
        parts.append(Markup("A <b>{}</b> (float) against B <b>{}</b> (integer)").format(a, b))
    elif a or b:
        parts.append(Markup("<b>{}</b>").format(a or b))            # one network (a check plan)
    if inputs.get("samples"):
        what = inputs.get("description") or inputs.get("source", "inputs")
        parts.append(Markup("{} samples x {} steps of {}").format(inputs.get("samples"), inputs.get("timesteps"), what))
    if "input_scale" in inputs:
        parts.append(Markup("input scale {}").format(_g(inputs["input_scale"])))
    lines = [Markup(" &middot; ").join(parts), _verdict_sentence(report)] + _divergences(report)
    if report.extras.get("inferred"):
        lines.append(Markup("Given by no file nor flag, inferred: {}.").format(
            ", ".join(map(str, report.extras["inferred"]))))
    return lines


def _divergences(report) -> list:
    """Where the runs of one network first disagree (a simulator problem), then where A and B first differ."""
    order = {name: i for i, name in enumerate(report.layers)}
    out = []
    for same, text in ((True, "Simulators first disagree on the same network"), (False, "A and B first differ")):
        found = [dict(p.first_divergence, pair=p.key) for p in report.pairs
                 if p.first_divergence and _same_network(p) == same]
        if found:
            fd = min(found, key=lambda d: (order.get(d["layer"], 0), d["t"], d["sample"]))
            out.append(Markup("{}: {} ({}).").format(text, _where(fd), fd["pair"]))
    return out


def _same_network(pair) -> bool:
    return pair.expect != "quantization"


def _verdict_sentence(report) -> Markup:
    errors = [d for d in report.diagnoses if d.severity == "error"]
    if not errors and report.verdict == "inconclusive":
        return Markup("Inconclusive: what was compared cannot show a difference (see the <code>vacuous</code> "
                      "warning): agreement here proves nothing.")
    if not errors:
        return Markup("The integer network runs identically in every simulator and whatever differs from the float "
                      "model is explained by quantization.")
    layers = [d.layer for d in errors if d.layer]
    first = Markup(", first at layer <b>{}</b>").format(layers[0]) if layers else ""
    return Markup("{} error(s) found{}. Fix them in the order listed.").format(len(errors), first)


# ------------------------------------------------------------------------------------------------ tables
def _layer_table(report) -> dict:
    shapes, rates = _shapes(report), _run_rates(report)
    a_run = next((l for l in ("spikingjelly:a", "reference:a") if l in rates), None)
    b_run = next((l for l in ("paibox:b", "reference:b") if l in rates), None)
    isolated = report.extras.get("isolated") or {}
    head = ["layer", "lag exp / found"] + [f"{p.a} ~ {p.b}" for p in report.pairs]
    head += ["A ~ B in isolation"] if isolated else []
    head += [f"rate {r}" for r in (a_run, b_run) if r] + ["scale", "SQNR dB", "RMSE / step"]
    rows = []
    for name in report.layers:
        cells = [Markup('<b>{}</b><div class="muted">{}</div>').format(name, shapes.get(name, "")),
                 _lag_cell(report.pipelined_lags.get(name))]
        for p in report.pairs:
            lc = p.layer(name)
            cls = "bad" if lc.mismatches and _same_network(p) else ""
            cells.append(Markup('<span class="{}">{:.2%}</span> <span class="muted">{}/{}</span>'
                                '<div class="muted">{}</div>').format(cls, lc.rate, lc.mismatches, lc.total,
                                                                       _where(lc.first_divergence, short=True)))
        cells += [_isolated_cell(isolated[name]) if name in isolated else "-"] if isolated else []
        cells += [f"{rates[r][name]:.3f}" for r in (a_run, b_run) if r]
        w = _weights(report, name)
        cells += [_num(w.get("scale")), _num(w.get("sqnr_db"), ".1f"), _num(w.get("rmse_over_step"), ".3f")]
        rows.append(cells)
    rows += [_readout_row(report, name, len(head)) for name in report.readouts]
    return {"head": head, "rows": rows}


def _readout_row(report, name: str, width: int) -> list:
    """A readout computed off-chip, compared as numbers in A's units (B's divided by its scale)."""
    cells = [Markup('<b>{}</b><div class="muted">readout</div>').format(name), "-"]
    for p in report.pairs:
        oc = p.output(name)
        bad = oc is not None and not oc.exact and _same_network(p)
        cells.append(Markup('<span class="{}">{}</span>').format("bad" if bad else "", readout_cell(oc)))
    return cells + ["-"] * (width - len(cells))


def _isolated_cell(iso: dict) -> Markup:
    """A layer's own drift from A, beside what a correct requantization of it drifts."""
    yard = iso.get("requantized_rate")
    ref = Markup('<div class="muted">requantized: {:.2%}</div>').format(yard) if isinstance(yard, float) else ""
    return Markup('<span class="{}">{:.2%}</span>{}').format("bad" if iso.get("beyond_quantization") else "",
                                                             iso.get("rate", 0), ref)


def _matching(report):
    rows = report.extras.get("paibox_matching")
    if not rows:
        return None
    net_a = report.evidence.graphs.get("a")
    a_reset = {n: net_a[n].reset for n in net_a.neurons} if net_a else {}
    out = []
    for r in rows:
        out.append([r.get("paibox"), r.get("type"), str(r.get("shape")),
                    Markup("<b>{}</b>").format(r["layer"]) if r.get("layer") else
                    Markup('<span class="muted">no counterpart</span>'),
                    _flagged(r.get("tick_wait_start"), r.get("recipe_tick_wait_start"), "recipe"),
                    r.get("delay"), _flagged(r.get("reset") or "-", a_reset.get(r.get("layer")), "A"),
                    "-" if r.get("threshold") is None else r.get("threshold")])
    return {"head": ["PAIBox node", "type", "shape", "matched A layer", "tick_wait_start", "delay", "reset",
                     "threshold"], "rows": out}


def _flagged(value, want, who: str):
    """The value, marked when it differs from what `who` says it should be."""
    if want is None or want == value:
        return value
    return Markup('<span class="bad">{}</span> <span class="muted">({} {})</span>').format(value, who, want)


def _details(report) -> list:
    items = [("inputs", report.inputs)] + [(f"run {k}", v) for k, v in report.runs.items()]
    items += [(f"network {k}", {x: v.get(x) for x in ("name", "integer", "input_shape", "spiking_layers")})
              for k, v in report.networks.items()]
    items += [(k, v) for k, v in report.extras.items()
              if k not in ("paibox_matching", "isolated", "inferred") and k not in sections.keys()]
    return [(k, _compact(v)) for k, v in items]


# ------------------------------------------------------------------------------------------------ helpers
def _lag_cell(lag):
    if not lag:
        return "-"
    found = "?" if lag.get("detected") is None else lag["detected"]
    return Markup('<span class="{}">{} / {}</span>').format("bad" if lag.get("anomaly") else "good",
                                                           lag.get("expected"), found)


def _where(fd, short: bool = False) -> Markup:
    if not fd:
        return Markup("none")
    neuron = tuple(fd.get("neuron", ()))
    if short:
        return Markup("first: t{} s{} {}").format(fd["t"], fd["sample"], neuron)
    layer = Markup("layer <b>{}</b>, ").format(fd["layer"]) if "layer" in fd else ""
    return Markup("{}step {}, sample {}, neuron {}").format(layer, fd["t"], fd["sample"], neuron)


def _run_rates(report) -> dict:
    """{run label: {layer: mean firing rate}} read off the pairs."""
    out: dict = {}
    for p in report.pairs:
        for lc in p.layers:
            out.setdefault(p.a, {})[lc.name] = float(lc.rate_a.mean())
            out.setdefault(p.b, {})[lc.name] = float(lc.rate_b.mean())
    return out


def _shapes(report) -> dict:
    nets = report.evidence.graphs
    net = nets.get("a") or nets.get("b")
    return {k: "x".join(map(str, net.shapes[k])) for k in net.neurons} if net else {}


def _weights(report, name: str) -> dict:
    """Weight statistics of a spiking layer, stored under its own name or its synapse's."""
    if name in report.weights:
        return report.weights[name]
    net = report.evidence.graphs.get("a")
    syn = figures.synapse_of(net, name) if net is not None else None
    return report.weights.get(syn, {}) if syn is not None else {}


def _num(value, fmt: str = ".4g"):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return Markup('<span class="muted">-</span>')
    return Markup('<span class="num">{}</span>').format(format(value, fmt))


def _g(value) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def _compact(value) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_compact(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_compact(v) for v in value) + "]"
    return str(value)
