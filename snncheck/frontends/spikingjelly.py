"""SpikingJelly <-> snncheck.ir: import an `nn.Module` into a Network, and build a module from a Network.

Import walks the module tree in registration order (what a tree of `nn.Sequential` executes), so layer names are
the module paths of the state_dict (`conv_fc.0`). Anything that cannot be expressed is refused with the module's
name and the reason; Dropout is identity at inference and is skipped.
"""
from __future__ import annotations

import numpy as np

from .. import ir
from ..errors import InputError, require


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy().copy()


def _pair(v) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (int(v), int(v))


def from_module(module, input_shape, name: str = "network") -> ir.Network:
    """A SpikingJelly/PyTorch module (tree of Sequentials) -> ir.Network, BatchNorm kept (fold it later)."""
    layers = [layer for path, child in _leaves(module) for layer in _convert(path, child)]
    require(any(isinstance(l, ir.NEURON_TYPES) for l in layers), f"model {name!r} has no spiking neuron layer")
    return ir.Network(layers, tuple(input_shape), name=name)


def _leaves(module, prefix=""):
    from spikingjelly.activation_based.neuron import BaseNode
    for child_name, child in module.named_children():
        path = f"{prefix}{child_name}"
        if isinstance(child, BaseNode) or not list(child.children()):
            yield path, child
        else:
            yield from _leaves(child, path + ".")


def _convert(path: str, m):
    import torch.nn as nn
    from spikingjelly.activation_based import layer as sjl, neuron

    def refuse(reason: str):
        raise InputError(f"module {path!r} ({type(m).__name__}) cannot be imported: {reason}")

    if isinstance(m, (nn.Dropout, sjl.Dropout, nn.Identity)):
        return []
    if isinstance(m, nn.Conv2d):
        if isinstance(m.padding, str) or m.padding_mode != "zeros":
            refuse("only explicit zero padding is supported")
        if _pair(m.dilation) != (1, 1):
            refuse("dilation > 1 is not supported (PAIBox simulates it wrongly)")
        return [ir.Conv2d(path, _np(m.weight), None if m.bias is None else _np(m.bias),
                          _pair(m.stride), _pair(m.padding), m.groups)]
    if isinstance(m, nn.Linear):
        return [ir.Linear(path, _np(m.weight), None if m.bias is None else _np(m.bias))]
    if isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
        if m.running_mean is None:
            refuse("BatchNorm without running statistics cannot be folded")
        gamma = _np(m.weight) if m.affine else np.ones(m.num_features, np.float32)
        beta = _np(m.bias) if m.affine else np.zeros(m.num_features, np.float32)
        return [ir.BatchNorm(path, _np(m.running_mean), _np(m.running_var), gamma, beta, float(m.eps))]
    if isinstance(m, nn.Flatten):
        if m.start_dim != 1 or m.end_dim != -1:
            refuse("only flattening everything but the batch dimension is supported")
        return [ir.Flatten(path)]
    if isinstance(m, nn.MaxPool2d):
        if _pair(m.dilation) != (1, 1) or m.ceil_mode:
            refuse("dilation and ceil_mode are not supported")
        return [ir.MaxPool2d(path, _pair(m.kernel_size), _pair(m.stride or m.kernel_size), _pair(m.padding))]
    if isinstance(m, nn.AvgPool2d):
        if _pair(m.padding) != (0, 0) or m.ceil_mode:
            refuse("padding and ceil_mode are not supported")
        return [ir.AvgPool2d(path, _pair(m.kernel_size), _pair(m.stride or m.kernel_size))]
    if isinstance(m, neuron.BaseNode):
        return [_neuron(path, m, refuse)]
    refuse("not a supported layer (Conv2d, Linear, BatchNorm, Flatten, MaxPool2d, AvgPool2d, Dropout, "
           "IFNode, LIFNode, ParametricLIFNode, HalfThresholdIFNode)")


