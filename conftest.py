"""Top-level pytest configuration: options shared by tests/ and cases/."""
from __future__ import annotations

import os
import warnings

import pytest

warnings.filterwarnings("ignore")
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False, help="also run slow, exhaustive checks")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
