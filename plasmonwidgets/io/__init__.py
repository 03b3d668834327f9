"""Reading and writing spectrum images: real instrument files and our own formats.

``load`` reads DigitalMicrograph (.dm3/.dm4), EMD (Velox and Berkeley), HyperSpy
(.hspy/.zspy) through HyperSpy/RosettaSciIO, plus the plasmonwidgets .npz format.
It picks the EELS spectrum image (SI) and the HAADF/ADF/DF image acquired with it,
says which it picked, and turns every reader failure into a :class:`DataFileError`
that names the file, what is wrong and what to do.

``save`` writes .hspy/.zspy (one EELS signal; the HAADF, the exact energy axis and
our metadata ride inside its ``metadata.plasmonwidgets`` group, so one file holds
everything) or .npz (plain arrays + a JSON header, read with ``allow_pickle=False``).
Writes go to a temporary file in the target folder and are moved into place, so an
interrupted save never destroys the previous file.

Modules, in the order ``load`` uses them:

========== ==============================================================
paths      supported formats; a bad path becomes a clear error
limits     header-only checks of hostile files; the memory budget
backend    HyperSpy imported lazily; reader failures explained
select     choosing the EELS SI and its HAADF among a file's signals
axes       units, calibration, fields of view
codec      our metadata, encoded to round-trip exactly
hyperspy   SpectrumImage <-> HyperSpy signals
npz        the plasmonwidgets .npz format
reader     ``load``
writer     ``save``
names      display names in messages; warnings at the user's line
========== ==============================================================

Examples
--------
>>> import plasmonwidgets as pw
>>> si = pw.load("scan.dm4")                       # doctest: +SKIP
>>> pw.io.save(si.crop(0.5, 5.0), "scan.hspy")   # doctest: +SKIP
"""

from __future__ import annotations

from .errors import DataFileError
from .hyperspy import NO_IMAGE, STAND_IN, from_hyperspy, to_hyperspy
from .limits import check_data_file, default_memory_budget
from .names import lazy_read_errors
from .reader import load
from .writer import save

__all__ = ["NO_IMAGE", "STAND_IN", "DataFileError", "check_data_file", "default_memory_budget",
           "from_hyperspy", "lazy_read_errors", "load", "save", "to_hyperspy"]
