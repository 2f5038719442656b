"""SpikingJelly 2.0's own models, as shipped (their layers untouched), for the zoo cases and scripts/zoo_table.py.

Each factory builds the model with the neuron it is given (`neuron = "if"` as the zoo table runs them: IFNode; "lif"
and "plif" for the float-only variants), seeded: weights as the model initialises them, then every bias and every
BatchNorm's statistics and affine parameters drawn from a seeded generator (the zoo initialises biases to 0 and
BatchNorm to the identity, which would leave a planted bias bug nothing to change). Only constructor options are
used: `channels` of parametric_lif_net, `num_classes`, `cnf` of SEW ResNet.
"""
from __future__ import annotations

import torch

from snncheck.frontends.models import import_sj

INPUT_SHAPES = {"csnn": (1, 28, 28), "mnist_net": (1, 28, 28), "fashion_mnist_net": (1, 28, 28),
                "nmnist_net": (2, 34, 34), "cifar10_net": (3, 32, 32), "dvs_gesture_net": (2, 128, 128),
                "vgg11": (3, 32, 32), "vgg11_bn": (3, 32, 32), "resnet18": (3, 32, 32), "sew_resnet18": (3, 32, 32)}


def _neuron(kind: str):
    from spikingjelly.activation_based import neuron
    try:
        return {"if": neuron.IFNode, "lif": neuron.LIFNode, "plif": neuron.ParametricLIFNode}[kind]
    except KeyError:
        raise ValueError(f"neuron must be 'if', 'lif' or 'plif', not {kind!r}") from None


def _seeded(module, seed: int, bias: float = 0.05):
    """Biases uniform in [-bias, bias]; BatchNorm mean/var/gamma/beta drawn around the identity."""
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=gen) * 0.2 - 0.1)
                m.running_var.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
                m.weight.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
                m.bias.copy_(torch.rand(n, generator=gen) * 0.2 - 0.05)
            elif isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.bias is not None:
                m.bias.copy_((torch.rand(m.bias.shape, generator=gen) * 2 - 1) * bias)
    return module.eval()


def _balanced(module, shape: tuple, quantile: float = 0.95, frames: bool = False, steps: int = 4):
    """Layer by layer in forward order, the BatchNorm (else the Conv2d/Linear) that feeds each spiking layer is
    scaled so that the `quantile` of the layer's input on seeded uniform [0, 1) inputs reaches its threshold:
    random weights whose deeper layers still fire (threshold balancing, kept in the weights so that a saved
    state_dict carries it)."""
    from spikingjelly.activation_based import functional
    from spikingjelly.activation_based.neuron import BaseNode
    gen = torch.Generator().manual_seed(0)
    x = torch.rand((8,) + tuple(shape) if frames else (steps, 8) + tuple(shape), generator=gen)
    functional.set_step_mode(module, "m")
    feeder = None
    for m in module.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear, torch.nn.modules.batchnorm._BatchNorm)):
            feeder = m
        elif isinstance(m, BaseNode) and feeder is not None:
            seen = {}
            hook = m.register_forward_pre_hook(lambda mod, args: seen.__setitem__("x", args[0]))
            with torch.no_grad():
                functional.reset_net(module)
                module(x)
                q = float(torch.quantile(seen["x"].flatten().float()[:2 ** 24], quantile))
                if q > 0:
                    feeder.weight.mul_(float(m.v_threshold) / q)
                    if feeder.bias is not None:
                        feeder.bias.mul_(float(m.v_threshold) / q)
            hook.remove()
    functional.reset_net(module)
    return module


def _plif_net(cls_name: str, channels: int, neuron: str, seed: int):
    torch.manual_seed(seed)
    cls = getattr(import_sj("model.parametric_lif_net"), cls_name)
    shape = INPUT_SHAPES[{"MNISTNet": "mnist_net", "FashionMNISTNet": "fashion_mnist_net", "NMNISTNet": "nmnist_net",
                          "CIFAR10Net": "cifar10_net", "DVSGestureNet": "dvs_gesture_net"}[cls_name]]
    return _balanced(_seeded(cls(channels=channels, spiking_neuron=_neuron(neuron)), seed), shape)


def csnn(channels: int = 8, T: int = 4, seed: int = 0):
    """examples/conv_fashion_mnist.CSNN(T, channels): IFNode, repeats its input over T itself, returns the rate."""
    torch.manual_seed(seed)
    return _balanced(_seeded(import_sj("examples.conv_fashion_mnist").CSNN(T=T, channels=channels), seed),
                     INPUT_SHAPES["csnn"], frames=True)


def mnist_net(channels: int = 8, neuron: str = "if", seed: int = 0):
    return _plif_net("MNISTNet", channels, neuron, seed)


def fashion_mnist_net(channels: int = 8, neuron: str = "if", seed: int = 0):
    return _plif_net("FashionMNISTNet", channels, neuron, seed)


def nmnist_net(channels: int = 8, neuron: str = "if", seed: int = 0):
    return _plif_net("NMNISTNet", channels, neuron, seed)


def cifar10_net(channels: int = 8, neuron: str = "if", seed: int = 0):
    return _plif_net("CIFAR10Net", channels, neuron, seed)


def dvs_gesture_net(channels: int = 8, neuron: str = "if", seed: int = 0):
    return _plif_net("DVSGestureNet", channels, neuron, seed)


def _vgg(name: str, neuron: str, seed: int):
    torch.manual_seed(seed)
    build = getattr(import_sj("model.spiking_vgg"), name)
    return _balanced(_seeded(build(spiking_neuron=_neuron(neuron), num_classes=10), seed), INPUT_SHAPES["vgg11"])


def vgg11(neuron: str = "if", seed: int = 0):
    """spiking_vgg11 as shipped: 3x32x32 ends its features at 512x1x1, which its AdaptiveAvgPool2d((7, 7)) spreads
    to 7x7 before a 25088 -> 4096 -> 4096 classifier and a non-spiking Linear head."""
    return _vgg("spiking_vgg11", neuron, seed)


def vgg11_bn(neuron: str = "if", seed: int = 0):
    return _vgg("spiking_vgg11_bn", neuron, seed)


def resnet18(neuron: str = "if", seed: int = 0):
    """spiking_resnet18 (BasicBlock: its width is fixed at 64..512), global average pool and a Linear head."""
    torch.manual_seed(seed)
    return _balanced(_seeded(import_sj("model.spiking_resnet").spiking_resnet18(spiking_neuron=_neuron(neuron),
                                                                                num_classes=10), seed),
                     INPUT_SHAPES["resnet18"])


def sew_resnet18(neuron: str = "if", cnf: str = "ADD", seed: int = 0):
    torch.manual_seed(seed)
    return _balanced(_seeded(import_sj("model.sew_resnet").sew_resnet18(cnf=cnf, spiking_neuron=_neuron(neuron),
                                                                        num_classes=10), seed),
                     INPUT_SHAPES["sew_resnet18"])


# the LIF family as shipped in parametric_lif_net (no integer form: checked SpikingJelly against the reference)
def mnist_net_lif(channels: int = 4, seed: int = 0):
    return mnist_net(channels, neuron="lif", seed=seed)


def mnist_net_plif(channels: int = 4, seed: int = 0):
    return mnist_net(channels, neuron="plif", seed=seed)


def cifar10_net_plif(channels: int = 8, seed: int = 0):
    return cifar10_net(channels, neuron="plif", seed=seed)
