"""Hypothesis strategies: small random spiking networks built directly as `snncheck.graph` chains of named nodes,
their inputs, and quantization scales for converting float networks to integers.

Shapes stay small (PAIBox simulates ~1-2 ms per layer per step) but cover what the backends map differently:
conv (stride, padding, depthwise groups), linear after flatten, int8 weights, optional biases (pb.LIF bias),
additive leaks, spiking max pools (their own pipeline stage), hard reset to any integer and soft reset.
"""
from __future__ import annotations

import numpy as np
from hypothesis import assume, strategies as st
from hypothesis.extra import numpy as hnp

from snncheck import graph as G
from snncheck.graph import primitives as P

INT8 = st.integers(-128, 127)


def int8_weights(shape):
    return hnp.arrays(np.int64, shape, elements=INT8, fill=st.nothing())     # every weight drawn: no constant fill


def float_weights(shape):
    """Weights in [-1, 1], the largest at least 0.05 in magnitude: a layer of (near-)zero weights has no scale."""
    return hnp.arrays(np.float32, shape, elements=st.floats(-1, 1, width=32), fill=st.nothing()).map(_not_null)


def _not_null(w: np.ndarray) -> np.ndarray:
    if np.abs(w).max() < 0.05:
        w = w.copy()
        w.flat[0] = 0.5
    return w


def int_neuron(draw, leak: bool, fan_in: int, reset=None):
    """IF (hard reset to an integer, or soft), or PAIBox's additive-leak LIF; an integer threshold >= 1 on the
    scale of the input current (a few tens per active int8 synapse). A hard reset to v_reset != 0 starts from an
    explicit v = 0: PAIBox's offline neurons always start at 0, SpikingJelly's at v_reset."""
    threshold = draw(st.integers(1, 16 * fan_in))
    mode = reset or draw(st.sampled_from(["hard", "soft"]))
    v_reset = draw(st.one_of(st.just(0), st.integers(-40, 0))) if mode == "hard" else 0
    v_init = 0 if v_reset else None
    if leak and draw(st.booleans()):
        return P.AdditiveLIF(threshold, reset=mode, v_reset=v_reset, v_init=v_init, leak=draw(st.integers(-30, 30)))
    return P.IF(threshold, reset=mode, v_reset=v_reset, v_init=v_init)


def float_neuron(draw, leak: bool, fan_in: int, reset=None):
    """IF with a float threshold, hard reset to 0 or soft reset (what the conversion maps to PAIBox)."""
    mode = reset or draw(st.sampled_from(["hard", "soft"]))
    return P.IF(draw(st.floats(0.25, 4.0, width=32)), reset=mode, v_reset=0.0)


@st.composite
def networks(draw, integer: bool = True, max_stages: int = 3, leak: bool = True, reset=None):
    """A graph chaining 1..max_stages (synapse, neuron[, max pool]) stages on a (C, H, W) or (F,) input.
    reset: None (each neuron draws hard or soft) or a strategy of "hard"/"soft" for the whole network."""
    mode = draw(reset) if reset is not None else None
    weights = int8_weights if integer else float_weights
    bias = (lambda n: hnp.arrays(np.int64, n, elements=st.integers(-300, 300))) if integer else \
        (lambda n: hnp.arrays(np.float32, n, elements=st.floats(-1, 1, width=32)))
    neuron = int_neuron if integer else float_neuron
    side = draw(st.integers(3, 6))
    shape = draw(st.sampled_from([(1, side, side), (2, side, side), (side * 2,)]))
    layers, cur = [], shape
    for i in range(draw(st.integers(1, max_stages))):
        conv = len(cur) == 3 and draw(st.booleans())
        if conv:
            name, syn = f"conv{i}", _conv(draw, cur, weights, bias)
        else:
            if len(cur) == 3:
                layers.append((f"flat{i}", P.Flatten()))
                cur = (int(np.prod(cur)),)
            out = draw(st.integers(1, 8))
            name, syn = f"fc{i}", P.Linear(draw(weights((out, cur[0]))), draw(st.one_of(st.none(), bias(out))))
        fan_in = int(np.prod(syn.weight.shape[1:]))
        cur = syn.out_shape(cur)
        layers += [(name, syn), (f"n{i}", neuron(draw, leak, fan_in, mode))]
        if conv and min(cur[1:]) >= 2 and draw(st.booleans()):
            pool = P.MaxPool2d()
            layers.append((f"pool{i}", pool))
            cur = pool.out_shape(cur)
    return G.chain(layers, shape, name="hypothesis")


