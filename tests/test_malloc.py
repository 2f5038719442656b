"""`parallel.keep_freed_memory`: a run's big arrays reuse freed memory instead of faulting fresh pages in (the
per-process spread of the benchmarks' timings, docs in snncheck/parallel.py)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = """
import resource, sys
import numpy as np
if sys.argv[1] == "keep":
    from snncheck.parallel import keep_freed_memory
    assert keep_freed_memory()
def run():                              # a run's records: six 8 MiB layers, written, then freed together
    return [np.ones(2 << 20, np.int32) for _ in range(6)]
for _ in range(3):
    run()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
run()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> int:
    """Page faults of the child's last run (its malloc as glibc sets it up: no MALLOC_* or GLIBC_TUNABLES from
    whoever runs the tests)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
    out = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, check=True, env=env)
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_kept_memory_is_reused_without_page_faults():
    """Catches keep_freed_memory setting nothing (or the wrong parameters): by default glibc hands the 48 MiB a run
    freed back to the system (more than twice its moving threshold), and the next run faults thousands of pages in
    again (3058 here); kept, the fourth run reuses the third's pages."""
    import ctypes
    if not hasattr(ctypes.CDLL(None), "mallopt"):
        pytest.skip("not glibc")
    assert faults("default") > 1000
    assert faults("keep") < 100
