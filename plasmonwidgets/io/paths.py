"""Which files we read and write, and the checks that turn a bad path into a clear error."""

from __future__ import annotations

import difflib
import os
from pathlib import Path
from typing import Any

from .errors import DataFileError

FORMATS = {
    ".dm3": "DigitalMicrograph 3",
    ".dm4": "DigitalMicrograph 4",
    ".emd": "EMD (Velox or Berkeley)",
    ".hspy": "HyperSpy HDF5",
    ".zspy": "HyperSpy zarr",
    ".npz": "plasmonwidgets NumPy archive",
}


SAVE_FORMATS = (".hspy", ".zspy", ".npz")


def cap(text: str) -> str:
    """``text`` with its first letter in upper case (the start of a message).

    Examples
    --------
    >>> cap("spectrum image file 'a.dm4'")
    "Spectrum image file 'a.dm4'"
    """
    return text[:1].upper() + text[1:]


def check_path(path: Any, role: str, hints: bool = True) -> Path:
    """The path as a Path, after checking it names a readable, non-empty data file.
    ``hints``: suggest similar names in the folder (off for uploads: other users' files).

    Examples
    --------
    A missing file is refused with a message saying what to do:

    >>> try:
    ...     check_path("no_such_scan.dm4", role="")
    ... except Exception as exc:
    ...     print(type(exc).__name__)
    DataFileError
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{role} path must be a str or pathlib.Path, got {type(path).__name__}")
    p = Path(path).expanduser()
    ext = p.suffix.lower()
    if not p.exists():
        hint = ""
        if not hints:
            pass
        elif not p.parent.is_dir():
            hint = f"; the folder {str(p.parent)!r} does not exist either"
        else:
            close = difflib.get_close_matches(p.name, [c.name for c in p.parent.iterdir()], n=3)
            if close:
                hint = f"; similar names in that folder: {', '.join(close)}"
        raise DataFileError(f"{cap(role)} file {str(p)!r} does not exist{hint}.")
    if p.is_dir() and ext != ".zspy":
        raise DataFileError(
            f"{str(p)!r} is a directory, not a {role} file; pass the path of a data file "
            f"({', '.join(FORMATS)})."
        )
    if ext not in FORMATS:
        raise DataFileError(
            f"{cap(role)} file {str(p)!r} has extension {ext or '(none)'!r}, which "
            f"plasmonwidgets does not read. Supported: {', '.join(FORMATS)}. Convert other "
            "formats with HyperSpy (hs.load(path).save('name.hspy')) or check the file name."
        )
    if p.is_dir():  # a .zspy store is a folder
        if not (p / ".zgroup").is_file():
            raise DataFileError(
                f"{str(p)!r} is a folder but not a .zspy store (no .zgroup inside); it may be "
                "an incomplete copy. Copy the whole .zspy folder again."
            )
        return p
    if p.stat().st_size == 0:
        raise DataFileError(
            f"{cap(role)} file {str(p)!r} is empty (0 bytes): whatever wrote or copied "
            "it did not finish. Copy or export it again."
        )
    if not os.access(p, os.R_OK):
        raise DataFileError(f"No permission to read {role} file {str(p)!r}.")
    return p
