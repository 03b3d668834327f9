"""DataFileChooser: pick a data file inside one folder, or upload one, safely.

A dashboard served to other people must not become a file browser for the
server. The chooser therefore

- lists only the data folder it was given (``root``, default the environment
  variable ``PLASMONWIDGETS_DATA_DIR``, else the working directory) and its
  sub-folders; every path is resolved (symlinks included) and refused unless it
  lies inside ``root``;
- shows only files with a supported extension (HyperSpy/RosettaSciIO formats) that
  the loader's header check (``plasmonwidgets.io.check_data_file``) accepts: files that
  would be refused (HDF5 external storage or links, zarr stores with links inside,
  inconsistent archives...) are not listed, and a line under the list says which were
  left out and why;
- accepts uploads up to ``max_upload_mb``, stores them under a sanitised name in
  a private temporary folder (removed by :meth:`close`), never in ``root``. Larger
  files are refused in the browser before they are sent; accepted ones are streamed
  to disk in 1 MiB pieces (:class:`~plasmonwidgets.widgets.upload.ChunkedUpload`),
  so no upload exceeds the Jupyter server's 10 MiB websocket message limit.

The chooser does not load anything itself: :attr:`selected` holds the chosen
(SI, HAADF-or-None) paths and ``on_load`` callbacks receive them when the user
presses *Load*; :meth:`DataFileChooser.display_name` gives the name to show for a
path (the uploaded file's name, or the path relative to the data folder). No server
path reaches the page.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as ipw

from ..io.paths import FORMATS
from ._message import message_html
from .loading import check_file, redact_paths, upload_budget
from .upload import ChunkedUpload, too_large_message

__all__ = [
    "DATA_DIR_ENV",
    "DataFileChooser",
    "SUPPORTED_EXTENSIONS",
    "UnsafePathError",
    "resolve_inside",
    "sanitize_filename",
]

DATA_DIR_ENV = "PLASMONWIDGETS_DATA_DIR"

#: file name endings pw.load reads (DigitalMicrograph, Velox EMD, HyperSpy, numpy archive)
SUPPORTED_EXTENSIONS = tuple(FORMATS)

_PARENT = ".."

# Icons of the listing. A <select>'s entries are plain text, so the icons are Font Awesome
# 5 glyphs (private-use code points) drawn with the "Font Awesome 5 Free" font that Voila
# and JupyterLab serve themselves (regular weight: outline icons); emoji would need an
# emoji font, which microscope PCs rarely have. See _LIST_CSS.
_ICON_FOLDER = "\uf07b"  # fa-folder
_ICON_FILE = "\uf15b"  # fa-file
_ICON_UP = "\uf35b"  # fa-arrow-alt-circle-up
_LIST_CSS = (
    ".pw-file-list select { font-family: 'Font Awesome 5 Free', var(--jp-ui-font-family), "
    "sans-serif; font-weight: 400; }"
)
_SAFE_CHARS = re.compile(r"[^A-Za-z0-9._-]+")
_MAX_NAME = 100  # characters kept of an uploaded file name
_TOO_LARGE_HINT = "put the file in the data folder instead"


class UnsafePathError(ValueError):
    """A requested path lies outside the data folder (``..``, absolute path or symlink).

    Examples
    --------
    >>> import tempfile
    >>> try:
    ...     resolve_inside(tempfile.mkdtemp(), "../../etc/passwd")
    ... except UnsafePathError:
    ...     print("refused")
    refused
    """


def resolve_inside(root: str | os.PathLike, relative: str | os.PathLike) -> Path:
    """``root / relative`` fully resolved; raises UnsafePathError if it leaves ``root``.

    Symlinks are followed before the check, so a link pointing out of the folder is
    refused like ``../../etc/passwd`` or an absolute path would be.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> root = pathlib.Path(tempfile.mkdtemp()).resolve()
    >>> resolve_inside(root, "scans/a.dm4") == root / "scans" / "a.dm4"
    True
    """
    base = Path(root).resolve()
    target = (base / relative).resolve()
    if target != base and base not in target.parents:
        raise UnsafePathError(
            f"{str(relative)!r} is outside the data folder; choose a file inside it"
        )
    return target


def sanitize_filename(name: str) -> str:
    """A safe single-component file name for an uploaded file.

    Drops any directory part (``/`` or ``\\``), replaces characters other than
    letters, digits, ``.``, ``_`` and ``-`` with ``_``, strips leading dots (no
    hidden files, no ``..``) and keeps at most 100 characters, preserving the
    extension. Raises ValueError when nothing usable remains.

    Examples
    --------
    >>> sanitize_filename("../my scan (1).dm4")
    'my_scan_1.dm4'
    """
    base = re.split(r"[\\/]", str(name))[-1]
    cleaned = _SAFE_CHARS.sub("_", base).lstrip(".")
    stem, dot, ext = cleaned.rpartition(".")
    if not dot:
        stem, ext = cleaned, ""
    ext = ext[:10]
    stem = stem[: _MAX_NAME - len(ext) - 1].strip("._") or "upload"
    if not cleaned.strip("._"):
        raise ValueError(f"uploaded file name {name!r} has no usable characters; rename the file")
    return f"{stem}.{ext}" if ext else stem


def _is_data_file(path: Path) -> bool:
    suffix = path.suffix.lower()
    if suffix == ".zspy":  # a zarr store is a folder
        return path.exists()
    return path.is_file() and suffix in SUPPORTED_EXTENSIONS


class DataFileChooser(ipw.VBox):
    """Choose an SI file (and optionally a separate HAADF file) under ``root``, or upload.

    Parameters
    ----------
    root : folder the chooser may read; default ``$PLASMONWIDGETS_DATA_DIR`` or the
        working directory. It must exist.
    max_upload_mb : largest accepted upload, MB (per file).
    on_load : optional callback ``f(si_path, haadf_path_or_None)`` run on *Load*.

    Attributes (named children, for tests and scripting)
    ----------------------------------------------------
    folder : Select listing sub-folders (``name/``) and data files of the current folder
    haadf : Dropdown choosing an optional separate HAADF file from the same listing
    upload : ChunkedUpload (size checked in the browser, sent in 1 MiB pieces)
    load_button : Button
    status : HTML line (errors in red)
    hidden : HTML line naming the files of this folder that are not listed, and why

    Examples
    --------
    A chooser on a folder holding one saved SI (12 x 12 x 32):

    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = si.save(folder / "scan.npz")
    >>> chooser = DataFileChooser(folder)
    >>> chooser.select("scan.npz").name
    'scan.npz'
    """

    def __init__(
        self,
        root: str | os.PathLike | None = None,
        *,
        max_upload_mb: float = 200.0,
        on_load: Callable[[Path, Path | None], Any] | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        root = root if root is not None else os.environ.get(DATA_DIR_ENV) or os.getcwd()
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"data folder {self.root} does not exist; set {DATA_DIR_ENV} to an existing folder"
            )
        if not max_upload_mb > 0:
            raise ValueError(f"max_upload_mb must be > 0, got {max_upload_mb}")
        self.max_upload_bytes = int(max_upload_mb * 1024 * 1024)
        self._callbacks: list[Callable[[Path, Path | None], Any]] = []
        if on_load is not None:
            self._callbacks.append(on_load)
        self._cwd = self.root
        self._upload_dir: Path | None = None
        self.uploaded: list[Path] = []
        self._upload_names: dict[Path, str] = {}  # stored path -> the name it was uploaded as
        #: files of the current folder left out of the listing -> why (names as shown)
        self.refused: dict[str, str] = {}

        self.location = ipw.HTML()
        self.folder = ipw.Select(options=[], rows=8, layout={"width": "420px"})
        self.folder.add_class("pw-file-list")
        self.haadf = ipw.Dropdown(
            options=[("(none: HAADF inside the SI file)", None)],
            description="HAADF",
            layout={"width": "420px"},
        )
        self.haadf.style.description_width = "60px"
        accept = ",".join(e for e in SUPPORTED_EXTENSIONS if e != ".zspy")
        self.upload = ChunkedUpload(
            destination=self._upload_path, accept=accept, multiple=True, description="Upload",
            max_bytes=self.max_upload_bytes, too_large_hint=_TOO_LARGE_HINT,
        )  # fmt: skip
        self.load_button = ipw.Button(
            description="Load", button_style="primary", icon="folder-open",
            disabled=True, layout={"width": "140px"},
        )  # fmt: skip
        self.status = ipw.HTML()
        self.hidden = ipw.HTML()
        self.children = [
            ipw.HTML(f"<style>{_LIST_CSS}</style>", layout={"display": "none"}),
            self.location,
            self.folder,
            self.hidden,
            self.haadf,
            ipw.HBox([self.load_button, self.upload]),
            ipw.HTML(
                f"<small>Formats: {', '.join(SUPPORTED_EXTENSIONS)}; uploads up to "
                f"{max_upload_mb:g} MB each.</small>"
            ),
            self.status,
        ]
        self.folder.observe(self._on_folder_value, "value")
        self.upload.on_file(self._on_uploaded)
        self.upload.on_problem(self._on_upload_problem)
        self.load_button.on_click(lambda _b: self.load())
        self.refresh()

    # -- public API ----------------------------------------------------------------
    def on_load(self, callback: Callable[[Path, Path | None], Any]) -> None:
        """Register ``callback(si_path, haadf_path_or_None)`` for the *Load* button."""
        self._callbacks.append(callback)

    def display_name(self, path: str | os.PathLike) -> str:
        """How ``path`` is named on the page: an upload by the name it was uploaded as, a
        file in the data folder by its path relative to the folder."""
        path = Path(path)
        if path in self._upload_names:
            return self._upload_names[path]
        try:
            return path.resolve().relative_to(self.root).as_posix()
        except ValueError:
            return path.name

    def is_upload(self, path: str | os.PathLike) -> bool:
        """True for a file stored by an upload (loaded with the lower upload memory budget)."""
        return Path(path) in self._upload_names

    @property
    def cwd(self) -> Path:
        """The folder being listed (inside ``root``)."""
        return self._cwd

    @property
    def selected(self) -> tuple[Path | None, Path | None]:
        """(SI path, HAADF path or None) currently chosen."""
        value = self.folder.value
        si = None if value in (None, _PARENT) or str(value).endswith("/") else self._path(value)
        return si, self.haadf.value

    def select(self, relative: str, haadf: str | None = None) -> Path:
        """Choose a data file by its path relative to ``root`` (opens its folder).

        Raises UnsafePathError outside ``root`` and FileNotFoundError when it is not a
        supported data file.
        """
        path = resolve_inside(self.root, relative)
        if not _is_data_file(path):
            raise FileNotFoundError(
                f"{relative!r} is not a data file in the data folder (supported: "
                f"{', '.join(SUPPORTED_EXTENSIONS)})"
            )
        reason = check_file(path, display_name=self.display_name(path))
        if reason is not None:
            raise ValueError(reason)
        self.change_dir(path.parent)
        self.folder.value = path.name
        if haadf is not None:
            self.set_haadf(resolve_inside(self.root, haadf))
        return path

    def set_haadf(self, path: Path | None) -> None:
        """Choose a separate HAADF file (an absolute path already listed) or None."""
        values = [v for _, v in self.haadf.options]
        if path is not None and path not in values:
            raise FileNotFoundError(f"{path.name} is not listed as a HAADF candidate")
        self.haadf.value = path

    def change_dir(self, folder: str | os.PathLike) -> None:
        """List ``folder`` (absolute, or relative to ``root``); it must be inside ``root``."""
        path = resolve_inside(self.root, folder)
        if not path.is_dir():
            raise FileNotFoundError(f"{folder!r} is not a folder inside the data folder")
        self._cwd = path
        self.refresh()

    def refresh(self) -> None:
        """Re-read the current folder and the uploads."""
        entries: list[tuple[str, str]] = []
        if self._cwd != self.root:
            entries.append((f"{_ICON_UP}  parent folder", _PARENT))
        files: list[Path] = []
        try:
            children = sorted(self._cwd.iterdir(), key=lambda p: p.name.lower())
        except OSError as exc:
            self._error(f"cannot list the folder: {exc.strerror or exc}")
            children = []
        self.refused = {}
        for child in children:
            if child.name.startswith("."):
                continue
            try:
                resolve_inside(self.root, child)  # skip links leading out of root
            except UnsafePathError:
                continue
            if child.is_dir() and child.suffix.lower() != ".zspy":
                entries.append((f"{_ICON_FOLDER}  {child.name}/", f"{child.name}/"))
            elif _is_data_file(child):
                # never list what loading would refuse (header-only check, no bulk read)
                reason = check_file(child, display_name=self.display_name(child))
                if reason is not None:
                    self.refused[child.name] = reason
                    continue
                files.append(child)
                entries.append((f"{_ICON_FILE}  {child.name}  ({_size(child)})", child.name))
        for path in self.uploaded:
            files.append(path)
            entries.append((f"{_ICON_FILE}  {path.name}  (uploaded, {_size(path)})", str(path)))
        rel = self._cwd.relative_to(self.root)
        self.location.value = (
            f"<b>Data folder</b> <code>{_html(self.root.name or str(self.root))}/"
            f"{'' if str(rel) == '.' else _html(str(rel)) + '/'}</code>"
        )
        # replacing options re-selects inside ipywidgets; the listing itself is no user choice
        self.folder.unobserve(self._on_folder_value, "value")
        try:
            self.folder.options = entries
            self.folder.value = None
        finally:
            self.folder.observe(self._on_folder_value, "value")
        self.haadf.options = [("(none: HAADF inside the SI file)", None)] + [
            (p.name, p) for p in files
        ]
        self.haadf.value = None
        self.load_button.disabled = True
        self.hidden.value = message_html(
            f"{len(self.refused)} file(s) here cannot be loaded and are not listed: "
            + "; ".join(self.refused.values()), "warning") if self.refused else ""
        if not files and not any(v.endswith("/") for _, v in entries):
            self._info("No data files here; upload one or choose another folder.")

    def load(self) -> tuple[Path, Path | None]:
        """Run the on_load callbacks with the current selection and return it."""
        si, haadf = self.selected
        if si is None:
            raise ValueError("choose a data file first (click one in the list) or upload one")
        if haadf is not None and haadf == si:
            raise ValueError("the HAADF file must differ from the SI file; choose (none) or another")
        for callback in self._callbacks:
            callback(si, haadf)
        return si, haadf

    def save_upload(self, name: str, content: bytes | memoryview) -> Path:
        """Store one uploaded file under a sanitised name in the private upload folder.

        Raises ValueError for a file over the size limit, of an unsupported type, or one
        the loader's header check refuses (it is deleted again). (Browser uploads are
        streamed to the same kind of path by :attr:`upload`.)
        """
        data = memoryview(content).cast("B")
        path = self._upload_path(name, data.nbytes)
        try:
            with open(path, "xb") as handle:
                handle.write(data)
        except OSError:
            path.unlink(missing_ok=True)
            raise
        reason = check_file(path, display_name=self.display_name(path), memory_budget=upload_budget())
        if reason is not None:
            path.unlink(missing_ok=True)
            raise ValueError(f"{reason.rstrip('. ')}; the uploaded file was deleted")
        self.uploaded.append(path)
        return path

    def _upload_path(self, name: str, size: int) -> Path:
        """A new, not yet existing path for an upload of ``size`` bytes named ``name``.

        The name is sanitised (no directories, no hidden files) and made unique inside
        the private upload folder. Raises ValueError over the size limit or for an
        unsupported file type.
        """
        if size > self.max_upload_bytes:
            raise ValueError(too_large_message(name, size, self.max_upload_bytes, _TOO_LARGE_HINT))
        safe = sanitize_filename(name)
        if Path(safe).suffix.lower() not in SUPPORTED_EXTENSIONS or safe.lower().endswith(".zspy"):
            raise ValueError(
                f"{name!r} is not a supported file type; upload one of "
                f"{', '.join(e for e in SUPPORTED_EXTENSIONS if e != '.zspy')}"
            )
        if self._upload_dir is None:
            self._upload_dir = Path(tempfile.mkdtemp(prefix="plasmonwidgets-upload-"))
        path = self._upload_dir / safe
        stem, suffix, n = path.stem, path.suffix, 1
        while path.exists():  # never overwrite an earlier upload (or one still arriving)
            path = self._upload_dir / f"{stem}-{n}{suffix}"
            n += 1
        # shown as the user named it (escaped where shown), never as the server's path
        self._upload_names[path] = re.split(r"[\\/]", str(name))[-1][:_MAX_NAME] or safe
        return path

    def close(self) -> None:
        """Stop uploads in progress, delete the uploaded files and close the widget."""
        self.upload.close()
        if self._upload_dir is not None:
            shutil.rmtree(self._upload_dir, ignore_errors=True)
            self._upload_dir = None
            self.uploaded = []
            self._upload_names = {}
        super().close()

    # -- internals -------------------------------------------------------------------
    def _path(self, value: str) -> Path:
        if os.path.isabs(value):  # an uploaded file: must be one we stored
            path = Path(value)
            if path not in self.uploaded:
                raise UnsafePathError("unknown uploaded file")
            return path
        return resolve_inside(self.root, self._cwd / value)

    def _on_folder_value(self, change: dict) -> None:
        value = change["new"]
        self.load_button.disabled = True
        if value is None:
            return
        try:
            if value == _PARENT:
                self.change_dir(self._cwd.parent)
            elif value.endswith("/"):
                self.change_dir(self._cwd / value)
            else:
                path = self._path(value)
                self.load_button.disabled = False
                self._info(f"Selected <code>{_html(path.name)}</code> ({_size(path)}); press Load.")
        except (OSError, ValueError) as exc:
            self._error(str(exc))

    def _on_uploaded(self, path: Path) -> None:
        """A file is completely stored: check it, then list it and select it."""
        name = self.display_name(path)
        reason = check_file(path, display_name=name, memory_budget=upload_budget())
        if reason is not None:  # never listed, never kept
            path.unlink(missing_ok=True)
            self._upload_names.pop(path, None)
            self.upload.problems.append(f"{reason.rstrip('. ')}; the uploaded file was deleted")
            self._error("; ".join(self.upload.problems))
            return
        self.uploaded.append(path)
        self.refresh()
        self.folder.value = str(path)
        if self.upload.problems:  # other files of the same selection failed: say so
            self._error("; ".join(self.upload.problems))

    def _on_upload_problem(self, _message: str) -> None:
        self._error("; ".join(self.upload.problems))

    def _info(self, text: str) -> None:
        self.status.value = f"<span class='pw-chooser-info'>{text}</span>"

    def _error(self, text: str) -> None:
        self.status.value = message_html(self.redact(text))

    def redact(self, text: str) -> str:
        """``text`` with server paths replaced: uploads by their names, the data folder by
        ``<data folder>``, any other absolute path by its last component."""
        return redact_paths(text, self.redactions())

    def redactions(self) -> dict[str, str]:
        """Server path -> what the page may show instead, for :func:`~.loading.redact_paths`."""
        names = {str(p): n for p, n in self._upload_names.items()}
        names[str(self.root)] = "<data folder>"
        if self._upload_dir is not None:
            names[str(self._upload_dir)] = "<uploads>"
        return names


def _size(path: Path) -> str:
    try:
        if path.is_dir():
            n = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
        else:
            n = path.stat().st_size
    except OSError:
        return "?"
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
