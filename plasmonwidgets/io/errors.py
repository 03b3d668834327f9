"""The one error class of the data layer."""

from __future__ import annotations

__all__ = ["DataFileError"]


class DataFileError(ValueError):
    """A data file cannot be used: missing, unreadable, damaged, or not what was expected.

    The message names the file, says what is wrong and what to do about it.

    Examples
    --------
    >>> import plasmonwidgets as pw
    >>> try:
    ...     pw.load("missing.hspy")
    ... except pw.DataFileError as exc:
    ...     print(str(exc).split(" does not")[0])
    Spectrum image file 'missing.hspy'
    """
