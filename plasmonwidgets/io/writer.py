"""``save``: .hspy/.zspy (HyperSpy) or .npz, written so an interrupted save loses nothing.

Writes go to a temporary file in the target folder and are moved into place
(:mod:`plasmonwidgets._atomic`), so the user's path always names a complete file.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from .. import _atomic
from ..spectrum_image import SpectrumImage, _is_lazy
from .backend import quiet_reader
from .codec import GROUP, crc
from .errors import DataFileError
from .hyperspy import to_signals
from .npz import write_npz
from .paths import SAVE_FORMATS

log = logging.getLogger(__name__)


def save(si: SpectrumImage, path: str | os.PathLike, overwrite: bool = True) -> Path:
    """Write ``si`` to .hspy/.zspy (HyperSpy) or .npz; :func:`load` reads it back exactly.

    The file is first written under a temporary name in the same folder and then moved
    into place, so an interrupted or failed save leaves any previous file untouched.
    A lazy SI is streamed chunk by chunk to .hspy/.zspy (and read whole for .npz).

    Returns the path written. Raises FileExistsError when the file exists and
    ``overwrite`` is False, DataFileError for an unsupported extension or missing folder,
    TypeError when ``si.metadata`` holds something that cannot be stored.

    Examples
    --------
    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> import pathlib, tempfile
    >>> path = save(si, pathlib.Path(tempfile.mkdtemp()) / "scan.hspy")
    >>> path.suffix
    '.hspy'
    """
    if not isinstance(si, SpectrumImage):
        raise TypeError(f"save expects a SpectrumImage, got {type(si).__name__}")
    p = Path(path).expanduser()
    ext = p.suffix.lower()
    if ext not in SAVE_FORMATS:
        raise DataFileError(f"Cannot save to {str(p)!r}: extension {ext or '(none)'!r} is not "
                            f"one plasmonwidgets writes; use {', '.join(SAVE_FORMATS)}.")
    if not p.parent.is_dir():
        raise DataFileError(f"Cannot save to {str(p)!r}: the folder {str(p.parent)!r} does not "
                            "exist; create it first.")
    _atomic.recover(p)  # finish or clean up an earlier save that was interrupted
    if p.exists():
        if not overwrite:
            raise FileExistsError(f"{str(p)!r} already exists; pass overwrite=True to replace it.")
        if p.is_dir() and ext != ".zspy":
            raise DataFileError(f"Cannot save to {str(p)!r}: a folder of that name exists.")
    tmp = _atomic.temp_path(p)
    try:
        if ext == ".npz":
            write_npz(si, tmp)
        else:
            write_hyperspy(si, tmp)
        _atomic.move_into_place(tmp, p)
    except BaseException:
        _atomic.remove(tmp)
        raise
    log.info("saved %r to %s", si, p)
    return p


def write_hyperspy(si: SpectrumImage, tmp: Path) -> None:
    """Write ``si`` to ``tmp`` as one HyperSpy EELS signal with checksums (.hspy/.zspy).

    Examples
    --------
    Called by :func:`save`, which picks the temporary name and moves the file into place:

    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> import pathlib, tempfile
    >>> tmp = pathlib.Path(tempfile.mkdtemp()) / "scan.hspy"
    >>> write_hyperspy(si, tmp)
    >>> tmp.exists()
    True
    """
    eels, _ = to_signals(si, copy=False, strict=True)
    sums = {"spectra": None if si.is_lazy else crc(si.spectra),
            "haadf": None if _is_lazy(si.haadf) else crc(si.haadf)}
    eels.metadata.set_item(f"{GROUP}.checksums", json.dumps(sums))
    with quiet_reader():
        eels.save(str(tmp), overwrite=True)
    if tmp.is_file():
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
