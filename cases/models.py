"""Small SpikingJelly models for the case files that the built-in zoo does not have.

Each factory returns a fresh eval-mode module with seeded (untrained) weights; the case files set
`calibrate = q` so that every spiking layer's threshold is balanced on the case's own inputs.
"""
from __future__ import annotations

from snncheck.frontends.models import if_node, named_parts


def qcfs_net(size: int = 8, channels: int = 8, classes: int = 10):
    """QCFS-style ANN-to-SNN conversion target: IF neurons with soft reset that start at theta/2
    (SpikingJelly's HalfThresholdIFNode), conv-pool-linear on 1-channel frames."""
    import torch.nn as nn
    from spikingjelly.activation_based import layer, neuron
    return named_parts(net=nn.Sequential(
        layer.Conv2d(1, channels, 3, padding=1), neuron.HalfThresholdIFNode(), layer.MaxPool2d(2, 2),
        layer.Flatten(), layer.Linear(channels * (size // 2) ** 2, classes), neuron.HalfThresholdIFNode(),
    ))


def biased_mlp(inputs: int = 64, hidden: int = 32, classes: int = 10, reset: str = "soft", bias_gain: float = 3.0):
    """Linear-IF x2 whose biases are large (bias_gain times PyTorch's default range), so that the constant
    current matters as much as the input: on PAIBox each bias becomes a pb.LIF's per-neuron bias."""
    import torch
    import torch.nn as nn
    from spikingjelly.activation_based import layer
    net = named_parts(fc=nn.Sequential(layer.Flatten(), layer.Linear(inputs, hidden), if_node(reset),
                                  layer.Linear(hidden, classes), if_node(reset)))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Linear):
                m.bias.mul_(bias_gain)
    return net


def event_csnn(size: int = 16, channels=(8, 16), classes: int = 10, reset: str = "hard"):
    """A CSNN for event-camera frames: two polarity channels (ON, OFF) in, conv-IF-pool x2, linear-IF."""
    import torch.nn as nn
    from spikingjelly.activation_based import layer
    c1, c2 = channels
    return named_parts(conv_fc=nn.Sequential(
        layer.Conv2d(2, c1, 3, padding=1, bias=False), layer.BatchNorm2d(c1), if_node(reset), layer.MaxPool2d(2, 2),
        layer.Conv2d(c1, c2, 3, padding=1, bias=False), layer.BatchNorm2d(c2), if_node(reset), layer.MaxPool2d(2, 2),
        layer.Flatten(), layer.Linear(c2 * (size // 4) ** 2, classes), if_node(reset),
    ))


def lif_mlp(inputs: int = 64, hidden: int = 32, classes: int = 10, tau: float = 2.0):
    """Linear-LIF x2 (SpikingJelly's multiplicative leak, hard reset): a float network PAIBox cannot run."""
    import torch.nn as nn
    from spikingjelly.activation_based import layer, neuron
    return named_parts(fc=nn.Sequential(layer.Flatten(), layer.Linear(inputs, hidden), neuron.LIFNode(tau=tau),
                                   layer.Linear(hidden, classes), neuron.LIFNode(tau=tau)))


def vgg_avgpool(size: int = 16, channels=(8, 16, 16), classes: int = 10, head: str = "spiking", in_channels: int = 1,
                reset: str = "hard"):
    """A VGG-style net with average pooling (as QCFS's VGG16 uses it): (conv-BN-IF-avgpool) x 2, conv-BN-IF, a
    global average pool over the last (size/4)^2 cells, then the classifier: Linear-IF (`head = "spiking"`), or a
    Linear readout computed off-chip (`head = "linear"`, SpikingJelly VGG's last layer)."""
    import torch.nn as nn
    from spikingjelly.activation_based import layer
    c1, c2, c3 = channels
    tail = [layer.Linear(c3, classes)] + ([if_node(reset)] if head == "spiking" else [])
    return named_parts(features=nn.Sequential(
        layer.Conv2d(in_channels, c1, 3, padding=1, bias=False), layer.BatchNorm2d(c1), if_node(reset),
        layer.AvgPool2d(2, 2),
        layer.Conv2d(c1, c2, 3, padding=1, bias=False), layer.BatchNorm2d(c2), if_node(reset), layer.AvgPool2d(2, 2),
        layer.Conv2d(c2, c3, 3, padding=1, bias=False), layer.BatchNorm2d(c3), if_node(reset),
        layer.AvgPool2d(size // 4, size // 4), layer.Flatten(), *tail,
    ))


def dvs_gesture_net(channels: int = 8, head: bool = True, v_threshold: float = 1.0):
    """SpikingJelly's own DVSGestureNet (activation_based.model.parametric_lif_net) with IF neurons: five
    conv-BN-IF-maxpool blocks on 2x128x128 event frames, linear-IF 512, linear-IF 110 and a VotingLayer(10) head
    (`head=False` leaves the head out). `channels` is SpikingJelly's own argument (128 there; fewer here, so
    that PAIBox simulates it in seconds); `v_threshold` goes to every IFNode, as SpikingJelly passes kwargs."""
    import torch.nn as nn
    from spikingjelly.activation_based import neuron
    from spikingjelly.activation_based.model.parametric_lif_net import DVSGestureNet
    net = DVSGestureNet(channels=channels, spiking_neuron=neuron.IFNode, v_threshold=v_threshold)
    if not head:
        net.conv_fc = nn.Sequential(*list(net.conv_fc)[:-1])
    return net.eval()


def dvs_gesture_net_low_threshold(channels: int = 8, v_threshold: float = 0.2):
    """DVSGestureNet as shipped (VotingLayer head included), for `--model cases/models.py:dvs_gesture_net_low_threshold`;
    the threshold 0.2 keeps every layer firing (5-30%) with torch's default initialisation on the case's events."""
    return dvs_gesture_net(channels, v_threshold=v_threshold)
