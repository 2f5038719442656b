"""Memory at the boundary: inputs are sliced before they are expanded over time, and a run estimated above the
budget (N x T x recorded neurons) is refused in one line before anything is allocated."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from snncheck import memory
from snncheck.cli import main
from snncheck.errors import InputError
from snncheck.frontends.models import DIGITS_CHECKPOINT, DIGITS_DEPLOYED
from snncheck.plan import Inputs


def test_a_chunk_of_frames_costs_the_chunk_not_the_file(tmp_path):
    """Catches: frames expanded over T before slicing (the issue's 1.7-4.7 GB for 4 samples of a 1,000,000-row
    file): 4 samples of a 20,000-row memory-mapped file at T=16 must allocate about 4 x 16 frames."""
    path = tmp_path / "x.npy"
    big = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(20_000, 1, 8, 8))
    big[:] = 0.5
    big.flush()
    inputs = Inputs.frames(np.load(path, mmap_mode="r"), 16)
    tracemalloc.start()
    x = inputs.chunk(0, 4)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert x.shape == (4, 16, 1, 8, 8)
    assert peak < 20 * x.nbytes, peak          # the whole file over T would be 20,000 x 16 x 256 B = 78 MiB


def test_sizes_parse_and_the_estimate_grows_with_n_t_and_neurons():
    """Catches: a unit misread (M as 10^6 or as KiB) or an estimate that ignores T."""
    assert memory.parse_size("512M") == 512 * 2 ** 20 and memory.parse_size("8GiB") == 8 * 2 ** 30
    assert memory.parse_size("1000") == 1000
    for bad in ("", "-1G", "lots", "0"):
        with pytest.raises(InputError):
            memory.parse_size(bad)


@pytest.mark.parametrize("argv", [["--timesteps", "1000000000"], ["--samples", "300", "--timesteps", "100000"]])
def test_a_run_over_the_budget_is_refused_before_it_allocates(argv, capsys):
    """Catches: a 954 GiB allocation attempted (MemoryError, a traceback) instead of a clear refusal."""
    code = main(["diff", str(DIGITS_CHECKPOINT), str(DIGITS_DEPLOYED), *argv, "--runners", "reference",
                 "--out", "/nonexistent-dir-never-written/r.html"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "over the budget" in err, err


def test_the_budget_is_configurable(capsys, tmp_path):
    """Catches: --memory-budget ignored, or leaking into later calls of main() in the same process."""
    argv = ["diff", str(DIGITS_CHECKPOINT), str(DIGITS_DEPLOYED), "--samples", "8", "--timesteps", "4",
            "--runners", "reference", "--out", str(tmp_path / "r.html")]
    assert main(["--memory-budget", "100K", *argv]) == 2
    assert "budget of 100.0 KiB" in capsys.readouterr().err
    assert main(argv) == 0
    assert (tmp_path / "r.html").exists()
