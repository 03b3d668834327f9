"""How a data file is named in messages.

A file loaded for a web page (an upload in a server's temporary folder, a file in a
data folder) must be named as the user knows it: its display name. :func:`messages_as`
rewrites the errors and warnings raised while loading so server paths never appear, and
re-issues warnings at the caller's line. :func:`lazy_read_errors` turns read failures of
lazily loaded data (the file changed or was truncated after it was opened) into a
:class:`DataFileError` naming the file.

Example
-------
>>> with lazy_read_errors("scan.hspy"):       # doctest: +SKIP
...     image = si.spectra.sum(axis=-1).compute()
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

from .errors import DataFileError

__all__ = ["caller_stacklevel", "lazy_read_errors", "messages_as", "warn_user"]

# plasmonwidgets/, two levels up from plasmonwidgets/io/names.py
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_CONTEXTLIB = os.path.abspath(contextlib.__file__)
# modules whose exceptions mean "the stored data could not be read"
_READER_MODULES = ("h5py", "zarr", "numcodecs", "blosc", "rsciio", "hdf5plugin")


def caller_stacklevel() -> int:
    """``stacklevel`` for a :func:`warnings.warn` call made by the function calling this
    one, pointing at the first frame outside plasmonwidgets (the user's line); frames of
    ``contextlib`` (a ``with`` block's exit) are skipped too.

    Examples
    --------
    Used inside the package, as ``warnings.warn(text, stacklevel=caller_stacklevel())``:

    >>> caller_stacklevel() >= 1
    True
    """
    frame, level = sys._getframe(1), 1
    while frame is not None and _internal(frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    return level


def warn_user(message: str) -> None:
    """UserWarning attributed to the first caller outside plasmonwidgets (the user's line).

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warn_user("the energy axis has no units; assuming eV.")
    >>> caught[0].category.__name__
    'UserWarning'
    """
    warnings.warn(message, UserWarning, stacklevel=caller_stacklevel())


def _internal(filename: str) -> bool:
    path = os.path.abspath(filename)
    return path.startswith(_PACKAGE_DIR + os.sep) or path == _CONTEXTLIB


class _Scrubber:
    """Replaces server paths by display names in a text."""

    def __init__(self, names: dict[Path, str]):
        pairs: list[tuple[str, str]] = []
        folders: set[str] = set()
        for path, shown in names.items():
            for variant in {str(path), os.path.abspath(path), os.path.realpath(path)}:
                pairs += [(variant, shown), (repr(variant)[1:-1], shown)]
                folders.add(os.path.dirname(variant))
        # longest first, so a full path is replaced before its folder
        self.pairs = sorted(set(pairs), key=lambda kv: -len(kv[0]))
        self.folders = sorted((f for f in folders if len(f) > 1), key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for old, new in self.pairs:
            text = text.replace(old, new)
        for folder in self.folders:  # any other file in those folders: name only
            text = text.replace(folder + os.sep, "").replace(folder, "(upload folder)")
        return text


@contextlib.contextmanager
def messages_as(names: dict[Path, str] | None) -> Iterator[None]:
    """Within the block, re-issue warnings at the caller's line and, for the paths in
    ``names`` (server path -> display name), show the display name in every warning and
    :class:`DataFileError` instead of the path (the original error is not chained, so
    tracebacks shown to a user hold no path either).

    Examples
    --------
    A server path in a warning is shown as the name the user uploaded:

    >>> import pathlib, warnings
    >>> server = pathlib.Path("/srv/uploads/u123.dm4")
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     with messages_as({server: "scan.dm4"}):
    ...         warn_user(f"{server}: the energy axis has no units; assuming eV.")
    >>> "scan.dm4" in str(caught[0].message), "/srv" in str(caught[0].message)
    (True, False)
    """
    scrub = _Scrubber(names) if names else (lambda text: text)
    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    except DataFileError as exc:
        _reissue(caught, scrub)
        if not names:
            raise
        raise DataFileError(scrub(str(exc))) from None
    _reissue(caught, scrub)


def _reissue(caught: list, scrub) -> None:
    for w in caught:
        text = scrub(str(w.message))
        if issubclass(w.category, DeprecationWarning) or "Deprecation" in w.category.__name__:
            # the library's concern, not the user's line: keep where it came from
            warnings.warn_explicit(text, w.category, w.filename, w.lineno)
        else:
            warnings.warn(text, w.category, stacklevel=caller_stacklevel())


def _is_read_error(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return True
    return type(exc).__module__.split(".")[0] in _READER_MODULES


@contextlib.contextmanager
def lazy_read_errors(display_name: str) -> Iterator[None]:
    """Turn errors reading lazily loaded data into a :class:`DataFileError` naming the file.

    Wrap ``.compute()`` (or anything that reads a lazy SpectrumImage's spectra) with it;
    ``display_name`` is ``si.metadata["source"]["name"]``.

    Examples
    --------
    >>> si = pw.load("big.zspy", lazy=True)          # doctest: +SKIP
    >>> with lazy_read_errors("big.zspy"):           # doctest: +SKIP
    ...     si = si.compute()
    """
    try:
        yield
    except DataFileError:
        raise
    except Exception as exc:
        if not _is_read_error(exc):
            raise
        raise DataFileError(
            f"Cannot read the data of {display_name!r}: {type(exc).__name__}: {exc}. The file "
            "was changed, truncated or removed after it was opened lazily; load it again "
            "(or copy it again from the original).") from None
