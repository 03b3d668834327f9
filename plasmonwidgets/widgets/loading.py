"""Loading a user's file for a served page: names the user knows, no server paths.

The dashboard runs on a server; what it shows goes to whoever opened the page. So

- a file is named as the user knows it: the name it was uploaded under, or its path
  relative to the data folder (``display_name`` of :func:`plasmonwidgets.load`);
- warnings raised while loading are *collected* (``warnings.catch_warnings``) and
  returned as text for the page to show, instead of going to the page's stderr stream
  with the server's paths in them;
- :func:`redact_paths` rewrites any path left in a message as the name the user knows,
  and strips the folders of any other absolute path, as a last line of defence.

Uploads get a lower memory budget than files from the data folder
(:data:`UPLOAD_MEMORY_BUDGET`): a small upload that declares a huge array is read
lazily, or refused, long before it could exhaust the server.
"""

from __future__ import annotations

import inspect
import os
import re
import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["UPLOAD_MEMORY_BUDGET", "check_file", "for_the_user", "load_quietly", "redact_paths",
           "upload_budget"]

#: bytes of decoded data an uploaded file may load eagerly (at most; see upload_budget)
UPLOAD_MEMORY_BUDGET = 1024**3

# an absolute POSIX path of two or more components, not part of a word, a ratio like counts/eV
# or a path already shown relative to a label such as <data folder>/
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~/>-])/(?:[\w.+@-]+/)+([\w.+@-]+)")


def redact_paths(text: str, names: Mapping[str, str] | Iterable[tuple[str, str]] = ()) -> str:
    """``text`` with server paths replaced by what the user may see.

    Parameters
    ----------
    text : a message (error, warning) that may contain paths.
    names : (server path, shown name) pairs, e.g. an upload's temporary path and the
        name it was uploaded under; longer paths are replaced first. Any absolute path
        still left is reduced to its last component.

    Examples
    --------
    >>> redact_paths("cannot read /tmp/up-x1/scan.dm4", {"/tmp/up-x1/scan.dm4": "my scan.dm4"})
    'cannot read my scan.dm4'
    >>> redact_paths("unknown dataset in /srv/data/a/b.hspy; use counts/eV")
    'unknown dataset in b.hspy; use counts/eV'
    """
    pairs = list(names.items()) if isinstance(names, Mapping) else list(names)
    for path, shown in sorted(pairs, key=lambda p: -len(p[0])):
        if path and path not in ("/", "."):
            text = text.replace(path, shown)
    return _ABSOLUTE_PATH.sub(r"\1", text)


def for_the_user(caught: Iterable[warnings.WarningMessage]) -> list[str]:
    """``"Category: message"`` for the recorded warnings a user should read, each once.

    Deprecation and future warnings speak to developers about library internals; they
    are left out.

    Examples
    --------
    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     warnings.warn("no units; assuming eV")
    ...     warnings.warn("old API", DeprecationWarning)
    >>> for_the_user(caught)
    ['UserWarning: no units; assuming eV']
    """
    texts: list[str] = []
    for w in caught:
        if issubclass(w.category, (DeprecationWarning, PendingDeprecationWarning, FutureWarning)):
            continue
        text = f"{w.category.__name__}: {w.message}"
        if text not in texts:
            texts.append(text)
    return texts


def upload_budget() -> int:
    """Memory budget (bytes) for an uploaded file: the library default, capped at 1 GiB.

    Examples
    --------
    >>> 0 < upload_budget() <= 2**30
    True
    """
    try:
        from ..io import default_memory_budget
    except ImportError:  # a core without memory budgets: the cap alone
        return UPLOAD_MEMORY_BUDGET
    return int(min(default_memory_budget(), UPLOAD_MEMORY_BUDGET))


def _supported(fn: Any, *names: str) -> dict[str, bool]:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return dict.fromkeys(names, False)
    return {n: n in params for n in names}


def check_file(path: str | os.PathLike, *, display_name: str,
               memory_budget: int | None = None) -> str | None:
    """Why ``path`` would be refused by the loader (a sentence naming ``display_name``), or None.

    Uses the loader's header-only check (``plasmonwidgets.io.check_data_file``): it reads
    no bulk data, so a file chooser can call it for every file it lists.

    Examples
    --------
    None for a readable file within the budget:

    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> import pathlib, tempfile
    >>> path = si.save(pathlib.Path(tempfile.mkdtemp()) / "scan.npz")
    >>> check_file(path, display_name="scan.npz") is None
    True
    """
    try:
        from ..io import DataFileError, check_data_file
    except ImportError:  # a core without the header check: nothing is refused here
        return None
    kwargs: dict[str, Any] = {"display_name": display_name}
    if memory_budget is not None:
        kwargs["memory_budget"] = int(memory_budget)
    try:
        check_data_file(path, **kwargs)
    except DataFileError as exc:
        return redact_paths(str(exc), {str(path): display_name})
    except OSError as exc:  # vanished or unreadable since it was listed
        return f"{display_name}: cannot be read ({exc.strerror or type(exc).__name__})"
    return None


def load_quietly(path: str | os.PathLike, haadf: str | os.PathLike | None = None, *,
                 display_name: str, haadf_display_name: str | None = None,
                 memory_budget: int | None = None) -> tuple[Any, list[str]]:
    """``pw.load`` a user's file; returns ``(spectrum_image, warning_texts)``.

    Warnings are recorded rather than printed, and each is returned once as text with
    the server paths replaced by the display names. Errors propagate (the caller shows
    them through :func:`redact_paths`).

    Examples
    --------
    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> import pathlib, tempfile
    >>> path = si.save(pathlib.Path(tempfile.mkdtemp()) / "scan.npz")
    >>> loaded, warned = load_quietly(path, display_name="scan.npz")
    >>> loaded.spectra.shape, warned
    ((12, 12, 32), [])
    """
    from ..io import load

    kwargs: dict[str, Any] = {}
    can = _supported(load, "display_name", "memory_budget")
    if can["display_name"]:
        kwargs["display_name"] = display_name
    if memory_budget is not None and can["memory_budget"]:
        kwargs["memory_budget"] = int(memory_budget)
    names = {str(path): display_name, str(Path(path).resolve()): display_name}
    if haadf is not None:
        shown = haadf_display_name or Path(haadf).name
        names.update({str(haadf): shown, str(Path(haadf).resolve()): shown})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        si = load(path, haadf=haadf, **kwargs)
    return si, [redact_paths(text, names) for text in for_the_user(caught)]
