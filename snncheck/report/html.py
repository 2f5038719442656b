"""The HTML report: one self-contained file (CSS inline, figures as base64 PNG, no script, no external URL).

Order of reading: the verdict and what to fix first, then the per-layer table, then per-layer figures. Every
string that comes from a user's files (layer names, paths, messages quoting them) is escaped.
"""
from __future__ import annotations

import html
import json

from . import figures

CSS = """
*{box-sizing:border-box}body{margin:0;background:#f4f5f7;color:#1f2933;font:14px/1.45 -apple-system,"Segoe UI",
Roboto,"Helvetica Neue",Arial,sans-serif}main{max-width:1180px;margin:0 auto;padding:24px 28px 60px}
header{display:flex;align-items:center;gap:16px;flex-wrap:wrap}h1{font-size:22px;margin:0;word-break:break-all}
h2{font-size:17px;margin:32px 0 10px}h3{font-size:15px;margin:0 0 8px;word-break:break-all}
.verdict{font-weight:700;letter-spacing:.04em;padding:5px 14px;border-radius:16px;color:#fff;font-size:13px}
.consistent{background:#1e8449}.inconsistent{background:#c0392b}.sub{color:#52606d;margin:6px 0 0}
.card{background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.08);padding:14px 18px;margin:10px 0}
.diag{border-left:5px solid #aaa}.diag.error{border-color:#c0392b}.diag.warning{border-color:#d68910}
.diag.info{border-color:#2e86c1}.sev{font-size:11px;font-weight:700;text-transform:uppercase;padding:2px 8px;
border-radius:10px;color:#fff;margin-right:8px}.sev.error{background:#c0392b}.sev.warning{background:#d68910}
.sev.info{background:#2e86c1}.code{font-family:ui-monospace,Menlo,Consolas,monospace;font-weight:600}
.at{color:#52606d}.fix{background:#eafaf1;border-radius:6px;padding:8px 12px;margin-top:8px}
.fix b{color:#1e8449}details{margin-top:6px}summary{cursor:pointer;color:#52606d;font-size:12px}
pre{background:#f4f5f7;padding:8px;border-radius:6px;overflow:auto;font-size:11px;max-height:260px}
table{border-collapse:collapse;width:100%;background:#fff;font-size:12.5px}th,td{padding:6px 8px;
border-bottom:1px solid #e4e7eb;text-align:left;vertical-align:top}th{background:#eef1f4;font-weight:600}
.num{text-align:right;font-variant-numeric:tabular-nums}.muted{color:#7b8794;font-size:11px}.bad{color:#c0392b;
font-weight:600}.good{color:#1e8449}.wrap{overflow-x:auto;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
.figs{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:12px}figure{margin:0;
background:#fafbfc;border:1px solid #e4e7eb;border-radius:6px;padding:8px}figure img{width:100%;height:auto}
figcaption{font-size:11.5px;color:#52606d;margin-top:4px}.kv{display:grid;grid-template-columns:max-content 1fr;
gap:2px 14px;font-size:12.5px}.kv div:nth-child(odd){color:#52606d}footer{color:#7b8794;font-size:11px;
margin-top:40px}a{color:#2e86c1}
"""


def e(value) -> str:
    """Escaped text of any value."""
    return html.escape("" if value is None else str(value), quote=True)


def render(report) -> str:
    figs = figures.layer_figures(report)
    body = [_header(report), _diagnoses(report), _layer_table(report), _matching(report),
            _layer_sections(report, figs), _details(report)]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            f"<title>snncheck: {e(report.title)}</title><style>{CSS}</style></head><body><main>"
            + "".join(body) + "<footer>snncheck report: self-contained, no script, no external resources.</footer>"
            "</main></body></html>\n")


# ------------------------------------------------------------------------------------------------ sections
def _header(report) -> str:
    nets = report.networks
    a, b = (nets.get(k, {}).get("name") for k in ("a", "b"))
    inputs = report.inputs
    what = inputs.get("description") or inputs.get("source", "inputs")
    parts = []
    if a or b:
        parts.append(f"A <b>{e(a)}</b> (float) against B <b>{e(b)}</b> (integer)")
    if inputs.get("samples"):
        parts.append(f"{e(inputs.get('samples'))} samples x {e(inputs.get('timesteps'))} steps of {e(what)}")
    if "input_scale" in inputs:
        parts.append(f"input scale {e(_g(inputs['input_scale']))}")
    verdict = report.verdict
    lines = [" &middot; ".join(parts), _verdict_sentence(report)] + _divergences(report)
    if report.extras.get("inferred"):
        lines.append(f"Given by no file nor flag, inferred: {e(', '.join(map(str, report.extras['inferred'])))}.")
    return (f"<header><h1>{e(report.title)}</h1><span class=\"verdict {verdict}\">{verdict.upper()}</span></header>"
            + "".join(f"<p class=\"sub\">{line}</p>" for line in lines))


