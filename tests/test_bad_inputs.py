"""The bad-input suite: every command given something it cannot use must exit 2 with one line on stderr, no
traceback, and no file touched (nothing created, changed or removed in the working folder, which is also the
current directory, so a default report path would show up too).

Each probe is (id, argv builder); a builder gets the working folder (a fresh copy of good inputs: float
checkpoint A.pth, deployed B.pth, inputs x.npy, a model file, a case) and may add the bad file it needs before the
folder is snapshotted. The bugs these catch are those of issue 11: tracebacks with exit 1 on wrongly typed
values, inputs overwritten by reports, user code run without being asked for, silent acceptance of nonsense.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from snncheck import checkpoint, convert
from snncheck.cli import main
from snncheck.frontends import models as zoo

pytest_plugins = ["pytester"]

MARK = "PWNED"          # a file that user code would create if snncheck ran what it was not asked to run

MODEL_PY = '''
import sys
import torch.nn as nn
from spikingjelly.activation_based import layer, neuron

def tiny():
    return nn.Sequential(layer.Flatten(), layer.Linear(64, 8), neuron.IFNode())

def exits():
    sys.exit(0)

def raises():
    raise RuntimeError("factory broke")

def gives_int():
    return 3

def gives_none():
    return None

def gives_str():
    return "net"

def zero_threshold():
    return nn.Sequential(layer.Flatten(), layer.Linear(64, 8), neuron.IFNode(v_threshold=0.0))

NOT_CALLABLE = 3
'''

CASE = """
name = "good"
[model]
name = "model.py:tiny"
weights = "seed:0"
input_shape = [1, 8, 8]
[inputs]
source = "random_spikes"
samples = 2
timesteps = 2
[run]
runners = ["reference"]
"""


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("pristine")
    shutil.copy(zoo.DIGITS_CHECKPOINT, root / "A.pth")
    model = checkpoint.load_float(zoo.DIGITS_CHECKPOINT, "digits_csnn")
    checkpoint.save_deployed(convert.convert(model.graph, 255, "max"), root / "B.pth")
    np.save(root / "x.npy", np.random.default_rng(0).random((4, 1, 8, 8)).astype(np.float32))
    (root / "model.py").write_text(MODEL_PY)
    (root / "case.toml").write_text(CASE)
    return root


@pytest.fixture
def work(pristine, tmp_path, monkeypatch):
    w = tmp_path / "w"
    shutil.copytree(pristine, w)
    monkeypatch.chdir(w)
    return w


def snapshot(root: Path) -> dict:
    """Every entry under root (links not followed): its type, mode and, for regular files, its content hash."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(dirpath) / name
            st = p.lstat()
            digest = hashlib.sha1(p.read_bytes()).hexdigest() if stat.S_ISREG(st.st_mode) else None
            out[str(p.relative_to(root))] = (stat.S_IFMT(st.st_mode), st.st_mode, digest)
    return out


def assert_refused(argv, root: Path, capsys, *needles):
    """exit 2, one line on stderr, no traceback, nothing under root touched."""
    before = snapshot(root)
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    err = err.strip()
    assert code == 2, (code, err, out[-2000:])
    assert len(err.splitlines()) == 1, err
    assert "Traceback" not in err + out and err.startswith("snncheck: error: "), err
    assert all(ord(c) >= 32 for c in err), repr(err)
    assert snapshot(root) == before, "a file was touched"
    for needle in needles:
        assert needle in err, err
    return err


# ------------------------------------------------------------------------------------------------ bad files
def ckpt(w: Path, name: str, edit, base: str = "B.pth") -> Path:
    """A copy of `base` with `edit(state)` applied (edit returns the new object to save, or edits in place)."""
    state = torch.load(w / base, weights_only=True)
    new = edit(state)
    torch.save(state if new is None else new, w / name)
    return w / name


def meta(**changes):
    def edit(state):
        state["snncheck"].update(changes)
    return edit


def retype(key: str, fn):
    def edit(state):
        state[key] = fn(state[key])
    return edit


def npy(w: Path, name: str, arr) -> Path:
    np.save(w / name, arr, allow_pickle=True)
    return w / name


def text(w: Path, name: str, body, binary=False) -> Path:
    p = w / name
    p.write_bytes(body) if binary else p.write_text(textwrap.dedent(body))
    return p


def events_file(w: Path) -> Path:
    """A small events file (.npz of t, x, y, p), as docs/inputs.md describes it."""
    p = w / "ev.npz"
    np.savez(p, t=np.arange(10) * 1000, x=np.arange(10) % 8, y=np.arange(10) % 8, p=np.arange(10) % 2)
    return p


class Touch:
    """Unpickling this would create MARK: a checkpoint that tries to run code."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


def case(w: Path, body: str, name="bad.toml") -> Path:
    return text(w, name, body)


def case_with(w: Path, **tables) -> Path:
    """The good case with some tables' bodies replaced (TOML text per table; '' for top-level keys)."""
    top = tables.pop("", "")
    body = f'{top}\n' + "\n".join(f"[{t}]\n{textwrap.dedent(v)}" for t, v in tables.items())
    defaults = {"model": 'name = "model.py:tiny"\nweights = "seed:0"\ninput_shape = [1, 8, 8]',
                "inputs": 'source = "random_spikes"\nsamples = 2\ntimesteps = 2', "run": 'runners = ["reference"]'}
    for t, v in defaults.items():
        if t not in tables:
            body += f"\n[{t}]\n{v}\n"
    return case(w, body)


def fifo(w: Path, name="fifo") -> Path:
    os.mkfifo(w / name)
    return w / name


def sock(w: Path) -> Path:
    """A bound Unix socket file (left open for the test's lifetime: its file stays)."""
    import socket
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(w / "sock"))
    _SOCKETS.append(s)
    return w / "sock"


_SOCKETS = []


def diff(w, *flags):
    return ["diff", w / "A.pth", w / "B.pth", "--samples", "2", "--timesteps", "2", *flags]


def A(w):
    return w / "A.pth"


