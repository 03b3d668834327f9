"""Header-only inspection of data files before any reader touches their data.

A data file may come from anyone (an upload, a shared folder), so before HyperSpy reads
it we look at its own headers, cheaply, and refuse what would read bytes from outside
the file or exhaust memory:

- HDF5 (.hspy, .emd, .h5): external storage, external links, virtual datasets, user-
  defined links and soft links that dangle are refused (they make the reader open other
  files on the server);
- zarr (.zspy folders): symlinks or special files anywhere in the store are refused;
- .npz: members must be plain .npy whose header, zip size and compression agree, so a
  zip bomb is refused before anything is inflated;
- DigitalMicrograph: the header's declared length must fit the file.

:func:`check_data_file` returns the declared uncompressed size of the data, which the
loader compares with :func:`default_memory_budget` to decide whether to load lazily.

Example
-------
>>> size = check_data_file("scan.hspy", display_name="scan.hspy")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DataFileError

__all__ = ["check_data_file", "default_memory_budget", "fmt_bytes", "inspect_data_file", "parse_bytes"]

#: fraction of the available memory one file may take when loaded whole
BUDGET_FRACTION = 0.25
BUDGET_ENV = "PLASMONWIDGETS_MEMORY_BUDGET"
#: deflate reaches ~1000:1 only on constant data; real .npy members stay far below this
MAX_NPZ_RATIO = 100
_HDF5 = (".hspy", ".emd", ".h5", ".hdf5", ".hdf")
_DM = (".dm3", ".dm4")
# dataset names HyperSpy / RosettaSciIO read lazily; every other dataset is read eagerly
_LAZY_NAMES = ("data", "Data")


@dataclass(frozen=True)
class Inspection:
    """What a file's headers declare, in bytes.

    ``total``: uncompressed size of all arrays a reader would load;
    ``eager``: the part a lazy load still reads at once (metadata arrays, .npz members).
    """

    total: int
    eager: int


# --------------------------------------------------------------------------- budget
_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 10**3, "kib": 2**10, "m": 2**20, "mb": 10**6,
          "mib": 2**20, "g": 2**30, "gb": 10**9, "gib": 2**30, "t": 2**40, "tb": 10**12,
          "tib": 2**40}


def parse_bytes(text: str) -> int:
    """'2GiB', '500 MB', '1e9' -> bytes (int). Raises ValueError on anything else.

    Examples
    --------
    >>> parse_bytes("2GiB"), parse_bytes("500 MB"), parse_bytes("1e9")
    (2147483648, 500000000, 1000000000)
    """
    m = re.fullmatch(r"\s*([0-9.eE+]+)\s*([A-Za-z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(f"cannot read {text!r} as a size in bytes; use e.g. 2000000000, "
                         "'2GiB' or '500MB'")
    value = float(m.group(1)) * _UNITS[m.group(2).lower()]
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"a memory budget must be a positive size, got {text!r}")
    return int(value)


def _available_memory() -> int | None:
    """Bytes this process can still allocate: the smallest of the system's available
    memory, the cgroup (container) limit left and the address-space limit."""
    limits = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    limits.append(int(line.split()[1]) * 1024)
    except OSError:
        try:
            limits.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            pass
    try:
        cap = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if cap.isdigit():
            used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
            limits.append(max(int(cap) - used, 0))
    except (OSError, ValueError):
        pass
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_AS)
        if soft != resource.RLIM_INFINITY:
            limits.append(soft)
    except (ImportError, OSError, ValueError):
        pass
    return min(limits) if limits else None


def default_memory_budget() -> int:
    """Bytes one loaded file may occupy in memory.

    ``PLASMONWIDGETS_MEMORY_BUDGET`` (bytes, or e.g. ``"2GiB"``) when set, else a quarter of
    the memory available to this process (system, container and address-space limits);
    2 GiB when that cannot be found out.

    Examples
    --------
    >>> default_memory_budget() > 0
    True
    """
    env = os.environ.get(BUDGET_ENV)
    if env:
        try:
            return parse_bytes(env)
        except ValueError as exc:
            raise ValueError(f"environment variable {BUDGET_ENV}: {exc}") from None
    avail = _available_memory()
    return int(avail * BUDGET_FRACTION) if avail else 2 * 2**30


def fmt_bytes(n: float) -> str:
    """A byte count for people: "512 B", "1.5 KiB", "2.0 GiB".

    Examples
    --------
    >>> fmt_bytes(512), fmt_bytes(1536), fmt_bytes(2 * 2**30)
    ('512 B', '1.5 KiB', '2.0 GiB')
    """
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


# --------------------------------------------------------------------------- entry point
def check_data_file(path: str | os.PathLike, *, display_name: str | None = None,
                    memory_budget: int | None = None, role: str = "") -> int:
    """Inspect a data file's headers (never its bulk data) and refuse hostile files.

    Parameters
    ----------
    path : str or Path
        .hspy/.emd/.h5 (HDF5), .zspy (zarr folder), .npz, .dm3/.dm4.
    display_name : str, optional
        How the user knows the file (an upload's name); used in messages instead of
        ``path``.
    memory_budget : int, optional
        Bytes; default :func:`default_memory_budget`. Data that must be read at once
        (.npz members, HDF5 metadata arrays) beyond it is refused.
    role : str, optional
        What the file is for, in messages ("spectrum image", "HAADF").

    Returns
    -------
    int
        Declared uncompressed size in bytes of the arrays a reader would load.

    Raises
    ------
    DataFileError
        External storage or links, virtual datasets, dangling soft links, symlinks or
        special files in a store, inconsistent or over-budget .npz members, truncated
        or unreadable headers.

    Examples
    --------
    Returns the declared size in bytes of a file within the budget:

    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> import pathlib, tempfile
    >>> path = si.save(pathlib.Path(tempfile.mkdtemp()) / "scan.npz")
    >>> check_data_file(path) > 12 * 12 * 32 * 4     # the float32 spectra, at least
    True
    """
    budget = default_memory_budget() if memory_budget is None else int(memory_budget)
    found = inspect_data_file(path, display_name=display_name, role=role)
    if found.eager > budget:
        name = _named(path, display_name, role)
        raise DataFileError(
            f"{name[:1].upper()}{name[1:]} needs {fmt_bytes(found.eager)} in memory at once "
            f"(declared by its own headers), more than the memory budget of {fmt_bytes(budget)}"
            f". Use a machine with more memory or raise the budget ({BUDGET_ENV}) if the file "
            "is trusted.")
    return found.total


def inspect_data_file(path: str | os.PathLike, *, display_name: str | None = None,
                      role: str = "") -> Inspection:
    """Declared sizes of a data file (see :class:`Inspection`); refuses hostile files.

    Examples
    --------
    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> import pathlib, tempfile
    >>> path = si.save(pathlib.Path(tempfile.mkdtemp()) / "scan.npz")
    >>> inspect_data_file(path).total >= 12 * 12 * 32 * 4
    True
    """
    try:
        return _inspect(Path(path), _named(path, display_name, role))
    except DataFileError as exc:  # messages may start with the (lower-case) role
        text = str(exc)
        raise DataFileError(text[:1].upper() + text[1:]) from None


def _inspect(p: Path, name: str) -> Inspection:
    ext = p.suffix.lower()
    try:
        st = os.stat(p)
    except OSError as exc:
        raise DataFileError(f"Cannot read {name}: {exc.strerror or exc}.") from None
    if ext == ".zspy":
        if not stat.S_ISDIR(st.st_mode):
            raise DataFileError(f"{name} is not a folder; a .zspy store is a folder of files.")
        return _inspect_zarr(p, name)
    if not stat.S_ISREG(st.st_mode):
        raise DataFileError(f"{name} is not a regular file (a device, pipe or folder); pass a "
                            "data file.")
    if ext in _HDF5:
        return _inspect_hdf5(p, name, st.st_size)
    if ext == ".npz":
        return _inspect_npz(p, name)
    if ext in _DM:
        check_dm_header(p, name)
        return Inspection(st.st_size, 0)  # DM data are stored uncompressed in the file
    raise DataFileError(f"{name}: extension {ext or '(none)'!r} is not a data file "
                        "plasmonwidgets reads (.dm3, .dm4, .emd, .hspy, .zspy, .npz).")


def _named(path: str | os.PathLike, display_name: str | None, role: str = "") -> str:
    shown = repr(display_name if display_name is not None else str(path))
    return f"{role} file {shown}" if role else shown


# --------------------------------------------------------------------------- HDF5
def _inspect_hdf5(p: Path, name: str, size: int) -> Inspection:
    import h5py

    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        m = re.search(r"eof = (\d+).*stored_eof = (\d+)", str(exc))
        if m:
            raise DataFileError(
                f"Cannot read {name}: it is truncated ({m.group(1)} bytes on disk, but its "
                f"header says {m.group(2)}), probably an interrupted copy or download. Copy it "
                "again from the original.") from None
        raise DataFileError(
            f"Cannot read {name} ({size} bytes): it is not a readable HDF5 file ({exc}). It is "
            "probably truncated or damaged, or another kind of file renamed; copy or export "
            "it again.") from None
    with f:
        links: list[tuple[str, int]] = []
        try:
            f.id.links.visit(lambda n, info: links.append((n.decode(errors="replace"),
                                                           info.type)), info=True)
        except Exception as exc:
            raise DataFileError(f"Cannot read {name}: its HDF5 group structure is damaged "
                                f"({exc}); copy or export it again.") from None
        for link, kind in links:
            if kind == h5py.h5l.TYPE_EXTERNAL:
                raise DataFileError(
                    f"{name} is refused: its HDF5 entry {link!r} is an external link to "
                    "another file. Files must be self-contained; export the data again into "
                    "one file.")
            if kind not in (h5py.h5l.TYPE_HARD, h5py.h5l.TYPE_SOFT):
                raise DataFileError(f"{name} is refused: its HDF5 entry {link!r} is a user-"
                                    "defined link; files must be self-contained.")
        for link, kind in links:
            if kind == h5py.h5l.TYPE_SOFT:
                target = f.get(link, getlink=True).path
                if f.get(link, default=None) is None:
                    raise DataFileError(
                        f"{name} is refused: its HDF5 soft link {link!r} points to "
                        f"{target!r}, which does not exist in the file.")
        return _hdf5_sizes(f, name)


def _hdf5_sizes(f, name: str) -> Inspection:
    import h5py

    total = eager = 0
    problems: list[str] = []

    def visit(path: str, obj: Any) -> None:
        nonlocal total, eager
        if not isinstance(obj, h5py.Dataset):
            return
        if obj.is_virtual:
            problems.append(f"dataset {path!r} is a virtual dataset (its data live in other "
                            "files)")
            return
        if obj.id.get_create_plist().get_external_count():
            problems.append(f"dataset {path!r} stores its data in external files")
            return
        nbytes = _nbytes(obj.shape or (), obj.dtype.itemsize)
        total += nbytes
        if path.rsplit("/", 1)[-1] not in _LAZY_NAMES:
            eager += nbytes

    f.visititems(visit)
    if problems:
        raise DataFileError(f"{name} is refused: {problems[0]}. Files must be self-contained; "
                            "export the data again into one file.")
    return Inspection(total, eager)


def _nbytes(shape: tuple[int, ...], itemsize: int) -> int:
    return math.prod(int(n) for n in shape) * int(itemsize)


# --------------------------------------------------------------------------- zarr
def _inspect_zarr(root: Path, name: str) -> Inspection:
    total = eager = 0
    real_root = os.path.realpath(root)
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            raise DataFileError(f"Cannot read {name}: {exc.strerror or exc} in the store.") from None
        for entry in entries:
            rel = os.path.relpath(entry.path, root)
            if entry.is_symlink():
                raise DataFileError(
                    f"{name} is refused: {rel!r} inside the store is a symbolic link; a .zspy "
                    "store must hold only its own files. Copy the store without links.")
            if entry.is_dir(follow_symlinks=False):
                stack.append(Path(entry.path))
                continue
            if not entry.is_file(follow_symlinks=False):
                raise DataFileError(f"{name} is refused: {rel!r} inside the store is not a "
                                    "regular file (a device or pipe).")
            real = os.path.realpath(entry.path)
            if os.path.commonpath([real, real_root]) != real_root:
                raise DataFileError(f"{name} is refused: {rel!r} resolves outside the store.")
            if entry.name in (".zarray", "zarr.json"):
                nbytes = _zarr_array_bytes(Path(entry.path), name, rel)
                total += nbytes
                if Path(rel).parent.name not in _LAZY_NAMES:
                    eager += nbytes
    return Inspection(total, eager)


def _zarr_array_bytes(meta: Path, name: str, rel: str) -> int:
    try:
        if meta.stat().st_size > 2**20:
            raise ValueError("array metadata larger than 1 MiB")
        doc = json.loads(meta.read_text())
        if meta.name == "zarr.json":
            if doc.get("node_type") != "array":
                return 0
            dtype = np.dtype(doc["data_type"])
        else:
            dtype = np.dtype(_zarr_dtype(doc["dtype"]))
        shape = tuple(int(n) for n in doc["shape"])
        if any(n < 0 for n in shape):
            raise ValueError("negative shape")
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise DataFileError(f"Cannot read {name}: the array metadata {rel!r} is damaged ({exc});"
                            " copy the store again.") from None
    return _nbytes(shape, dtype.itemsize)


def _zarr_dtype(descr: Any) -> Any:
    if isinstance(descr, list):  # structured dtype: JSON turned its tuples into lists
        return [tuple(_zarr_dtype(d) if isinstance(d, list) else d for d in item)
                for item in descr]
    return descr


# --------------------------------------------------------------------------- npz
def _inspect_npz(p: Path, name: str) -> Inspection:
    if not zipfile.is_zipfile(p):
        raise DataFileError(
            f"Cannot read {name}: it is not a NumPy .npz archive (no zip directory found; it "
            "may be truncated or another kind of file renamed .npz). Save it again with "
            "si.save(...).")
    total = 0
    try:
        with zipfile.ZipFile(p) as z:
            for info in z.infolist():
                total += _npz_member(z, info, name)
    except DataFileError:
        raise
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
        raise DataFileError(f"Cannot read {name} as a .npz archive: {type(exc).__name__}: {exc}."
                            " The file is damaged; save it again.") from None
    return Inspection(total, total)  # a .npz is always read whole


def _npz_member(z: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> int:
    member = info.filename
    bad = f"Cannot read {name}: member {member!r}"
    if not member.endswith(".npy") or info.is_dir():
        raise DataFileError(f"{bad} is not a .npy array; a plasmonwidgets .npz holds only arrays.")
    if info.flag_bits & 0x1:
        raise DataFileError(f"{bad} is encrypted.")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise DataFileError(f"{bad} uses an unsupported compression method.")
    if info.compress_type == zipfile.ZIP_DEFLATED and info.file_size > MAX_NPZ_RATIO * max(
            info.compress_size, 1):
        raise DataFileError(
            f"{bad} would expand {info.compress_size} bytes to {info.file_size} "
            f"(more than {MAX_NPZ_RATIO}:1, a zip bomb or padding); it was not unpacked. Save "
            "the data again with si.save(...).")
    with z.open(info) as f:  # inflates only the few bytes of the .npy header
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except ValueError as exc:
            raise DataFileError(f"{bad} has no valid .npy header ({exc}).") from None
        header_len = f.tell()
    if dtype.hasobject:
        raise DataFileError(f"{bad} holds Python objects, which are never unpickled.")
    nbytes = _nbytes(shape, dtype.itemsize)
    if header_len + nbytes != info.file_size:
        raise DataFileError(
            f"{bad} declares a {shape} {dtype} array ({nbytes} bytes) but the archive says "
            f"it holds {info.file_size - header_len} bytes of data: the file is damaged or "
            "crafted; it was not unpacked.")
    return nbytes


# --------------------------------------------------------------------------- DigitalMicrograph
def check_dm_header(p: Path, name: str, role: str = "") -> None:
    """DigitalMicrograph files start with (version, length of the tag data, byte order):
    catch a wrong file type or a truncated copy before the reader fails obscurely."""
    role = f"{role} file " if role else ""
    with open(p, "rb") as f:
        head = f.read(16)
    version = struct.unpack(">I", head[:4])[0] if len(head) >= 4 else None
    if version not in (3, 4) or len(head) < 16:
        raise DataFileError(
            f"Cannot read {role}{name}: it is not a DigitalMicrograph 3/4 file (its header is "
            "wrong; another kind of file renamed?). Export it again from DigitalMicrograph, or "
            "pass the right file.")
    declared = (struct.unpack(">I", head[4:8])[0] + 12 if version == 3
                else struct.unpack(">Q", head[4:12])[0] + 16)
    size = p.stat().st_size
    if size < declared:
        raise DataFileError(
            f"Cannot read {role}{name}: it is truncated ({size} bytes on disk, but its header "
            f"says at least {declared}), probably an interrupted copy or download. Copy it "
            "again from the original.")
