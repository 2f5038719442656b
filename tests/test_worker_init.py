"""The Dask executor's worker set-up (one BLAS thread, OMP_NUM_THREADS=1, warnings off, `_IN_WORKER`) reaches
worker processes only, never the user's own process when the cluster's workers are threads in it."""
from __future__ import annotations

import os
import warnings

import pytest

from snncheck import parallel

pytest.importorskip("distributed")


def _settings() -> tuple:
    from threadpoolctl import threadpool_info
    return (parallel._IN_WORKER, os.environ.get("OMP_NUM_THREADS"), list(warnings.filters),
            [(p["internal_api"], p["num_threads"]) for p in threadpool_info()])


@pytest.mark.parametrize("by_address", [False, True])
def test_a_cluster_of_threads_in_this_process_leaves_it_as_it_was(by_address):
    """Catches the worker set-up run in the caller's process by a cluster whose workers are its threads, reached
    by its address (what the executor cannot see from the address alone): this process would then believe it is
    a worker (one frame thread for ever), with its warnings silenced and its BLAS limited to one thread."""
    from dask.distributed import LocalCluster
    before = _settings()
    if by_address:
        with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster:
            with parallel.executor("dask", address=cluster.scheduler_address) as ex:
                assert ex.submit(os.getpid).result() == os.getpid()
    else:
        with parallel.DaskExecutor(workers=1, processes=False) as ex:
            assert ex.submit(os.getpid).result() == os.getpid()
    assert _settings() == before


def test_worker_processes_are_set_up():
    """Catches the set-up skipped in real worker processes (the caller's process taken for theirs)."""
    with parallel.DaskExecutor(workers=1) as ex:
        pid, in_worker, omp = ex.submit(_worker_state).result()
    assert pid != os.getpid() and in_worker and omp == "1"


def _worker_state() -> tuple:
    return os.getpid(), parallel._IN_WORKER, os.environ.get("OMP_NUM_THREADS")
