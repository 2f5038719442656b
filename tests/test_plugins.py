"""A user's own neuron class: `snncheck.register_neuron`, a plugin file named on the command line (`--plugin`,
imported only when named) and in a case file, and the import's self-check holding the plugin to the class's own
forward: QCFS's IF (examples/qcfs_if.py) read as SpikingJelly's IFNode, which starts at 0 instead of theta/2,
is named at its first neuron."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

import snncheck
from snncheck.cli import main
from snncheck.errors import InputError
from snncheck.frontends import models
from snncheck.frontends.spikingjelly import import_module
from snncheck.graph import primitives as P

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "qcfs_if.py"


@pytest.fixture(scope="module")
def qcfs():
    return models._import_file(str(EXAMPLE))


def _net(qcfs, cls):
    torch.manual_seed(1)
    net = qcfs.qcfs_net(theta=0.6)
    for i, m in enumerate(net):
        if isinstance(m, qcfs.QCFSIF):
            net[i] = cls(0.6)
    return net


def test_the_registered_class_imports_as_its_graph(qcfs):
    """Catches a registration that is not used (the class refused or traced through): the QCFS IF becomes a
    soft-reset IF starting at theta/2 followed by Scale(theta), and the import's self-check passes."""
    graph, _ = import_module(_net(qcfs, qcfs.QCFSIF), (1, 8, 8))
    first = graph.nodes["1"]
    assert isinstance(first, P.IF) and first.reset == "soft" and first.v_init == pytest.approx(0.3)
    assert isinstance(graph.nodes["1.scale"], P.Scale)


def test_read_as_spikingjellys_ifnode_the_initial_membrane_shows(qcfs):
    """Catches the study's by-hand comparison going unnoticed: the same class claimed to be SpikingJelly's
    IFNode (soft reset, membrane starting at 0) is refused at import, naming its first neuron and a spike that
    differs beyond float32 rounding."""
    class AsIFNode(qcfs.QCFSIF):
        pass

    snncheck.register_neuron(AsIFNode, lambda m: [P.IF(float(m.theta), reset="soft"), P.Scale(float(m.theta))])
    with pytest.raises(InputError, match=r"first difference at node '1' \(a spike differs at step"):
        import_module(_net(qcfs, AsIFNode), (1, 8, 8))


def test_to_graph_must_return_a_neuron(qcfs):
    """Catches a to_graph returning something else being used as a layer: one line naming the class."""
    class Wrong(qcfs.QCFSIF):
        pass

    snncheck.register_neuron(Wrong, lambda m: P.Scale(2.0))
    with pytest.raises(InputError, match="register_neuron\\(Wrong\\): to_graph returned"):
        import_module(_net(qcfs, Wrong), (1, 8, 8))


def test_plugin_is_imported_only_where_named(tmp_path, capsys):
    """Catches plugins that leak (registered without being named) or that do not reach the model file: a model
    whose neuron class a separate plugin registers is refused without --plugin and runs with it, the class
    imported twice (by the plugin, by the model spec) being one class."""
    (tmp_path / "net.py").write_text(textwrap.dedent('''
        import torch, torch.nn as nn
        from spikingjelly.activation_based import layer

        class MyIF(nn.Module):
            def forward(self, x_seq):
                v, out = torch.zeros_like(x_seq[0]), []
                for x in x_seq:
                    v = v + x
                    s = (v >= 1.0).float()
                    v = v - s
                    out.append(s)
                return torch.stack(out)

        def build():
            torch.manual_seed(0)
            return nn.Sequential(layer.Flatten(), layer.Linear(64, 16), MyIF())
    '''))
    (tmp_path / "plug.py").write_text(textwrap.dedent('''
        import snncheck
        from snncheck.graph import primitives as P
        from net import MyIF
        snncheck.register_neuron(MyIF, lambda m: P.IF(1.0, reset="soft"))
    '''))
    torch.save(models._import_file(str(tmp_path / "net.py")).build().state_dict(), tmp_path / "a.pth")
    argv = ["diff", str(tmp_path / "a.pth"), "--model", f"{tmp_path / 'net.py'}:build", "--input-shape", "1,8,8",
            "--samples", "4", "--timesteps", "3", "--out", str(tmp_path / "r.html")]
    assert main(argv) == 2
    assert "MyIF" in capsys.readouterr().err
    assert main(argv + ["--plugin", str(tmp_path / "plug.py")]) == 0
