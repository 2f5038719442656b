"""Graph.upstream: the one walk from targets up to where their values are given (the reference's evaluation from
feeds, the isolated mode's replays and its 'same part' test)."""
from __future__ import annotations

from helpers import pixel_inputs, resnet_graph


def test_upstream_reaches_both_branches_of_a_merge_and_stops_at_the_feeds():
    """Catches a walk that follows only a node's first input (a merge's shortcut lost), one that walks past a feed
    (n0's stem evaluated though n0 is given), or one that drops the feeds or the targets themselves."""
    g = resnet_graph()
    assert g.upstream(["n2"], stop={"n0"}) == {"n2", "add1", "c2", "n1", "c1", "s1", "n0"}
    assert g.upstream(["n2"]) == {"n2", "add1", "c2", "n1", "c1", "s1", "n0", "c0", "input"}
    assert g.upstream(["n4", "n3"], stop={"n2", "n3"}) == {"n4", "add2", "c4", "n3", "ds", "n2"}
    assert g.upstream(["n0"], stop={"n0"}) == {"n0"}


def test_replay_takes_the_reference_run_only_for_a_layer_fed_all_it_needs():
    """Catches the isolated mode's replay taking B's reference run for a layer whose walk reaches a neuron nobody
    fed (n1 given only the input: n0 would be computed, not what the run had), or fed other values than the run
    had; and one that refuses a layer fed exactly the run's spikes."""
    from snncheck.backends.reference import ReferenceBackend
    from snncheck.diagnose.dynamic import _replayed
    g = resnet_graph()
    x = pixel_inputs(2, 4, (2, 8, 8))
    run = ReferenceBackend().run(g, x, "reference:b")
    replay = _replayed(g, True, run, x)
    n0 = run.layer("n0").spikes
    assert replay("n1", {"input": x}) is None
    assert replay("n1", {"n0": ~n0}) is None
    spikes, h = replay("n2", {"n0": n0, "n1": run.layer("n1").spikes})
    assert spikes is run.layer("n2").spikes and h is run.layer("n2").h


def test_evaluating_a_layer_without_the_input_it_needs_is_one_clear_error():
    """Catches the reference's evaluation from feeds running into the input node when nothing feeds it (a layer
    asked for whose path reaches the input past every feed): one InputError naming the layers, not a KeyError."""
    import numpy as np
    import pytest
    from snncheck.backends.reference import evaluate
    from snncheck.errors import InputError
    g = resnet_graph()
    spikes = np.zeros((1, 2, 4, 8, 8), bool)
    with pytest.raises(InputError, match=r"evaluating \['n2'\] needs the input"):
        evaluate(g, {"n1": spikes}, exact=True, targets=["n2"])
    assert set(evaluate(g, {"n0": spikes}, exact=True, targets=["n2"])) == {"n1", "n2"}     # n0 given, not run
