"""A user's own PAIBox network (`snncheck diff A --paibox FILE.py:FACTORY`), matched to A's neurons and run with its
own timing: right, it is bit-exact with the reference at the recipe's lags; its classic mistakes show in the runs at
the layers the diagnoses then name (a lag not found below the first stage; a reset mode other than A's)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from snncheck.backends.paibox import PAIBoxBackend
from snncheck.backends.reference import ReferenceBackend
from snncheck.frontends import paibox as user_paibox

from helpers import assert_exact, digits_float_graph, digits_int_graph, found_lags
from test_paibox_user import digit_inputs

FIXTURE = Path(__file__).parent / "fixtures" / "user_paibox.py"
LAYERS = ["conv_fc.2", "conv_fc.6", "conv_fc.10", "conv_fc.12"]
T = 6


@pytest.fixture(scope="module")
def runs():
    """{factory: (B's graph, raw PAIBox run of the user's network, reference run of B)} on 8 digits."""
    a = digits_float_graph()
    x = digit_inputs(8, T)
    out = {}
    for factory in ("digits_correct", "digits_flat_timing", "digits_soft_reset"):
        user = user_paibox.load(f"{FIXTURE}:{factory}", a)
        out[factory] = (user.graph, PAIBoxBackend(source=user).run(user.graph, x, "paibox:b"),
                        ReferenceBackend().run(user.graph, x, "reference:b"))
    out["conversion"] = ReferenceBackend().run(digits_int_graph(), x)
    return out


def test_correct_user_network_is_bit_exact_at_the_recipes_lags(runs):
    b, raw, ref = runs["digits_correct"]
    assert raw.names == LAYERS
    assert [raw.meta["expected_lag"][n] for n in LAYERS] == [0, 2, 4, 5]
    assert found_lags(raw, ref) == raw.meta["expected_lag"]
    assert_exact(raw, ref, T)
    for name in LAYERS:    # and it is the shipped conversion, which fires on these digits
        assert np.array_equal(ref.layer(name).spikes, runs["conversion"].layer(name).spikes), name
        assert ref.layer(name).spikes.any(), name


def test_tick_wait_start_one_everywhere_misses_the_lag_of_every_deeper_layer(runs):
    b, raw, ref = runs["digits_flat_timing"]
    lags = found_lags(raw, ref)
    assert lags["conv_fc.2"] == 0                   # the first layer, fed by InputProj, is on time
    assert all(lags[n] != raw.meta["expected_lag"][n] for n in LAYERS[1:]), lags


def test_paibox_default_soft_reset_is_read_as_soft_and_runs_as_written(runs):
    """The user's network is read faithfully (PAIBox = reference of B, bit for bit), and B's reset is soft on every
    layer where A resets hard: what the reset_mode diagnosis compares."""
    b, raw, ref = runs["digits_soft_reset"]
    a = digits_float_graph()
    assert [b.nodes[n].reset for n in LAYERS] == ["soft"] * 4 and [a.nodes[n].reset for n in LAYERS] == ["hard"] * 4
    assert found_lags(raw, ref) == raw.meta["expected_lag"]
    assert_exact(raw, ref, T)
    differ = [n for n in LAYERS if not np.array_equal(ref.layer(n).v, runs["conversion"].layer(n).v)]
    assert differ == LAYERS, differ