def _divergences(report) -> list:
    """Where the runs of one network first disagree (a simulator problem), then where A and B first differ."""
    order = {name: i for i, name in enumerate(report.layers)}
    out = []
    for same, text in ((True, "Simulators first disagree on the same network"), (False, "A and B first differ")):
        found = [dict(p.first_divergence, pair=p.key) for p in report.pairs
                 if p.first_divergence and _same_network(p) == same]
        if found:
            fd = min(found, key=lambda d: (order.get(d["layer"], 0), d["t"], d["sample"]))
            out.append(f"{text}: {_where(fd)} ({e(fd['pair'])}).")
    return out


def _same_network(pair) -> bool:
    return pair.expect != "quantization"


def _verdict_sentence(report) -> str:
    errors = [d for d in report.diagnoses if d.severity == "error"]
    if not errors:
        return ("The integer network runs identically in every simulator and whatever differs from the float "
                "model is explained by quantization.")
    layers = [d.layer for d in errors if d.layer]
    first = f", first at layer <b>{e(layers[0])}</b>" if layers else ""
    return f"{len(errors)} error(s) found{first}. Fix them in the order listed."


def _diagnoses(report) -> str:
    ranked = report.diagnoses
    if not ranked:
        return "<h2>Diagnoses</h2><div class=\"card diag info\">No problem found.</div>"
    cards = []
    for d in ranked:
        evidence = json.dumps(d.evidence, indent=1, default=str) if d.evidence else ""
        cards.append(
            f"<div class=\"card diag {e(d.severity)}\"><span class=\"sev {e(d.severity)}\">{e(d.severity)}</span>"
            f"<span class=\"code\">{e(d.code)}</span>"
            + (f" <span class=\"at\">at layer <b>{e(d.layer)}</b></span>" if d.layer else "")
            + f"<div>{e(d.message)}</div>"
            + (f"<div class=\"fix\"><b>Fix:</b> {e(d.fix)}</div>" if d.fix else "")
            + (f"<details><summary>evidence</summary><pre>{e(evidence)}</pre></details>" if evidence else "")
            + "</div>")
    return "<h2>Diagnoses</h2>" + "".join(cards)


def _layer_table(report) -> str:
    shapes = _shapes(report)
    rates = _run_rates(report)
    a_run = next((l for l in ("spikingjelly:a", "reference:a") if l in rates), None)
    b_run = next((l for l in ("paibox:b", "reference:b") if l in rates), None)
    head = ["layer", "lag exp / found"] + [f"{p.a} ~ {p.b}" for p in report.pairs]
    isolated = report.extras.get("isolated") or {}
    head += ["A ~ B in isolation"] if isolated else []
    head += [f"rate {r}" for r in (a_run, b_run) if r] + ["scale", "SQNR dB", "RMSE / step"]
    rows = []
    for name in report.layers:
        lag = report.pipelined_lags.get(name)
        cells = [f"<b>{e(name)}</b><div class=\"muted\">{e(shapes.get(name, ''))}</div>", _lag_cell(lag)]
        for p in report.pairs:
            lc = p.layer(name)
            cls = "bad" if lc.mismatches and _same_network(p) else ""
            cells.append(f"<span class=\"{cls}\">{lc.rate:.2%}</span> <span class=\"muted\">{lc.mismatches}/"
                         f"{lc.total}</span><div class=\"muted\">{_where(lc.first_divergence, short=True)}</div>")
        cells += [_isolated_cell(isolated[name]) if name in isolated else "-"] if isolated else []
        cells += [f"{rates[r][name]:.3f}" for r in (a_run, b_run) if r]
        w = _weights(report, name)
        cells += [_num(w.get("scale")), _num(w.get("sqnr_db"), ".1f"), _num(w.get("rmse_over_step"), ".3f")]
        rows.append(cells)
    return ("<h2>Layers</h2><p class=\"sub\">Spike mismatch rate per compared pair (runs of the same network must "
            "agree exactly; A against B drifts with quantization), the first divergence as step / sample / neuron, "
            "A against B for each layer fed A's own input (its own drift, against a correct requantization), "
            "firing rates, and the fitted weight scale with its quantization error.</p>" + _table(head, rows))


def _isolated_cell(iso: dict) -> str:
    """A layer's own drift from A, beside what a correct requantization of it drifts."""
    cls = "bad" if iso.get("beyond_quantization") else ""
    yard = iso.get("requantized_rate")
    ref = f"<div class=\"muted\">requantized: {yard:.2%}</div>" if isinstance(yard, float) else ""
    return f"<span class=\"{cls}\">{iso.get('rate', 0):.2%}</span>{ref}"


