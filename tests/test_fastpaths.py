"""Every fast path computes exactly what the slow one does: the exact GEMM kernels (int8 with int32 accumulation,
float32 below 2**24, float64), the exact convolution (im2col in chunks with reused buffers, grouped, depthwise),
the reference's integer layers, and PAIBox's fast path (its twins of Conv2d, pooling, window products and
FullConn, of the 30-bit wrap check, the in-place reset of state and delay registers, networks reused across runs),
against int64 arithmetic and against PAIBox as shipped."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from snncheck.backends import exact_gemm
from snncheck.backends.paibox import PAIBoxBackend, fastpath
from snncheck.backends.reference import ReferenceBackend, conv2d_exact, max_pool, run_neuron
from snncheck.graph import chain
from snncheck.graph import primitives as P

from helpers import int_csnn, pixel_inputs, resnet_graph


def _conv_int64(x, w, stride, padding, groups, dtype=np.int64):
    """Direct convolution in int64 (or `dtype`), one output position at a time (slow, obviously right)."""
    x, w = x.astype(dtype), w.astype(dtype)
    (sh, sw), (ph, pw) = stride, padding
    b, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.zeros((b, c, h + 2 * ph, wd + 2 * pw), dtype)
    xp[:, :, ph:ph + h, pw:pw + wd] = x
    oh, ow = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    og = o // groups
    y = np.zeros((b, o, oh, ow), dtype)
    for j in range(oh):
        for i in range(ow):
            win = xp[:, :, j * sh:j * sh + kh, i * sw:i * sw + kw]
            for g in range(groups):
                y[:, g * og:(g + 1) * og, j, i] = np.einsum("bcuv,ocuv->bo", win[:, g * cg:(g + 1) * cg],
                                                            w[g * og:(g + 1) * og])
    return y


@pytest.mark.parametrize("use, a_range, k", [("int8", (-128, 128), 700), ("float32", (0, 256), 500),
                                             ("float64", (0, 256), 5000)])
def test_every_gemm_kernel_is_exact_at_its_limits(use, a_range, k):
    """Catches a kernel that loses integers: an int8 product through a saturating int16 stage (-128 * -128 pairs),
    float32 past 2**24, an off-by-one in any kernel. Operands sit at their extremes, so the sums reach the
    kernel's limit (int8: 700 * 128 * 128 > 2**23; float32: 500 * 255 * 128 < 2**24; float64: beyond 2**24)."""
    if use == "int8" and not exact_gemm.int8_exact():
        pytest.skip("no exact int8 kernel on this CPU: the float kernels run instead (the probe said so)")
    rng = np.random.default_rng(1)
    a = rng.integers(*a_range, (37, k))
    a[0] = a_range[0] if use == "int8" else a_range[1] - 1
    b = rng.integers(-128, 128, (k, 11))
    b[:, 0] = -128
    want = a.astype(np.int64) @ b.astype(np.int64)
    assert exact_gemm.kernel(exact_gemm.bound(np.abs(a).max(), b), use == "int8", True) == use
    assert np.array_equal(exact_gemm.matmul(a, b, use=use), want)
    assert np.array_equal(exact_gemm.matmul(a, b), want)


@pytest.mark.parametrize("shape, weight, stride, padding, groups, x_kind", [
    ((3, 2, 9, 7), (6, 2, 3, 3), (1, 1), (1, 1), 1, "spikes"),          # few channels: channel-major im2col
    ((2, 6, 9, 9), (4, 6, 3, 3), (1, 1), (1, 1), 1, "spikes"),          # kernel rows of 18: the rows layout
    ((2, 2, 11, 9), (4, 2, 2, 3), (3, 2), (1, 0), 1, "spikes"),         # channel-major by phases, unequal strides
    ((2, 6, 9, 9), (4, 6, 3, 3), (2, 2), (0, 1), 1, "pixels"),
    ((2, 4, 10, 10), (6, 2, 3, 3), (2, 1), (1, 0), 2, "spikes"),
    ((2, 3, 12, 12), (8, 3, 5, 5), (2, 2), (2, 2), 1, "pixels"),
    ((2, 5, 8, 8), (5, 1, 2, 2), (2, 2), (0, 0), 5, "spikes"),        # depthwise: PAIBox's pooling
    ((2, 5, 8, 8), (5, 1, 3, 3), (1, 1), (1, 1), 5, "pixels"),
    ((2, 5, 8, 8), (5, 1, 2, 2), (2, 2), (0, 0), 5, "pixels"),
])
@pytest.mark.parametrize("dense", [False, True])
def test_exact_conv_equals_int64_convolution(monkeypatch, shape, weight, stride, padding, groups, x_kind, dense):
    """Catches a wrong im2col in either layout (a window shifted by one, a group's channels off by one, padding on one
    side only),
    integer inputs carried as floats (as the reference's input is) mishandled, a stale reused buffer (chunks of 1 frame: every chunk reuses the last one's), a depthwise sum that
    misses a kernel position, and the bias added on the write-back to the wrong channels (another group's) or
    to one chunk only. Each by im2col and (`dense`) by the frame-to-frame matrix where the frames are that small
    (its matrix's rows or columns in another order, a stale matrix for another frame size); float outputs always
    by im2col."""
    monkeypatch.setattr(exact_gemm, "DENSE_ENTRIES", 1 << 20 if dense else 0)
    monkeypatch.setattr(exact_gemm, "DENSE_GAIN", 100)          # every frame here is small enough
    rng = np.random.default_rng(2)
    x = rng.random(shape) < 0.3 if x_kind == "spikes" else rng.integers(0, 256, shape).astype(np.float64)
    w = rng.integers(-128, 128, weight)
    bias = rng.integers(-1000, 1000, weight[0])
    conv = exact_gemm.Conv2d(w, stride, padding, groups)
    want = _conv_int64(x, w, stride, padding, groups)
    biased = want + bias[:, None, None]
    assert np.array_equal(conv(x), want)
    assert (conv.dense(*shape[2:]) is not None) == (dense and not conv.depthwise)
    wider = np.concatenate([x, x[..., :1]], axis=3)          # another frame size: its own matrix
    assert np.array_equal(conv(wider), _conv_int64(wider, w, stride, padding, groups))
    old = exact_gemm.COLS_BYTES
    exact_gemm.COLS_BYTES = 1              # one frame per chunk
    try:
        for _ in range(2):                 # big chunks, then one frame per chunk
            assert np.array_equal(conv(x), want)
            assert np.array_equal(conv(x, out=np.int32), want.astype(np.int32))
            assert np.array_equal(conv(x, bias=bias), biased)
            assert np.array_equal(conv(x, out=np.int32, bias=bias.astype(np.int32)), biased)
            assert np.array_equal(conv(x, out=np.float32, use="float32", bias=bias.astype(np.float32)), biased)
            exact_gemm.COLS_BYTES = old
    finally:
        exact_gemm.COLS_BYTES = old