def _neuron(path, m, refuse):
    from spikingjelly.activation_based import neuron
    common = dict(name=path, threshold=float(m.v_threshold), v_reset=m.v_reset)
    v0 = m._memories_rv.get("v")
    if not isinstance(v0, float):
        refuse("a tensor-valued initial membrane potential is not supported")
    default_v0 = 0.0 if m.v_reset is None else m.v_reset
    common["v_init"] = None if v0 == default_v0 else v0
    kind = type(m)
    if kind in (neuron.IFNode, neuron.HalfThresholdIFNode):
        return ir.IF(**common)
    if kind is neuron.LIFNode:
        return ir.LIF(**common, tau=float(m.tau), decay_input=bool(m.decay_input))
    if kind is neuron.ParametricLIFNode:
        return ir.ParametricLIF(**common, w=float(m.w.item()), decay_input=bool(m.decay_input))
    refuse("this neuron model is not supported (IFNode, LIFNode, ParametricLIFNode, HalfThresholdIFNode are)")


def to_module(net: ir.Network):
    """ir.Network -> (multi-step SpikingJelly nn.Sequential in eval mode, {neuron name: module})."""
    import torch
    import torch.nn as nn
    from spikingjelly.activation_based import functional, layer as sjl

    def t(a):
        return nn.Parameter(torch.tensor(np.asarray(a), dtype=torch.float32), requires_grad=False)

    modules, neurons = [], {}
    for l in net.layers:
        if isinstance(l, ir.Conv2d):
            o, cg, kh, kw = l.weight.shape
            m = sjl.Conv2d(cg * l.groups, o, (kh, kw), l.stride, l.padding, groups=l.groups, bias=l.bias is not None)
            m.weight = t(l.weight)
            if l.bias is not None:
                m.bias = t(l.bias)
        elif isinstance(l, ir.Linear):
            m = sjl.Linear(l.weight.shape[1], l.weight.shape[0], bias=l.bias is not None)
            m.weight = t(l.weight)
            if l.bias is not None:
                m.bias = t(l.bias)
        elif isinstance(l, ir.Flatten):
            m = sjl.Flatten()
        elif isinstance(l, ir.MaxPool2d):
            m = sjl.MaxPool2d(l.kernel, l.stride, l.padding)
        elif isinstance(l, ir.AvgPool2d):
            m = sjl.AvgPool2d(l.kernel, l.stride)
        elif isinstance(l, ir.BatchNorm):
            m = (sjl.BatchNorm2d if len(net.shapes()[net.layers.index(l)]) == 3 else sjl.BatchNorm1d)(len(l.mean), eps=l.eps)
            m.weight, m.bias = t(l.gamma), t(l.beta)
            m.running_mean.copy_(torch.tensor(l.mean)), m.running_var.copy_(torch.tensor(l.var))
        elif isinstance(l, ir.NEURON_TYPES):
            m = _make_neuron(l)
            neurons[l.name] = m
        else:
            raise InputError(f"layer {l.name!r} ({type(l).__name__}) has no SpikingJelly equivalent")
        modules.append(m)
    seq = nn.Sequential(*modules).eval()
    functional.set_step_mode(seq, "m")
    return seq, neurons


def _make_neuron(l: ir.Neuron):
    from spikingjelly.activation_based import neuron
    thr, vr = float(l.threshold), None if l.v_reset is None else float(l.v_reset)
    if isinstance(l, ir.IF):
        m = neuron.IFNode(v_threshold=thr, v_reset=vr)
    elif isinstance(l, ir.LIF):
        m = neuron.LIFNode(tau=float(l.tau), decay_input=l.decay_input, v_threshold=thr, v_reset=vr)
    elif isinstance(l, ir.ParametricLIF):
        m = neuron.ParametricLIFNode(decay_input=l.decay_input, v_threshold=thr, v_reset=vr)
        m.w.data.fill_(l.w)
    else:
        raise InputError(f"layer {l.name!r}: SpikingJelly has no neuron with an additive leak ({type(l).__name__})")
    if l.v_init is not None:
        m.set_reset_value("v", float(l.v_init))
    return m
