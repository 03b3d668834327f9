"""Saving files so that the user's path always names a complete file.

A save writes to a hidden temporary name beside the target, marks it complete, and
moves it into place:

- a single file (.hspy, .npz, .pt) with one atomic ``os.replace``;
- a folder (.zspy): on Linux with an atomic exchange of the two folders
  (``renameat2(RENAME_EXCHANGE)``); elsewhere the old folder is parked under a hidden
  ``.old`` name and the new one, already marked complete as ``.new``, moved in.

A save killed between those steps can leave the target missing and hidden copies beside
it; :func:`recover` (run at the start of every save and load of that path) puts the
complete copy back under the user's name and removes the leftovers of saves whose
process is gone. Temporary names carry the writer's process id, so a save still running
in another process is never touched.

Example
-------
>>> tmp = temp_path(Path("scan.zspy"))      # doctest: +SKIP
>>> write(tmp); move_into_place(tmp, Path("scan.zspy"))   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import re
import shutil
import threading
import uuid
from pathlib import Path

__all__ = ["move_into_place", "recover", "remove", "temp_path"]

_ACTIVE: set[str] = set()  # temporaries being written by this process
_LOCK = threading.Lock()
_RENAME_EXCHANGE = 2


def _name_re(target: Path) -> re.Pattern:
    ext = re.escape(target.suffix)
    return re.compile(rf"^\.{re.escape(target.name)}\.(\d+)-[0-9a-f]+\.(tmp{ext}|new|old)$")


def _sibling(target: Path, kind: str) -> Path:
    suffix = f"tmp{target.suffix}" if kind == "tmp" else kind
    return target.with_name(f".{target.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.{suffix}")


def temp_path(target: Path) -> Path:
    """A hidden, unique temporary name beside ``target`` (same extension, so format-
    sniffing writers still work), registered as in use until moved or removed."""
    tmp = _sibling(Path(target), "tmp")
    with _LOCK:
        _ACTIVE.add(str(tmp))
    return tmp


def _release(*paths: Path) -> None:
    with _LOCK:
        for p in paths:
            _ACTIVE.discard(str(p))


def _alive(pid: int, path: Path) -> bool:
    if pid == os.getpid():
        with _LOCK:
            return str(path) in _ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists, owned by someone else
    return True


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths (Linux renameat2); False when unsupported here."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name or not hasattr(os, "fsencode"):
        return False
    try:
        libc = ctypes.CDLL(libc_name, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd = -100
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(err, os.strerror(err), str(b))


def move_into_place(tmp: Path, target: Path) -> None:
    """Move the complete temporary ``tmp`` to ``target``, replacing what is there."""
    tmp, target = Path(tmp), Path(target)
    if not tmp.is_dir() and not target.is_dir():
        try:
            os.replace(tmp, target)  # atomic on POSIX and Windows
        finally:
            _release(tmp)
        return
    ready = _sibling(target, "new")
    with _LOCK:
        _ACTIVE.add(str(ready))
    try:
        os.replace(tmp, ready)  # marks the new copy complete
        if target.exists() and _exchange(ready, target):
            remove(ready)  # after the swap it holds the old copy
            return
        backup = None
        if target.exists():
            backup = _sibling(target, "old")
            os.replace(target, backup)
        try:
            os.replace(ready, target)
        except BaseException:
            if backup is not None:
                os.replace(backup, target)
            raise
        if backup is not None:
            remove(backup)
    finally:
        _release(tmp, ready)


def recover(target: Path) -> Path | None:
    """Restore ``target`` from a complete hidden copy when an interrupted save left it
    missing, and remove stale temporaries of that path. Returns the copy restored, if any.

    Never raises for a folder it cannot write (e.g. read-only data); does nothing then.
    """
    target = Path(target)
    pattern = _name_re(target)
    try:
        entries = [e for e in os.scandir(target.parent) if pattern.match(e.name)]
    except OSError:
        return None
    stale = []
    for entry in entries:
        path = Path(entry.path)
        if not _alive(int(pattern.match(entry.name).group(1)), path):
            stale.append(path)
    restored = None
    if not os.path.lexists(target):
        # a complete new copy wins over the parked old one; the newest of each kind first
        for kind in ("new", "old"):
            pick = sorted((p for p in stale if p.name.endswith(f".{kind}")),
                          key=lambda p: p.stat().st_mtime, reverse=True)
            if pick:
                with contextlib.suppress(OSError):
                    os.replace(pick[0], target)
                    restored = pick[0]
                    break
    for path in stale:
        if path != restored:
            remove(path)
    return restored


def remove(path: Path) -> None:
    """Delete a file or folder, ignoring errors (best-effort cleanup)."""
    path = Path(path)
    _release(path)
    with contextlib.suppress(OSError):
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif os.path.lexists(path):
            path.unlink()