PROBES = [
    # ---------------------------------------------------------------- usage
    ("no-command", lambda w: []),
    ("unknown-command", lambda w: ["explode"]),
    ("unknown-flag", lambda w: diff(w, "--frobnicate")),
    ("diff-no-a", lambda w: ["diff", "--samples", "2"]),
    ("diff-b-and-paibox", lambda w: diff(w, "--paibox", "model.py:tiny")),
    # ---------------------------------------------------------------- diff: values
    ("diff-samples-0", lambda w: diff(w, "--samples", "0")),
    ("diff-samples-neg", lambda w: diff(w, "--samples", "-1")),
    ("diff-samples-text", lambda w: diff(w, "--samples", "many")),
    ("diff-samples-float", lambda w: diff(w, "--samples", "2.5")),
    ("diff-samples-too-many", lambda w: diff(w, "--samples", "100000")),
    ("diff-timesteps-0", lambda w: diff(w, "--timesteps", "0")),
    ("diff-timesteps-neg", lambda w: diff(w, "--timesteps", "-3")),
    ("diff-timesteps-huge", lambda w: diff(w, "--timesteps", "1000000000")),
    ("diff-timesteps-2e100", lambda w: diff(w, "--timesteps", str(2 ** 100))),
    ("diff-input-scale-nan", lambda w: diff(w, "--input-scale", "nan")),
    ("diff-input-scale-inf", lambda w: diff(w, "--input-scale", "inf")),
    ("diff-input-scale-0", lambda w: diff(w, "--input-scale", "0")),
    ("diff-input-scale-neg", lambda w: diff(w, "--input-scale", "-255")),
    ("diff-input-scale-text", lambda w: diff(w, "--input-scale", "lots")),
    ("diff-reset-bogus", lambda w: diff(w, "--reset", "sideways")),
    ("diff-runners-bogus", lambda w: diff(w, "--runners", "loihi")),
    ("diff-runners-empty", lambda w: diff(w, "--runners", ",")),
    ("diff-vthr-empty", lambda w: diff(w, "--vthr", ",")),
    ("diff-vthr-text", lambda w: diff(w, "--vthr", "a,b,c,d")),
    ("diff-vthr-mixed", lambda w: diff(w, "--vthr", "conv_fc.2=3,4")),
    ("diff-vthr-count", lambda w: diff(w, "--vthr", "1,2")),
    ("diff-vthr-neg", lambda w: diff(w, "--vthr", "-1,2,3,4")),
    ("diff-vthr-zero", lambda w: diff(w, "--vthr", "0,2,3,4")),
    ("diff-vthr-huge", lambda w: diff(w, "--vthr", f"{2 ** 100},2,3,4")),
    ("diff-vthr-fraction", lambda w: diff(w, "--vthr", "1.5,2,3,4")),
    ("diff-vthr-unknown-name", lambda w: diff(w, "--vthr", "nope=3")),
    ("diff-vthr-nan", lambda w: diff(w, "--vthr", "nan,2,3,4")),
    ("diff-input-shape-zero", lambda w: diff(w, "--input-shape", "0,8,8")),
    ("diff-input-shape-text", lambda w: diff(w, "--input-shape", "a,b")),
    ("diff-input-shape-wrong", lambda w: ["diff", A(w), w / "B.pth", "--model", "digits_csnn",
                                          "--input-shape", "1,4,4", "--samples", "2"]),
    # ---------------------------------------------------------------- diff: inputs files
    ("inputs-missing", lambda w: diff(w, "--inputs", w / "nope.npy")),
    ("inputs-dir", lambda w: diff(w, "--inputs", w)),
    ("inputs-npz", lambda w: (np.savez(w / "x.npz", x=np.zeros((2, 1, 8, 8))), diff(w, "--inputs", w / "x.npz"))[1]),
    ("inputs-object", lambda w: diff(w, "--inputs", npy(w, "o.npy", np.array([{"a": 1}, None], dtype=object)))),
    ("inputs-complex", lambda w: diff(w, "--inputs", npy(w, "c.npy", np.ones((2, 1, 8, 8), np.complex64)))),
    ("inputs-strings", lambda w: diff(w, "--inputs", npy(w, "s.npy", np.array([["a"] * 8] * 8)))),
    ("inputs-9x8", lambda w: diff(w, "--inputs", npy(w, "f.npy", np.zeros((2, 1, 9, 8), np.float32)))),
    ("inputs-1d", lambda w: diff(w, "--inputs", npy(w, "v.npy", np.zeros(5, np.float32)))),
    ("inputs-empty", lambda w: diff(w, "--inputs", npy(w, "e.npy", np.zeros((0, 1, 8, 8), np.float32)))),
    ("inputs-nan", lambda w: diff(w, "--inputs", npy(w, "n.npy", np.full((2, 1, 8, 8), np.nan, np.float32)))),
    ("inputs-inf", lambda w: diff(w, "--inputs", npy(w, "i.npy", np.full((2, 1, 8, 8), np.inf, np.float32)))),
    ("inputs-garbage", lambda w: diff(w, "--inputs", text(w, "g.npy", b"\x93NUMPY garbage", binary=True))),
    ("inputs-truncated", lambda w: diff(w, "--inputs", text(w, "t.npy", (w / "x.npy").read_bytes()[:200],
                                                            binary=True))),
    ("inputs-zero-t", lambda w: diff(w, "--inputs", npy(w, "z.npy", np.zeros((2, 0, 1, 8, 8), np.float32)))),
    ("inputs-fifo", lambda w: diff(w, "--inputs", fifo(w))),
    ("inputs-huge-frames", lambda w: diff(w, "--inputs", w / "x.npy", "--timesteps", "100000000")),
    # ---------------------------------------------------------------- diff: checkpoint A
    ("a-missing", lambda w: ["diff", w / "nope.pth", w / "B.pth"]),
    ("a-dir", lambda w: ["diff", w, w / "B.pth"]),
    ("a-text", lambda w: ["diff", text(w, "t.pth", "hello"), w / "B.pth"]),
    ("a-empty", lambda w: ["diff", text(w, "e.pth", b"", binary=True), w / "B.pth"]),
    ("a-truncated", lambda w: ["diff", text(w, "t.pth", A(w).read_bytes()[:300], binary=True), w / "B.pth"]),
    ("a-pickled-code", lambda w: ["diff", ckpt(w, "p.pth", lambda s: {"net": Touch(w / MARK)}, "A.pth"),
                                  w / "B.pth"]),
    ("a-not-dict", lambda w: ["diff", ckpt(w, "l.pth", lambda s: [1, 2], "A.pth"), w / "B.pth"]),
    ("a-no-tensors", lambda w: ["diff", ckpt(w, "n.pth", lambda s: {"epoch": 3}, "A.pth"), w / "B.pth"]),
    ("a-is-deployed", lambda w: ["diff", w / "B.pth", w / "B.pth"]),
    ("a-unknown-arch", lambda w: ["diff", ckpt(w, "u.pth", lambda s: {"w": torch.zeros(3)}, "A.pth"), w / "B.pth"]),
    ("a-wrong-shape", lambda w: ["diff", ckpt(w, "s.pth", retype("conv_fc.0.weight", lambda t: t[:, :, :2]),
                                              "A.pth"), w / "B.pth", "--model", "digits_csnn"]),
    ("a-nan", lambda w: ["diff", ckpt(w, "n.pth", retype("conv_fc.0.weight", lambda t: t * np.nan), "A.pth"),
                         w / "B.pth"]),
    ("a-complex", lambda w: ["diff", ckpt(w, "c.pth", retype("conv_fc.0.weight", lambda t: t.to(torch.complex64)),
                                          "A.pth"), w / "B.pth", "--model", "digits_csnn"]),
    ("a-bfloat16", lambda w: ["diff", ckpt(w, "h.pth", retype("conv_fc.0.weight", lambda t: t.to(torch.bfloat16)),
                                           "A.pth"), w / "B.pth", "--model", "digits_csnn", "--vthr", "0,1,1,1"]),
    ("a-sparse", lambda w: ["diff", ckpt(w, "s.pth", retype("conv_fc.9.weight", lambda t: t.to_sparse()), "A.pth"),
                            w / "B.pth", "--model", "digits_csnn"]),
    ("a-quantized", lambda w: ["diff", ckpt(w, "q.pth", retype("conv_fc.9.weight", lambda t: torch.quantize_per_tensor(
        t, 0.1, 0, torch.qint8)), "A.pth"), w / "B.pth", "--model", "digits_csnn"]),
    ("a-negative-running-var", lambda w: ["diff", ckpt(w, "v.pth", retype("conv_fc.1.running_var", lambda t: -t),
                                                       "A.pth"), w / "B.pth"]),
    ("a-ansi-key", lambda w: ["diff", ckpt(w, "k.pth", lambda s: dict(s, **{"\x1b[32mALL GOOD\x1b[0m\nok": torch.ones(1)}),
                                           "A.pth"), w / "B.pth", "--model", "digits_csnn"]),
    ("a-surrogate-key", lambda w: ["diff", ckpt(w, "k.pth", lambda s: dict(s, **{"bad\ud800": torch.ones(1)}),
                                                "A.pth"), w / "B.pth", "--model", "digits_csnn"]),
    # ---------------------------------------------------------------- diff: deployed checkpoint B
    ("b-missing", lambda w: ["diff", A(w), w / "nope.pth"]),
    ("b-is-float", lambda w: ["diff", A(w), A(w)]),
    ("b-missing-key", lambda w: ["diff", A(w), ckpt(w, "m.pth", lambda s: [s.pop("conv_fc.0.weight")] and None)]),
    ("b-extra-key", lambda w: ["diff", A(w), ckpt(w, "e.pth", lambda s: s.__setitem__("zz", torch.ones(1)))]),
    ("b-wrong-shape", lambda w: ["diff", A(w), ckpt(w, "s.pth", retype("conv_fc.0.weight", lambda t: t[:4]))]),
    ("b-bias-shape", lambda w: ["diff", A(w), ckpt(w, "s.pth", retype("conv_fc.0.bias", lambda t: t[:3]))]),
    ("b-non-integer", lambda w: ["diff", A(w), ckpt(w, "f.pth", retype("conv_fc.0.weight", lambda t: t.float() + 0.5))]),
    ("b-float-nan", lambda w: ["diff", A(w), ckpt(w, "f.pth", retype("conv_fc.0.weight", lambda t: t.float() * np.nan))]),
    ("b-bfloat16", lambda w: ["diff", A(w), ckpt(w, "h.pth", retype("conv_fc.0.weight", lambda t: t.to(torch.bfloat16) + 0.5))]),
    ("b-sparse", lambda w: ["diff", A(w), ckpt(w, "s.pth", retype("conv_fc.9.weight", lambda t: t.to_sparse()))]),
    ("b-complex", lambda w: ["diff", A(w), ckpt(w, "c.pth", retype("conv_fc.0.weight", lambda t: t.to(torch.complex64) * 1j))]),
    ("b-quantized", lambda w: ["diff", A(w), ckpt(w, "q.pth", retype("conv_fc.9.weight", lambda t: torch.quantize_per_tensor(
        t.float(), 1.0, 0, torch.qint8)))]),
    ("b-pickled-code", lambda w: ["diff", A(w), ckpt(w, "p.pth", lambda s: dict(s, snncheck=Touch(w / MARK)))]),
    ("b-meta-not-dict", lambda w: ["diff", A(w), ckpt(w, "m.pth", lambda s: s.__setitem__("snncheck", [1, 2]))]),
    ("b-meta-unknown-key", lambda w: ["diff", A(w), ckpt(w, "m.pth", meta(vthr2=[1, 2]))]),
    ("b-vthr-int", lambda w: ["diff", A(w), ckpt(w, "m.pth", meta(vthr=5))]),
    ("b-vthr-str", lambda w: ["diff", A(w), ckpt(w, "m.pth", meta(vthr="12"))]),
    ("b-vthr-list-short", lambda w: ["diff", A(w), ckpt(w, "m.pth", meta(vthr=[1, 2]))]),
    ("b-vthr-list-str", lambda w: ["diff", A(w), ckpt(w, "m.pth", meta(vthr=["a", "b", "c", "d"]))]),
    ("b-vthr-nan", lambda w: ["diff", A(w), ckpt(w, "m.pth", meta(vthr=[float("nan"), 1, 1, 1]))]),
    ("b-vthr-huge", lambda w: ["diff", A(w), ckpt(w, "m.pth", meta(vthr=[2 ** 100, 1, 1, 1]))]),
    ("b-vthr-zero", lambda w: ["diff", A(w), ckpt(w, "m.pth", meta(vthr=[0, 1, 1, 1]))]),
    ("b-vthr-fraction", lambda w: ["diff", A(w), ckpt(w, "m.pth", meta(vthr=[1.5, 1, 1, 1]))]),
    ("b-vthr-unknown-layer", lambda w: ["diff", A(w), ckpt(w, "m.pth", meta(vthr={"nope": 3}))]),
    ("b-vthr-nested", lambda w: ["diff", A(w), ckpt(w, "m.pth", meta(vthr=[[1], [2], [3], [4]]))]),
    ("b-input-scale-str", lambda w: ["diff", A(w), ckpt(w, "m.pth", meta(input_scale="255"))]),
    ("b-input-scale-list", lambda w: ["diff", A(w), ckpt(w, "m.pth", meta(input_scale=[255]))]),
    ("b-input-scale-nan", lambda w: ["diff", A(w), ckpt(w, "m.pth", meta(input_scale=float("nan")))]),
    ("b-input-scale-neg", lambda w: ["diff", A(w), ckpt(w, "m.pth", meta(input_scale=-1.0))]),
    ("b-readout-scale-neg", lambda w: ["diff", A(w), ckpt(w, "m.pth", meta(readout_scale={"head": -2.0}))]),
    ("b-readout-scale-str", lambda w: ["diff", A(w), ckpt(w, "m.pth", meta(readout_scale="8"))]),
    ("b-input-scale-huge", lambda w: ["diff", A(w), ckpt(w, "m.pth", meta(input_scale=2 ** 100))]),
    ("b-input-scale-bool", lambda w: ["diff", A(w), ckpt(w, "m.pth", meta(input_scale=True))]),
    ("b-reset-bogus", lambda w: ["diff", A(w), ckpt(w, "m.pth", meta(reset="sideways"))]),
    ("b-reset-int", lambda w: ["diff", A(w), ckpt(w, "m.pth", meta(reset=1))]),
    ("b-v-reset-str", lambda w: ["diff", A(w), ckpt(w, "m.pth", meta(v_reset="zero"))]),
    ("b-v-reset-nan", lambda w: ["diff", A(w), ckpt(w, "m.pth", meta(v_reset=float("nan")))]),
    ("b-v-reset-huge", lambda w: ["diff", A(w), ckpt(w, "m.pth", meta(v_reset=2 ** 100))]),
    ("b-v-init-str", lambda w: ["diff", A(w), ckpt(w, "m.pth", meta(v_init={"conv_fc.2": "half"}))]),
    ("b-leak-str", lambda w: ["diff", A(w), ckpt(w, "m.pth", meta(leak="x"))]),
    ("b-rule-int", lambda w: ["diff", A(w), ckpt(w, "m.pth", meta(rule=5))]),
    ("b-ansi-key", lambda w: ["diff", A(w), ckpt(w, "k.pth", lambda s: s.__setitem__("\x1b[2J\x1b[32mCONSISTENT\n",
                                                                                    torch.ones(1)))]),
    # ---------------------------------------------------------------- diff: model specs
    ("model-unknown", lambda w: diff(w, "--model", "resnet9000")),
    ("model-missing-file", lambda w: diff(w, "--model", "nope.py:tiny")),
    ("model-no-attr", lambda w: diff(w, "--model", "model.py:nope")),
    ("model-not-callable", lambda w: diff(w, "--model", "model.py:NOT_CALLABLE")),
    ("model-sys-exit", lambda w: diff(w, "--model", "model.py:exits")),
    ("model-raises", lambda w: diff(w, "--model", "model.py:raises")),
    ("model-gives-int", lambda w: diff(w, "--model", "model.py:gives_int")),
    ("model-gives-none", lambda w: diff(w, "--model", "model.py:gives_none")),
    ("model-gives-str", lambda w: diff(w, "--model", "model.py:gives_str")),
    ("model-syntax-error", lambda w: diff(w, "--model", f"{text(w, 'bad.py', 'def (:')}:f")),
    ("model-import-exits", lambda w: diff(w, "--model", f"{text(w, 'ex.py', 'raise SystemExit(0)')}:f")),
    ("model-missing-module", lambda w: diff(w, "--model", "no_such_module_xyz:f")),
    ("model-module-not-callable", lambda w: diff(w, "--model", "os:sep")),
    ("model-wrong-arch", lambda w: diff(w, "--model", "mlp")),
    ("model-zero-threshold", lambda w: ["diff", ckpt(w, "t.pth", lambda s: {"1.weight": torch.ones(8, 64),
                                                                            "1.bias": torch.zeros(8)}, "A.pth"),
                                        ckpt(w, "tb.pth", lambda s: {"1.weight": torch.ones(8, 64, dtype=torch.int8),
                                                                     "1.bias": torch.zeros(8, dtype=torch.int32),
                                                                     "snncheck": {"vthr": [1]}}),
                                        "--model", "model.py:zero_threshold", "--samples", "2"]),
    ("paibox-missing", lambda w: ["diff", A(w), "--paibox", "nope.py:build"]),
    ("paibox-gives-int", lambda w: ["diff", A(w), "--paibox", "model.py:gives_int"]),
    ("paibox-sys-exit", lambda w: ["diff", A(w), "--paibox", "model.py:exits"]),
    ("paibox-with-vthr", lambda w: ["diff", A(w), "--paibox", "model.py:tiny", "--vthr", "1,2,3,4"]),
    # ---------------------------------------------------------------- diff: outputs
    ("out-over-a", lambda w: diff(w, "--out", A(w))),
    ("out-over-b", lambda w: diff(w, "--out", w / "B.pth")),
    ("json-over-b", lambda w: diff(w, "--json", w / "B.pth")),
    ("json-over-inputs", lambda w: diff(w, "--inputs", w / "x.npy", "--json", w / "x.npy")),
    ("out-over-model", lambda w: diff(w, "--model", "model.py:tiny", "--out", w / "model.py")),
    ("out-over-a-via-link", lambda w: (os.symlink(A(w), w / "link.html"), diff(w, "--out", w / "link.html"))[1]),
    ("out-over-a-relative", lambda w: diff(w, "--out", "./A.pth")),
    ("out-over-a-hardlink", lambda w: (os.link(A(w), w / "hard.html"), diff(w, "--out", w / "hard.html"))[1]),
    ("out-same-as-json", lambda w: diff(w, "--out", w / "r.txt", "--json", w / "r.txt")),
    ("out-dir", lambda w: diff(w, "--out", w)),
    ("json-dir", lambda w: diff(w, "--json", w)),
    ("out-fifo", lambda w: diff(w, "--out", fifo(w))),
    ("json-fifo", lambda w: diff(w, "--json", fifo(w))),
    ("json-socket", lambda w: diff(w, "--json", sock(w))),
    ("json-link-to-fifo", lambda w: (fifo(w), os.symlink(w / "fifo", w / "l.json"), diff(w, "--json", w / "l.json"))[2]),
    ("json-dangling-link", lambda w: (os.symlink(w / "nowhere.json", w / "d.json"), diff(w, "--json", w / "d.json"))[1]),
    ("out-parent-is-file", lambda w: diff(w, "--out", A(w) / "r.html")),
    ("out-empty", lambda w: diff(w, "--out", "")),
    ("out-nul", lambda w: diff(w, "--json", "r\x00.json")),
    ("out-name-too-long", lambda w: diff(w, "--json", w / ("x" * 300 + ".json"))),
    # ---------------------------------------------------------------- convert
    ("convert-missing-a", lambda w: ["convert", w / "nope.pth", "--out", w / "o.pth"]),
    ("convert-no-out", lambda w: ["convert", A(w)]),
    ("convert-out-over-a", lambda w: ["convert", A(w), "--out", A(w)]),
    ("convert-out-over-a-link", lambda w: (os.symlink(A(w), w / "l.pth"), ["convert", A(w), "--out", w / "l.pth"])[1]),
    ("convert-out-over-model", lambda w: ["convert", A(w), "--model", "digits_csnn", "--out", w / "model.py"] if False
     else ["convert", ckpt(w, "t.pth", lambda s: {"1.weight": torch.ones(8, 64), "1.bias": torch.zeros(8)}, "A.pth"),
           "--model", "model.py:tiny", "--input-shape", "1,8,8", "--out", w / "model.py"]),
    ("convert-out-dir", lambda w: ["convert", A(w), "--out", w]),
    ("convert-out-fifo", lambda w: ["convert", A(w), "--out", fifo(w)]),
    ("convert-out-missing-dir", lambda w: ["convert", A(w), "--out", w / "no" / "o.pth"]),
    ("convert-rule-bogus", lambda w: ["convert", A(w), "--out", w / "o.pth", "--rule", "magic"]),
    ("convert-input-scale-nan", lambda w: ["convert", A(w), "--out", w / "o.pth", "--input-scale", "nan"]),
    ("convert-input-scale-0", lambda w: ["convert", A(w), "--out", w / "o.pth", "--input-scale", "0"]),
    ("convert-input-scale-neg", lambda w: ["convert", A(w), "--out", w / "o.pth", "--input-scale", "-1"]),
    ("convert-reset-bogus", lambda w: ["convert", A(w), "--out", w / "o.pth", "--reset", "sideways"]),
    ("convert-calibration-ignored", lambda w: ["convert", A(w), "--out", w / "o.pth", "--calibration", w / "x.npy"]),
    ("convert-calibration-missing", lambda w: ["convert", A(w), "--out", w / "o.pth", "--rule", "percentile",
                                               "--calibration", w / "nope.npy"]),
    ("convert-calibration-object", lambda w: ["convert", A(w), "--out", w / "o.pth", "--rule", "percentile",
                                              "--calibration", npy(w, "o.npy", np.array([None, 1], dtype=object))]),
    ("convert-calibration-shape", lambda w: ["convert", A(w), "--out", w / "o.pth", "--rule", "percentile",
                                             "--calibration", npy(w, "f.npy", np.zeros((2, 1, 9, 8), np.float32))]),
    ("convert-timesteps-0", lambda w: ["convert", A(w), "--out", w / "o.pth", "--timesteps", "0"]),
    ("convert-model-sys-exit", lambda w: ["convert", A(w), "--out", w / "o.pth", "--model", "model.py:exits"]),
    ("convert-model-gives-int", lambda w: ["convert", A(w), "--out", w / "o.pth", "--model", "model.py:gives_int"]),
    ("convert-a-pickled-code", lambda w: ["convert", ckpt(w, "p.pth", lambda s: {"net": Touch(w / MARK)}, "A.pth"),
                                          "--out", w / "o.pth"]),
    ("convert-a-deployed", lambda w: ["convert", w / "B.pth", "--out", w / "o.pth"]),
    ("convert-input-shape-bad", lambda w: ["convert", A(w), "--out", w / "o.pth", "--input-shape", "-1,8"]),
    ("convert-negative-running-var", lambda w: ["convert", ckpt(w, "v.pth", retype(
        "conv_fc.1.running_var", lambda t: -t), "A.pth"), "--out", w / "o.pth"]),
    # ---------------------------------------------------------------- compare: flags
    ("compare-missing-case", lambda w: ["compare", w / "nope.toml"]),
    ("compare-case-dir", lambda w: ["compare", w]),
    ("compare-case-fifo", lambda w: ["compare", fifo(w, "c.toml")]),
    ("compare-samples-0", lambda w: ["compare", w / "case.toml", "--samples", "0"]),
    ("compare-samples-neg", lambda w: ["compare", w / "case.toml", "--samples", "-1"]),
    ("compare-timesteps-neg", lambda w: ["compare", w / "case.toml", "--timesteps", "-4"]),
    ("compare-timesteps-huge", lambda w: ["compare", w / "case.toml", "--timesteps", "1000000000"]),
    ("compare-timing-bogus", lambda w: ["compare", w / "case.toml", "--timing", "late"]),
    ("compare-runners-bogus", lambda w: ["compare", w / "case.toml", "--runners", "loihi"]),
    ("compare-json-over-case", lambda w: ["compare", w / "case.toml", "--json", w / "case.toml"]),
    ("compare-out-over-model", lambda w: ["compare", w / "case.toml", "--out", w / "model.py"]),
    ("compare-json-dir", lambda w: ["compare", w / "case.toml", "--json", w]),
    ("compare-out-fifo", lambda w: ["compare", w / "case.toml", "--out", fifo(w)]),
    ("compare-json-over-inputs-file", lambda w: ["compare", case_with(w, inputs='source = "file:x.npy"'),
                                                 "--json", w / "x.npy"]),
    # ---------------------------------------------------------------- compare: case files
    ("case-not-utf8", lambda w: ["compare", text(w, "b.toml", b"name = \"\xff\xfe\"\n", binary=True)]),
    ("case-bad-toml", lambda w: ["compare", case(w, "name = [\n")]),
    ("case-unknown-table", lambda w: ["compare", case_with(w, expect2='verdict = "consistent"')]),
    ("case-unknown-key", lambda w: ["compare", case_with(w, model='name = "mlp"\nweigths = "seed:0"')]),
    ("case-exact-string", lambda w: ["compare", case_with(w, expect='exact = "paibox:b~reference:b"')]),
    ("case-exact-not-pair", lambda w: ["compare", case_with(w, expect='exact = ["paibox"]')]),
    ("case-name-int", lambda w: ["compare", case_with(w, **{"": "name = 5"})]),
    ("case-name-empty", lambda w: ["compare", case_with(w, **{"": 'name = ""'})]),
    ("case-model-name-int", lambda w: ["compare", case_with(w, model="name = 3")]),
    ("case-options-list", lambda w: ["compare", case_with(w, model='name = "mlp"\noptions = [1, 2]')]),
    ("case-options-bad", lambda w: ["compare", case_with(w, model='name = "mlp"\noptions = {bogus = 1}')]),
    ("case-weights-int", lambda w: ["compare", case_with(w, model='name = "mlp"\nweights = 3')]),
    ("case-weights-missing", lambda w: ["compare", case_with(w, model='name = "mlp"\nweights = "nope.pth"')]),
    ("case-weights-seed-text", lambda w: ["compare", case_with(w, model='name = "mlp"\nweights = "seed:x"')]),
    ("case-trained-not-digits", lambda w: ["compare", case_with(w, model='name = "mlp"\nweights = "trained"')]),
    ("case-calibrate-2", lambda w: ["compare", case_with(w, model='name = "mlp"\nweights = "seed:0"\ncalibrate = 2')]),
    ("case-input-shape-str", lambda w: ["compare", case_with(w, model='name = "mlp"\ninput_shape = "1,8,8"')]),
    ("case-input-shape-neg", lambda w: ["compare", case_with(w, model='name = "mlp"\ninput_shape = [-1, 8, 8]')]),
    ("case-layers-bad-type", lambda w: ["compare", case_with(w, model='input_shape = [4]\nlayers = [{type = "Magic"}]')]),
    ("case-layers-not-tables", lambda w: ["compare", case_with(w, model='input_shape = [4]\nlayers = [1, 2]')]),
    ("case-layers-unknown-field", lambda w: ["compare", case_with(
        w, model='input_shape = [4]\nlayers = [{type = "Linear", weight = [[1, 1, 1, 1]], colour = 1}]')]),
    ("case-layers-bad-weight", lambda w: ["compare", case_with(
        w, model='input_shape = [4]\nlayers = [{type = "Linear", weight = "heavy"}, {type = "IF", threshold = 1}]')]),
    ("case-layers-ragged", lambda w: ["compare", case_with(
        w, model='input_shape = [4]\nlayers = [{type = "Linear", weight = [[1], [1, 2]]}, {type = "IF", threshold = 1}]')]),
    ("case-model-os-system", lambda w: ["compare", case_with(
        w, model=f'name = "os:system"\noptions = {{command = "touch {w / MARK}"}}')]),
    ("case-model-module-attr", lambda w: ["compare", case_with(w, model='name = "snncheck.frontends.models:mlp"')]),
    ("case-model-outside-project", lambda w: (
        (w.parent / "evil.py").write_text(f"open({str(w / MARK)!r}, 'w').close()\ndef f():\n    return None\n"),
        ["compare", case_with(w, model='name = "../evil.py:f"')])[1]),
    ("case-model-absolute-outside", lambda w: (
        (w.parent / "evil2.py").write_text(f"open({str(w / MARK)!r}, 'w').close()\ndef f():\n    return None\n"),
        ["compare", case_with(w, model=f'name = "{w.parent / "evil2.py"}:f"')])[1]),
    ("case-paibox-factory-outside-project", lambda w: (
        (w.parent / "evil3.py").write_text(f"open({str(w / MARK)!r}, 'w').close()\ndef f():\n    return None\n"),
        ["compare", case_with(w, paibox='factory = "../evil3.py:f"')])[1]),
    ("case-paibox-factory-module-attr", lambda w: ["compare", case_with(w, paibox='factory = "os:getcwd"')]),
    ("case-model-sys-exit", lambda w: ["compare", case_with(w, model='name = "model.py:exits"')]),
    ("case-model-gives-none", lambda w: ["compare", case_with(w, model='name = "model.py:gives_none"')]),
    ("case-model-raises", lambda w: ["compare", case_with(w, model='name = "model.py:raises"')]),
    ("case-conversion-rule", lambda w: ["compare", case_with(w, conversion='rule = "magic"')]),
    ("case-conversion-scale-0", lambda w: ["compare", case_with(w, conversion='input_scale = 0')]),
    ("case-conversion-scale-str", lambda w: ["compare", case_with(w, conversion='input_scale = "255"')]),
    ("case-conversion-reset", lambda w: ["compare", case_with(w, conversion='reset = "sideways"')]),
    ("case-mutation-unknown", lambda w: ["compare", case_with(w, conversion='mutation = {name = "gremlins"}')]),
    ("case-mutation-str", lambda w: ["compare", case_with(w, conversion='mutation = "vthr_scale"')]),
    ("case-source-bogus", lambda w: ["compare", case_with(w, inputs='source = "webcam"')]),
    ("case-source-file-missing", lambda w: ["compare", case_with(w, inputs='source = "file:nope.npy"')]),
    ("case-source-file-shape", lambda w: ["compare", case_with(w, inputs=f'source = "file:{npy(w, "f.npy", np.zeros((2, 9, 8)))}"')]),
    ("case-samples-0", lambda w: ["compare", case_with(w, inputs='samples = 0')]),
    ("case-samples-str", lambda w: ["compare", case_with(w, inputs='samples = "4"')]),
    ("case-samples-float", lambda w: ["compare", case_with(w, inputs='samples = 2.5')]),
    ("case-timesteps-huge", lambda w: ["compare", case_with(w, inputs='timesteps = 100000000')]),
    ("case-samples-huge", lambda w: ["compare", case_with(w, inputs='source = "random_spikes"\nsamples = 100000000\ntimesteps = 64')]),
    ("case-rate-2", lambda w: ["compare", case_with(w, inputs='source = "random_spikes"\nrate = 2')]),
    ("case-inline-values-shape", lambda w: ["compare", case_with(w, inputs='source = "inline"\nvalues = [1, 2]')]),
    ("case-inline-values-str", lambda w: ["compare", case_with(w, inputs='source = "inline"\nvalues = [["a"]]')]),
    ("case-split-bogus", lambda w: ["compare", case_with(w, inputs='split = "validation"')]),
    ("case-runners-bogus", lambda w: ["compare", case_with(w, run='runners = ["loihi"]')]),
    ("case-runners-str", lambda w: ["compare", case_with(w, run='runners = "reference"')]),
    ("case-timing-bogus", lambda w: ["compare", case_with(w, run='timing = "late"')]),
    ("case-marks-str", lambda w: ["compare", case_with(w, run='marks = "slow"')]),
    ("case-xfail-int", lambda w: ["compare", case_with(w, run='xfail = 1')]),
    ("case-verdict-bogus", lambda w: ["compare", case_with(w, expect='verdict = "fine"')]),
    ("case-diagnoses-str", lambda w: ["compare", case_with(w, expect='diagnoses = "timing"')]),
    ("case-diagnoses-no-code", lambda w: ["compare", case_with(w, expect='diagnoses = [{layer = "x"}]')]),
    ("case-max-unexplained-neg", lambda w: ["compare", case_with(w, expect='max_unexplained = {"a~b" = -1}')]),
    ("case-lags-bogus", lambda w: ["compare", case_with(w, expect='lags = "whatever"')]),
    ("case-unsupported-int", lambda w: ["compare", case_with(w, expect='unsupported = 3')]),
    ("case-ansi-name", lambda w: ["compare", case_with(w, inputs='source = "\\u001b[32mOK\\u001b[0m"')]),
    # ---------------------------------------------------------------- fullset
    ("fullset-missing-case", lambda w: ["fullset", w / "nope.toml"]),
    ("fullset-chunk-0", lambda w: ["fullset", w / "case.toml", "--chunk", "0"]),
    ("fullset-workers-0", lambda w: ["fullset", w / "case.toml", "--workers", "0"]),
    ("fullset-paibox-0", lambda w: ["fullset", w / "case.toml", "--paibox", "0"]),
    ("fullset-paibox-batch-text", lambda w: ["fullset", w / "case.toml", "--paibox-batch", "x"]),
    ("fullset-executor-bogus", lambda w: ["fullset", w / "case.toml", "--executor", "threads"]),
    ("fullset-split-bogus", lambda w: ["fullset", w / "case.toml", "--split", "dev"]),
    ("fullset-samples-neg", lambda w: ["fullset", w / "case.toml", "--samples", "-1"]),
    ("fullset-json-over-case", lambda w: ["fullset", w / "case.toml", "--json", w / "case.toml", "--no-progress"]),
    ("fullset-out-dir", lambda w: ["fullset", w / "case.toml", "--out", w, "--no-progress"]),
    ("fullset-bad-case", lambda w: ["fullset", case_with(w, expect2="x = 1"), "--no-progress"]),
    ("fullset-timesteps-huge", lambda w: ["fullset", w / "case.toml", "--timesteps", "1000000000", "--no-progress"]),
    # ---------------------------------------------------------------- fuzz
    ("fuzz-minutes-0", lambda w: ["fuzz", "--minutes", "0", "--out", w / "found"]),
    ("fuzz-minutes-neg", lambda w: ["fuzz", "--minutes", "-1", "--out", w / "found"]),
    ("fuzz-minutes-nan", lambda w: ["fuzz", "--minutes", "nan", "--out", w / "found"]),
    ("fuzz-minutes-inf", lambda w: ["fuzz", "--minutes", "inf", "--out", w / "found"]),
    ("fuzz-minutes-text", lambda w: ["fuzz", "--minutes", "soon", "--out", w / "found"]),
    ("fuzz-properties-bogus", lambda w: ["fuzz", "--minutes", "0.01", "--properties", "speed", "--out", w / "found"]),
    ("fuzz-properties-empty", lambda w: ["fuzz", "--minutes", "0.01", "--properties", ",", "--out", w / "found"]),
    ("fuzz-round-0", lambda w: ["fuzz", "--minutes", "0.01", "--round", "0", "--out", w / "found"]),
    ("fuzz-seed-text", lambda w: ["fuzz", "--minutes", "0.01", "--seed", "abc", "--out", w / "found"]),
    ("fuzz-out-is-file", lambda w: ["fuzz", "--minutes", "0.01", "--out", A(w)]),
    ("fuzz-out-is-fifo", lambda w: ["fuzz", "--minutes", "0.01", "--out", fifo(w)]),
    # ---------------------------------------------------------------- ann2snn
    ("ann2snn-ann-missing", lambda w: ["ann2snn", w / "nope.pth"]),
    ("ann2snn-timesteps-0", lambda w: ["ann2snn", "--timesteps", "0,4"]),
    ("ann2snn-timesteps-text", lambda w: ["ann2snn", "--timesteps", "a,b"]),
    ("ann2snn-samples-0", lambda w: ["ann2snn", "--samples", "0"]),
    ("ann2snn-inputs-missing", lambda w: ["ann2snn", "--inputs", w / "nope.npy", "--labels", w / "x.npy"]),
    ("ann2snn-inputs-empty-npy", lambda w: ["ann2snn", "--inputs", text(w, "e.npy", b"", binary=True),
                                            "--labels", w / "x.npy"]),
    ("ann2snn-labels-npz", lambda w: (np.savez(w / "l.npz", y=np.zeros(4)),
                                      ["ann2snn", "--inputs", w / "x.npy", "--labels", w / "l.npz"])[1]),
    ("ann2snn-inputs-without-labels", lambda w: ["ann2snn", "--inputs", w / "x.npy"]),
    ("ann2snn-json-over-inputs", lambda w: ["ann2snn", "--inputs", w / "x.npy", "--labels", w / "x.npy",
                                            "--json", w / "x.npy"]),
    ("ann2snn-out-over-snn-file", lambda w: ["ann2snn", A(w), "--model", "model.py:tiny", "--snn", "model.py:tiny",
                                             "--out", w / "model.py"]),
    ("ann2snn-out-fifo", lambda w: ["ann2snn", "--out", fifo(w)]),
    ("ann2snn-snn-sys-exit", lambda w: ["ann2snn", A(w), "--model", "digits_csnn", "--snn", "model.py:exits"]),
    ("ann2snn-runners-bogus", lambda w: ["ann2snn", "--runners", "loihi"]),
    # ---------------------------------------------------------------- record, export
    ("record-inputs-missing", lambda w: ["record", "--model", "digits_csnn", "--inputs", w / "nope.npy",
                                         "--out", w / "r.h5"]),
    ("record-inputs-object", lambda w: ["record", "--model", "digits_csnn", "--out", w / "r.h5", "--inputs",
                                        npy(w, "o.npy", np.array([None, 1], dtype=object))]),
    ("record-out-over-inputs", lambda w: ["record", "--model", "digits_csnn", "--inputs", w / "x.npy",
                                          "--out", w / "x.npy"]),
    ("record-out-over-a", lambda w: ["record", A(w), "--model", "digits_csnn", "--inputs", w / "x.npy",
                                     "--out", (os.symlink(A(w), w / "a.h5"), w / "a.h5")[1]]),
    ("record-out-fifo", lambda w: ["record", "--model", "digits_csnn", "--inputs", w / "x.npy",
                                   "--out", (os.mkfifo(w / "f.h5"), w / "f.h5")[1]]),
    ("record-timesteps-huge", lambda w: ["record", "--model", "digits_csnn", "--inputs", w / "x.npy",
                                         "--timesteps", "1000000000", "--out", w / "r.h5"]),
    ("record-model-sys-exit", lambda w: ["record", "--model", "model.py:exits", "--inputs", w / "x.npy",
                                         "--out", w / "r.h5"]),
    ("export-out-over-a", lambda w: ["export", A(w), "--out", (os.symlink(A(w), w / "a.nir"), w / "a.nir")[1]]),
    ("export-out-over-b", lambda w: ["export", A(w), w / "B.pth", "--out", w / "B.pth"]),
    ("export-out-dir", lambda w: ["export", A(w), "--out", w]),
    ("export-nir-dt-nan", lambda w: ["export", A(w), "--out", w / "g.nir", "--nir-dt", "nan"]),
    ("export-a-missing", lambda w: ["export", w / "nope.pth", "--out", w / "g.nir"]),
    ("diff-run-b-missing", lambda w: ["diff", A(w), "--run-b", w / "nope.h5"]),
    ("diff-run-b-garbage", lambda w: ["diff", A(w), "--run-b", text(w, "g.h5", b"not hdf5", binary=True)]),
    ("diff-frame-ms-nan", lambda w: ["diff", A(w), "--inputs", events_file(w), "--frame-ms", "nan"]),
    ("diff-json-over-run-b", lambda w: ["diff", A(w), "--run-b", text(w, "g.h5", b"x", binary=True),
                                        "--json", w / "g.h5"]),
    # ---------------------------------------------------------------- demo
    ("demo-samples-0", lambda w: ["demo", "--samples", "0"]),
    ("demo-samples-huge", lambda w: ["demo", "--samples", "100000", "--out-dir", w / "r"]),
    ("demo-timesteps-neg", lambda w: ["demo", "--timesteps", "-1"]),
    ("demo-timesteps-huge", lambda w: ["demo", "--timesteps", "1000000000", "--out-dir", w / "r"]),
    ("demo-out-dir-is-file", lambda w: ["demo", "--samples", "2", "--timesteps", "2", "--out-dir", A(w)]),
    ("demo-out-dir-is-fifo", lambda w: ["demo", "--samples", "2", "--timesteps", "2", "--out-dir", fifo(w)]),
    ("demo-out-dir-empty", lambda w: ["demo", "--samples", "2", "--out-dir", ""]),
]