def _matching(report) -> str:
    rows = report.extras.get("paibox_matching")
    if not rows:
        return ""
    net_a = report.evidence.graphs.get("a")
    a_reset = {n: net_a[n].reset for n in net_a.neurons} if net_a else {}
    out = []
    for r in rows:
        tws, recipe = r.get("tick_wait_start"), r.get("recipe_tick_wait_start")
        tws_cell = e(tws) if recipe in (None, tws) else f"<span class=\"bad\">{e(tws)}</span> " \
                                                         f"<span class=\"muted\">(recipe {e(recipe)})</span>"
        reset = r.get("reset")
        want = a_reset.get(r.get("layer"))
        reset_cell = e(reset or "-") if want in (None, reset) else f"<span class=\"bad\">{e(reset)}</span> " \
                                                                    f"<span class=\"muted\">(A: {e(want)})</span>"
        out.append([e(r.get("paibox")), e(r.get("type")), e(r.get("shape")),
                    f"<b>{e(r['layer'])}</b>" if r.get("layer") else "<span class=\"muted\">no counterpart</span>",
                    tws_cell, e(r.get("delay")), reset_cell, e(r.get("threshold") if r.get("threshold") is not None
                                                              else "-")])
    head = ["PAIBox node", "type", "shape", "matched A layer", "tick_wait_start", "delay", "reset", "threshold"]
    return ("<h2>PAIBox network matching</h2><p class=\"sub\">The user's PAIBox stages in order from the input; "
            "neuron layers are matched to A's spiking layers in order, by size. The recipe gives stage k "
            "tick_wait_start=k.</p>" + _table(head, out))


def _layer_sections(report, figs: dict) -> str:
    if not figs:
        return ""
    out = ["<h2>Layer by layer</h2>"]
    for name in report.layers:
        items = figs.get(name, [])
        if not items:
            continue
        imgs = "".join(f"<figure><img alt=\"{e(kind)} of {e(name)}\" src=\"data:image/png;base64,{png}\">"
                       f"<figcaption>{e(caption)}</figcaption></figure>" for kind, caption, png in items)
        diags = [d for d in report.diagnoses if d.layer == name]
        note = "".join(f"<div><span class=\"sev {e(d.severity)}\">{e(d.severity)}</span><span class=\"code\">"
                       f"{e(d.code)}</span> {e(d.message)}</div>" for d in diags)
        out.append(f"<section class=\"card\" id=\"layer-{e(name)}\"><h3>{e(name)}</h3>{note}"
                   f"<div class=\"figs\">{imgs}</div></section>")
    return "".join(out)


def _details(report) -> str:
    items = [("inputs", report.inputs)] + [(f"run {k}", v) for k, v in report.runs.items()]
    items += [(f"network {k}", {x: v.get(x) for x in ("name", "integer", "input_shape", "spiking_layers")})
              for k, v in report.networks.items()]
    items += [(k, v) for k, v in report.extras.items() if k not in ("paibox_matching", "isolated", "inferred")]
    kv = "".join(f"<div>{e(k)}</div><div>{e(_compact(v))}</div>" for k, v in items)
    return f"<h2>Details</h2><div class=\"card kv\">{kv}</div>"


# ------------------------------------------------------------------------------------------------ helpers
def _table(head, rows) -> str:
    th = "".join(f"<th>{e(h)}</th>" for h in head)
    trs = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<div class=\"wrap\"><table><thead><tr>{th}</tr></thead><tbody>{trs}</tbody></table></div>"


def _lag_cell(lag) -> str:
    if not lag:
        return "-"
    found = "?" if lag.get("detected") is None else lag["detected"]
    text = f"{e(lag.get('expected'))} / {e(found)}"
    return f"<span class=\"bad\">{text}</span>" if lag.get("anomaly") else f"<span class=\"good\">{text}</span>"


def _where(fd, short: bool = False) -> str:
    if not fd:
        return "none" if short else "none"
    neuron = tuple(fd.get("neuron", ()))
    if short:
        return f"first: t{e(fd['t'])} s{e(fd['sample'])} {e(neuron)}"
    layer = f"layer <b>{e(fd['layer'])}</b>, " if "layer" in fd else ""
    return f"{layer}step {e(fd['t'])}, sample {e(fd['sample'])}, neuron {e(neuron)}"


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


def _num(value, fmt: str = ".4g") -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "<span class=\"muted\">-</span>"
    return f"<span class=\"num\">{value:{fmt}}</span>"


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
