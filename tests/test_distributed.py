"""Issue 6: sample sweeps beyond one process (worker processes, Dask) give the results of a local run."""
from __future__ import annotations

import numpy as np
import pytest

from snncheck import parallel, stream
from snncheck.cli import DEFAULT_CASE, main
from snncheck.errors import InputError
from snncheck.runners.paibox import PAIBoxRunner

from helpers import int_csnn, pixel_inputs


@pytest.fixture(scope="module")
def job():
    return stream.Job.from_case(DEFAULT_CASE, samples=12, paibox_samples=4)


def _same_report(a, b):
    assert [p.key for p in a.pairs] == [p.key for p in b.pairs]
    for pa, pb in zip(a.pairs, b.pairs):
        assert pa.to_dict() == pb.to_dict(), pa.key
        assert all(np.array_equal(x.rate_a, y.rate_a) for x, y in zip(pa.layers, pb.layers))
    assert a.lags == b.lags and a.verdict == b.verdict


def test_dask_local_cluster_gives_the_local_report(job):
    local = stream.run(job, chunk=5)
    with parallel.DaskExecutor(workers=1, processes=False) as ex:
        remote = stream.run(job, chunk=5, executor=ex)
    _same_report(local, remote)
    assert remote.extras["coverage"]["executor"] == "DaskExecutor"
    assert remote.extras["coverage"]["runs"]["paibox:b"]["samples"] == 4


def test_dask_executor_reaches_a_running_scheduler_by_address(job):
    from dask.distributed import LocalCluster
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster:
        with parallel.executor("dask", address=cluster.scheduler_address) as ex:
            parts = list(parallel.imap(ex, stream.run_chunk, [(job, 0, 3), (job, 3, 6)]))
    here = stream.run_chunk(job, 0, 3).merge(stream.run_chunk(job, 3, 6))   # float sums depend on the chunk
    merged = parts[0].merge(parts[1])
    for key, acc in here.pairs.items():
        assert merged.pairs[key].result().to_dict() == acc.result().to_dict(), key


def test_unreachable_scheduler_is_one_clear_input_error():
    with pytest.raises(InputError, match="cannot reach the Dask scheduler"):
        parallel.DaskExecutor(address="tcp://127.0.0.1:1", timeout="1s")


def test_worker_processes_give_the_records_of_one_process():
    net = int_csnn(seed=1)
    x = pixel_inputs(6, 3, seed=2)
    one = PAIBoxRunner(net).run(x)
    two = PAIBoxRunner(net, workers=2, batch=2).run(x)
    assert two.meta["workers"] == 2 and two.meta["batch"] == 2
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


@pytest.mark.parametrize("argv", [["fullset", "--samples", "0"], ["fullset", "--executor", "dask",
                                                                    "--scheduler", "not-an-address"]])
def test_fullset_bad_options_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("snncheck: error:") and len(err.strip().splitlines()) == 1
