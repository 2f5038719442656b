"""The terminal view of a report: verdict, diagnoses with fixes, and a per-layer table."""
from __future__ import annotations


def render(report) -> str:
    lines = [f"{report.title}: {report.verdict.upper()}"]
    if report.inputs:
        lines.append("inputs: " + ", ".join(f"{k}={v}" for k, v in report.inputs.items()))
    lines += [f"{label}: recorded, from {meta['recorded_from']}" for label, meta in report.runs.items()
              if meta.get("recorded_from")]
    head = ["layer", "lag exp/found"] + [p.key for p in report.pairs]
    rows = []
    lags = report.pipelined_lags
    for name in report.layers:
        lag = lags.get(name)
        lag_s = "-" if not lag else f"{lag['expected']}/{'?' if lag['detected'] is None else lag['detected']}" \
            + (" !" if lag["anomaly"] else "")
        cells = [name, lag_s]
        for p in report.pairs:
            lc = p.layer(name)
            cell = f"{lc.mismatches}/{lc.total} ({lc.rate:.2%})"
            if lc.v_max_abs_diff:
                cell += f" dV<={lc.v_max_abs_diff:.3g}"
            cells.append(cell)
        rows.append(cells)
    rows += [[f"{name} (readout)", "-"] + [readout_cell(p.output(name)) for p in report.pairs]
             for name in report.readouts]
    lines += _table(head, rows)
    for p in report.pairs:
        fd = p.first_divergence
        where = "none" if fd is None else f"{fd['layer']} t={fd['t']} sample={fd['sample']} neuron={tuple(fd['neuron'])}"
        lines.append(f"{p.key}: output agreement {p.output_agreement:.1%}, first divergence {where}")
    if report.diagnoses:
        lines.append("diagnoses:")
        for d in report.diagnoses:
            lines.append(f"  [{d.severity}] {d.code} @ {d.layer or '-'}: {d.message}")
            if d.fix:
                lines.append(f"      fix: {d.fix}")
    return "\n".join(lines)


def _table(head, rows) -> list:
    widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*head), fmt.format(*["-" * w for w in widths])] + [fmt.format(*r) for r in rows]


def readout_cell(oc) -> str:
    """A readout compared as numbers: largest difference (A's units), values beyond tolerance, class agreement."""
    if oc is None:
        return "-"
    return (f"max|d|={oc.max_abs_diff:.3g} {oc.differing}/{oc.total} beyond {oc.tolerance:.2g}, "
            f"class {oc.class_agreement:.0%}")