@pytest.mark.parametrize("shape, weight, stride, padding, x_kind", [
    ((5, 6, 9, 9), (4, 6, 3, 3), (1, 1), (1, 1), "spikes"),           # rows layout, int8 kernel
    ((5, 2, 11, 9), (4, 2, 5, 5), (2, 2), (2, 2), "spikes"),          # channel-major by phases
    ((5, 6, 9, 9), (4, 6, 3, 3), (2, 2), (0, 1), "pixels"),           # float32 kernel
])
def test_conv_split_over_threads_equals_one_thread(monkeypatch, shape, weight, stride, padding, x_kind):
    """Catches the two-thread split of a big convolution's frames writing a half to the wrong rows (a part
    off by one frame), the halves sharing one im2col buffer (a race: garbage in either half), the split
    leaving PyTorch on one thread, or a float convolution split (its rounding would then depend on the core
    count). 5 frames: unequal halves; one frame per chunk: each half reuses its buffer."""
    import torch
    from snncheck import parallel
    rng = np.random.default_rng(12)
    x = rng.random(shape) < 0.3 if x_kind == "spikes" else rng.integers(0, 256, shape).astype(np.uint8)
    w = rng.integers(-128, 128, weight)
    want = _conv_int64(x, w, stride, padding, 1)
    threads = torch.get_num_threads()
    split = []
    monkeypatch.setattr(parallel, "frame_threads", lambda: 2)
    monkeypatch.setattr(exact_gemm, "SPLIT_MACS", 0)
    monkeypatch.setattr(exact_gemm, "COLS_BYTES", 1)
    monkeypatch.setattr(exact_gemm, "DENSE_ENTRIES", 0)         # (frames this small would be one product)
    monkeypatch.setattr(parallel, "run_threads", lambda tasks, run=parallel.run_threads: split.append(len(tasks))
                        or run(tasks))
    conv = exact_gemm.Conv2d(w, stride, padding)
    bias = rng.integers(-99, 99, weight[0]).astype(np.int32)
    for _ in range(2):              # the second call reuses each thread's buffers
        assert np.array_equal(conv(x), want)
        assert np.array_equal(conv(x, out=np.int32, bias=bias), want + bias[:, None, None])
    assert split == [2] * 4 and torch.get_num_threads() == threads
    conv(x, out=np.float32, use="float32")          # a float graph's sums would round with the core count
    assert split == [2] * 4


def test_frame_threads_follow_the_cores_omp_num_threads_and_workers(monkeypatch):
    """Catches the convolution split ignoring OMP_NUM_THREADS=1 (jobs run side by side would oversubscribe the
    cores), or splitting inside a worker process, or on one usable core."""
    from snncheck import parallel
    monkeypatch.setattr(parallel, "_IN_WORKER", False)    # (an in-process Dask "worker" in another test sets it)
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert parallel.frame_threads() == 2
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert parallel.frame_threads() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "garbage")
    assert parallel.frame_threads() == 2
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert parallel.frame_threads() == 1
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setattr(parallel, "_IN_WORKER", True)
    assert parallel.frame_threads() == 1


