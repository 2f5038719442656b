"""Outputs never destroy anything (snncheck.files): the JSON/HTML pair is both new or both old whatever fails
between the two writes, temporary files never outlive a failure, and a FIFO or a device (a `mknod` twin in a temp
folder, never a real one) is refused without being touched."""
from __future__ import annotations

import errno
import os
import stat

import pytest

from snncheck import files
from snncheck.cli import main
from snncheck.errors import InputError
from snncheck.frontends.models import DIGITS_CHECKPOINT
from test_bad_inputs import CASE, MODEL_PY

@pytest.fixture
def case(tmp_path):
    (tmp_path / "model.py").write_text(MODEL_PY)
    (tmp_path / "case.toml").write_text(CASE)
    return tmp_path / "case.toml"


@pytest.fixture
def old_pair(tmp_path):
    j, h = tmp_path / "r.json", tmp_path / "r.html"
    j.write_text("old json")
    h.write_text("old html")
    return j, h


def _fail_on(call: int, exc):
    """A stand-in for files._replace whose `call`-th call raises `exc` (the rename between the two writes)."""
    calls = []

    def replace(src, dst):
        calls.append(dst)
        if len(calls) == call:
            raise exc
        os.replace(src, dst)
    return replace


def _leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("exc, code", [(OSError(errno.ENOSPC, "No space left on device"), 2),
                                       (KeyboardInterrupt(), 130)])
def test_failure_between_the_two_renames_leaves_both_old(case, old_pair, monkeypatch, capsys, exc, code):
    """Catches: the JSON renamed into place and the HTML not (a half-updated pair) when the disk fills up or the
    user interrupts between the two renames; and temporary or backup files left beside the reports."""
    j, h = old_pair
    monkeypatch.setattr(files, "_replace", _fail_on(2, exc))
    assert main(["compare", str(case), "--json", str(j), "--out", str(h)]) == code
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert (j.read_text(), h.read_text()) == ("old json", "old html")
    assert _leftovers(j.parent) == []


def test_failure_on_the_first_rename_of_new_files_leaves_neither(case, tmp_path, monkeypatch, capsys):
    """Catches: a new JSON left behind (half a pair) when the HTML's rename fails and neither existed before."""
    j, h = tmp_path / "new.json", tmp_path / "out" / "new.html"
    monkeypatch.setattr(files, "_replace", _fail_on(2, OSError(errno.EACCES, "Permission denied")))
    assert main(["compare", str(case), "--json", str(j), "--out", str(h)]) == 2
    assert "Permission denied" in capsys.readouterr().err
    assert not j.exists() and not h.parent.exists()       # the folder made for the HTML is gone again
    assert _leftovers(tmp_path) == []


def test_both_written_when_nothing_fails(case, old_pair, capsys):
    """Catches: the pair machinery dropping or swapping a file on the good path."""
    j, h = old_pair
    assert main(["compare", str(case), "--json", str(j), "--out", str(h)]) == 0
    assert j.read_text().startswith("{") and "<html" in h.read_text().lower()
    assert _leftovers(j.parent) == []


def test_a_writer_failing_leaves_no_temporary_file_and_one_line(tmp_path):
    """Catches: a temporary file left when writing fails (the issue's `.B.pth.tmpNNN`), and a disk-full OSError
    escaping as a traceback instead of one InputError line."""
    def full(f):
        f.write(b"x" * 10)
        raise OSError(errno.ENOSPC, "No space left on device")
    target = tmp_path / "B.pth"
    with pytest.raises(InputError, match="No space left on device"):
        files.write_together({target: full})
    assert list(tmp_path.iterdir()) == []


def _refused_untouched(path, argv, capsys):
    before = os.lstat(path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "refusing to write" in err, err
    after = os.lstat(path)
    assert (stat.S_IFMT(after.st_mode), after.st_ino, after.st_rdev) == \
        (stat.S_IFMT(before.st_mode), before.st_ino, before.st_rdev)
    return err


def test_fifo_is_refused_untouched(case, tmp_path, capsys):
    """Catches: a report renamed over a FIFO (it becomes a regular file) or written into it."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert "FIFO" in _refused_untouched(fifo, ["compare", str(case), "--json", str(fifo)], capsys)
    os.symlink(fifo, tmp_path / "link.json")
    _refused_untouched(fifo, ["compare", str(case), "--out", str(tmp_path / "link.json")], capsys)


@pytest.mark.skipif(os.geteuid() != 0, reason="mknod of a character device needs root")
def test_device_twin_is_refused_untouched(case, tmp_path, capsys):
    """Catches: `--json /dev/null` turning the device into a regular file (tried on a twin of /dev/null made with
    mknod in a temp folder, never on the real one), directly or through a symbolic link."""
    twin = tmp_path / "null"
    os.mknod(twin, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    assert "character device" in _refused_untouched(twin, ["compare", str(case), "--json", str(twin)], capsys)
    os.symlink(twin, tmp_path / "null.html")
    _refused_untouched(twin, ["compare", str(case), "--out", str(tmp_path / "null.html")], capsys)
    _refused_untouched(twin, ["convert", str(DIGITS_CHECKPOINT), "--out", str(twin)], capsys)


def test_case_names_cannot_leave_the_report_folder(tmp_path, pytester):
    """Catches: a case named '../x' making --case-json write outside the chosen folder."""
    pytester.makeconftest('pytest_plugins = ["snncheck.pytest_plugin"]')
    (pytester.path / "cases").mkdir()
    (pytester.path / "cases" / "model.py").write_text(MODEL_PY)
    (pytester.path / "cases" / "evil.toml").write_text(CASE.replace('name = "good"', 'name = "../../escaped"'))
    out = pytester.path / "reports" / "json"
    result = pytester.runpytest_inprocess("cases", "--case-json", str(out), "-p", "no:cacheprovider")
    assert result.ret == 0, result.stdout.str()
    written = list(pytester.path.rglob("*escaped.json"))
    assert [p.parent for p in written] == [out] and written[0].name == files.safe_name("../../escaped") + ".json"


pytest_plugins = ["pytester"]
