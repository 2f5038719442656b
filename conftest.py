"""Top-level pytest configuration: options shared by tests/ and cases/."""
from __future__ import annotations

import os
import warnings

import pytest

warnings.filterwarnings("ignore")
os.environ.setdefault("MPLBACKEND", "Agg")

# every *.toml under cases/ is a test; --case-html DIR / --case-json DIR write their reports
pytest_plugins = ["snncheck.pytest_plugin"]


def _hypothesis_profiles():
    """"ci" (the default): derandomized and small, so the suite is fast and never flaky; "deep": random and long
    (`--hypothesis-profile=deep`, used by `make test-deep`). Tests size their example counts relative to these."""
    try:
        from hypothesis import HealthCheck, settings
    except ImportError:          # the test extra is not installed: the case files still run
        return
    relaxed = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    settings.register_profile("ci", max_examples=10, derandomize=True, database=None, print_blob=True, **relaxed)
    settings.register_profile("deep", max_examples=1000, derandomize=False, print_blob=True, **relaxed)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


_hypothesis_profiles()


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="also run slow, exhaustive checks")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
