"""pytest plugin: every `*.toml` file under a `cases/` directory is a test (adding a case is adding a file).

A case runs as `snncheck compare CASE.toml` would (snncheck.case.run) and passes when the report meets the
case's [expect] table. A failure shows what differs: the unmet expectations, then the per-layer table and the
diagnoses. `--case-html DIR` writes each case's HTML report there (pass or fail), `--case-json DIR` its JSON.
Load it from a conftest.py with `pytest_plugins = ["snncheck.pytest_plugin"]`.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from . import case as cases
from .errors import InputError


def pytest_addoption(parser):
    group = parser.getgroup("snncheck", "snncheck case files")
    group.addoption("--case-html", metavar="DIR", help="write each case's HTML report into DIR")
    group.addoption("--case-json", metavar="DIR", help="write each case's JSON report into DIR")


def pytest_collect_file(file_path: Path, parent):
    if file_path.suffix != ".toml":
        return None
    try:                     # a `cases` folder inside the project, not one that happens to hold the project
        rel = file_path.relative_to(parent.config.rootpath)
    except ValueError:
        rel = file_path
    return CaseFile.from_parent(parent, path=file_path) if "cases" in rel.parts[:-1] else None


class CaseFile(pytest.File):
    def collect(self):
        try:
            case = cases.Case.load(self.path)
        except InputError as exc:
            raise self.CollectError(str(exc)) from None       # the message names the file already
        item = CaseItem.from_parent(self, name=case.name, case=case)
        run = case.spec.run
        for mark in run.marks:
            item.add_marker(getattr(pytest.mark, mark))
        if run.xfail:               # a known, open bug: the case reports XPASS once it is fixed
            item.add_marker(pytest.mark.xfail(reason=run.xfail, strict=False))
        yield item


class CaseFailed(Exception):
    def __init__(self, failures: list, report):
        super().__init__("; ".join(failures))
        self.failures, self.report = failures, report


class CaseItem(pytest.Item):
    def __init__(self, *, case, **kwargs):
        super().__init__(**kwargs)
        self.case = case

    def runtest(self):
        report = cases.run(self.case)
        self._write_reports(report)
        failures = cases.check_expectations(self.case, report)
        if failures:
            raise CaseFailed(failures, report)

    def _write_reports(self, report) -> None:
        from .report import io
        html_dir, json_dir = self.config.getoption("--case-html"), self.config.getoption("--case-json")
        stem = io.safe_name(self.case.name)        # a case name is not a path: '../x' stays in the folder
        io.write_outputs(report, json_dir and Path(json_dir) / f"{stem}.json",
                         html_dir and Path(html_dir) / f"{stem}.html", quiet=True, inputs=self.case.files())

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, CaseFailed):
            from .report import text
            unmet = "\n".join(f"  - {f}" for f in excinfo.value.failures)
            return f"case {self.case.name} ({self.path}): expectations not met:\n{unmet}\n\n" \
                   f"{text.render(excinfo.value.report)}"
        if isinstance(excinfo.value, InputError):
            return f"case {self.case.name} ({self.path}): {excinfo.value}"
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, 0, f"case {self.case.name}"
