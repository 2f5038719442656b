"""Running work beyond one process: worker processes on this machine, or a Dask cluster.

Both executors offer `submit(fn, *args) -> future` (`future.result()`), and `imap` runs a function over many
items with a bounded number in flight, yielding results in order: a sweep over thousands of samples or fuzz
networks keeps only a few results in memory at a time.

    with parallel.executor("process", workers=2) as ex:            # worker processes
        for summary in parallel.imap(ex, fn, items): ...
    with parallel.executor("dask") as ex: ...                       # a LocalCluster on this machine
    with parallel.executor("dask", address="tcp://host:8786") as ex: ...   # a running Dask scheduler

Functions and arguments must be picklable (top-level functions, plain data).
"""
from __future__ import annotations

import collections
import functools
import os
from typing import Callable, Iterable, Iterator, Optional

from .errors import InputError

KINDS = ("local", "process", "dask")


class LocalExecutor:
    """Runs in this process, in order (the default: no start-up cost, nothing to pickle)."""
    workers = 1

    def submit(self, fn, *args):
        return _Done(fn(*args))

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class ProcessExecutor(LocalExecutor):
    """Worker processes on this machine. 'spawn' starts clean interpreters: torch and BLAS thread pools of the
    parent are not forked into children. Each worker keeps one BLAS thread, so workers do not fight for cores."""

    def __init__(self, workers: Optional[int] = None):
        import concurrent.futures
        import multiprocessing
        self.workers = workers or os.cpu_count() or 1
        self.pool = concurrent.futures.ProcessPoolExecutor(self.workers, multiprocessing.get_context("spawn"),
                                                           initializer=_worker_init, initargs=(None, True))

    def submit(self, fn, *args):
        return self.pool.submit(fn, *args)

    def close(self):
        self.pool.shutdown(cancel_futures=True)


class DaskExecutor(LocalExecutor):
    """Dask distributed: a LocalCluster of worker processes by default, or the scheduler at `address`."""

    def __init__(self, workers: Optional[int] = None, address: Optional[str] = None, processes: bool = True,
                 timeout: str = "10s"):
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise InputError("the dask executor needs dask[distributed]: pip install 'dask[distributed]'") from None
        self.cluster = None
        if address:
            try:
                self.client = Client(address, timeout=timeout)
            except (OSError, ValueError, TypeError) as exc:      # unreachable, or not an address
                raise InputError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        else:
            self.cluster = LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1,
                                        processes=processes, dashboard_address=None)
            self.client = Client(self.cluster)
        self.client.run(_worker_init, _process())       # (workers that are threads of this process: nothing)
        self.workers = max(1, len(self.client.scheduler_info()["workers"]))

    def submit(self, fn, *args):
        return self.client.submit(fn, *args, pure=False)

    def close(self):
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def executor(kind: str = "local", workers: Optional[int] = None, address: Optional[str] = None):
    """kind: "local" (this process), "process" (worker processes) or "dask" (LocalCluster, or `address`)."""
    if kind == "local":
        return LocalExecutor()
    if kind == "process":
        return ProcessExecutor(workers)
    if kind == "dask":
        return DaskExecutor(workers, address)
    raise InputError(f"unknown executor {kind!r}; known: {', '.join(KINDS)}")


def imap(ex, fn: Callable, items: Iterable, ahead: Optional[int] = None) -> Iterator:
    """fn(*item) for every item (a tuple of arguments), results in order, at most `ahead` submitted and not yet
    consumed (default: twice the workers)."""
    ahead = ahead or 2 * getattr(ex, "workers", 1)
    pending = collections.deque()
    for item in items:
        pending.append(ex.submit(fn, *item))
        if len(pending) >= ahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def split(n: int, parts: int) -> list:
    """[(lo, hi)] cutting range(n) into `parts` contiguous pieces of nearly equal size (none empty)."""
    parts = max(1, min(parts, n))
    edges = [round(i * n / parts) for i in range(parts + 1)]
    return list(zip(edges[:-1], edges[1:]))


def chunks(n: int, size: int) -> list:
    """[(lo, hi)] of at most `size` samples each."""
    size = max(1, int(size))
    return [(lo, min(lo + size, n)) for lo in range(0, n, size)]


