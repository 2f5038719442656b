"""Event streams integrated into frames: snncheck against SpikingJelly's own `datasets.utils` integrate functions
on the same synthetic events (2 polarities, 128x128), and the events file format."""
from __future__ import annotations

import importlib.util
import sys
import types

import numpy as np
import pytest
import torch

import spikingjelly
from snncheck.errors import InputError
from snncheck.inputs import events, from_events
from snncheck.inputs.events import Framing

H = W = 128


@pytest.fixture(scope="module")
def sj_utils():
    """spikingjelly.datasets.utils as shipped. It imports torchvision.transforms at the top (unused by the
    integrate functions) and torchvision cannot be installed beside the CPU torch: an empty stand-in module
    takes its place while the file is loaded, and sys.modules is restored afterwards."""
    saved = {k: sys.modules.get(k) for k in ("torchvision", "torchvision.transforms", "spikingjelly.datasets",
                                             "spikingjelly.datasets.utils")}
    tv = types.ModuleType("torchvision")
    tv.transforms = types.ModuleType("torchvision.transforms")
    pkg = types.ModuleType("spikingjelly.datasets")
    pkg.__path__ = [str(spikingjelly.__path__[0]) + "/datasets"]
    sys.modules.update({"torchvision": tv, "torchvision.transforms": tv.transforms, "spikingjelly.datasets": pkg})
    try:
        spec = importlib.util.spec_from_file_location("spikingjelly.datasets.utils", pkg.__path__[0] + "/utils.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        for k, v in saved.items():
            sys.modules.pop(k, None) if v is None else sys.modules.__setitem__(k, v)


def synthetic(n_events: int, seed: int, duration: int = 1_000_000, grid: int = 1) -> dict:
    """A DVS128-like stream: sorted integer microsecond time stamps, x, y in 0..127, p in {0, 1}. With `grid`,
    time stamps are multiples of it spanning the whole duration, so that many events sit on frame boundaries."""
    rng = np.random.default_rng(seed)
    t = rng.integers(0, duration // grid + 1, n_events)
    t[:2] = 0, duration // grid
    return {"t": np.sort(t).astype(np.int64) * grid + 12_345,
            "x": rng.integers(0, W, n_events).astype(np.uint16), "y": rng.integers(0, H, n_events).astype(np.uint16),
            "p": rng.integers(0, 2, n_events).astype(np.uint8)}


@pytest.mark.parametrize("split_by", ["number", "time"])
@pytest.mark.parametrize("seed,n_events,grid", [(0, 20_000, 1), (1, 20_003, 1), (2, 977, 1), (3, 5000, 12_500)])
def test_frames_by_number_and_by_time_equal_spikingjelly(sj_utils, split_by, seed, n_events, grid):
    """Catches an off-by-one at a segment boundary (events on a boundary in the next frame or this one), events
    past the last boundary left out, the polarity channels swapped, or x and y swapped: each changes a frame."""
    ev = synthetic(n_events, seed, grid=grid)
    sj = sj_utils.integrate_events_by_fixed_frames_number(ev, split_by, 8, H, W)
    ours = events.frames(ev, Framing(frames=8, split_by=split_by), H, W)
    assert ours.shape == (8, 2, H, W) and np.array_equal(ours, sj)
    assert ours.sum() == n_events


@pytest.mark.parametrize("duration", [50_000, 333_333, 1_000_000])
def test_fixed_duration_equals_spikingjelly(sj_utils, duration):
    """Catches the frame count (ceil of the span) or the boundary rule (t // D) being off."""
    ev = synthetic(5000, 3, grid=50_000)
    sj = sj_utils.integrate_events_by_fixed_duration(ev, duration, H, W)
    ours = events.frames(ev, Framing(duration=duration), H, W)
    assert ours.shape == sj.shape and np.array_equal(ours, sj)


def test_polarity_channels_in_spikingjellys_order(sj_utils):
    """p == 0 goes to channel 0 and p != 0 to channel 1 (a DVS file may store OFF as 0 or as -1... any non-zero
    polarity is ON)."""
    ev = {"t": np.array([0, 1, 2]), "x": np.array([5, 5, 6]), "y": np.array([7, 7, 7]), "p": np.array([0, 1, 1])}
    ours = events.frames(ev, Framing(frames=1), H, W)
    assert ours[0, 0, 7, 5] == 1 and ours[0, 1, 7, 5] == 1 and ours[0, 1, 7, 6] == 1
    assert np.array_equal(ours, sj_utils.integrate_events_by_fixed_frames_number(ev, "number", 1, H, W))


def test_a_file_of_several_samples_of_different_lengths_is_padded_as_pad_sequence_collate(sj_utils, tmp_path):
    """Samples are cut at `index`; frames by duration differ in number per sample and are padded with empty
    frames at the end exactly as SpikingJelly's pad_sequence_collate pads a batch (lengths kept)."""
    samples = [synthetic(3000, 4, duration=400_000), synthetic(2000, 5, duration=900_000)]
    cat = {k: np.concatenate([s[k] for s in samples]) for k in events.FIELDS}
    path = tmp_path / "ev.npz"
    np.savez(path, index=np.array([0, 3000, 5000]), **cat)
    inputs = from_events(path, (2, H, W), Framing(duration=100_000))
    sj = [sj_utils.integrate_events_by_fixed_duration(s, 100_000, H, W) for s in samples]
    padded, _, lengths = sj_utils.pad_sequence_collate([(torch.from_numpy(f), 0) for f in sj])
    assert np.array_equal(inputs.data, padded.numpy()) and inputs.info["lengths"] == lengths.tolist() == [4, 9]
    assert inputs.describe()["encoding"] == "events" and not inputs.direct


def test_bad_events_files_are_one_line_errors(tmp_path):
    """A missing array, events outside the sensor, unsorted time, or a time split with an empty frame."""
    np.savez(tmp_path / "a.npz", t=np.arange(3), x=np.arange(3), y=np.arange(3))
    with pytest.raises(InputError, match="missing"):
        events.load(tmp_path / "a.npz")
    ev = synthetic(100, 0)
    with pytest.raises(InputError, match="outside"):
        events.frames(ev, Framing(frames=2), 64, 64)
    with pytest.raises(InputError, match="non-decreasing"):
        events.frames(dict(ev, t=ev["t"][::-1].copy()), Framing(frames=2), H, W)
    gap = dict(ev, t=np.r_[np.zeros(50, int), np.full(50, 1000)])
    with pytest.raises(InputError, match="no event"):
        events.frames(gap, Framing(frames=4, split_by="time"), H, W)
    with pytest.raises(InputError, match="either"):
        Framing(frames=4, duration=10)


@pytest.mark.slow
@pytest.mark.parametrize("split_by", ["number", "time"])
def test_dvs_gesture_net_through_convert_and_diff_is_consistent_and_paibox_bit_exact(tmp_path, split_by):
    """SpikingJelly's DVSGestureNet as shipped (IF neurons, VotingLayer head) on the events file of the case:
    `snncheck convert` then `snncheck diff --inputs events.npz --frames 8`: consistent, PAIBox bit-exact with the
    reference on every layer, and the report says how the events were integrated."""
    import json
    from pathlib import Path
    from snncheck.cli import main
    root = Path(__file__).resolve().parents[1]
    model = f"{root}/cases/models.py:dvs_gesture_net_low_threshold"
    sys.path.insert(0, str(root / "cases"))
    try:
        from models import dvs_gesture_net_low_threshold
    finally:
        sys.path.remove(str(root / "cases"))
    torch.manual_seed(16)
    torch.save(dvs_gesture_net_low_threshold().state_dict(), tmp_path / "a.pth")
    common = ["--model", model, "--input-shape", "2,128,128"]
    assert main(["convert", str(tmp_path / "a.pth"), *common, "--out", str(tmp_path / "b.pth")]) == 0
    assert main(["diff", str(tmp_path / "a.pth"), str(tmp_path / "b.pth"), *common, "--inputs",
                 str(root / "cases" / "dvs_events.npz"), "--frames", "8", "--split-by", split_by, "--samples", "2",
                 "--json", str(tmp_path / "r.json"), "--out", str(tmp_path / "r.html")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["verdict"] == "consistent" and report["pairs"]["paibox:b~reference:b"]["exact"]
    assert report["inputs"]["encoding"] == "events" and f"split by {split_by}" in report["inputs"]["framing"]
    assert min(layer["paibox:b~reference:b"]["firing_rate_b"] for layer in report["layers"]) > 0.01
    vote = report["readouts"][-1]["paibox:b~reference:b"]          # the VotingLayer head, computed off-chip
    assert vote["total"] > 0 and vote["differing"] == 0 and vote["max_abs_diff"] == 0