@pytest.mark.parametrize("build", [p[1] for p in PROBES], ids=[p[0] for p in PROBES])
def test_bad_input_exits_2_in_one_line_touching_nothing(build, work, capsys):
    """Catches: a traceback (exit 1) or a silent exit 0 on bad input, a report written over an input, a device or
    a FIFO, a multi-line or control-character message, and user code run that nobody asked for (MARK)."""
    argv = build(work)
    assert_refused(argv, work.parent, capsys)
    assert not (work / MARK).exists()


def test_there_are_at_least_150_probes_over_every_command():
    """Catches: the suite shrinking below the issue's bar, or a command left without probes."""
    assert len(PROBES) >= 150, len(PROBES)
    firsts = {p[0].split("-")[0] for p in PROBES}
    assert {"diff", "convert", "compare", "fullset", "fuzz", "demo", "case", "ann2snn", "record", "export"} <= firsts


# ------------------------------------------------------------------------------------------------ the pytest plugin
PLUGIN_PROBES = ["case-not-utf8", "case-bad-toml", "case-unknown-table", "case-unknown-key", "case-exact-string",
                 "case-exact-not-pair", "case-name-int", "case-name-empty", "case-model-name-int", "case-options-list",
                 "case-weights-int", "case-calibrate-2", "case-input-shape-str", "case-input-shape-neg",
                 "case-layers-not-tables", "case-model-os-system", "case-model-module-attr",
                 "case-model-outside-project", "case-model-absolute-outside", "case-conversion-scale-0",
                 "case-conversion-scale-str", "case-conversion-reset", "case-mutation-str", "case-samples-0",
                 "case-samples-str", "case-samples-float", "case-rate-2", "case-split-bogus", "case-runners-bogus",
                 "case-runners-str", "case-timing-bogus", "case-marks-str", "case-xfail-int", "case-verdict-bogus",
                 "case-diagnoses-str", "case-diagnoses-no-code", "case-max-unexplained-neg", "case-lags-bogus",
                 "case-unsupported-int"]
