"""Issue 6: sample sweeps beyond one process (worker processes, Dask) give the results of a local run."""
from __future__ import annotations

import numpy as np
import pytest

from snncheck import case as cases, parallel, pipeline
from snncheck.backends.paibox import PAIBoxBackend
from snncheck.cli import main
from snncheck.commands import DEFAULT_CASE
from snncheck.errors import InputError

from helpers import int_csnn, pixel_inputs


@pytest.fixture(scope="module")
def loader():
    """The embedded case on 12 samples, PAIBox on 4 of them spread over the set, in chunks of 5: a picklable
    loader, so that a worker builds the plan once."""
    return cases.plan_loader(DEFAULT_CASE, samples=12, paibox_samples=4, chunk=5)


def _same_report(a, b):
    assert [p.key for p in a.pairs] == [p.key for p in b.pairs]
    for pa, pb in zip(a.pairs, b.pairs):
        assert pa.to_dict() == pb.to_dict(), pa.key
        assert all(np.array_equal(x.rate_a, y.rate_a) for x, y in zip(pa.layers, pb.layers))
    assert a.lags == b.lags and a.verdict == b.verdict


def test_dask_local_cluster_gives_the_local_report(loader):
    local = pipeline.execute(loader)
    with parallel.DaskExecutor(workers=1, processes=False) as ex:
        remote = pipeline.execute(loader, executor=ex)
    _same_report(local, remote)
    assert local.extras["coverage"]["chunks"] == 3 and remote.extras["coverage"]["chunks"] == 3
    assert remote.extras["coverage"]["executor"] == "DaskExecutor"
    assert remote.extras["coverage"]["runs"]["paibox:b"]["samples"] == 4
    assert remote.extras["coverage"]["runs"]["reference:b"]["samples"] == 12


def test_dask_executor_reaches_a_running_scheduler_by_address(loader):
    """A running cluster reached by address, whose worker runs two chunks at once in two threads (Dask's default
    for a worker: several threads): the chunks give what they give here, one after the other."""
    from dask.distributed import LocalCluster
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        with parallel.executor("dask", address=cluster.scheduler_address) as ex:
            parts = list(parallel.imap(ex, pipeline.run_chunk, [(loader, 0, 3), (loader, 3, 6)]))
    limit = loader().evidence
    # the same chunks here (float sums depend on the chunk, so the same cut)
    here = pipeline.run_chunk(loader, 0, 3).merge(pipeline.run_chunk(loader, 3, 6), limit)
    merged = parts[0].merge(parts[1], limit)
    assert here.pairs and set(merged.pairs) == set(here.pairs)
    for key, pc in here.pairs.items():
        assert merged.pairs[key].to_dict() == pc.to_dict(), key
        assert merged.pairs[key].samples == (6 if key.split("~")[0] != "paibox:b" else pc.samples)


def test_unreachable_scheduler_is_one_clear_input_error():
    with pytest.raises(InputError, match="cannot reach the Dask scheduler"):
        parallel.DaskExecutor(address="tcp://127.0.0.1:1", timeout="1s")


def test_worker_processes_give_the_records_of_one_process():
    graph = int_csnn(seed=1)
    x = pixel_inputs(6, 3, seed=2)
    one = PAIBoxBackend().run(graph, x, "paibox:b")
    two = PAIBoxBackend(workers=2, batch=2).run(graph, x, "paibox:b")
    assert two.meta["workers"] == 2 and two.meta["batch"] == 2
    assert one.names == two.names == graph.neurons
    for a, b in zip(one.layers, two.layers):
        assert np.array_equal(a.spikes, b.spikes) and np.array_equal(a.v, b.v), a.name
    assert any(rec.spikes.any() for rec in one.layers)


def test_imap_keeps_order_and_bounds_what_is_in_flight():
    submitted = []

    class Recording(parallel.LocalExecutor):
        def submit(self, fn, *args):
            submitted.append(args)
            return super().submit(fn, *args)

    out = parallel.imap(Recording(), pow, [(i, 2) for i in range(7)], ahead=3)
    assert next(out) == 0 and len(submitted) == 3         # three submitted, one consumed
    assert list(out) == [i * i for i in range(1, 7)]
    assert parallel.split(10, 3) == [(0, 3), (3, 7), (7, 10)] and parallel.chunks(5, 2) == [(0, 2), (2, 4), (4, 5)]


@pytest.mark.parametrize("argv, needle", [
    (["fullset", "--samples", "0"], "argument --samples: expected a positive integer, got 0"),
    (["fullset", "--executor", "dask", "--scheduler", "not-an-address"], "cannot reach the Dask scheduler"),
])
def test_fullset_bad_options_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("snncheck: error:") and len(err.strip().splitlines()) == 1, err
    assert needle in err, err
