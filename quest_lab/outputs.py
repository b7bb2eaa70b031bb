"""Output files that never destroy anything: refuse the store's own files and existing files (unless
forced), and appear atomically (written to a temporary name beside the target, then renamed).

`write_file(path, write, force=..., protected=...)` for one file (`export`), `publish_dir(out, build,
force=...)` for a folder of files (`report --out`).  Problems are `OutputError`s with a one-line message.
"""
from __future__ import annotations

import errno
import os
import shutil
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class OutputError(ValueError):
    """The output path cannot be written safely."""


def _same(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def check_file_target(path: Path, *, force: bool = False, protected: Iterable[Path] = ()) -> None:
    """Raise OutputError unless `path` may be (over)written."""
    for p in protected:
        if _same(path, p) or path.resolve() == Path(p).resolve():
            raise OutputError(f"{path} is the results store's own file; writing there would destroy every "
                              "result: choose another path")
    if path.is_dir():
        raise OutputError(f"{path} is a directory; give a file path")
    if path.exists() and not force:
        raise OutputError(f"{path} exists; pass --force to overwrite it")
    if not path.parent.is_dir():
        raise OutputError(f"directory {path.parent} does not exist")


def _temp_beside(path: Path) -> Path:
    return path.parent / f".{path.name}.{uuid.uuid4().hex[:8]}.tmp"


def write_file(path: Path, write: Callable[[Path], None], *, force: bool = False,
               protected: Iterable[Path] = ()) -> None:
    """Run `write(tmp)` on a temporary file beside `path`, then move it onto `path` in one step.
    Without `force`, a file that appears at `path` meanwhile is not replaced (hard-link, no clobber)."""
    protected = list(protected)
    check_file_target(path, force=force, protected=protected)
    tmp = _temp_beside(path)
    try:
        write(tmp)
        if force:
            os.replace(tmp, path)
            return
        try:
            os.link(tmp, path)  # atomic and never replaces an existing file
        except FileExistsError:
            raise OutputError(f"{path} exists; pass --force to overwrite it") from None
        except OSError as exc:  # a filesystem without hard links
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EXDEV, errno.EMLINK):
                raise
            if path.exists():
                raise OutputError(f"{path} exists; pass --force to overwrite it") from None
            os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def check_dir_target(out: Path | None, *, force: bool = False) -> None:
    """Raise OutputError unless `out` (None: a new default folder) may receive a folder of files."""
    if out is None:
        return
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} is a file, not a folder; give a folder path (or remove the file)")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise OutputError(f"{out} exists and is not empty; pass --force to replace its files")


def publish_dir(out: Path, build: Callable[[Path], T], *, force: bool = False) -> T:
    """Build a folder's files in a temporary folder beside `out`, then move them into place: a new
    folder is renamed in one step; an existing one (with `force`, or empty) gets each file replaced
    atomically.  Without `force`, a non-empty existing folder is refused."""
    check_dir_target(out, force=force)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_beside(out)
    tmp.mkdir()
    try:
        result = build(tmp)
        if not out.exists():
            os.rename(tmp, out)
        else:
            for item in tmp.iterdir():
                target = out / item.name
                if target.is_dir() and not target.is_symlink():
                    raise OutputError(f"{target} is a folder; cannot replace it with a file")
                os.replace(item, target)
        return result
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