BUILDERS = dict(PROBES)


@pytest.fixture(scope="module")
def plugin_run(tmp_path_factory):
    """All the bad case files in one project's cases/ folder, collected by one pytest run (a subprocess: pytest
    inside pytest): (exit code, output, files before, files after, project folder)."""
    import subprocess
    import sys
    root = tmp_path_factory.mktemp("plugin")
    (root / "conftest.py").write_text('pytest_plugins = ["snncheck.pytest_plugin"]\n')
    cases = root / "cases"
    cases.mkdir()
    (cases / "model.py").write_text(MODEL_PY)
    for probe in PLUGIN_PROBES:
        os.replace(BUILDERS[probe](cases)[1], cases / f"{probe}.toml")
    before = snapshot(root)
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run([sys.executable, "-m", "pytest", "cases", "-p", "no:cacheprovider", "-q", "-rE"],
                          cwd=root, capture_output=True, text=True, timeout=600, env=env)
    return proc.returncode, proc.stdout + proc.stderr, before, snapshot(root), root


@pytest.mark.parametrize("probe", PLUGIN_PROBES)
def test_bad_case_file_is_one_collection_error_under_pytest(probe, plugin_run):
    """Catches: a bad case file that pytest collects and runs anyway (an `[expect2]` typo passing, a model spec
    running `os.system`), or that fails with a traceback instead of one line naming the file and field."""
    code, out, before, after, root = plugin_run
    assert code == 2, out[-3000:]                      # pytest's exit code for errors during collection
    errors = [line for line in out.splitlines() if line.startswith(f"ERROR cases/{probe}.toml")]
    assert len(errors) == 1, out[-3000:]
    after_header = out.split(f"ERROR collecting cases/{probe}.toml")[1].split("\n", 1)[1]
    section = re.split(r"^(?:___|===)", after_header, flags=re.M)[0]
    assert "Traceback" not in section and len(section.strip().splitlines()) == 1, section
    assert f"{probe}.toml" in section and all(ord(c) >= 32 for c in section.strip()), section
    assert after == before and not (root / "cases" / MARK).exists()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_deployed_integers_stored_as_floats_are_read(dtype, work, capsys):
    """Catches: the issue's IndexError on any deployed checkpoint whose integers are stored as float tensors (an
    error message built eagerly on good input), and bfloat16 tensors NumPy cannot hold."""
    def as_floats(state):
        for k, v in state.items():
            if isinstance(v, torch.Tensor):
                state[k] = v.to(dtype)
    b = ckpt(work, "Bf.pth", as_floats)
    assert main([str(a) for a in ["diff", A(work), b, "--samples", "2", "--timesteps", "2", "--runners",
                                  "reference", "--out", work / "r.html"]]) == 0, capsys.readouterr().err
