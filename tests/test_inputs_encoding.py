"""snncheck's encoders against SpikingJelly's own (`encoding.PoissonEncoder`, `encoding.LatencyEncoder`) on the
same frames and the same generator state, and what a plan does with the spikes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from spikingjelly.activation_based import encoding

from snncheck import data
from snncheck.errors import InputError
from snncheck.inputs import encode, encoders
from snncheck.plan import Inputs

T = 8


@pytest.fixture(scope="module")
def frames():
    x, _ = data.digits("test")
    return x[:40]


def _sj_poisson(frames, seed, multi_step=False):
    """SpikingJelly's way: seed torch's global generator, call the encoder at every step on the whole batch
    (single-step), or once on the batch repeated over T (multi-step); [T, N, ...] -> [N, T, ...]."""
    x = torch.from_numpy(frames)
    torch.manual_seed(seed)
    if multi_step:
        out = encoding.PoissonEncoder(step_mode="m")(x.unsqueeze(0).repeat(T, *[1] * x.ndim))
    else:
        enc = encoding.PoissonEncoder()
        out = torch.stack([enc(x) for _ in range(T)])
    return out.transpose(0, 1).numpy()


@pytest.mark.parametrize("multi_step", [False, True])
def test_poisson_equals_spikingjelly_for_the_same_seed(frames, multi_step):
    """Catches draws in another order (sample-major instead of step-major), of another dtype (float64), or from
    an unseeded generator: any of them changes the spikes."""
    ours = encoders.poisson(frames, T, seed=7)
    assert ours.dtype == np.uint8 and ours.shape == (40, T, 1, 8, 8)
    assert np.array_equal(ours, _sj_poisson(frames, 7, multi_step))
    assert not np.array_equal(ours, _sj_poisson(frames, 8))            # the seed matters
    assert 0.2 < ours.mean() / frames.mean() < 5                        # and the rate follows x


@pytest.mark.parametrize("function", ["linear", "log"])
def test_latency_equals_spikingjelly(frames, function):
    """Catches a floor for round, a time axis in the wrong place or (T - 1) x for (T - 1)(1 - x)."""
    x = np.concatenate([frames, np.zeros_like(frames[:1]), np.ones_like(frames[:1])])
    enc = encoding.LatencyEncoder(T, enc_function=function)
    sj = torch.stack([enc(torch.from_numpy(x)) for _ in range(T)]).transpose(0, 1).numpy()
    ours = encoders.latency(x, T, function)
    assert np.array_equal(ours, sj)
    assert (ours.sum(axis=1) == 1).all()                                # one spike per input


def test_encoders_refuse_inputs_outside_0_1(frames):
    """SpikingJelly only warns; a 0-16 digit would give rate 1 everywhere and latency an index error."""
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        encoders.poisson(frames * 16, T, 0)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        encoders.latency(frames - 0.5, T)


def test_encode_turns_frames_into_one_spike_tensor_that_says_how_it_was_made(frames):
    """The plan's inputs hold the spikes themselves (every chunk and every simulator reads the same draw), and
    describe() says which encoding and seed ran."""
    inputs = encode(Inputs.frames(frames, T, source="digits"), "poisson", seed=3)
    assert not inputs.direct and inputs.data.shape == (40, T, 1, 8, 8)
    assert np.array_equal(np.concatenate([inputs.chunk(0, 13), inputs.chunk(13, 40)]), inputs.chunk())
    assert inputs.describe()["encoding"] == "poisson" and inputs.describe()["encoding_seed"] == 3
    assert encode(Inputs.frames(frames, T), "direct").direct
    with pytest.raises(InputError, match="sequences"):
        encode(inputs, "latency")
