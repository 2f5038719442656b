"""Importing SpikingJelly modules: every zoo model imports, and runs the same in SpikingJelly and the reference.
Model specs: a model file imports the file next to it, SpikingJelly's zoo imports without torchvision, and a
factory's failure is one line."""
from __future__ import annotations

import importlib.util
import sys
import textwrap

import numpy as np
import pytest
import torch
import torch.nn as nn
from spikingjelly.activation_based import layer

from snncheck import data
from snncheck.frontends import models as zoo
from snncheck.backends.base import RunResult
from snncheck.backends.reference import ReferenceBackend
from snncheck.backends.spikingjelly import SpikingJellyBackend
from snncheck.errors import InputError
from snncheck.frontends import models
from snncheck.frontends.spikingjelly import import_module
from snncheck.graph import fold_batchnorm
from helpers import unexplained


@pytest.mark.parametrize("name", ["digits_csnn", "alexnet_small", "mlp"])
@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_zoo_models_agree_in_spikingjelly_and_reference(name, reset):
    torch.manual_seed(0)
    module = zoo.get(name)(reset=reset)
    graph, model = import_module(module, zoo.INPUT_SHAPES[name], name=name)
    dropouts = {p for p, m in module.named_modules() if isinstance(m, (nn.Dropout, layer.Dropout))}
    assert not dropouts & set(graph.nodes)                              # dropout is identity at inference
    inputs = data.random_spikes(16, 6, zoo.INPUT_SHAPES[name], rate=0.5, seed=1) * 3.0
    sj = SpikingJellyBackend(module=model).run(graph, inputs, "spikingjelly:a")
    ref = ReferenceBackend().run(graph, inputs, "reference:a")
    assert unexplained(sj, ref) == {n: 0 for n in graph.neurons}       # consistent
    assert graph.summary()["spiking_layers"] == graph.neurons == sj.names == ref.names


def test_names_are_state_dict_paths():
    graph, _ = import_module(zoo.digits_csnn(), (1, 8, 8))
    assert graph.order[:4] == ["input", "conv_fc.0", "conv_fc.1", "conv_fc.2"]
    folded = fold_batchnorm(graph)
    assert [n for n in folded.order if n in folded.neurons or folded.nodes[n].kind == "MaxPool2d"] == \
        ["conv_fc.2", "conv_fc.3", "conv_fc.6", "conv_fc.7", "conv_fc.10", "conv_fc.12"]


def test_shape_mismatch_in_network_names_the_layer():
    with pytest.raises(InputError, match="conv_fc.9.*expects 64 input features"):
        import_module(zoo.digits_csnn(), (1, 12, 12))


def test_run_result_roundtrips_through_npz(tmp_path):
    graph, _ = import_module(zoo.digits_csnn(), (1, 8, 8))
    res = ReferenceBackend().run(fold_batchnorm(graph), data.random_spikes(4, 3, (1, 8, 8), seed=0), "reference:a")
    res.save(tmp_path / "r.npz")
    back = RunResult.load(tmp_path / "r.npz")
    assert back.label == res.label and back.names == res.names
    for a, b in zip(res.layers, back.layers):
        np.testing.assert_array_equal(a.spikes, b.spikes)
        np.testing.assert_array_equal(a.v, b.v)
        assert a.threshold == b.threshold


# ----------------------------------------------------------------------------------------------- model specs
@pytest.mark.skipif(importlib.util.find_spec("torchvision") is not None, reason="torchvision is installed")
def test_spikingjelly_zoo_imports_with_stand_ins_that_fail_clearly_when_used():
    """Catches SpikingJelly's model zoo and examples failing to import for want of torchvision/tensorboard, and a
    stand-in that hides a real use or outlives the import."""
    assert models.import_sj("model.spiking_resnet").load_state_dict_from_url is torch.hub.load_state_dict_from_url
    example = models.import_sj("examples.conv_fashion_mnist")
    with pytest.raises(ImportError, match="torchvision is not installed; snncheck stood in for it so that the model "
                                          "file imports. torchvision.datasets.FashionMNIST needs the real package"):
        example.torchvision.datasets.FashionMNIST(root=".")
    with pytest.raises(ImportError, match="tensorboard is not installed.*torch.utils.tensorboard.SummaryWriter"):
        example.SummaryWriter()
    with pytest.raises(ImportError):
        import torchvision  # noqa: F401
    assert "torchvision" not in sys.modules


def test_a_model_file_imports_the_file_next_to_it(tmp_path):
    """Catches a model file whose folder is not on sys.path while it is imported (issue 10)."""
    (tmp_path / "sibling_blocks.py").write_text("from spikingjelly.activation_based import layer, neuron\n"
                                        "def head():\n    return [layer.Flatten(), layer.Linear(64, 10), "
                                        "neuron.IFNode()]\n")
    (tmp_path / "net.py").write_text(textwrap.dedent("""
        import torch.nn as nn
        from sibling_blocks import head
        def factory():
            return nn.Sequential(*head())
    """))
    module = models.build_module(f"{tmp_path / 'net.py'}:factory")
    graph, _ = import_module(module, (1, 8, 8))
    assert graph.neurons == ["2"] and str(tmp_path) not in sys.path


@pytest.mark.parametrize("body, message", [
    ("raise SystemExit(2)", r"model factory '.*net.py:factory' failed: SystemExit: 2"),
    ("raise ValueError('no weights')", r"model factory '.*net.py:factory' failed: ValueError: no weights"),
    ("return {'conv': 1}", r"model factory '.*net.py:factory' returned a dict, not a Module"),
])
def test_a_failing_factory_is_one_input_error(tmp_path, body, message):
    """Catches a factory's exception (or a script's argparse exit) escaping as a traceback or ending the process,
    and a factory result that is not a module going further."""
    (tmp_path / "net.py").write_text(f"def factory():\n    {body}\n")
    with pytest.raises(InputError, match=message):
        models.build_module(f"{tmp_path / 'net.py'}:factory")
