"""The robustness fuzz target: hypothesis corrupts checkpoints (bytes, dtypes, shapes, keys, metadata values),
input arrays and case TOML, and snncheck must still keep its promises:

- the exit code is one of 0, 1, 2, 3 (no traceback, which would escape `main` and fail the test);
- exit 2 is one printable line on stderr, with no traceback;
- no file outside `--out`/`--json` changes (the inputs least of all).

Small under the "ci" profile (the default); `--hypothesis-profile=deep` runs it long (issue 11: ten minutes or
more, with zero tracebacks). Catches: any input that crashes snncheck or makes it write where it was not told to.
"""
from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings, strategies as st
from hypothesis.control import currently_in_test_context

from snncheck import case as cases
from snncheck.cli import main
from test_bad_inputs import CASE, pristine, snapshot  # noqa: F401 (pristine: the shared fixture)

DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int8, torch.int32, torch.int64,
          torch.uint8, torch.bool, torch.complex64]
META_KEYS = ["vthr", "input_scale", "reset", "rule", "v_reset", "leak", "v_init", "readout_scale"]
FILLS = [math.nan, math.inf, -math.inf, 2.0 ** 40, -3.5, 0.0, 0.5, 1e-30]


# a time box for long runs (SNNCHECK_ROBUSTNESS_MINUTES): examples drawn after it end at once, so the run stops
# cleanly with its report (an interrupt would reach snncheck's own Ctrl-C handling, exit 130, and fail the property)
STOP = time.monotonic() + float(os.environ.get("SNNCHECK_ROBUSTNESS_MINUTES", "inf")) * 60


def examples(share: float):
    """A share of the profile's max_examples (each example runs the command line once)."""
    return settings(max_examples=max(3, int(settings().max_examples * share)), deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


# ----------------------------------------------------------------------------------------------- strategies
plain = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=8)
TOML_KEYS = ["name", "code", "layer", "type", "weight", "threshold", "a~b", "x"]
toml_plain = st.recursive(
    st.booleans() | st.integers(-2 ** 63, 2 ** 63 - 1) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(TOML_KEYS), inner, max_size=3),
    max_leaves=8)


@st.composite
def tensor_edit(draw, keys):
    key = draw(st.sampled_from(keys))
    kind = draw(st.sampled_from(["drop", "add", "dtype", "shape", "fill", "meta", "meta_drop", "swap"]))
    if kind in ("drop", "swap"):
        return kind, key, draw(st.sampled_from(keys))
    if kind == "add":
        return kind, draw(st.text(max_size=12)), draw(st.integers(0, 3))
    if kind == "dtype":
        return kind, key, draw(st.sampled_from(DTYPES))
    if kind == "shape":
        return kind, key, draw(st.integers(0, 3))
    if kind == "fill":
        return kind, key, draw(st.sampled_from(FILLS))
    return kind, draw(st.sampled_from(META_KEYS + ["extra"])), draw(plain)


def apply_edit(state: dict, edit) -> None:
    kind, key, arg = edit
    t = state.get(key)
    if kind == "drop":
        state.pop(key, None)
    elif kind == "swap" and isinstance(t, torch.Tensor) and isinstance(state.get(arg), torch.Tensor):
        state[key], state[arg] = state[arg], t
    elif kind == "add":
        state[key] = torch.ones((2,) * arg)
    elif kind == "dtype" and isinstance(t, torch.Tensor):
        state[key] = t.to(arg)
    elif kind == "shape" and isinstance(t, torch.Tensor):
        state[key] = t.reshape(-1)[: t.numel() // 2] if arg == 0 else t.unsqueeze(0) if arg == 1 else \
            t.flatten() if arg == 2 else t[..., :0] if t.dim() else t.reshape(1)
    elif kind == "fill" and isinstance(t, torch.Tensor) and t.is_floating_point():
        state[key] = torch.full_like(t, arg)
    elif kind == "meta" and isinstance(state.get("snncheck"), dict):
        state["snncheck"][key] = arg
    elif kind == "meta_drop" and isinstance(state.get("snncheck"), dict):
        state["snncheck"].pop(key, None)


def byte_edits():
    return st.lists(st.tuples(st.sampled_from(["flip", "truncate"]), st.floats(0, 1), st.binary(min_size=1, max_size=4)),
                    max_size=2)


def corrupt_bytes(path: Path, edits) -> None:
    data = bytearray(path.read_bytes())
    for kind, where, chunk in edits:
        at = int(where * (len(data) - 1))
        if kind == "truncate":
            del data[at:]
        else:
            data[at:at + len(chunk)] = chunk
    path.write_bytes(bytes(data))


# ----------------------------------------------------------------------------------------------- the property
def assert_promises(argv, work: Path, outputs=(), capsys=None) -> int:
    if time.monotonic() > STOP:
        return -1
    before = {k: v for k, v in snapshot(work).items() if k not in outputs}
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err.strip() if capsys else ""
    if currently_in_test_context():
        event(f"exit {code}")
    if os.environ.get("SNNCHECK_ROBUSTNESS_LOG"):      # a long run's tally: one line per example
        with open(os.environ["SNNCHECK_ROBUSTNESS_LOG"], "a") as log:
            log.write(f"{argv[0]} {code}\n")
    assert code in (0, 1, 2, 3), code
    if code == 2:
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
        assert all(ord(c) >= 32 for c in err), repr(err)
    after = {k: v for k, v in snapshot(work).items() if k not in outputs}
    assert after == before, "a file outside --out/--json changed"
    return code


@contextlib.contextmanager
def work_copy(pristine):
    """A fresh copy of the good inputs, as the current directory (a default report path would land in it)."""
    cwd = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="snncheck-robust-") as tmp:
        w = Path(tmp) / "w"
        shutil.copytree(pristine, w)
        os.chdir(w)
        try:
            yield w
        finally:
            os.chdir(cwd)