def test_run_threads_waits_for_every_task_and_raises_the_first_error():
    """Catches `run_threads` returning before a task finished (a half of the output still being written) or
    swallowing a task's error."""
    from snncheck import parallel
    done = []

    def slow():
        import time
        time.sleep(0.05)
        done.append("slow")

    def fails():
        raise ValueError("half failed")
    with pytest.raises(ValueError, match="half failed"):
        parallel.run_threads([fails, slow])
    assert done == ["slow"]
    parallel.run_threads([lambda: done.append(1), lambda: done.append(2)])
    assert sorted(done[1:]) == [1, 2]


def test_run_threads_in_a_forked_child_does_not_hang():
    """Catches the thread pool inherited by a forked child (the object, not its threads) taking work that
    never runs: the child would hang."""
    import multiprocessing
    from snncheck import parallel
    parallel.run_threads([lambda: None, lambda: None])         # the parent's pool exists
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=parallel.run_threads, args=([lambda: None, lambda: None],))
    child.start()
    child.join(20)
    alive = child.is_alive()
    if alive:
        child.kill()
    assert not alive and child.exitcode == 0


def test_reference_integer_layers_use_the_fast_kernel_and_stay_exact():
    """Catches the reference's integer Conv2d or Linear differing from int64 arithmetic (bias, layout NCHW)."""
    rng = np.random.default_rng(3)
    layer = P.Conv2d(rng.integers(-128, 128, (8, 4, 3, 3)), rng.integers(-500, 500, 8), (1, 1), (1, 1))
    x = rng.random((6, 4, 7, 7)) < 0.4
    want = _conv_int64(x, layer.weight, (1, 1), (1, 1), 1) + np.asarray(layer.bias)[:, None, None]
    assert np.array_equal(conv2d_exact(x, layer), want)
    g = chain([("f", P.Flatten()), ("l", P.Linear(rng.integers(-128, 128, (5, 16)), rng.integers(-9, 9, 5))),
               ("n", P.IF(50, v_reset=0))], (1, 4, 4))
    xs = (rng.random((3, 4, 1, 4, 4)) < 0.5).astype(np.float32)
    run = ReferenceBackend().run(g, xs, record_v=True)
    h = xs.reshape(3, 4, 16).astype(np.int64) @ np.asarray(g.nodes["l"].weight, np.int64).T + g.nodes["l"].bias
    assert np.array_equal(run.layer("n").h[:, 0], h[:, 0])


def test_paibox_twins_equal_paibox_transforms():
    """Catches a fast transform that differs from PAIBox's own on any input: spikes and 0-255 pixels, all-zero
    input (the shortcut), sparse spikes (the FullConn row gather) and dense ones (its BLAS product)."""
    import paibox as pb
    from paibox.components.synapses.transforms import AllToAll, Conv2dForward
    rng = np.random.default_rng(4)
    conv = Conv2dForward((9, 9), (5, 5), rng.integers(-128, 128, (6, 3, 3, 3)).astype(np.int8), (2, 2), (1, 1),
                         groups=1)
    full = AllToAll((200, 7), rng.integers(-128, 128, (200, 7)).astype(np.int8))
    fast_conv, fast_full = fastpath.FastConv2d(conv), fastpath.FastFullConn(full)
    inputs = [np.zeros(243, np.uint8), (rng.random(243) < 0.2).astype(np.uint8), rng.integers(0, 256, 243)]
    for x in inputs:
        assert np.array_equal(fast_conv(x.astype(np.uint8)), conv(x.astype(np.uint8)))
    for x in [np.zeros(200, np.uint8), (rng.random(200) < 0.02).astype(np.uint8),
              (rng.random(200) < 0.6).astype(np.uint8), rng.integers(0, 256, 200).astype(np.uint8)]:
        got = fast_full(x)
        assert got.dtype == np.int32 and np.array_equal(got, full(x))
    assert pb is not None


def test_paibox_conv_twin_keeps_the_last_frame_sums_exactly():
    """Catches the kept sums of the last input frame given for another frame (a stale memo: a changed pixel, a
    frame after spikes, a new frame written into the buffer of the last one, if the frame is kept uncopied), or
    given as the kept array itself, which PAIBox may then change in place (the next call of that frame would
    return the changed sums)."""
    from paibox.components.synapses.transforms import Conv2dForward
    rng = np.random.default_rng(13)
    conv = Conv2dForward((9, 9), (9, 9), rng.integers(-128, 128, (4, 2, 3, 3)).astype(np.int8), (1, 1), (1, 1),
                         groups=1)
    twin = fastpath.FastConv2d(conv)
    a = rng.integers(0, 256, 162).astype(np.uint8)
    b = a.copy()
    b[77] ^= 1                                               # one pixel differs
    spikes = (rng.random(162) < 0.3).astype(np.uint8)
    for x in (a, a, b, a, spikes, a, a):
        got = twin(x)
        assert np.array_equal(got, conv(x))
        got += 1                                             # what PAIBox does with its sums is its own
    assert np.array_equal(twin(a), conv(a))
    frame = b.copy()                       # a caller writing each step's frame into one buffer
    for x in (b, a, a, b, b, a):
        frame[:] = x
        assert np.array_equal(twin(frame), conv(x))


