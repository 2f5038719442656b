"""Writing output files so that nothing is destroyed: a report or checkpoint is never written over an input of the
same run, a directory, or anything that is not a regular file (a device, a FIFO, a socket, or a symbolic link to
one); all files of one output (a report's JSON and HTML) are written to temporary files first and renamed together,
so after any failure or interrupt they are all new or all old; temporary files never outlive a failure; and a
full disk or a permission error is one InputError line."""
from __future__ import annotations

import contextlib
import os
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Callable, Iterable

from .errors import InputError, require

_KINDS = {stat.S_ISDIR: "a directory", stat.S_ISFIFO: "a FIFO", stat.S_ISCHR: "a character device",
          stat.S_ISBLK: "a block device", stat.S_ISSOCK: "a socket"}


def safe_name(name: str) -> str:
    """A file name from a report or case title: letters, digits, '-', '_' and '.' only, never '.' or '..'."""
    out = "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))[:120].lstrip(".")
    return out or "report"


def check_target(path, inputs: Iterable = ()) -> Path:
    """The path to write `path` at (a symbolic link to a regular file is followed), or InputError when writing
    there could destroy something: an input of the run (same file, whatever the name), or not a regular file."""
    text = str(path)
    require(text.strip() and "\x00" not in text, lambda: f"output path {text!r} is not a usable file name")
    p = Path(text)
    try:
        st = os.stat(p) if os.path.lexists(p) else None
    except FileNotFoundError:
        raise InputError(f"{p}: a symbolic link to nothing; refusing to write through it") from None
    except OSError as exc:
        raise InputError(f"cannot write {p}: {exc.strerror or exc}") from None
    if st is None:
        return p
    kind = next((k for test, k in _KINDS.items() if test(st.st_mode)), None)
    require(stat.S_ISREG(st.st_mode), lambda: f"{p} is {kind or 'not a regular file'}; refusing to write over it")
    for inp in inputs:
        with contextlib.suppress(OSError):
            if os.path.samefile(p, inp):
                raise InputError(f"{p} is an input of this run ({inp}); refusing to write over it")
    return Path(os.path.realpath(p))


def check_targets(paths: Iterable, inputs: Iterable = ()) -> list:
    """check_target for each path given (None skipped), and no two naming the same file."""
    inputs = [i for i in inputs if i]
    out = [check_target(p, inputs) for p in paths if p is not None]
    resolved = [os.path.realpath(p) for p in out]
    require(len(set(resolved)) == len(resolved), lambda: f"two outputs name the same file: {', '.join(map(str, out))}")
    return out


def write_together(files, inputs: Iterable = ()) -> None:
    """[(path, write(binary file object))] (or a dict): every file written to a temporary file beside its target,
    then all renamed into place; if anything fails (a full disk, an interrupt), the targets renamed so far are
    restored, so the files are all new or all old, and no temporary file or folder made for them is left."""
    files = list(files.items() if isinstance(files, dict) else files)
    targets = check_targets([p for p, _ in files], inputs)
    writers = [w for _, w in files]
    temps, backups, done, folders = [], {}, [], []
    try:
        for target, write in zip(targets, writers):
            folders += _make_folders(target.parent)
            temps.append(_stage(target, write))
        for tmp, target in zip(temps, targets):
            if target.exists():
                backups[target] = _backup(target)
            _replace(tmp, target)
            done.append(target)
        folders = []                              # kept: they hold the files now
    except BaseException as exc:
        _roll_back(done, backups)
        if isinstance(exc, OSError):
            raise InputError(f"cannot write {getattr(exc, 'filename', None) or targets[len(done)]}: "
                             f"{exc.strerror or exc}") from None
        raise
    finally:
        for leftover in temps + list(backups.values()):
            with contextlib.suppress(OSError):
                os.unlink(leftover)
        for folder in reversed(folders):          # made for the files of a failed write: empty again
            with contextlib.suppress(OSError):
                os.rmdir(folder)


def _make_folders(folder: Path) -> list:
    """Creates `folder` and its missing parents; returns those it created, outermost first."""
    missing = [d for d in (folder, *folder.parents) if not d.exists()][::-1]
    for d in missing:
        d.mkdir()
    return missing


def path_writer(write: Callable) -> Callable:
    """Marks a writer that takes a path instead of a file object (h5py, nir.write): it writes the temporary file."""
    write.wants_path = True
    return write


def _stage(target: Path, write: Callable) -> str:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name[:64]}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    try:
        if getattr(write, "wants_path", False):
            os.close(fd)
            write(tmp)
        else:
            with os.fdopen(fd, "wb") as f:
                write(f)
        os.chmod(tmp, 0o666 & ~_umask())          # mkstemp creates 0600; a report is an ordinary file
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def _backup(target: Path) -> str:
    """A second name for the old file (a hard link, else a copy), to put it back if a later rename fails."""
    backup = f"{target.parent}/.{target.name[:64]}.{os.getpid()}.old"
    with contextlib.suppress(FileNotFoundError):
        os.unlink(backup)
    try:
        os.link(target, backup)
    except OSError:
        shutil.copy2(target, backup)
    return backup


def _replace(src, dst) -> None:
    os.replace(src, dst)


def _roll_back(done: list, backups: dict) -> None:
    for target in done:
        with contextlib.suppress(OSError):
            if target in backups:
                os.replace(backups.pop(target), target)
            else:
                os.unlink(target)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def text_writer(text: str) -> Callable:
    return lambda f: f.write(text.encode("utf-8", "backslashreplace"))


def atomic_write_text(path, text: str, inputs: Iterable = ()) -> None:
    write_together({path: text_writer(text)}, inputs)