def frame_threads() -> int:
    """Threads a big convolution splits its frames over: the usable cores up to 2, at most OMP_NUM_THREADS when
    that is set (what someone running several jobs side by side sets), and 1 inside a worker process (its
    siblings hold the other cores)."""
    if _IN_WORKER:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    limit = os.environ.get("OMP_NUM_THREADS", "").strip()
    return max(1, min(2, cores, int(limit) if limit.isdigit() else cores))


def run_threads(tasks: list) -> None:
    """Runs the callables concurrently on a pool of threads kept for the process (the first on the calling
    thread), and re-raises the first error. For NumPy and PyTorch kernels, which release the GIL: threads do not
    spin-wait for a busy core the way OpenMP's do, so a loaded machine costs time, not 10x."""
    global _THREADS
    if _THREADS is None or _THREADS[0] != os.getpid():     # a forked child has the object but not its threads
        from concurrent.futures import ThreadPoolExecutor
        _THREADS = os.getpid(), ThreadPoolExecutor(max_workers=2, thread_name_prefix="snncheck-frames")
    rest = [_THREADS[1].submit(task) for task in tasks[1:]]
    errors = []
    try:
        tasks[0]()
    except Exception as error:          # the others still write into shared outputs: wait for them first
        errors.append(error)
    errors += [e for e in (future.exception() for future in rest) if e is not None]
    if errors:
        raise errors[0]


def in_parts(n: int, task, threaded: bool) -> None:
    """task(lo, hi) over range(n): in `frame_threads()` contiguous parts run at once (`run_threads`) when
    `threaded` and there is more than one item, else as one call on this thread."""
    parts = split(n, frame_threads()) if threaded and n > 1 else [(0, n)]
    if len(parts) == 1:
        task(0, n)
    else:
        run_threads([functools.partial(task, lo, hi) for lo, hi in parts])


_THREADS = None          # (pid, pool)
_IN_WORKER = False


def blas_threads(n: int = 1):
    """Context manager limiting BLAS threads (a no-op without threadpoolctl). On a shared machine an idle second
    BLAS thread waits for a busy core: small matrix products got 10-20x slower with two threads here."""
    global _CONTROLLER
    try:
        if _CONTROLLER is None:
            from threadpoolctl import ThreadpoolController
            _CONTROLLER = ThreadpoolController()     # finding the libraries takes ms: once per process
    except ImportError:
        import contextlib
        return contextlib.nullcontext()
    return _CONTROLLER.limit(limits=n, user_api="blas")


_CONTROLLER = None


class _Done:
    """A finished future."""

    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


def _process() -> tuple:
    """This process, told apart from a forked child (its pid) and from a process elsewhere that has the same pid
    (another container: the token drawn at import)."""
    return os.getpid(), _TOKEN


_TOKEN = os.urandom(8).hex()


def keep_freed_memory() -> bool:
    """Makes glibc's malloc keep freed memory for the next allocation (big arrays from its heap up to 32 MiB,
    freed memory not handed back to the system), so that a run's big arrays (records, im2col buffers, a
    simulator's tensors) come from memory already faulted in. By default glibc maps an array above a moving
    threshold afresh and trims what is freed, and which way a run's arrays went differed from one process to the
    next: the reference on vgg_cifar took 11-38 ms per run, SpikingJelly 46-57 ms, most of the difference the
    kernel zeroing fresh pages. The CLI and worker processes call it; in your own process it is yours to call.
    Returns whether it was set (False off glibc)."""
    try:
        import ctypes
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(M_TRIM_THRESHOLD, 1 << 30))


M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3         # glibc's mallopt parameters (malloc.h)


def _worker_init(caller: Optional[tuple] = None, keep_memory: bool = False):
    """Quiet, single-threaded workers: one process per core does the parallel part. Nothing in the `caller`'s own
    process (`_process()`): a Dask cluster whose workers are threads there (`processes=False`, also reached by
    its address) must not change the user's process. `keep_memory`: our own worker processes keep freed memory
    (`keep_freed_memory`); a Dask worker does not, its nanny manages its memory (it trims it, and counts what
    is kept against the worker)."""
    if caller == _process():
        return
    global _IN_WORKER
    _IN_WORKER = True
    if keep_memory:
        keep_freed_memory()
    import warnings
    warnings.filterwarnings("ignore")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    try:
        from threadpoolctl import threadpool_limits
        threadpool_limits(1)
    except ImportError:
        pass
