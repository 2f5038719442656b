"""Built-in models (SpikingJelly modules) that `--model NAME` and the cases can name.

Each factory takes keyword options (reset mode, sizes) and returns a fresh module in eval mode. `digits_csnn` is
the embedded default; its trained weights ship in `snncheck/models/` (see scripts/train_digits.py).
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from .errors import InputError

MODELS_DIR = Path(str(resources.files("snncheck") / "models"))
DIGITS_CHECKPOINT = MODELS_DIR / "digits_csnn.pth"
DIGITS_DEPLOYED = MODELS_DIR / "digits_csnn_int8.pth"


def _chain(**parts):
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


def _if(reset: str, threshold: float = 1.0):
    from spikingjelly.activation_based import neuron
    if reset not in ("hard", "soft"):
        raise InputError(f"reset must be 'hard' or 'soft', not {reset!r}")
    return neuron.IFNode(v_threshold=threshold, v_reset=0.0 if reset == "hard" else None)


class CSNN:
    """The seed CSNN shape: (conv-BN-IF-maxpool) x 2, flatten, (linear-IF) x 2, under `conv_fc`."""

    @staticmethod
    def build(in_channels=1, size=8, channels=(8, 16), hidden=32, classes=10, reset="hard"):
        import torch.nn as nn
        from spikingjelly.activation_based import layer
        c1, c2 = channels
        return _chain(conv_fc=nn.Sequential(
            layer.Conv2d(in_channels, c1, 3, padding=1, bias=False), layer.BatchNorm2d(c1), _if(reset),
            layer.MaxPool2d(2, 2),
            layer.Conv2d(c1, c2, 3, padding=1, bias=False), layer.BatchNorm2d(c2), _if(reset),
            layer.MaxPool2d(2, 2),
            layer.Flatten(),
            layer.Linear(c2 * (size // 4) ** 2, hidden), _if(reset),
            layer.Linear(hidden, classes), _if(reset),
        ))


def digits_csnn(reset="hard"):
    """The embedded default: CSNN on 8x8 scikit-learn digits (1 -> 8 -> 16 channels, 64 -> 32 -> 10)."""
    return CSNN.build(reset=reset)


def csnn28(reset="hard", channels=(16, 32)):
    """A 28x28 (MNIST-sized) CSNN with 16 and 32 channels, as in the seed."""
    return CSNN.build(size=28, channels=channels, hidden=128, reset=reset)


def alexnet_small(reset="hard", size=16):
    """An AlexNet-style conv stack with biases, for 0-255 direct input: conv-IF x3 with pooling, then two linears."""
    import torch.nn as nn
    from spikingjelly.activation_based import layer
    return _chain(features=nn.Sequential(
        layer.Conv2d(3, 16, 3, padding=1), _if(reset), layer.MaxPool2d(2, 2),
        layer.Conv2d(16, 32, 3, padding=1), _if(reset), layer.MaxPool2d(2, 2),
        layer.Conv2d(32, 32, 3, padding=1), _if(reset),
    ), classifier=nn.Sequential(
        layer.Flatten(), layer.Dropout(0.5), layer.Linear(32 * (size // 4) ** 2, 64), _if(reset),
        layer.Linear(64, 10), _if(reset),
    ))


def mlp(reset="hard", inputs=64, hidden=(48, 24), classes=10):
    """A multilayer perceptron on flattened input: (linear-IF) per layer."""
    import torch.nn as nn
    from spikingjelly.activation_based import layer
    sizes = (inputs,) + tuple(hidden) + (classes,)
    mods = [layer.Flatten()]
    for a, b in zip(sizes[:-1], sizes[1:]):
        mods += [layer.Linear(a, b), _if(reset)]
    return _chain(fc=nn.Sequential(*mods))


ZOO = {"digits_csnn": digits_csnn, "csnn28": csnn28, "alexnet_small": alexnet_small, "mlp": mlp}
INPUT_SHAPES = {"digits_csnn": (1, 8, 8), "csnn28": (1, 28, 28), "alexnet_small": (3, 16, 16), "mlp": (1, 8, 8)}


def get(name: str):
    if name not in ZOO:
        raise InputError(f"unknown model {name!r}; built-in models: {', '.join(sorted(ZOO))}")
    return ZOO[name]