def _assert_identical(fast, shipped):
    for a, b in zip(fast.layers, shipped.layers):
        assert np.array_equal(a.spikes, b.spikes), a.name
        assert np.array_equal(a.v, b.v), a.name


@pytest.mark.parametrize("batch, timing", [(1, "pipeline"), (3, "pipeline"), (1, "flat"), (2, "flat")])
def test_paibox_fast_path_is_identical_to_paibox_as_shipped(batch, timing):
    """Catches a fast path that changes what PAIBox computes: spikes and voltages on every layer, over several
    simulations of different samples (a reset that leaves a slot of the delay register or a membrane from the
    previous one), in the stacked layout and with flat timing (which reads slots never written in its run)."""
    g = int_csnn(seed=2)
    x = pixel_inputs(7, 4, seed=6)
    fast = PAIBoxBackend(batch=batch, timing=timing).run(g, x)
    assert fast.meta["fast"]
    _assert_identical(fast, PAIBoxBackend(batch=batch, timing=timing, fast=False).run(g, x))


def test_paibox_fast_path_on_merges():
    """Catches a fast path that breaks a merge (two synapses into one neuron, an identity shortcut left as is)."""
    g = resnet_graph(seed=1)
    x = pixel_inputs(3, 4, shape=g.input_shape, seed=2)
    _assert_identical(PAIBoxBackend().run(g, x), PAIBoxBackend(fast=False).run(g, x))


def test_reference_holds_integers_in_int32_only_where_they_fit(monkeypatch):
    """Catches the int32 path changing a result (against the same run held in int64 throughout), and an int32
    membrane that overflows: 64 inputs of 255 times weight -127 take 2.07e6 a step, past -2**31 in 1100 steps."""
    from snncheck.backends import reference
    g, x = int_csnn(seed=3), pixel_inputs(5, 6, seed=1)
    narrow = ReferenceBackend().run(g, x)
    assert narrow.layers[0].v.dtype == np.int32
    monkeypatch.setattr(reference, "NARROW", 0)
    wide = ReferenceBackend().run(g, x)
    monkeypatch.undo()
    assert wide.layers[0].v.dtype == np.int64
    for a, b in zip(narrow.layers, wide.layers):
        assert np.array_equal(a.spikes, b.spikes) and np.array_equal(a.v, b.v) and np.array_equal(a.h, b.h), a.name
    falling = chain([("f", P.Flatten()), ("l", P.Linear(np.full((1, 64), -127))), ("n", P.IF(1, v_reset=0))],
                    (1, 8, 8))
    h = ReferenceBackend().run(falling, np.full((1, 1100, 1, 8, 8), 255.0)).layer("n").h
    assert np.array_equal(h[0, :, 0], -255 * 127 * 64 * np.arange(1, 1101, dtype=np.int64))


def test_membrane_differences_of_integer_runs_are_exact_in_any_width():
    """Catches the integer path of compare losing a difference: int32 records (the reference's) against int64
    ones (PAIBox's) and int32 extremes, whose difference overflows int32, give the float64 path's maximum."""
    from snncheck.backends.base import LayerRecord, RunResult
    from snncheck.compare import compare
    spikes = np.zeros((1, 2, 3), bool)
    lo, hi = np.iinfo(np.int32).min, np.iinfo(np.int32).max
    a = RunResult("reference", "a", [LayerRecord("n", spikes, np.array([[[hi, 0, 5], [1, 2, 3]]], np.int32))])
    b = RunResult("paibox", "b", [LayerRecord("n", spikes, np.array([[[lo, 0, 5], [1, 2, 4]]], np.int32))])
    layer = compare(a, b).layers[0]
    assert layer.v_max_abs_diff == float(hi) - float(lo) and layer.v_mismatches == 2
    b64 = b.replace(layers=[b.layers[0].replace(v=b.layers[0].v.astype(np.int64))])
    assert compare(a, b64).layers[0].v_max_abs_diff == float(hi) - float(lo)


def test_first_mismatch_is_the_earliest_step_then_sample_then_neuron():
    """Catches the step-first search of compare's first mismatch (dense and sparse paths) taking the lowest sample
    or neuron over all steps: mismatches at (sample 0, t=1, neuron 0), (sample 1, t=0, neuron 5) and (sample 1,
    t=0, neuron 2)."""
    from snncheck.compare import _Dense, _Sparse
    flat = np.zeros((2, 3, 6), bool)
    flat[0, 1, 0] = flat[1, 0, 5] = flat[1, 0, 2] = True
    for path in (_Dense, _Sparse):
        assert path(flat).first((6,), np.array([10, 11])) == {"t": 0, "sample": 11, "neuron": [2], "index": 2}


def test_int8_kernel_is_exact_on_matrices_with_a_dimension_of_one():
    """Catches degenerate strides reaching the int8 kernel: `W.T` of a Linear with one input is (1, N) with
    strides (1, 1), which oneDNN read as a leading dimension of 1 and answered with garbage (found by
    test_properties: a silent layer fired). Repeated: the garbage is whatever memory held."""
    if not exact_gemm.int8_exact():
        pytest.skip("no exact int8 kernel on this CPU")
    w = np.array([[127], [-5]], np.int8).T                       # (1, 2), strides (1, 1)
    x = np.array([[False], [True], [True]])
    for _ in range(200):
        assert np.array_equal(exact_gemm.product(x, w, "int8"), [[0, 0], [127, -5], [127, -5]])
        assert not exact_gemm.product(x[:1], w, "int8").any()


