"""diff's own work made faster (compare, align, the isolated mode, the signatures) writes the very report it wrote
before: each case of tests/diff_cases.py against the JSON that the code before the fast paths wrote for it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import diff_cases

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "diff_reports"


@pytest.mark.parametrize("name", list(diff_cases.cases()))
def test_report_is_the_one_written_before_the_fast_paths(name):
    """Catches a fast path in diff that changes any number of the report: a count, a first divergence, a flip's
    margin or order, a membrane difference, an isolated-mode rate, a diagnosis (planted off-by-ones in each fast
    path failed here)."""
    want = json.loads((FIXTURES / f"{name}.json").read_text())
    report, runs = diff_cases.run(name)
    if runs != want["runs"]:
        pytest.skip(f"{name}: the runners recorded other values than when the fixture was written (another CPU's "
                    "float kernels, or a changed backend): regenerate with tests/fixtures/diff_reports/make.py run "
                    "on the code before the fast paths")
    got = diff_cases.comparable(report)
    assert got == want["report"], _first_difference(want["report"], got)


def _first_difference(want, got, where="report") -> str:
    if type(want) is not type(got):
        return f"{where}: {want!r} != {got!r}"
    if isinstance(want, dict):
        for k in sorted(set(want) | set(got), key=str):
            if want.get(k, "<missing>") != got.get(k, "<missing>"):
                return _first_difference(want.get(k, "<missing>"), got.get(k, "<missing>"), f"{where}.{k}")
    if isinstance(want, list):
        if len(want) != len(got):
            return f"{where}: {len(want)} entries != {len(got)}"
        for i, (x, y) in enumerate(zip(want, got)):
            if x != y:
                return _first_difference(x, y, f"{where}[{i}]")
    return f"{where}: {want!r} != {got!r}"
