"""Built PAIBox networks kept for the next run of the same graph, in this process (a worker keeps its own).

Building a network (PAIBox's node constructors, the fast path's install, the Simulator's probe search) cost a
quarter of a batched run of 8 csnn28 samples at T=8 and a third of 16 digits ones; the network it builds for the
same graph, timing and layout is the same, and `simulate` resets it (`sim.reset()`) before every simulation.
A network is checked out for one run and put back after it, so two runs at once (threads) never share one; a run
that raised does not put its network back. At most `KEEP` idle networks are kept, the least recently used dropped.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import threading
import weakref
from collections import OrderedDict

import numpy as np

KEEP = 4
_IDLE: OrderedDict = OrderedDict()       # key -> [idle Built]
_LOCK = threading.Lock()
_PER_GRAPH: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()     # graph -> {what: value}


def per_graph(graph, what, compute):
    """`compute()`, once per graph object and `what` (a hashable: a function and its other arguments): a graph is
    frozen, and the backend asks the same questions of it at every run (its digest, its refusals). The value must
    not hold the graph (it would keep itself alive): see `kept` for those."""
    with _LOCK:
        known = _PER_GRAPH.setdefault(graph, {})
        if what in known:
            return known[what]
    value = compute()
    with _LOCK:
        known[what] = value
    return value


_KEPT: OrderedDict = OrderedDict()       # key -> value, the KEEP_VALUES most recently used


KEEP_VALUES = 16


def kept(key, compute):
    """`compute()`, once per hashable `key` among the `KEEP_VALUES` most recently used (a graph's stacked layout,
    keyed by its digest: 0.8 ms a run on csnn28, and the layout holds the graph)."""
    with _LOCK:
        if key in _KEPT:
            _KEPT.move_to_end(key)
            return _KEPT[key]
    value = compute()
    with _LOCK:
        _KEPT[key] = value
        while len(_KEPT) > KEEP_VALUES:
            _KEPT.popitem(last=False)
    return value


def fingerprint(graph) -> str:
    """A digest of everything a graph lowers from: its name, edges, and every node's type and fields (arrays by
    dtype, shape and bytes). Graphs are compared by identity, and a graph sent to a worker is a new object."""
    return per_graph(graph, "fingerprint", lambda: _digest(graph))


def _digest(graph) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(repr((graph.name, graph.edges)).encode())
    for name, node in graph.nodes.items():
        h.update(f"|{name}:{type(node).__module__}.{type(node).__qualname__}".encode())
        for f in dataclasses.fields(node):
            h.update(f";{f.name}=".encode())
            _feed(h, getattr(node, f.name))
    return h.hexdigest()


def _feed(h, value) -> None:
    """Arrays by dtype, shape and bytes (NumPy's repr elides a large one), also inside tuples, lists and dicts;
    anything else by its repr."""
    if isinstance(value, np.ndarray):
        h.update(f"<{value.dtype.str}{value.shape}>".encode())
        h.update(np.ascontiguousarray(value).view(np.uint8).data)
    elif isinstance(value, (tuple, list)):
        h.update(f"{type(value).__name__}{len(value)}(".encode())
        for item in value:
            _feed(h, item)
            h.update(b",")
        h.update(b")")
    elif isinstance(value, dict):
        _feed(h, sorted(value.items(), key=lambda kv: repr(kv[0])))
    else:
        h.update(repr(value).encode())


@contextlib.contextmanager
def checkout(source):
    """The Built network of `source` (a loader, see `build`): an idle one built earlier for the same key, else a
    new one; put back after the block unless the block raised. A source without a `key` is built every time."""
    key = getattr(source, "key", None)
    built = _take(key) if key is not None else None
    if built is None:
        built = source()
    yield built
    if key is not None:
        _put(key, built)


def _take(key):
    with _LOCK:
        idle = _IDLE.get(key)
        if not idle:
            return None
        _IDLE.move_to_end(key)
        return idle.pop()


def _put(key, built) -> None:
    with _LOCK:
        _IDLE.setdefault(key, []).append(built)
        _IDLE.move_to_end(key)
        while sum(map(len, _IDLE.values())) > KEEP:
            oldest = next(iter(_IDLE))
            _IDLE[oldest].pop(0)
            if not _IDLE[oldest]:
                del _IDLE[oldest]


def clear() -> None:
    """Drops every idle network and kept value (tests; memory)."""
    with _LOCK:
        _IDLE.clear()
        _KEPT.clear()


@contextlib.contextmanager
def isolated():
    """Runs inside start with nothing kept and leave what was kept before as it was (benchmarks: a first run)."""
    with _LOCK:
        saved = ({k: list(v) for k, v in _IDLE.items()}, dict(_KEPT))
        _IDLE.clear()
        _KEPT.clear()
    try:
        yield
    finally:
        with _LOCK:
            _IDLE.clear()
            _KEPT.clear()
            _IDLE.update(saved[0])
            _KEPT.update(saved[1])
