"""Benchmark networks at the size users run, beside the zoo's digits CSNN and csnn28 (seeded weights).

    vgg_cifar   3x32x32 (CIFAR-size): (conv-BN-IF) x2 at 32 channels, max pool, (conv-BN-IF) x2 at 64, max pool,
                flatten, (linear-IF) 4096 -> 128 -> 10
    event128    2x128x128 event frames (ON/OFF counts): conv 5x5 stride 2 at 16 channels, max pool, conv 3x3 at
                32, max pool, conv 3x3 at 32, max pool, flatten, (linear-IF) 2048 -> 128 -> 10
"""
from __future__ import annotations


def _block(layer, cin, cout, reset, **conv):
    from snncheck.frontends.models import if_node
    return [layer.Conv2d(cin, cout, conv.pop("kernel", 3), bias=False, **conv), layer.BatchNorm2d(cout),
            if_node(reset)]


def vgg_cifar(reset="hard", channels=(32, 64), hidden=128, classes=10):
    import torch.nn as nn
    from spikingjelly.activation_based import layer
    from snncheck.frontends.models import if_node, named_parts
    c1, c2 = channels
    mods = (_block(layer, 3, c1, reset, padding=1) + _block(layer, c1, c1, reset, padding=1)
            + [layer.MaxPool2d(2, 2)]
            + _block(layer, c1, c2, reset, padding=1) + _block(layer, c2, c2, reset, padding=1)
            + [layer.MaxPool2d(2, 2), layer.Flatten(),
               layer.Linear(c2 * 8 * 8, hidden), if_node(reset), layer.Linear(hidden, classes), if_node(reset)])
    return named_parts(features=nn.Sequential(*mods))


def event128(reset="hard", channels=(16, 32, 32), hidden=128, classes=10):
    import torch.nn as nn
    from spikingjelly.activation_based import layer
    from snncheck.frontends.models import if_node, named_parts
    c1, c2, c3 = channels
    mods = (_block(layer, 2, c1, reset, kernel=5, stride=2, padding=2) + [layer.MaxPool2d(2, 2)]
            + _block(layer, c1, c2, reset, padding=1) + [layer.MaxPool2d(2, 2)]
            + _block(layer, c2, c3, reset, padding=1) + [layer.MaxPool2d(2, 2), layer.Flatten(),
               layer.Linear(c3 * 8 * 8, hidden), if_node(reset), layer.Linear(hidden, classes), if_node(reset)])
    return named_parts(features=nn.Sequential(*mods))