def _conv(draw, in_shape, weights, bias):
    c, h, w = in_shape
    k = draw(st.integers(1, min(3, h, w)))
    groups = draw(st.sampled_from([1, c])) if c > 1 else 1
    out = groups * draw(st.integers(1, 4 // groups or 1))
    padding = draw(st.integers(0, 1)) if k > 1 else 0
    stride = draw(st.integers(1, 2))
    return P.Conv2d(draw(weights((out, c // groups, k, k))), draw(st.one_of(st.none(), bias(out))),
                    (stride, stride), (padding, padding), groups)


@st.composite
def int_inputs(draw, shape, max_samples: int = 3, max_steps: int = 4):
    """Integer inputs [N, T, *shape] for PAIBox's uint8 InputProj: spikes, small counts or 0-255 pixels."""
    top = draw(st.sampled_from([1, 3, 255]))
    n, t = draw(st.integers(1, max_samples)), draw(st.integers(1, max_steps))
    arr = draw(hnp.arrays(np.int64, (n, t) + tuple(shape), elements=st.integers(0, top), fill=st.nothing()))
    return arr.astype(np.float64)


@st.composite
def int_networks_with_inputs(draw, **kwargs):
    net = draw(networks(integer=True, **kwargs))
    return net, draw(int_inputs(net.input_shape))


@st.composite
def quantization(draw, net: G.Graph):
    """Scales for converting a float network: the input scale s_in (1 for spike input, up to 255 for analog
    input in [0, 1]) and per synapse s_w = f * 127 / max|W| with f in [0.05, 1] (never saturating int8).
    Every integer threshold round(s_in * s_w * theta) is at least 1, so the conversion's floor never acts."""
    s_in = draw(st.sampled_from([1.0, 255.0]) | st.floats(1.0, 255.0))
    scales, k_in, k = {}, s_in, None
    for name in net.order:
        node = net.nodes[name]
        if isinstance(node, P.SYNAPSES):
            top = float(np.abs(node.weight).max())
            assume(top > 1e-3)
            scales[name] = draw(st.floats(0.05, 1.0)) * 127.0 / top
            k = k_in * scales[name]
        elif P.is_neuron(node):
            assume(k * node.threshold >= 1.0)
            k_in = 1.0
    return s_in, scales


@st.composite
def float_inputs(draw, shape, analog: bool, max_samples: int = 4, max_steps: int = 4):
    """Float inputs [N, T, *shape]: spikes, or analog values in [0, 1] (direct encoding, same frame each step)."""
    n, t = draw(st.integers(1, max_samples)), draw(st.integers(1, max_steps))
    if analog:
        frame = draw(hnp.arrays(np.float32, (n, 1) + tuple(shape), elements=st.floats(0, 1, width=32)))
        return np.repeat(frame, t, axis=1)
    return draw(hnp.arrays(np.float32, (n, t) + tuple(shape), elements=st.sampled_from([0.0, 1.0])))


# ------------------------------------------------------------------------------ whole cases (snncheck fuzz)
def all_if(net: G.Graph) -> bool:
    return all(type(net.nodes[n]) is P.IF for n in net.neurons)      # SpikingJelly has no additive leak


@st.composite
def case_specs(draw):
    """A case for a random integer network: it must run bit-exactly in PAIBox (and SpikingJelly) against the
    reference, every layer at its pipeline lag. Written as a file when it fails."""
    from snncheck.case import graph_to_spec
    net, x = draw(int_networks_with_inputs())
    others = ["paibox"] + (["spikingjelly"] if all_if(net) else [])
    return {"name": "fuzz_integer",
            "description": "a random integer network must run bit-exactly in every simulator",
            "model": graph_to_spec(net), "inputs": {"source": "inline", "values": x.astype(np.int64).tolist()},
            "run": {"runners": ["reference"] + others},
            "expect": {"exact": [f"{r}:b~reference:b" for r in others], "lags": "expected"}}


@st.composite
def conversion_case_specs(draw):
    """A case for a random float network and a correct conversion: no error diagnosis, and the integer
    network bit-exact in every simulator."""
    from snncheck.case import graph_to_spec
    net = draw(networks(integer=False, leak=False, reset=st.sampled_from(["hard", "soft"])))
    s_in = draw(st.sampled_from([1.0, 255.0]))
    x = draw(float_inputs(net.input_shape, analog=s_in != 1.0))
    return {"name": "fuzz_conversion",
            "description": "a correct conversion of a random float network must be found consistent",
            "model": graph_to_spec(net), "inputs": {"source": "inline", "values": x.tolist()},
            "conversion": {"rule": draw(st.sampled_from(["max", "seed"])), "input_scale": s_in},
            # no error: consistent, or inconclusive when the drawn inputs make a layer fire (almost) never
            "expect": {"verdict": ["consistent", "inconclusive"],
                       "exact": ["paibox:b~reference:b", "spikingjelly:b~reference:b"]}}
