"""What a new user meets first: wrong inputs named against the shape the model takes (not an inner layer's
message), SpikingJelly's own model zoo and examples importable here (CPU only, stand-ins for what they import but
never use), `python -m snncheck`, and the README's `--paibox` example naming its model."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from snncheck.cli import main
from snncheck.frontends import models

ROOT = Path(__file__).resolve().parents[1]

ZOO = ["model.parametric_lif_net", "model.spiking_vgg", "model.spiking_resnet", "model.sew_resnet",
       "examples.conv_fashion_mnist"]


@pytest.mark.parametrize("name", ZOO)
def test_spikingjelly_zoo_and_examples_import(name):
    """Catches the zoo failing at module import (h5py, torchvision, tensorboard imported at the top)."""
    assert models.import_sj(name).__name__.endswith(name)


@pytest.fixture(scope="module")
def mnist(tmp_path_factory):
    """SpikingJelly's own MNISTNet (IFNode, 4 channels), which takes [N, 1, 28, 28], as a model file and .pth."""
    root = tmp_path_factory.mktemp("mnist")
    (root / "net.py").write_text(
        "from spikingjelly.activation_based import neuron\n"
        "from spikingjelly.activation_based.model import parametric_lif_net as pln\n"
        "def build():\n    return pln.MNISTNet(channels=4, spiking_neuron=neuron.IFNode)\n")
    torch.manual_seed(0)
    torch.save(models._import_file(str(root / "net.py")).build().state_dict(), root / "a.pth")
    np.save(root / "x32.npy", np.random.default_rng(0).random((16, 1, 32, 32)).astype(np.float32))
    return root


@pytest.mark.parametrize("given, said", [
    (["--inputs", "x32.npy"], "have shape (16, 1, 32, 32); the model takes [N, 1, 28, 28] or [N, T, 1, 28, 28]"),
    (["--input-shape", "1,32,32"], "--input-shape 1,32,32; the model takes [N, 1, 28, 28] or [N, T, 1, 28, 28]"),
])
def test_wrong_inputs_are_named_against_the_shape_the_model_takes(mnist, capsys, given, said):
    """Catches the inner layer's message ("expects 196 input features, got 256") reaching the user instead."""
    given = [str(mnist / g) if g.endswith(".npy") else g for g in given]
    assert main(["diff", str(mnist / "a.pth"), "--model", f"{mnist / 'net.py'}:build", *given]) == 2
    err = capsys.readouterr().err
    assert said in err and "input features" not in err and len(err.strip().splitlines()) == 1, err


def test_python_dash_m_snncheck():
    """Catches a package that has no __main__ (or one that does not exit with the CLI's code)."""
    out = subprocess.run([sys.executable, "-m", "snncheck", "diff", "--help"], capture_output=True, text=True,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": ""}, timeout=120)
    assert out.returncode == 0 and "--plugin" in out.stdout, out.stderr[-500:]


def test_readme_paibox_example_names_its_model():
    """Catches the README's --paibox example without --model (A's module cannot be built without it)."""
    lines = [l for l in (ROOT / "README.md").read_text().splitlines() if re.search(r"diff .*--paibox ", l)]
    assert lines and all("--model" in l for l in lines), lines
