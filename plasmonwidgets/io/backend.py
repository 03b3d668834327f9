"""HyperSpy/RosettaSciIO as our reader: imported lazily, quieted, failures explained.

HyperSpy takes seconds to import, so it is imported on first use and
``import plasmonwidgets`` stays fast. A failed read becomes a :class:`DataFileError` that
says whether the file is truncated, damaged or needs an optional reader package.
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from pathlib import Path
from typing import Any

from .errors import DataFileError
from .paths import FORMATS, cap

_HS: tuple[Any, Any] | None = None


def hyperspy_modules():
    """(hyperspy.api, exspy), imported on first use; exspy registers EELSSpectrum.

    Examples
    --------
    >>> hs, exspy = hyperspy_modules()
    >>> hs.__name__
    'hyperspy.api'
    """
    global _HS
    if _HS is None:
        with warnings.catch_warnings():
            # exspy imports a few names HyperSpy has deprecated; not the user's concern
            warnings.filterwarnings("ignore", message=r"Importing `.*` is deprecated")
            import exspy
            import hyperspy.api as hs
        _HS = (hs, exspy)
    return _HS


class _DropErrors(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR


@contextlib.contextmanager
def quiet_reader():
    """Silence HyperSpy's 'please report this to RosettaSciIO' log line on a failed read:
    our DataFileError already says what went wrong, and a damaged file is no reader bug.

    Examples
    --------
    >>> with quiet_reader():
    ...     pass                                     # hs.load(...) here logs no reader noise
    """
    logger = logging.getLogger("hyperspy.io")
    flt = _DropErrors()
    logger.addFilter(flt)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"Importing `.*` is deprecated")
            # rsciio's .zspy writer uses a zarr-2 store that zarr 3 will drop; not actionable
            warnings.filterwarnings("ignore", message=r"The NestedDirectoryStore is deprecated")
            yield
    finally:
        logger.removeFilter(flt)


def hs_load(path: Path, lazy: bool, role: str) -> list:
    """All signals in a file, as a list; reader failures become DataFileError.

    Examples
    --------
    >>> signals = hs_load(Path("scan.emd"), lazy=True, role="")  # doctest: +SKIP
    >>> [type(s).__name__ for s in signals]          # doctest: +SKIP
    ['LazyEELSSpectrum', 'LazySignal2D']
    """
    hs, _ = hyperspy_modules()
    fmt = FORMATS[path.suffix.lower()]
    try:
        with quiet_reader():
            out = hs.load(str(path), lazy=lazy, escape_square_brackets=True)
    except ImportError as exc:
        raise DataFileError(
            f"Cannot read {role} file {str(path)!r}: the {fmt} reader needs an optional package "
            f"({exc}). Install it, e.g. pip install 'rosettasciio[zspy]' for .zspy."
        ) from exc
    except MemoryError as exc:
        raise DataFileError(
            f"Not enough memory to read {role} file {str(path)!r}; load it with lazy=True."
        ) from exc
    except Exception as exc:
        raise DataFileError(_reader_failure(path, exc, role)) from exc
    signals = out if isinstance(out, list) else [out]
    if not signals:
        raise DataFileError(f"{cap(role)} file {str(path)!r} contains no signals.")
    return signals


def exc_name(exc: BaseException) -> str:
    """The exception's class name, with its module unless it is a builtin.

    Examples
    --------
    >>> exc_name(ValueError("x")), exc_name(__import__("json").JSONDecodeError("x", "", 0))
    ('ValueError', 'json.decoder.JSONDecodeError')
    """
    cls = type(exc)
    return cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__name__}"


def _reader_failure(path: Path, exc: Exception, role: str) -> str:
    fmt = FORMATS[path.suffix.lower()]
    size = path.stat().st_size if path.is_file() else None
    m = re.search(r"eof = (\d+).*stored_eof = (\d+)", str(exc))
    if m:
        return (
            f"Cannot read {role} file {str(path)!r}: it is truncated ({m.group(1)} bytes on disk, "
            f"but its header says {m.group(2)}), probably an interrupted copy or download. "
            "Copy it again from the original."
        )
    size_txt = f" ({size} bytes)" if size is not None else ""
    return (
        f"Cannot read {role} file {str(path)!r}{size_txt} as {fmt}: the reader failed with "
        f"{exc_name(exc)}: {exc}. The file is probably truncated or damaged (an "
        f"interrupted copy?) or is not really a {path.suffix} file. Compare its size with the "
        "original and copy or export it again."
    )
