"""Model specs and the built-in zoo.

A spec names a factory: `path/to/file.py:FACTORY`, `package.module:FACTORY`, or a built-in name (`digits_csnn`).
The factory runs with its file's folder on sys.path (so a model file can import the file next to it) and with
stand-ins for optional packages that SpikingJelly's model zoo and examples import at module import but never use
to build a model (torchvision, tensorboard): see `stand_ins`.

Built-in factories take keyword options (reset mode, sizes) and return a fresh module in eval mode. `digits_csnn`
is the embedded default; its trained weights ship in `snncheck/models/` (see scripts/train_digits.py).
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import types
from importlib import resources
from pathlib import Path
from typing import Callable, Optional

from ..errors import InputError, require

MODELS_DIR = Path(str(resources.files("snncheck") / "models"))
BUILTIN_MODULES = ("snncheck.ann2snn.model",)   # modules of model factories that ship with snncheck (built-ins)
DIGITS_CHECKPOINT = MODELS_DIR / "digits_csnn.pth"
DIGITS_DEPLOYED = MODELS_DIR / "digits_csnn_int8.pth"


# ----------------------------------------------------------------------------------------------- specs
def resolve_factory(spec: str, modules: bool = True) -> Callable:
    """`path/to/file.py:FACTORY`, `package.module:FACTORY` or a built-in name -> the callable it names.
    `modules=False` (case files) refuses `module:attr`, which could name anything importable (`os:system`)."""
    if ":" not in spec:
        return get(spec)
    target, _, attr = spec.rpartition(":")
    require(modules or target.endswith(".py") or target in BUILTIN_MODULES,
            lambda: f"{spec}: only a built-in model or FILE.py:FACTORY may be named here, not module:attr")
    module = _import_file(target) if target.endswith(".py") else _import_module(target)
    fn = getattr(module, attr, None)
    require(callable(fn), lambda: f"{spec}: no callable named {attr!r} in {target}")
    return fn


def call_factory(factory: Callable, spec: str, /, what: str = "model factory", returns: Optional[type] = None,
                 **options):
    """factory(**options) under the stand-ins. Whatever it raises (SystemExit too: a script's argparse) becomes
    one InputError naming the spec; its result must be a `returns` (default: torch.nn.Module)."""
    if returns is None:
        import torch.nn as nn
        returns = nn.Module
    try:
        with stand_ins(_folder(spec)):
            out = factory(**options)
    except InputError:
        raise
    except (Exception, SystemExit) as exc:
        raise InputError(f"{what} {spec!r} failed: {type(exc).__name__}: {exc}") from None
    require(isinstance(out, returns), lambda: f"{what} {spec!r} returned a {type(out).__name__}, "
                                              f"not a {returns.__name__}")
    return out


def build_module(spec: str, what: str = "model factory", returns: Optional[type] = None):
    """The object the factory named by `spec` builds (a torch module unless `returns` says otherwise)."""
    return call_factory(resolve_factory(spec), spec, what, returns)


def _folder(spec: str) -> Optional[str]:
    target = spec.rpartition(":")[0]
    return os.path.dirname(os.path.abspath(target)) if target.endswith(".py") else None


def _import_file(target: str):
    require(os.path.isfile(target), lambda: f"model file not found: {target}")
    name = f"_snncheck_user_{abs(hash(os.path.abspath(target)))}"
    loader = importlib.util.spec_from_file_location(name, target)
    module = importlib.util.module_from_spec(loader)
    sys.modules[name] = module
    try:
        with stand_ins(os.path.dirname(os.path.abspath(target))):
            loader.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        del sys.modules[name]
        raise InputError(f"{target}: failed to import ({type(exc).__name__}: {exc})") from None
    return module


def _import_module(target: str):
    try:
        with stand_ins():
            return importlib.import_module(target)
    except ImportError as exc:
        raise InputError(f"cannot import {target!r}: {exc}") from None
    except (Exception, SystemExit) as exc:
        raise InputError(f"{target}: failed to import ({type(exc).__name__}: {exc})") from None


def import_sj(modname: str):
    """A SpikingJelly module by name (`model.spiking_resnet` or the full `spikingjelly.activation_based...`),
    imported under the stand-ins."""
    if not modname.startswith("spikingjelly"):
        modname = f"spikingjelly.activation_based.{modname}"
    with stand_ins():
        return importlib.import_module(modname)


# ----------------------------------------------------------------------------------------------- stand-ins
STAND_INS = {"torchvision": "torchvision", "torch.utils.tensorboard": "tensorboard"}   # stand-in -> real package


@contextlib.contextmanager
def stand_ins(folder: Optional[str] = None):
    """While a model file or module is imported (or its factory runs): `folder` on sys.path, and for each package
    of STAND_INS that is not installed, a stand-in module tree. SpikingJelly's model zoo imports torchvision only
    for `load_state_dict_from_url` (torch.hub's is given); anything else taken from a stand-in raises a clear
    error when used. Stand-ins leave sys.modules afterwards, so a later plain import fails as it would have."""
    missing = [name for name, real in STAND_INS.items()
               if name not in sys.modules and importlib.util.find_spec(real) is None]
    finder = _StandInFinder(missing)
    added = folder is not None and folder not in sys.path
    sys.meta_path.insert(0, finder)
    if added:
        sys.path.insert(0, folder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        if added:
            sys.path.remove(folder)
        for name in [m for m in sys.modules if isinstance(sys.modules[m], _StandInModule)]:
            stand_in, (parent, _, child) = sys.modules.pop(name), name.rpartition(".")
            if getattr(sys.modules.get(parent), child, None) is stand_in:
                delattr(sys.modules[parent], child)


class _StandInFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def __init__(self, roots: list):
        self.roots = roots

    def _root(self, name: str) -> Optional[str]:
        return next((r for r in self.roots if name == r or name.startswith(r + ".")), None)

    def find_spec(self, name, path=None, target=None):
        return importlib.machinery.ModuleSpec(name, self, is_package=True) if self._root(name) else None

    def create_module(self, spec):
        return _StandInModule(spec.name, self._root(spec.name))

    def exec_module(self, module):
        pass


class _StandInModule(types.ModuleType):
    def __init__(self, name: str, root: str):
        super().__init__(name)
        self._root = root

    def __getattr__(self, attr):
        if attr == "load_state_dict_from_url":
            import torch.hub
            return torch.hub.load_state_dict_from_url
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Missing(f"{self.__name__}.{attr}", self._root)


class _Missing:
    """What a stand-in hands out for anything but load_state_dict_from_url: it fails, clearly, when used."""

    def __init__(self, what: str, root: str):
        self._what, self._root = what, root

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Missing(f"{self._what}.{attr}", self._root)

    def _fail(self, *args, **kwargs):
        raise ImportError(f"{STAND_INS[self._root]} is not installed; snncheck stood in for it so that the model "
                          f"file imports. {self._what} needs the real package")

    __call__ = __iter__ = __getitem__ = __mro_entries__ = _fail


# ----------------------------------------------------------------------------------------------- the zoo
def named_parts(**parts):
    """A module applying its named parts in order (state_dict keys are `<part>.<index>...`)."""
    import torch.nn as nn

    class Chain(nn.Module):
        def __init__(self):
            super().__init__()
            for key, part in parts.items():
                self.add_module(key, part)

        def forward(self, x):
            for part in self.children():
                x = part(x)
            return x

    return Chain().eval()


def if_node(reset: str, threshold: float = 1.0):
    from spikingjelly.activation_based import neuron
    if reset not in ("hard", "soft"):
        raise InputError(f"reset must be 'hard' or 'soft', not {reset!r}")
    return neuron.IFNode(v_threshold=threshold, v_reset=0.0 if reset == "hard" else None)


def _csnn(in_channels=1, size=8, channels=(8, 16), hidden=32, classes=10, reset="hard"):
    """The seed CSNN shape: (conv-BN-IF-maxpool) x 2, flatten, (linear-IF) x 2, under `conv_fc`."""
    import torch.nn as nn
    from spikingjelly.activation_based import layer
    c1, c2 = channels
    return named_parts(conv_fc=nn.Sequential(
        layer.Conv2d(in_channels, c1, 3, padding=1, bias=False), layer.BatchNorm2d(c1), if_node(reset),
        layer.MaxPool2d(2, 2),
        layer.Conv2d(c1, c2, 3, padding=1, bias=False), layer.BatchNorm2d(c2), if_node(reset),
        layer.MaxPool2d(2, 2),
        layer.Flatten(),
        layer.Linear(c2 * (size // 4) ** 2, hidden), if_node(reset),
        layer.Linear(hidden, classes), if_node(reset),
    ))


def digits_csnn(reset="hard"):
    """The embedded default: CSNN on 8x8 scikit-learn digits (1 -> 8 -> 16 channels, 64 -> 32 -> 10)."""
    return _csnn(reset=reset)


def csnn28(reset="hard", channels=(16, 32)):
    """A 28x28 (MNIST-sized) CSNN with 16 and 32 channels, as in the seed."""
    return _csnn(size=28, channels=channels, hidden=128, reset=reset)


def alexnet_small(reset="hard", size=16):
    """An AlexNet-style conv stack with biases, for 0-255 direct input: conv-IF x3 with pooling, then two linears."""
    import torch.nn as nn
    from spikingjelly.activation_based import layer
    return named_parts(features=nn.Sequential(
        layer.Conv2d(3, 16, 3, padding=1), if_node(reset), layer.MaxPool2d(2, 2),
        layer.Conv2d(16, 32, 3, padding=1), if_node(reset), layer.MaxPool2d(2, 2),
        layer.Conv2d(32, 32, 3, padding=1), if_node(reset),
    ), classifier=nn.Sequential(
        layer.Flatten(), layer.Dropout(0.5), layer.Linear(32 * (size // 4) ** 2, 64), if_node(reset),
        layer.Linear(64, 10), if_node(reset),
    ))


def mlp(reset="hard", inputs=64, hidden=(48, 24), classes=10):
    """A multilayer perceptron on flattened input: (linear-IF) per layer."""
    import torch.nn as nn
    from spikingjelly.activation_based import layer
    sizes = (inputs,) + tuple(hidden) + (classes,)
    mods = [layer.Flatten()]
    for a, b in zip(sizes[:-1], sizes[1:]):
        mods += [layer.Linear(a, b), if_node(reset)]
    return named_parts(fc=nn.Sequential(*mods))


ZOO = {"digits_csnn": digits_csnn, "csnn28": csnn28, "alexnet_small": alexnet_small, "mlp": mlp}
INPUT_SHAPES = {"digits_csnn": (1, 8, 8), "csnn28": (1, 28, 28), "alexnet_small": (3, 16, 16), "mlp": (1, 8, 8)}


def get(name: str) -> Callable:
    if name not in ZOO:
        raise InputError(f"unknown model {name!r}; built-in models: {', '.join(sorted(ZOO))}")
    return ZOO[name]
