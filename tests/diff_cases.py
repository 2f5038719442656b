"""The diffs whose reports must not change when diff's own work (align, compare, the diagnoses) gets faster:
`tests/test_diff_identity.py` runs them and compares the report JSON with the one the code before the fast paths
wrote (`tests/fixtures/diff_reports/make.py`). Each case is small (a second or two) but exercises a different part:
the trained digits CSNN, csnn28 (conv layers of 12544 neurons), a threshold x2 on the digits' first conv (its own
error beyond quantization, a silent downstream, flips to classify), a reset mode flipped on csnn28's second layer
(reset signatures), PAIBox built mis-timed (lags), a spiking_resnet (merges, edge lags) and digits in chunks."""
from __future__ import annotations

import hashlib
import json

import numpy as np

def cases() -> dict:
    """{name: zero-argument callable returning the api.diff keyword arguments of that case}."""
    return {"digits": lambda: _digits(), "csnn28": lambda: _csnn28(), "digits_vthr_x2": lambda: _digits("vthr_scale"),
            "csnn28_reset": lambda: _csnn28("reset_mode", layer=1), "digits_timing": lambda: _digits(timing=True),
            "resnet": lambda: _resnet(), "digits_chunks": lambda: _digits(chunk=5, evidence=7)}


def run(name: str):
    """The report of case `name`, and a fingerprint of what its runners recorded (to tell a changed backend from a
    changed diff)."""
    from snncheck import api, pipeline
    seen = []
    real = pipeline.make

    def recording(spec, subject, **kw):          # every run's records, hashed as the backends return them
        backend = real(spec, subject, **kw)
        run_fn = backend.run
        backend.run = lambda *a, **k: _seen(seen, spec.label, run_fn(*a, **k))
        return backend
    pipeline.make = recording
    try:
        report = api.diff(**cases()[name]())
    finally:
        pipeline.make = real
    digest = hashlib.sha256()
    for label, h in sorted(seen):
        digest.update(f"{label}:{h}".encode())
    return report, digest.hexdigest()


def comparable(report) -> dict:
    """The report's JSON as data, timings left out."""
    from snncheck.report.io import report_json
    from helpers import timeless
    return timeless(json.loads(report_json(report)))


def _seen(seen: list, label: str, result):
    """The run's values, whatever dtypes hold them (spikes as bool, v and h as float64: exact for integers)."""
    h = hashlib.sha256()
    for rec in result.layers:
        for a, dtype in ((rec.spikes, bool), (rec.v, np.float64), (rec.h, np.float64)):
            h.update(b"-" if a is None else np.ascontiguousarray(a, dtype).tobytes())
    seen.append((label, h.hexdigest()))
    return result


def _digits(mutation=None, timing: bool = False, **plan):
    from snncheck import convert, mutations
    from helpers import digits_float_graph, digits_int_graph, digits_model, pixel_inputs
    a, b = digits_float_graph(), digits_int_graph()
    if mutation:
        b = mutations.apply(b, a, {"name": mutation}, convert.convert(a, 255, "max"))
    options = {"paibox": {"batch": 8, **({"timing": "flat"} if timing else {})}}
    return dict(float_graph=a, deployed=b, x=pixel_inputs(16, 8) / 255, input_scale=255, module=digits_model(),
                backend_options=options, **plan)


def _csnn28(mutation=None, layer=None):
    from snncheck import case as cases, convert, mutations
    a, model = cases.build_float(cases.Case.from_dict({"model": {"name": "csnn28", "weights": "seed:0"}}))
    conv = convert.convert(a, 255, "max")
    b = conv.graph
    if mutation:
        b = mutations.apply(b, a, {"name": mutation, "layer": a.neurons[layer]}, conv)
    x = np.random.default_rng(5).random((6, 8, 1, 28, 28))
    return dict(float_graph=a, deployed=b, x=x, input_scale=255, module=model, backend_options={"paibox": {"batch": 8}})


def _resnet():
    from snncheck import convert
    from snncheck.frontends.spikingjelly import import_module
    from snncheck.plan import Inputs
    from helpers import resnet
    a, model = import_module(resnet("spiking_resnet"), (3, 32, 32), name="spiking_resnet")
    x = np.random.default_rng(3).random((4, 3, 32, 32)).astype(np.float32)
    return dict(float_graph=a, deployed=convert.convert(a, 255, "max").graph, x=Inputs.frames(x, 4), input_scale=255,
                module=model, backend_options={"paibox": {"batch": 4}})