def _state(path: Path):
    return torch.load(path, weights_only=True)


@pytest.fixture(scope="module")
def b_keys(pristine):
    return sorted(_state(pristine / "B.pth"))


@pytest.fixture(scope="module")
def a_keys(pristine):
    return sorted(_state(pristine / "A.pth"))


def test_corrupt_checkpoints(pristine, a_keys, b_keys, capsys):
    """Catches: a checkpoint (either side) with wrong dtypes, shapes, keys, metadata values or bytes crashing
    snncheck, printing a traceback or control characters, or anything but the reports being written."""

    @examples(0.5)
    @given(side=st.sampled_from(["A", "B"]), edits=st.data(), raw=byte_edits())
    def check(side, edits, raw):
        keys = a_keys if side == "A" else b_keys
        chosen = edits.draw(st.lists(tensor_edit(keys), min_size=1, max_size=3))
        with work_copy(pristine) as w:
            state = _state(w / f"{side}.pth")
            for edit in chosen:
                apply_edit(state, edit)
            torch.save(state, w / f"{side}.pth")
            corrupt_bytes(w / f"{side}.pth", raw)
            assert_promises(["diff", w / "A.pth", w / "B.pth", "--samples", "2", "--timesteps", "2",
                             "--runners", "reference", "--json", w / "r.json", "--out", w / "r.html"],
                            w, ("r.json", "r.html"), capsys)

    check()


DTYPE_NAMES = ["float32", "float64", "float16", "int8", "uint8", "int64", "bool", "complex64"]


def test_corrupt_input_arrays(pristine, capsys):
    """Catches: an inputs array of any shape, dtype or values (NaN, inf, empty, wrong rank) crashing snncheck or
    being silently reshaped."""

    @examples(0.3)
    @given(shape=st.lists(st.integers(0, 9), min_size=1, max_size=6), dtype=st.sampled_from(DTYPE_NAMES),
           fill=st.sampled_from(FILLS + [1.0, 255.0]), seed=st.integers(0, 3))
    def check(shape, dtype, fill, seed):
        if int(np.prod(shape)) > 200_000:
            shape = shape[:3]
        arr = np.random.default_rng(seed).random(shape) * (fill if np.isfinite(fill) else 1)
        if not np.isfinite(fill) and arr.size:
            arr.flat[0] = fill
        with work_copy(pristine) as w:
            with np.errstate(all="ignore"):
                np.save(w / "x.npy", arr.astype(dtype))
            assert_promises(["diff", w / "A.pth", w / "B.pth", "--inputs", w / "x.npy", "--samples", "2",
                             "--runners", "reference", "--json", w / "r.json", "--out", w / "r.html"],
                            w, ("r.json", "r.html"), capsys)

    check()


SECTIONS = {"": ["name", "description", "zz"],
            "model": ["name", "options", "weights", "calibrate", "input_shape", "layers", "zz"],
            "inputs": ["source", "samples", "timesteps", "seed", "split", "rate", "events", "values", "zz"],
            "run": ["runners", "timing", "marks", "xfail", "zz"],
            "conversion": ["rule", "input_scale", "reset", "mutation", "zz"],
            "expect": ["verdict", "exact", "max_unexplained", "lags", "diagnoses", "top_diagnosis", "unsupported"]}


@st.composite
def case_edit(draw):
    section = draw(st.sampled_from(sorted(SECTIONS)))
    return section, draw(st.sampled_from(SECTIONS[section])), draw(toml_plain)


def test_corrupt_case_files(pristine, capsys):
    """Catches: a case file with wrongly typed, unknown or absurd values (or mangled text) crashing `compare`,
    passing silently with an ignored key, running code, or writing anything but the reports."""
    import tomllib
    good = tomllib.loads(CASE)

    @examples(0.3)
    @given(edits=st.lists(case_edit(), min_size=1, max_size=3), noise=byte_edits())
    def check(edits, noise):
        spec = {k: dict(v) if isinstance(v, dict) else v for k, v in good.items()}
        for section, key, value in edits:
            table = spec if not section else spec.setdefault(section, {})
            table[key] = value
        with work_copy(pristine) as w:
            (w / "case.toml").write_text(cases.to_toml(spec), encoding="utf-8", errors="surrogatepass")
            corrupt_bytes(w / "case.toml", noise)
            assert_promises(["compare", w / "case.toml", "--json", w / "r.json", "--out", w / "r.html"],
                            w, ("r.json", "r.html"), capsys)

    check()


def test_tiny_float_weights_do_not_overflow_the_isolated_diagnosis(pristine, capsys):
    """Catches the deep run's find: A's first weights filled with 1e-30 made B's fitted layer scale ~1e30, and the
    isolated per-layer diagnosis requantized A at it (threshold ~1e30: OverflowError, a traceback)."""
    with work_copy(pristine) as w:
        state = _state(w / "A.pth")
        apply_edit(state, ("fill", "conv_fc.0.weight", 1e-30))
        torch.save(state, w / "A.pth")
        code = assert_promises(["diff", w / "A.pth", w / "B.pth", "--samples", "2", "--timesteps", "2",
                                "--runners", "reference", "--json", w / "r.json", "--out", w / "r.html"],
                               w, ("r.json", "r.html"), capsys)
    assert code in (0, 1, 3)