def _conv_forward(rng, in_shape, weight, stride, padding, groups=1):
    from paibox.components.synapses.transforms import Conv2dForward
    (h, w), (_, _, kh, kw) = in_shape, weight.shape
    out = ((h + 2 * padding[0] - kh) // stride[0] + 1, (w + 2 * padding[1] - kw) // stride[1] + 1)
    return Conv2dForward(in_shape, out, weight.astype(np.int8), stride, padding, groups=groups)


@pytest.mark.parametrize("twin, channels, in_shape, weight, stride", [
    ("FastPool", 5, (9, 6), "ones", (2, 2)),              # max pooling of spikes; an odd height left over
    ("FastPool", 3, (8, 9), "weights", (3, 3)),           # a weighted depthwise 3x3 that tiles the rows
    ("FastWindows", 4, (12, 3), (6, 4, 3, 3), (4, 1)),    # the stacked Linear: one sample's window, a gap row
    ("FastWindows", 8, (7, 1), (5, 8, 1, 1), (1, 1)),     # a 1x1 conv of one column
    ("FastWindows", 64, (16, 16), (3, 64, 16, 16), (16, 1)),   # weights of one sign: sums pass 2**24, float64
])
def test_paibox_pool_and_window_twins_equal_paibox(twin, channels, in_shape, weight, stride):
    """Catches the pooling twin or the window twin differing from PAIBox's Conv2dForward: a kernel position
    skipped or shifted by one, a window taken one row off, a leftover row or column counted, weights other than
    ones, byte sums at 255 (and past it: the int32 path), 0-255 inputs whose sums need float64, and the all-zero
    shortcut."""
    rng = np.random.default_rng(7)
    if twin == "FastPool":
        k = stride[0]
        w = np.ones((channels, 1, k, k)) if weight == "ones" else rng.integers(-128, 128, (channels, 1, k, k))
        comm = _conv_forward(rng, in_shape, w, stride, (0, 0), groups=channels)
    else:
        comm = _conv_forward(rng, in_shape, rng.integers(-128, 128 if weight[1] < 64 else -100, weight), stride,
                             (0, 0))
    cls = getattr(fastpath, twin)
    assert cls.applies(comm)
    fast = cls(comm)
    size = channels * in_shape[0] * in_shape[1]
    for x in [np.zeros(size, np.uint8), (rng.random(size) < 0.3).astype(np.uint8),
              np.full(size, 255 // stride[0] ** 2, np.uint8),          # pooling's byte sums at their limit,
              np.full(size, min(255, 255 // stride[0] ** 2 + 1), np.uint8),     # and one past it
              rng.integers(0, 256, size).astype(np.uint8), np.full(size, 255, np.uint8)]:
        got = fast(x)
        assert got.dtype == np.int32 and np.array_equal(got, comm(x)), twin


def test_window_twin_applies_only_where_windows_do_not_overlap():
    """Catches the window twin taken for a convolution it does not compute: overlapping windows, padding, a
    kernel narrower than the input (several output columns)."""
    rng = np.random.default_rng(8)
    w = rng.integers(-5, 5, (2, 3, 3, 4))
    assert fastpath.FastWindows.applies(_conv_forward(rng, (9, 4), w, (3, 1), (0, 0)))
    assert not fastpath.FastWindows.applies(_conv_forward(rng, (9, 4), w, (2, 1), (0, 0)))
    assert not fastpath.FastWindows.applies(_conv_forward(rng, (9, 4), w, (3, 1), (1, 0)))
    assert not fastpath.FastWindows.applies(_conv_forward(rng, (9, 6), w, (3, 1), (0, 0)))


def test_overflow_check_twin_equals_paibox_and_still_wraps_and_warns():
    """Catches the wrap-check twin differing from PAIBox's `v_overflow`: a value at the 30-bit limits taken for
    an overflow or missed (V_MAX, V_MIN and one beyond each), its dtype, and the warning PAIBox gives."""
    import warnings
    from paibox.components.neuron import utils
    edges = np.array([0, utils.V_MAX, utils.V_MIN, -7], np.int64)
    for v in [edges, edges.astype(np.int32), np.array([utils.V_MAX + 1, 3]), np.array([utils.V_MIN - 1, 3])]:
        with warnings.catch_warnings(record=True) as ours:
            warnings.simplefilter("always")
            got = fastpath.v_overflow(v.copy())
        with warnings.catch_warnings(record=True) as theirs:
            warnings.simplefilter("always")
            want = utils.v_overflow(v.copy())
        assert got.dtype == want.dtype and np.array_equal(got, want)
        assert [str(w.message) for w in ours] == [str(w.message) for w in theirs]


def test_paibox_neurons_run_their_own_code_with_the_check_twin():
    """Catches the twin binding replacing anything but `v_overflow`: each bound method is PAIBox's own code."""
    import paibox as pb
    from paibox.components.neuron.base import OfflineNeuron
    node = pb.IF((4,), 10)
    fastpath.wrap_check_once(node)
    for name in ("_neuronal_charge", "_neuronal_leak"):
        bound = vars(node)[name]
        assert bound.__func__.__code__ is getattr(OfflineNeuron, name).__code__
        assert bound.__func__.__globals__["v_overflow"] is fastpath.v_overflow


def test_reused_networks_give_paibox_as_shipped_records_run_after_run():
    """Catches a network reused across runs that keeps state from the run before (a membrane, a delay-register
    slot, the record arrays), and a reuse key that mistakes a graph for another of the same shapes: two graphs
    differing only in their weights, run in turn, each on new samples, every run equal to PAIBox as shipped."""
    from snncheck.backends.paibox import reuse
    reuse.clear()
    graphs = [int_csnn(seed=11), int_csnn(seed=12)]
    assert reuse.fingerprint(graphs[0]) != reuse.fingerprint(graphs[1])
    assert reuse.fingerprint(graphs[0]) == reuse.fingerprint(int_csnn(seed=11))
    for round_ in range(2):
        for i, g in enumerate(graphs):
            x = pixel_inputs(3 + round_, 4, seed=20 + 2 * round_ + i)
            _assert_identical(PAIBoxBackend(batch=2).run(g, x), PAIBoxBackend(batch=2, fast=False).run(g, x))
    assert reuse._IDLE, "the fast runs put their networks back for the next run"
    kept = {k: list(v) for k, v in reuse._IDLE.items()}
    with reuse.isolated():               # what the benchmark's first-run row runs in
        assert not reuse._IDLE
        PAIBoxBackend(batch=2).run(graphs[0], pixel_inputs(2, 4))
    assert {k: list(v) for k, v in reuse._IDLE.items()} == kept, "isolated() leaves what was kept as it was"


@pytest.mark.parametrize("in_shape, weight, stride, padding", [
    ((9, 7), (6, 2, 3, 3), (1, 1), (1, 1)),
    ((12, 10), (4, 3, 5, 5), (2, 2), (2, 2)),       # stride and padding of two: an index off by one shows
    ((8, 8), (3, 1, 2, 3), (2, 1), (0, 1)),         # a rectangular kernel, padding on one axis only
])
def test_paibox_gather_twin_equals_paibox(monkeypatch, in_shape, weight, stride, padding):
    """Catches the gather twin differing from PAIBox's Conv2dForward: an im2col index off by one (row, column,
    channel, stride or padding), a padded buffer whose border is dirtied by a step before, 0-255 frames whose sums
    need float64, and the hand-over of large spike inputs to the int8 kernel (GATHER_COLS set to 0)."""
    rng = np.random.default_rng(9)
    comm = _conv_forward(rng, in_shape, rng.integers(-128, 128, weight), stride, padding)
    assert fastpath.FastGather.applies(comm)
    size = weight[1] * in_shape[0] * in_shape[1]
    inputs = [np.full(size, 255, np.uint8), rng.integers(0, 256, size).astype(np.uint8), np.zeros(size, np.uint8),
              (rng.random(size) < 0.3).astype(np.uint8)]
    for cols in (fastpath.GATHER_COLS, 0):
        monkeypatch.setattr(fastpath, "GATHER_COLS", cols)
        fast = fastpath.FastGather(comm)
        for x in inputs:
            got = fast(x)
            assert got.dtype == np.int32 and np.array_equal(got, comm(x)), cols
    big = _conv_forward(rng, (16, 16), np.full((2, 64, 3, 3), -127), (1, 1), (1, 1))   # 255 * 127 * 576 > 2**24
    x = rng.integers(253, 256, 64 * 256).astype(np.uint8)                                # odd sums past 2**24
    assert np.array_equal(fastpath.FastGather(big)(x), big(x))



@dataclass(frozen=True, eq=False)
class _Extra(P.Primitive):
    """A stateless pass-through with a tuple of arrays as a field (as a plugin primitive may have)."""
    arrays: tuple = ()


def test_reuse_digest_sees_every_value_of_a_node():
    """Catches two graphs that build different PAIBox networks getting one digest (a reused network of the other
    graph): a weight changed deep inside a large array (NumPy's repr elides it), an array inside a tuple field,
    a scalar field, the graph's name; and one graph rebuilt from the same values getting a different one."""
    from snncheck.backends.paibox import reuse
    w = np.random.default_rng(10).integers(-5, 5, (8, 3000))

    def make(w, threshold=20, name="g", arrays=(np.zeros(2000),)):
        return chain([("l", P.Linear(w)), ("n", P.IF(threshold, v_reset=0)), ("x", _Extra(arrays))], (3000,),
                     name=name)
    base = reuse.fingerprint(make(w))
    assert reuse.fingerprint(make(w.copy())) == base
    changed, arrays = w.copy(), np.zeros(2000)
    changed[4, 1500] += 1
    arrays[1000] = 1
    for other in (make(changed), make(w, threshold=21), make(w, name="h"), make(w, arrays=(arrays,))):
        assert reuse.fingerprint(other) != base


# ----------------------------------------------------------------------------------------------- the reference's own
@pytest.mark.parametrize("dtype, v_reset", [(np.int32, 0), (np.int64, -3), (np.float32, 0.0), (np.float32, -0.5)])
@pytest.mark.parametrize("reset", ["hard", "soft"])
def test_reset_written_in_place_equals_its_equation(dtype, v_reset, reset):
    """Catches the in-place reset (H*(1-S) + S*v_reset, H - S*threshold, written into the step's record) differing
    from its equation: v_reset dropped when it is not 0, a spike not reset, the record buffer left unwritten."""
    rng = np.random.default_rng(7)
    h = (rng.integers(-40, 60, (5, 3, 4)) * (0.75 if dtype == np.float32 else 1)).astype(dtype)
    neuron = P.IF(10, reset=reset, v_reset=v_reset)
    s = neuron.fire(h, out=np.empty(h.shape, bool))
    assert np.array_equal(s, h >= 10) and s.any() and not s.all()
    want = h - s * dtype(10) if reset == "soft" else np.where(s, dtype(v_reset), h)
    out = np.full(h.shape, 99, dtype)
    assert neuron.after_fire(h, s, out=out) is out
    assert np.array_equal(out, want) and np.array_equal(neuron.after_fire(h, s), want)


def test_neuron_without_records_steps_like_with_them():
    """Catches the membrane not carried from one step to the next (H must be the last V plus X, leak included), and
    a run without v records (two scratch frames) stepping differently from a recorded one."""
    rng = np.random.default_rng(8)
    x = rng.integers(-20, 40, (4, 9, 3, 5)).astype(np.int32)
    for neuron in (P.IF(30, v_reset=-2), P.IF(30, reset="soft"), P.AdditiveLIF(30, leak=-3)):
        s, v, h = run_neuron(neuron, x, record_v=True)
        assert np.array_equal(run_neuron(neuron, x, record_v=False)[0], s) and s.any()
        assert np.array_equal(h[:, 1:], v[:, :-1] + x[:, 1:] + (getattr(neuron, "leak", 0)))


@pytest.mark.parametrize("shape", [(3, 2, 6, 8), (2, 3, 7, 10), (1, 1, 2, 2), (2, 2, 4, 12), (2, 3, 5, 16), (1, 2, 4, 6)])
def test_spike_or_pool_equals_max_over_each_window(shape):
    """Catches the 2x2 OR pooling of spikes (row pairs read as words of 8, 4, 2 or 1 bools, then byte pairs read as
    uint16) pairing the wrong rows or columns, a word size that does not divide the row, or an odd last row not
    dropped as max pooling drops it."""
    x = np.random.default_rng(9).random(shape) < 0.2
    oh, ow = shape[2] // 2, shape[3] // 2
    want = x[:, :, :2 * oh, :2 * ow].reshape(shape[0], shape[1], oh, 2, ow, 2).max(axis=(3, 5))
    got = max_pool(x, (2, 2), (2, 2), (0, 0))
    assert got.dtype == bool and np.array_equal(got, want)


@pytest.mark.parametrize("weight, groups", [((6, 2, 3, 3), 1), ((4, 6, 3, 3), 1), ((6, 2, 3, 3), 2), ((4, 1, 3, 3), 4)])
def test_float_conv_equals_float64_convolution(weight, groups):
    """Catches the float graphs' convolution (the integer im2col and products, run in float32) misplacing a window,
    truncating float sums to integers, or dropping the bias: against float64 arithmetic, within float32 rounding."""
    from snncheck.backends.reference import conv2d
    rng = np.random.default_rng(12)
    x = rng.normal(size=(3, weight[1] * groups, 7, 9)).astype(np.float32)
    w, bias = rng.normal(size=weight).astype(np.float32), rng.normal(size=weight[0]).astype(np.float32)
    got = conv2d(x, P.Conv2d(w, bias, (1, 2), (1, 1), groups), exact=False)
    want = _conv_int64(x, w, (1, 2), (1, 1), groups, np.float64) + bias[:, None, None]
    assert got.dtype == np.float32 and np.allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())


def test_what_the_paibox_backend_keeps_per_graph_lets_the_graph_go():
    """Catches a per-graph memo that keeps its graph alive (a value holding the graph, such as its stacked layout,
    in a WeakKeyDictionary keyed by that graph): every graph a long process checks would stay in memory."""
    import gc
    import weakref
    from snncheck.backends.paibox import reuse
    g = int_csnn(seed=13)
    PAIBoxBackend(batch=2).run(g, pixel_inputs(2, 3, seed=1))
    gone = weakref.ref(g)
    reuse.clear()                    # the idle networks (at most reuse.KEEP) hold their graphs until dropped
    del g
    gc.collect()
    assert gone() is None


@pytest.mark.parametrize("lo, hi", [(-128, 127), (0, 128), (0, 255), (-129, 5), (0, 256), (-5, 40000)])
def test_inputs_narrowed_to_small_ints_keep_their_values(lo, hi):
    """Catches integer inputs cast to a type one value too narrow (128 in int8, 256 in uint8 wraps): the first
    layer's sums must equal int64 arithmetic on inputs reaching exactly the range's ends."""
    rng = np.random.default_rng(13)
    g = chain([("f", P.Flatten()), ("l", P.Linear(rng.integers(-3, 4, (5, 16)))), ("n", P.IF(10 ** 6, v_reset=0))],
              (1, 4, 4))
    x = rng.integers(lo, hi + 1, (3, 2, 1, 4, 4)).astype(np.float64)
    x[0, 0, 0, 0, :2] = lo, hi
    h = x.reshape(3, 2, 16).astype(np.int64) @ np.asarray(g.nodes["l"].weight, np.int64).T
    assert np.array_equal(ReferenceBackend().run(g, x).layer("n").h[:, 0], h[:, 0])


@pytest.mark.parametrize("dtype", [bool, np.uint8, np.int8, np.int32, np.int64, np.float32])
def test_any_nonzero_reads_words_as_any_reads_values(dtype):
    """Catches the word-wise zero scan of PAIBox's delay registers missing a value: a single non-zero in the first,
    a middle or the last position (the last word), arrays whose size is no multiple of 8 bytes or not contiguous
    (read value by value), and -0.0 (non-zero bytes, a zero value: floats are read value by value)."""
    shapes = [(256, 32), (3, 5), (7,), (64,)]
    for shape in shapes:
        a = np.zeros(shape, dtype)
        assert fastpath.any_nonzero(a) is False
        for i in (0, a.size // 2, a.size - 1):
            b = a.copy()
            b.reshape(-1)[i] = 1
            assert fastpath.any_nonzero(b) is True, (shape, i)
            assert fastpath.any_nonzero(b[..., ::-1]) == bool(b[..., ::-1].any())
    if dtype == np.float32:
        assert fastpath.any_nonzero(np.full(8, -0.0, np.float32)) is False


@pytest.mark.parametrize("x_kind", ["spikes", "pixels", "signed"])
def test_synapse_bound_holds_and_spares_the_neuron_a_pass(monkeypatch, x_kind):
    """Catches the static bound a Conv2d or Linear hands its neuron (instead of the neuron reading its whole input
    for max|x|) falling below the largest |y| (the bias left out, max|x| taken as 1 for pixels): the neuron could
    then run in int32 and wrap. And catches the neuron reading its input anyway."""
    from snncheck.backends import reference
    rng = np.random.default_rng(21)
    x = {"spikes": rng.random((3, 2, 4, 6, 6)) < 0.5, "pixels": rng.integers(0, 256, (3, 2, 4, 6, 6)),
         "signed": rng.integers(-9, 9, (3, 2, 4, 6, 6))}[x_kind]
    conv = P.Conv2d(rng.integers(-128, 128, (5, 4, 3, 3)), bias=np.full(5, -50000), padding=(1, 1))
    lin = P.Linear(rng.integers(-128, 128, (7, 144)), bias=np.arange(7) * 30000)
    y = conv2d_exact(x.reshape(6, 4, 6, 6), conv)
    assert reference._synapse_bound(conv, x) >= np.abs(y).max() > 0
    flat = x.reshape(3, 2, 144)
    y = reference.OPS.lookup(lin)(lin, [flat], True, np.int64)
    assert reference._synapse_bound(lin, flat) >= np.abs(y).max() > 0
    graph = chain([("c", conv), ("n", P.IF(1000))], (4, 6, 6))
    reads = []
    monkeypatch.setattr(exact_gemm, "operand", lambda a, f=exact_gemm.operand: reads.append(a.dtype) or f(a))
    rec = ReferenceBackend().run(graph, x.astype(np.float64)).layers[0]
    assert np.int32 not in reads and rec.v.dtype == np.int32        # the neuron's int32 input was not read


def test_only_inputs_the_same_at_every_step_run_once():
    """Catches the reference running a stateless layer once for inputs that are not the same at every step (only
    the first two steps compared, or the last one missed), which would feed every step the first frame."""
    from snncheck.backends.reference import _compact
    rng = np.random.default_rng(4)
    frame = rng.integers(0, 4, (3, 1, 2, 5, 5)).astype(np.int8)
    same = np.repeat(frame, 6, axis=1)
    assert _compact(same).shape[1] == 1 and np.array_equal(_compact(same)[:, 0], same[:, 0])
    for step in (1, 3, 5):
        later = same.copy()
        later[2, step, 1, 4, 4] += 1
        assert _compact(later) is later


def test_a_kernel_as_wide_as_the_frame_builds_no_dense_matrix(monkeypatch):
    """Catches the dense path bounding only its matrix (few outputs) and not the identity it is built from: an 8x2x32x32
    kernel of stride 32 on 2x64x64 frames has 32 outputs per frame but would convolve an 8192x8192 identity."""
    built = []
    monkeypatch.setattr(np, "eye", lambda n, **k: built.append(n) or np.zeros((1, 1)))
    conv = exact_gemm.Conv2d(np.ones((8, 2, 32, 32), np.int8), stride=(32, 32))
    assert conv.dense(64, 64) is None and built == []
