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

HyperSpy is imported lazily (it takes seconds) so ``import plasmonwidgets`` stays fast.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import logging
import os
import re
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from . import safe_save
from .file_names import caller_stacklevel, lazy_read_errors, messages_as
from .file_safety import DataFileError, check_data_file, default_memory_budget, fmt_bytes
from .spectrum_image import Normalization, SpectrumImage, _is_lazy

__all__ = ["DataFileError", "check_data_file", "default_memory_budget", "from_hyperspy",
           "lazy_read_errors", "load", "save", "to_hyperspy"]

log = logging.getLogger(__name__)

_FORMATS = {
    ".dm3": "DigitalMicrograph 3",
    ".dm4": "DigitalMicrograph 4",
    ".emd": "EMD (Velox or Berkeley)",
    ".hspy": "HyperSpy HDF5",
    ".zspy": "HyperSpy zarr",
    ".npz": "plasmonwidgets NumPy archive",
}
_SAVE_FORMATS = (".hspy", ".zspy", ".npz")
_GROUP = "plasmonwidgets"  # name of our group inside a HyperSpy signal's metadata
_FORMAT_VERSION = 1
STAND_IN = "summed-intensity stand-in"
NO_IMAGE = "none (blank: SI too large for a stand-in)"
_REPAIR_HINT = (". To use the data anyway, load it with hyperspy.api.load, repair it, and call "
                "SpectrumImage.from_hyperspy(signal, haadf)")

# length units -> metres, to compare fields of view written in different units
_LENGTH = {
    "m": 1.0, "cm": 1e-2, "mm": 1e-3, "µm": 1e-6, "μm": 1e-6, "um": 1e-6, "micron": 1e-6,
    "nm": 1e-9, "Å": 1e-10, "A": 1e-10, "angstrom": 1e-10, "Angstrom": 1e-10, "pm": 1e-12,
}
_ENERGY = {"eV": 1.0, "keV": 1e3, "meV": 1e-3}
_FOV_RTOL = 0.02  # header pixel sizes are rounded; 2 % still catches a wrong image


def _warn(message: str) -> None:
    """UserWarning attributed to the first caller outside plasmonwidgets (the user's line)."""
    warnings.warn(message, UserWarning, stacklevel=caller_stacklevel())


# --------------------------------------------------------------------------- hyperspy
_HS: tuple[Any, Any] | None = None


def _hyperspy():
    """(hyperspy.api, exspy), imported on first use; exspy registers EELSSpectrum."""
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
def _quiet_reader():
    """Silence HyperSpy's 'please report this to RosettaSciIO' log line on a failed read:
    our DataFileError already says what went wrong, and a damaged file is no reader bug."""
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


def _hs_load(path: Path, lazy: bool, role: str) -> list:
    """All signals in a file, as a list; reader failures become DataFileError."""
    hs, _ = _hyperspy()
    fmt = _FORMATS[path.suffix.lower()]
    try:
        with _quiet_reader():
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
        raise DataFileError(f"{_cap(role)} file {str(path)!r} contains no signals.")
    return signals


def _exc_name(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__name__}"


def _reader_failure(path: Path, exc: Exception, role: str) -> str:
    fmt = _FORMATS[path.suffix.lower()]
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
        f"{_exc_name(exc)}: {exc}. The file is probably truncated or damaged (an "
        f"interrupted copy?) or is not really a {path.suffix} file. Compare its size with the "
        "original and copy or export it again."
    )


# --------------------------------------------------------------------------- paths
def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _check_path(path: Any, role: str, hints: bool = True) -> Path:
    """The path as a Path, after checking it names a readable, non-empty data file.
    ``hints``: suggest similar names in the folder (off for uploads: other users' files)."""
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
        raise DataFileError(f"{_cap(role)} file {str(p)!r} does not exist{hint}.")
    if p.is_dir() and ext != ".zspy":
        raise DataFileError(
            f"{str(p)!r} is a directory, not a {role} file; pass the path of a data file "
            f"({', '.join(_FORMATS)})."
        )
    if ext not in _FORMATS:
        raise DataFileError(
            f"{_cap(role)} file {str(p)!r} has extension {ext or '(none)'!r}, which "
            f"plasmonwidgets does not read. Supported: {', '.join(_FORMATS)}. Convert other "
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
            f"{_cap(role)} file {str(p)!r} is empty (0 bytes): whatever wrote or copied "
            "it did not finish. Copy or export it again."
        )
    if not os.access(p, os.R_OK):
        raise DataFileError(f"No permission to read {role} file {str(p)!r}.")
    return p


# --------------------------------------------------------------------------- axes
def _units(axis) -> str:
    u = getattr(axis, "units", "")
    return u.strip() if isinstance(u, str) and u.strip() != "<undefined>" else ""


def _nav_axes(sig) -> list:
    """Navigation axes in array order (rows first)."""
    return list(reversed(sig.axes_manager.navigation_axes))


def _image_axes(sig) -> list:
    """Signal axes of an image in array order (rows first)."""
    return list(reversed(sig.axes_manager.signal_axes))


def _fov(axes: list) -> tuple[float, ...] | None:
    """Field of view per axis in metres, or None when the axes carry no length unit."""
    out = []
    for ax in axes:
        factor = _LENGTH.get(_units(ax))
        if factor is None:
            return None
        out.append(ax.size * abs(float(ax.scale)) * factor)
    return tuple(out)


def _fmt_fov(fov: tuple[float, ...]) -> str:
    return " x ".join(f"{v * 1e9:.4g}" for v in fov) + " nm"


def _energy_of(sig, where: str, err: type[Exception]) -> np.ndarray:
    """The energy-loss axis in eV (float64)."""
    ax = sig.axes_manager.signal_axes[0]
    units = _units(ax)
    e = np.array(ax.axis, dtype=np.float64)
    if units in _ENERGY:
        return e * _ENERGY[units]
    if units == "":
        _warn(f"{where}: the energy axis has no units; assuming eV.")
        return e
    raise err(
        f"{where}: the signal axis is in {units!r}, not an energy-loss axis in eV; "
        "pick the EELS spectrum image (signal=...)."
    )


def _is_uniform(e: np.ndarray) -> bool:
    if e.size < 3:
        return True
    ramp = e[0] + (e[-1] - e[0]) / (e.size - 1) * np.arange(e.size)
    return bool(np.allclose(ramp, e, rtol=1e-9, atol=1e-12 * np.max(np.abs(e))))


# --------------------------------------------------------------------------- metadata codec
# Our metadata (dicts, lists, tuples, numbers, strings, None, numpy arrays and scalars)
# round-trips exactly: a JSON tree where arrays are replaced by references into a flat
# table of arrays, and non-JSON types are tagged.
_TAGS = ("__ndarray__", "__tuple__", "__dict__", "__path__")


class _Packer:
    def __init__(self, raw_bytes: bool):
        # HDF5/zarr cannot hold 0-d or string/datetime/structured arrays as HyperSpy
        # metadata, so for .hspy/.zspy those travel as raw bytes plus dtype and shape.
        self.raw_bytes = raw_bytes
        self.arrays: dict[str, np.ndarray] = {}

    def array(self, arr: np.ndarray, where: str, scalar: bool = False) -> dict:
        if arr.dtype.hasobject:
            raise TypeError(
                f"{where} is a numpy array of Python objects, which cannot be saved; "
                "convert it to a numeric or string array, or to a list"
            )
        key = f"a{len(self.arrays)}"
        raw = self.raw_bytes and (arr.dtype.kind not in "biufc" or arr.ndim == 0)
        self.arrays[key] = (
            np.frombuffer(np.ascontiguousarray(arr).tobytes(), np.uint8) if raw else arr
        )
        return {"__ndarray__": key, "dtype": np.lib.format.dtype_to_descr(arr.dtype),
                "shape": list(arr.shape), "raw": bool(raw), "scalar": scalar}

    def encode(self, obj: Any, where: str) -> Any:
        if obj is None or isinstance(obj, (bool, str, int, float)):
            return obj
        if isinstance(obj, np.ndarray):
            return self.array(obj, where)
        if isinstance(obj, np.generic):
            return self.array(np.asarray(obj), where, scalar=True)
        if isinstance(obj, list):
            return [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]
        if isinstance(obj, tuple):
            return {"__tuple__": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(obj)]}
        if isinstance(obj, os.PathLike):
            return {"__path__": os.fspath(obj)}
        if isinstance(obj, dict):
            if all(isinstance(k, str) for k in obj) and not any(k in _TAGS for k in obj):
                return {k: self.encode(v, f"{where}[{k!r}]") for k, v in obj.items()}
            return {"__dict__": [[self.encode(k, f"{where} key"), self.encode(v, f"{where}[{k!r}]")]
                                 for k, v in obj.items()]}
        raise TypeError(
            f"{where} holds a {type(obj).__module__}.{type(obj).__name__}, which cannot be "
            "saved; use dicts, lists, tuples, numbers, strings, None or numpy arrays"
        )


def _as_tuples(descr: Any) -> Any:
    """JSON turns the tuples of a structured dtype description into lists; undo that."""
    if isinstance(descr, list):
        return [tuple(_as_tuples(d) for d in item) if isinstance(item, list) else item
                for item in descr]
    return descr


def _decode(obj: Any, arrays: dict[str, Any]) -> Any:
    if isinstance(obj, list):
        return [_decode(v, arrays) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if "__ndarray__" in obj:
        dtype = np.lib.format.descr_to_dtype(_as_tuples(obj["dtype"]))
        stored = np.asarray(arrays[obj["__ndarray__"]])
        if obj["raw"]:
            arr = np.frombuffer(stored.tobytes(), dtype=dtype).reshape(obj["shape"]).copy()
        else:
            arr = stored.astype(dtype, copy=False).reshape(obj["shape"])
        return arr[()] if obj["scalar"] else arr
    if "__tuple__" in obj:
        return tuple(_decode(v, arrays) for v in obj["__tuple__"])
    if "__path__" in obj:
        return Path(obj["__path__"])
    if "__dict__" in obj:
        return {_freeze(_decode(k, arrays)): _decode(v, arrays) for k, v in obj["__dict__"]}
    return {k: _decode(v, arrays) for k, v in obj.items()}


def _freeze(key: Any) -> Any:
    return key.item() if isinstance(key, np.ndarray) and key.ndim == 0 else key


def _plain(obj: Any) -> Any:
    """Metadata read from a foreign file, reduced to types the codec can save."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if obj is None or isinstance(obj, (bool, str, int, float, np.generic)):
        return obj
    if isinstance(obj, np.ndarray) and not obj.dtype.hasobject:
        return obj
    return str(obj)


def _header(si: SpectrumImage, packer: _Packer, with_metadata: bool = True) -> str:
    """JSON header with everything except the spectra and HAADF arrays."""
    norm = si.normalization
    head = {
        "format": "plasmonwidgets",
        "version": _FORMAT_VERSION,
        "scan_shape": list(si.scan_shape),
        "n_energy": si.n_energy,
        "scale": si.scale,
        "pixel_size": si.pixel_size,
        "pixel_unit": si.pixel_unit,
        "energy": packer.array(np.asarray(si.energy), "energy"),
        "normalization": None if norm is None else {
            "mode": norm.mode,
            "offset": packer.array(np.asarray(norm.offset), "normalization offset"),
            "factor": packer.array(np.asarray(norm.factor), "normalization factor"),
        },
        "metadata": packer.encode(si.metadata if with_metadata else {}, "metadata"),
    }
    return json.dumps(head, ensure_ascii=False)


def _crc(array: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(array).data)


# --------------------------------------------------------------------------- to/from HyperSpy
def to_hyperspy(si: SpectrumImage):
    """Convert to HyperSpy signals.

    Returns
    -------
    eels : exspy EELSSpectrum (h, w | E)
        Navigation axes ``y``, ``x`` with scale ``pixel_size`` in ``pixel_unit``; signal
        axis "Energy loss" in eV, uniform (offset, scale) when the energy grid is uniform,
        otherwise a non-uniform DataAxis holding the exact energies. Lazy (dask) when
        ``si`` is. Its ``metadata.plasmonwidgets`` group carries the HAADF, the exact
        energy array and our metadata, so ``from_hyperspy(eels)`` or saving it with
        ``eels.save("x.hspy")`` keeps everything.
    haadf : hyperspy Signal2D (H, W)
        Calibrated at ``pixel_size / scale``.

    Both hold copies: editing them in HyperSpy does not change ``si``. Metadata entries
    that cannot be stored (arbitrary Python objects) are left out of the group with a
    warning; :func:`save` refuses them instead.
    """
    return _to_signals(si, copy=True, strict=False)


def _to_signals(si: SpectrumImage, copy: bool, strict: bool):
    hs, exspy = _hyperspy()
    h, w = si.scan_shape
    # uncalibrated scans keep HyperSpy's own "no unit" rather than a made-up "px"
    unit = "" if si.pixel_unit == "px" else si.pixel_unit
    origin = _origin_of(si)
    nav = [dict(name=n, size=s, offset=o, scale=si.pixel_size, units=unit)
           for n, s, o in (("y", h, origin[0]), ("x", w, origin[1]))]
    e = si.energy
    if _is_uniform(e):
        step = float((e[-1] - e[0]) / (e.size - 1)) if e.size > 1 else 1.0
        eax = dict(name="Energy loss", size=e.size, offset=float(e[0]), scale=step, units="eV")
    else:
        eax = dict(name="Energy loss", axis=np.array(e), units="eV")
    if si.is_lazy:
        eels = exspy.signals.LazyEELSSpectrum(si.spectra, axes=[*nav, eax])
    else:
        eels = exspy.signals.EELSSpectrum(si.spectra.copy() if copy else si.spectra,
                                          axes=[*nav, eax])
    title = si.metadata.get("title")
    eels.metadata.General.title = title if isinstance(title, str) else "EELS spectrum image"
    H, W = si.haadf.shape
    # HAADF pixel centres on the s-times finer grid covering the same scan pixels
    shift = si.pixel_size * (si.scale - 1) / (2 * si.scale)
    img_axes = [dict(name=n, size=s, offset=o - shift, scale=si.pixel_size / si.scale, units=unit)
                for n, s, o in (("y", H, origin[0]), ("x", W, origin[1]))]
    haadf = hs.signals.Signal2D(si.haadf.copy() if copy else si.haadf, axes=img_axes)
    haadf.metadata.General.title = "HAADF"
    acquisition = _acquisition_tree(si)
    if acquisition:
        for sig in (eels, haadf):
            sig.metadata.set_item("Acquisition_instrument", acquisition)
    packer = _Packer(raw_bytes=True)
    try:
        header = _header(si, packer)
    except TypeError as exc:
        if strict:
            raise
        _warn(f"to_hyperspy: {exc}; the metadata dict is left out of "
              "eels.metadata.plasmonwidgets.")
        packer = _Packer(raw_bytes=True)
        header = _header(si, packer, with_metadata=False)
    eels.metadata.set_item(_GROUP, {"header": header, "arrays": packer.arrays,
                                    "haadf": haadf.deepcopy() if copy else haadf})
    return eels, haadf


def _origin_of(si: SpectrumImage) -> tuple[float, float]:
    origin = si.metadata.get("scan_origin")
    try:
        y, x = (float(v) for v in origin)
    except (TypeError, ValueError):
        return 0.0, 0.0
    return (y, x) if np.isfinite(y) and np.isfinite(x) else (0.0, 0.0)


def _acquisition_tree(si: SpectrumImage) -> dict:
    """HyperSpy's ``Acquisition_instrument`` tree from ``si.metadata["acquisition"]``
    (beam energy in keV, convergence and collection angles in mrad), so that plain
    ``hs.load`` of a saved file and exspy's EELS tools find them."""
    acq = si.metadata.get("acquisition")
    if not isinstance(acq, dict):
        return {}
    tree = {}
    for key, value in acq.items():
        if isinstance(key, str) and isinstance(value, dict):
            tree[key] = {k: v for k, v in value.items() if isinstance(k, str)}
    return tree


def from_hyperspy(eels, haadf=None) -> SpectrumImage:
    """Build a SpectrumImage from a HyperSpy EELS signal (h, w | E).

    ``haadf`` is a Signal2D (or a 2-D array) of shape (s*h, s*w); when omitted, the
    HAADF stored by :func:`to_hyperspy` in ``eels.metadata.plasmonwidgets`` is used, or
    else the summed intensity over energy stands in (with a warning). A signal written
    by :func:`to_hyperspy` comes back exactly (arrays, energy, calibration, metadata)
    as long as its scan and energy axis were not changed in HyperSpy since.
    """
    hs, _ = _hyperspy()
    if not isinstance(eels, hs.signals.BaseSignal):
        raise TypeError(f"eels must be a HyperSpy signal, got {type(eels).__name__}")
    if not _is_si(eels):
        raise ValueError(
            f"eels must have 2 navigation (scan) dimensions and 1 signal (energy) dimension, "
            f"got {eels.axes_manager.navigation_dimension} and "
            f"{eels.axes_manager.signal_dimension} (data shape {tuple(eels.data.shape)})"
        )
    return _build(eels, haadf, where="from_hyperspy", err=ValueError)


def _stored_group(eels, where: str) -> dict | None:
    """Our group in a signal's metadata, decoded; None when absent or out of date."""
    md = eels.metadata
    if not md.has_item(f"{_GROUP}.header"):
        return None
    try:
        head = json.loads(md.get_item(f"{_GROUP}.header"))
        arrays = md.get_item(f"{_GROUP}.arrays").as_dictionary() if md.has_item(
            f"{_GROUP}.arrays") else {}
        group = _decode(head, arrays)
    except Exception as exc:  # a damaged or foreign group must not block the data itself
        _warn(f"{where}: ignoring unreadable plasmonwidgets metadata ({exc}).")
        return None
    h, w, n = eels.data.shape
    if group.get("scan_shape") != [h, w] or group.get("n_energy") != n:
        _warn(
            f"{where}: the signal was cropped or binned after plasmonwidgets wrote it (scan "
            f"{tuple(group.get('scan_shape', ()))}, {group.get('n_energy')} channels then; "
            f"{(h, w)}, {n} now); its stored HAADF, exact energy axis and normalisation are "
            "ignored, the metadata dict is kept.")
        return {"metadata": group.get("metadata", {})}
    group["haadf"] = md.get_item(f"{_GROUP}.haadf") if md.has_item(f"{_GROUP}.haadf") else None
    return group


def _build(eels, haadf, *, where: str, err: type[Exception], source: dict | None = None,
           haadf_label: str | None = None, haadf_where: str | None = None,
           defer_stand_in: bool = False, budget: int | None = None) -> SpectrumImage:
    """The SpectrumImage for an SI signal and an optional HAADF (Signal2D, array or None).

    ``defer_stand_in``: the (lazy) SI is larger than the memory budget, so summing it for
    a stand-in image would stream the whole file: a blank image is used instead."""
    hs, _ = _hyperspy()
    group = _stored_group(eels, where)
    data = eels.data
    energy = _energy_of(eels, where, err)
    if group and "energy" in group:
        stored = np.asarray(group["energy"], dtype=np.float64)
        if stored.shape == energy.shape and np.allclose(stored, energy, rtol=1e-7, atol=1e-9):
            energy = stored  # bit-exact copy of what was saved
    if energy.size > 1 and np.all(np.diff(energy) < 0):
        _warn(f"{where}: the energy axis is descending; reversed it (and the spectra) so "
              "energy increases.")
        energy, data = energy[::-1].copy(), data[..., ::-1]

    if group and "pixel_size" in group:
        pixel_size, pixel_unit = group["pixel_size"], group["pixel_unit"]
    else:
        pixel_size, pixel_unit = _pixel_calibration(eels, where)

    si_shape = tuple(data.shape[:2])
    scale = None
    if haadf is None and group and group.get("haadf") is not None:
        image = np.asarray(group["haadf"].data)
        scale = group["scale"]
        haadf_source = None  # the stored metadata already says where it came from
    elif haadf is None:
        name = source.get("name", where) if source else where
        image = _stand_in(data, where, err, name=name, defer=defer_stand_in, budget=budget)
        haadf_source = STAND_IN if not defer_stand_in else NO_IMAGE
    else:
        if isinstance(haadf, hs.signals.BaseSignal):
            if haadf.axes_manager.signal_dimension != 2 or haadf.axes_manager.navigation_dimension:
                raise err(f"{haadf_where or 'haadf'}: the HAADF must be a single 2-D image, got a "
                          f"signal with data shape {tuple(haadf.data.shape)}")
            try:
                image = np.asarray(haadf.data)  # reads a lazy image
            except Exception as exc:
                raise err(f"{haadf_where or 'haadf'}: could not read the image data "
                          f"({_exc_name(exc)}: {exc}); the file may be damaged.") from exc
            img_fov = _fov(_image_axes(haadf))
        else:
            image = np.asarray(haadf)
            img_fov = None
        scale = _grid_scale(si_shape, _fov(_nav_axes(eels)), image.shape, img_fov,
                            where, haadf_where or "(the haadf argument)", err)
        haadf_source = haadf_label  # None: keep what stored metadata says
        if pixel_unit == "px" and isinstance(haadf, hs.signals.BaseSignal):
            # the SI has no length calibration but its HAADF has: use the HAADF's
            _, x_img = _image_axes(haadf)
            if _units(x_img) in _LENGTH and np.isfinite(x_img.scale) and x_img.scale:
                pixel_size, pixel_unit = abs(float(x_img.scale)) * scale, _units(x_img)

    if group and "metadata" in group:
        metadata = dict(group["metadata"])
    else:
        metadata = {"title": str(eels.metadata.get_item("General.title", ""))}
        origin = _scan_origin(eels, pixel_unit)
        if origin is not None:
            metadata["scan_origin"] = origin
        acq = eels.metadata.get_item("Acquisition_instrument")
        if acq is not None:
            metadata["acquisition"] = _plain(acq.as_dictionary())
        if haadf_source is None:
            haadf_source = "given HAADF image"
    if source is not None:  # describes the file just read, even for our own files
        metadata["source"] = source
    if haadf_source is not None:
        metadata["haadf_source"] = haadf_source
    norm = group.get("normalization") if group else None
    try:
        si = SpectrumImage(
            data, energy, image, scale=scale, pixel_size=pixel_size, pixel_unit=pixel_unit,
            metadata=metadata,
            normalization=None if norm is None else Normalization(
                norm["mode"], norm["offset"], norm["factor"]),
        )
    except (ValueError, TypeError) as exc:
        raise err(f"{where}: {exc}{_REPAIR_HINT if err is DataFileError else ''}") from exc
    if haadf_source == NO_IMAGE:
        _warn(f"{where}: no HAADF/ADF/DF image, and the SI is too large to sum for a stand-in "
              f"image without reading the whole file; the HAADF is blank (metadata"
              f"['haadf_source'] = {NO_IMAGE!r}). Pass haadf='HAADF file' to pair it with the "
              "real image.")
    if haadf_source == STAND_IN:
        _warn(f"{where}: no HAADF/ADF/DF image; using the summed EELS intensity over "
              f"{energy[0]:.4g} to {energy[-1]:.4g} eV as a stand-in image "
              f"(metadata['haadf_source'] = {STAND_IN!r}). Pass haadf='HAADF file' to pair it "
              "with the real image.")
    return si


def _pixel_calibration(eels, where: str) -> tuple[float, str]:
    """(pixel size, unit) from the scan axes; 'px' when the file has no length unit."""
    y, x = _nav_axes(eels)
    size, unit = abs(float(x.scale)), _units(x)
    if not np.isclose(abs(float(y.scale)), size, rtol=1e-3) or _units(y) != unit:
        _warn(
            f"{where}: scan pixels are not square (x {x.scale} {unit}, y {y.scale} "
            f"{_units(y)}); using the x pixel size.")
    if not unit or not np.isfinite(size) or size <= 0:
        return 1.0, "px"
    return size, unit


def _stand_in(data: Any, where: str, err: type[Exception], *, name: str, defer: bool = False,
              budget: int | None = None) -> np.ndarray:
    """Summed intensity over energy (h, w), used when no HAADF image exists; a blank
    image when ``defer`` (the SI is too large to stream through for it)."""
    h, w = data.shape[:2]
    need = h * w * (4 if defer else 12)  # float32 image (+ float64 sum)
    if budget is not None and need > budget:
        raise err(f"{where}: a scan of {h} x {w} pixels needs {fmt_bytes(need)} just for "
                  f"its image, more than the memory budget of {fmt_bytes(budget)}; the file is "
                  "not a usable spectrum image here.")
    if defer:
        return np.zeros((h, w), np.float32)
    try:
        with lazy_read_errors(name):
            image = data.sum(axis=-1, dtype=np.float64)
            if _is_lazy(image):
                image = image.compute()  # streams the SI once, chunk by chunk
    except DataFileError as exc:
        raise err(str(exc)) from None
    except Exception as exc:
        raise err(f"{where}: could not read the spectra to build a stand-in image: {exc}") from exc
    return np.asarray(image, dtype=np.float32)


def _scan_origin(eels, pixel_unit: str) -> list[float] | None:
    """[y, x] position of the first scan pixel in ``pixel_unit`` (Velox scans start at
    e.g. -3966 nm), or None when the file puts it at 0."""
    axes = _nav_axes(eels)
    origin = []
    for ax in axes:
        offset = float(ax.offset)
        unit = _units(ax)
        if unit != pixel_unit and unit in _LENGTH and pixel_unit in _LENGTH:
            offset *= _LENGTH[unit] / _LENGTH[pixel_unit]
        origin.append(offset if np.isfinite(offset) else 0.0)
    return origin if any(origin) else None


def _grid_scale(si_shape, si_fov, img_shape, img_fov, si_where, img_where, err) -> int:
    """Oversampling s with img_shape == s * si_shape, or a clear error naming both."""
    si_shape, img_shape = tuple(si_shape), tuple(img_shape)
    fovs = ""
    if si_fov is not None and img_fov is not None:
        fovs = f" (fields of view: SI {_fmt_fov(si_fov)}, image {_fmt_fov(img_fov)})"
    (h, w), (H, W) = si_shape, (img_shape if len(img_shape) == 2 else (0, 0))
    if H == 0 or H % h or W % w or H // h != W // w:
        raise err(
            f"HAADF image {img_where} has shape {img_shape}, which is not an integer multiple "
            f"of the scan shape {si_shape} of spectrum image {si_where}{fovs}. The HAADF must be "
            "the image acquired with this SI (same field of view, same or s-times finer "
            "sampling); crop or resample it, or pick another image."
        )
    if si_fov is not None and img_fov is not None and not np.allclose(
            si_fov, img_fov, rtol=_FOV_RTOL):
        raise err(
            f"HAADF image {img_where} (shape {img_shape}) and spectrum image {si_where} "
            f"(scan shape {si_shape}) cover different fields of view: SI {_fmt_fov(si_fov)}, "
            f"image {_fmt_fov(img_fov)}. Use the HAADF "
            "acquired with this SI, or fix the pixel calibration of one of the files."
        )
    return H // h


# --------------------------------------------------------------------------- picking signals
def _is_si(sig) -> bool:
    am = sig.axes_manager
    return am.navigation_dimension == 2 and am.signal_dimension == 1


def _is_image(sig) -> bool:
    am = sig.axes_manager
    return am.navigation_dimension == 0 and am.signal_dimension == 2


def _signal_type(sig) -> str:
    return str(sig.metadata.get_item("Signal.signal_type", "") or "")


def _is_eels_si(sig) -> bool:
    if not _is_si(sig):
        return False
    stype = _signal_type(sig).upper()
    if stype.startswith("EDS"):
        return False
    return stype == "EELS" or _units(sig.axes_manager.signal_axes[0]) == "eV"


def _title(sig) -> str:
    return str(sig.metadata.get_item("General.title", "") or "")


def _describe(i: int, sig) -> str:
    shape = tuple(sig.data.shape)
    text = f"#{i} {type(sig).__name__.replace('Lazy', '')} {_title(sig)!r} {shape}"
    if _is_si(sig):
        ax = sig.axes_manager.signal_axes[0]
        e = np.asarray(ax.axis)
        text += f" {e[0]:.4g} to {e[-1]:.4g} {_units(ax) or '(no unit)'}"
    return text


def _select(signals: list, choice: int | str, what: str, path: Path) -> list[int]:
    """Indices of the signals chosen by list index or by title (titles may repeat)."""
    listing = "; ".join(_describe(i, s) for i, s in enumerate(signals))
    if isinstance(choice, (int, np.integer)) and not isinstance(choice, bool):
        if 0 <= choice < len(signals):
            return [int(choice)]
        raise DataFileError(f"{what}={choice} is out of range: {str(path)!r} holds "
                            f"{len(signals)} signals: {listing}.")
    if not isinstance(choice, str):
        raise TypeError(f"{what} must be a signal title (str) or index (int), got "
                        f"{type(choice).__name__}")
    for same in (lambda t: t == choice, lambda t: t.lower() == choice.lower()):
        hits = [i for i, s in enumerate(signals) if same(_title(s))]
        if hits:
            return hits
    raise DataFileError(f"{what}={choice!r}: no signal with that title in {str(path)!r}. It "
                        f"holds: {listing}. Choose by title or by index (#).")


def _pick_si(signals: list, path: Path, choice) -> tuple[int, list[str]]:
    """Index of the EELS SI to use and descriptions of the alternatives."""
    if choice is not None:
        pool = _select(signals, choice, "signal", path)
        for i in pool:
            sig = signals[i]
            if not _is_si(sig) or _signal_type(sig).upper().startswith("EDS"):
                raise DataFileError(
                    f"signal {_describe(i, sig)} in {str(path)!r} is not an EELS spectrum "
                    "image (2 scan dimensions + an energy-loss axis in eV). EELS SIs in the "
                    f"file: {_eels_listing(signals)}."
                )
    else:
        pool = [i for i, s in enumerate(signals) if _is_eels_si(s)]
        if not pool:
            raise DataFileError(
                f"{str(path)!r} contains no EELS spectrum image (a signal with 2 scan "
                "dimensions and an energy-loss axis in eV). It holds: "
                + "; ".join(_describe(i, s) for i, s in enumerate(signals))
                + ". Pass the EELS file, or choose a signal with signal=<title or index>."
            )
    # low-loss first: plasmons live at a few eV, so the SI with the lowest start energy wins
    best = min(pool, key=lambda i: float(signals[i].axes_manager.signal_axes[0].axis[0]))
    return best, [_describe(i, signals[i]) for i in pool if i != best]


def _listing(signals: list, indices: list[int]) -> str:
    return "; ".join(_describe(i, signals[i]) for i in indices)


def _eels_listing(signals: list) -> str:
    found = [_describe(i, s) for i, s in enumerate(signals) if _is_eels_si(s)]
    return "; ".join(found) if found else "none"


def _detector_rank(title: str) -> int | None:
    """0 HAADF, 1 ADF, 2 DF (dark-field detectors); None for anything else."""
    t = title.upper()
    if "HAADF" in t:
        return 0
    if "ADF" in t and "ABF" not in t:
        return 1
    tokens = re.split(r"[^A-Z0-9]+", t)
    if any(re.fullmatch(r"DF\d*", tok) for tok in tokens) or "DARK" in tokens:
        return 2
    return None


def _pick_image(signals: list, path: Path, choice, eels, si_where: str,
                exclude: int | None) -> tuple[int | None, list[int]]:
    """Index of the HAADF-like image on the SI's scan grid (None if there is none), and
    the other candidates: further detector images or, when none is named like a detector,
    every image on the grid."""
    si_shape = tuple(eels.data.shape[:2])
    si_fov = _fov(_nav_axes(eels))
    if choice is not None:
        i = _select(signals, choice, "haadf_signal", path)[0]
        sig = signals[i]
        if not _is_image(sig):
            raise DataFileError(f"haadf_signal: {_describe(i, sig)} in {str(path)!r} is not a "
                                "single 2-D image. Images in the file: "
                                + ("; ".join(_describe(j, s) for j, s in enumerate(signals)
                                             if _is_image(s)) or "none") + ".")
        _grid_scale(si_shape, si_fov, sig.data.shape, _fov(_image_axes(sig)), si_where,
                    f"{_describe(i, sig)} in {str(path)!r}", DataFileError)
        return i, []
    images = [i for i, s in enumerate(signals) if i != exclude and _is_image(s)]
    on_grid = []
    for i in images:
        try:
            _grid_scale(si_shape, si_fov, signals[i].data.shape,
                        _fov(_image_axes(signals[i])), "", "", ValueError)
            on_grid.append(i)
        except ValueError:
            continue
    ranked = sorted((r, i) for i in on_grid if (r := _detector_rank(_title(signals[i])))
                    is not None)
    if ranked:
        return ranked[0][1], [i for _, i in ranked[1:]]
    return None, on_grid


# --------------------------------------------------------------------------- load
def load(path: str | os.PathLike, haadf: Any = None, lazy: bool = False,
         signal: int | str | None = None, haadf_signal: int | str | None = None, *,
         display_name: str | None = None, memory_budget: int | None = None) -> SpectrumImage:
    """Read a spectrum image (and its HAADF) from a file.

    Parameters
    ----------
    path : str or Path
        .dm3, .dm4, .emd (Velox or Berkeley), .hspy, .zspy or our .npz.
    haadf : str or Path, optional
        A separate file with the HAADF image (same field of view; its shape may be an
        integer multiple s of the SI scan shape, kept at full resolution as ``scale`` = s).
        A 2-D array or HyperSpy Signal2D is accepted too.
        When omitted, a HAADF/ADF/DF image on the SI's scan grid inside ``path`` is used,
        or else the summed intensity over energy stands in (with a warning and
        ``metadata["haadf_source"] = "summed-intensity stand-in"``).
    lazy : bool
        Keep the spectra dask-backed (read on demand; ``si.compute()`` loads them).
        .npz files are always read whole.
    signal : str or int, optional
        Which signal of a multi-signal file is the SI: its title, or its index in the
        file (as listed in messages, ``#i``). By default the EELS SI with the lowest
        start energy (the low-loss one, where plasmons are) is used.
    haadf_signal : str or int, optional
        Which image (title or index) is the HAADF, in ``haadf`` if given, else in ``path``.
        By default a HAADF, then ADF, then DF detector image on the same scan grid.
    display_name : str, optional
        How the user knows the file (an uploaded file's name, a path relative to a data
        folder). Every error and warning names the file by it, never by ``path``, and
        ``si.metadata["source"]`` records it instead of the server path.
    memory_budget : int, optional
        Bytes the data may take in memory; default
        :func:`~plasmonwidgets.file_safety.default_memory_budget`. A file whose headers
        declare more is loaded lazily, with a warning (a .npz, which cannot be read
        lazily, is refused).

    The file's headers are checked first (:func:`check_data_file`): files that would
    make the reader open other files (HDF5 external storage or links, virtual datasets,
    links in a .zspy store) are refused before any data is read.

    What was picked is logged, warned about when there was a choice, and recorded in
    ``si.metadata["source"]`` (``"name"``: the file as the user knows it). Files written by
    :func:`save` come back exactly, except ``metadata["source"]``, which describes the file
    just read.

    Raises
    ------
    DataFileError
        The file is missing, empty, truncated, of an unknown type, hostile, too large,
        holds no EELS SI, or its HAADF does not match the SI; the message names the file
        and what to do.
    """
    if display_name is not None and not isinstance(display_name, str):
        raise TypeError(f"display_name must be a str, got {type(display_name).__name__}")
    budget = default_memory_budget() if memory_budget is None else int(memory_budget)
    names = None
    if display_name is not None and isinstance(path, (str, os.PathLike)):
        names = {Path(path).expanduser(): display_name}
        if isinstance(haadf, (str, os.PathLike)):
            names[Path(haadf).expanduser()] = Path(haadf).name
    with messages_as(names):  # warnings point at the caller; display names replace paths
        return _load(path, haadf, lazy, signal, haadf_signal, display_name, budget)


def _load(path, haadf, lazy: bool, signal, haadf_signal, display_name: str | None,
          budget: int) -> SpectrumImage:
    if isinstance(path, (str, os.PathLike)):
        safe_save.recover(Path(path).expanduser())  # an interrupted save of this path
    p = _check_path(path, "spectrum image", hints=display_name is None)
    shown = display_name or p.name
    declared = check_data_file(p, display_name=display_name, memory_budget=budget,
                               role="spectrum image")
    too_big = declared > budget
    if too_big and not lazy:
        _warn(f"{shown}: its data take {fmt_bytes(declared)} (as declared by the file), more "
              f"than the memory budget of {fmt_bytes(budget)}; loading it lazily (read on "
              "demand) instead. Work on a crop or a binned copy; raise memory_budget= (or "
              "PLASMONWIDGETS_MEMORY_BUDGET) only if this machine has the memory.")
        lazy = True
    source = {"name": shown, "file": display_name or str(p)}
    if p.suffix.lower() == ".npz":
        if signal is not None or (haadf is None and haadf_signal is not None):
            raise DataFileError(f"{str(p)!r} is a plasmonwidgets .npz with a single spectrum "
                                "image; signal=/haadf_signal= only apply to HyperSpy formats.")
        if lazy and not too_big:
            _warn(f"{shown}: .npz files are always read into memory; save as .hspy or .zspy "
                  "for lazy access.")
        si = _load_npz(p)
        si.metadata["source"] = source
        if haadf is None:
            return si
        eels, _ = _to_signals(si, copy=False, strict=True)
        return _attach_haadf_file(eels, haadf, haadf_signal, source, repr(str(p)), display_name,
                                  budget)

    signals = _hs_load(p, lazy, "spectrum image")
    i_si, alternatives = _pick_si(signals, p, signal)
    eels = signals[i_si]
    si_where = f"{str(p)!r} (signal #{i_si} {_title(eels)!r})"
    own = eels.metadata.has_item(f"{_GROUP}.header")
    source.update(signal=_title(eels), signal_index=i_si, n_signals=len(signals),
                  alternatives=alternatives)
    notes = []
    if alternatives:
        notes.append(f"used EELS SI {_describe(i_si, eels)} (lowest start energy: low-loss); "
                     f"other EELS SIs: {'; '.join(alternatives)}; choose with signal=<index "
                     "or title>")

    if haadf is not None:
        si = _attach_haadf_file(eels, haadf, haadf_signal, source, si_where, display_name, budget)
    else:
        i_img, others = (None, []) if own and haadf_signal is None else _pick_image(
            signals, p, haadf_signal, eels, si_where, exclude=i_si)
        image = signals[i_img] if i_img is not None else None
        label = None
        if image is not None:
            label = f"{_title(image)!r} (#{i_img}) in {shown}"
            source.update(haadf_file=source["file"], haadf_signal=_title(image),
                          haadf_signal_index=i_img)
            if others:
                notes.append(f"used {_describe(i_img, image)} as HAADF; other candidate images: "
                             f"{_listing(signals, others)}; choose with haadf_signal=<index or title>")
        elif others:
            notes.append(f"no image titled HAADF/ADF/DF; images on the same scan grid: "
                         f"{_listing(signals, others)}; choose one with haadf_signal=<index or title>")
        si = _build(eels, image, where=si_where, err=DataFileError, source=source,
                    haadf_label=label, haadf_where=label, defer_stand_in=too_big, budget=budget)
    if notes:
        _warn(f"{shown}: " + ". ".join(notes) + ".")
    if not own:
        _borrow_acquisition(si, signals, i_si)
    log.info("loaded %s: %r (source %s)", p, si, si.metadata.get("source"))
    if own and not lazy:
        _verify_checksums(eels, si, shown, check_haadf=haadf is None)
    return si


def _borrow_acquisition(si: SpectrumImage, signals: list, i_si: int) -> None:
    """Fill the beam energy and angles the SI's own metadata lacks from the other signals
    of the same file (Velox keeps them with the images and EDS data, not the EELS SI)."""
    tem = si.metadata.setdefault("acquisition", {}).setdefault("TEM", {})
    if not isinstance(tem, dict):
        return
    for i, sig in enumerate(signals):
        if i == i_si:
            continue
        other = sig.metadata.get_item("Acquisition_instrument.TEM")
        if other is None:
            continue
        for key in ("beam_energy", "convergence_angle", "microscope"):
            value = other.get_item(key) if other.has_item(key) else None
            if value is not None and tem.get(key) is None:
                tem[key] = _plain(value)
    if not tem:
        del si.metadata["acquisition"]["TEM"]
        if not si.metadata["acquisition"]:
            del si.metadata["acquisition"]


def _attach_haadf_file(eels, haadf: Any, haadf_signal, source: dict, si_where: str,
                       display_name: str | None, budget: int) -> SpectrumImage:
    """SI from ``eels`` with the HAADF read from a separate file (or given as an array)."""
    hs, _ = _hyperspy()
    if isinstance(haadf, (np.ndarray, hs.signals.BaseSignal)):
        return _build(eels, haadf, where=si_where, err=DataFileError, source=source or None,
                      haadf_label="given HAADF image", haadf_where="(the haadf argument)")
    if isinstance(haadf, (str, os.PathLike)):
        safe_save.recover(Path(haadf).expanduser())
    hp = _check_path(haadf, "HAADF", hints=display_name is None)
    if hp.suffix.lower() == ".npz":
        raise DataFileError(f"HAADF file {str(hp)!r}: give the HAADF as a .dm3/.dm4/.emd/"
                            ".hspy/.zspy image; a .npz holds a whole spectrum image.")
    # only the chosen image is read: other signals in the file may stay on disk
    declared = check_data_file(hp, display_name=hp.name if display_name else None,
                               memory_budget=budget, role="HAADF")
    images = _hs_load(hp, declared > budget, "HAADF")
    if haadf_signal is not None:
        i_img, _ = _pick_image(images, hp, haadf_signal, eels, si_where, exclude=None)
    else:
        i_img, others = _pick_image(images, hp, None, eels, si_where, exclude=None)
        if i_img is None and others:  # images on the SI's grid, none titled like a detector
            i_img, others = others[0], others[1:]
        if i_img is None:  # nothing fits: take the best-named image, the grid check explains
            candidates = [i for i, s in enumerate(images) if _is_image(s)]
            if not candidates:
                raise DataFileError(
                    f"HAADF file {str(hp)!r} contains no single 2-D image; it holds: "
                    + "; ".join(_describe(i, s) for i, s in enumerate(images)) + ".")
            i_img = min(candidates, key=lambda i: (_detector_rank(_title(images[i])) is None,
                                                   _detector_rank(_title(images[i])) or 0))
        elif others:
            _warn(f"{hp.name}: used image {_describe(i_img, images[i_img])} as HAADF; "
                  f"others: {_listing(images, others)}; choose with haadf_signal=<index or "
                  "title>.")
    image = images[i_img]
    if _nbytes_of(image) > budget:
        raise DataFileError(f"HAADF file {str(hp)!r}: image #{i_img} takes "
                            f"{fmt_bytes(_nbytes_of(image))}, more than the memory budget of "
                            f"{fmt_bytes(budget)}; bin it down before pairing it with the SI.")
    label = f"{_title(image)!r} (#{i_img}) in {hp.name}"
    source = dict(source, haadf_file=hp.name if display_name else str(hp),
                  haadf_signal=_title(image), haadf_signal_index=i_img)
    return _build(eels, image, where=si_where, err=DataFileError, source=source,
                  haadf_label=label, haadf_where=f"{str(hp)!r} (#{i_img} {_title(image)!r})")


def _nbytes_of(sig) -> int:
    data = sig.data
    return int(np.prod(data.shape, dtype=np.float64) * np.dtype(data.dtype).itemsize)


def _verify_checksums(eels, si: SpectrumImage, shown: str, check_haadf: bool) -> None:
    """Warn when data differs from what save() wrote (edited since, or damaged: a .zspy
    folder copied incompletely reads missing chunks as zeros without any error)."""
    sums = eels.metadata.get_item(f"{_GROUP}.checksums")
    if sums is None:
        return
    sums = json.loads(sums)
    checks = [("spectra", si.spectra)] + ([("haadf", si.haadf)] if check_haadf else [])
    bad = [name for name, arr in checks if sums.get(name) is not None and _crc(arr) != sums[name]]
    if bad:
        _warn(
            f"{shown}: the {' and '.join(bad)} differ from the checksum written when "
            "plasmonwidgets saved this file: it was modified afterwards or is damaged (e.g. "
            "an incomplete copy). Check the data or copy the file again.")


def _load_npz(p: Path) -> SpectrumImage:
    if not zipfile.is_zipfile(p):
        raise DataFileError(
            f"Cannot read {str(p)!r}: it is not a NumPy .npz archive (no zip directory found; "
            "it may be truncated or another kind of file renamed .npz). Save it again with "
            "si.save(...).")
    try:
        with np.load(p, allow_pickle=False) as z:
            names = set(z.files)
            missing = {"header", "spectra", "haadf"} - names
            if missing:
                raise DataFileError(
                    f"{str(p)!r} is a .npz but not a plasmonwidgets spectrum image (missing "
                    f"{', '.join(sorted(missing))}; it holds {', '.join(sorted(names)) or 'nothing'}"
                    "). Build one with SpectrumImage(spectra, energy, haadf) and save it.")
            head = json.loads(str(z["header"]))
            if head.get("format") != "plasmonwidgets":
                raise DataFileError(f"{str(p)!r}: header is not a plasmonwidgets header.")
            if head.get("version", 0) > _FORMAT_VERSION:
                raise DataFileError(f"{str(p)!r} was written by a newer plasmonwidgets (format "
                                    f"{head['version']}); upgrade plasmonwidgets to read it.")
            arrays = {k[4:]: z[k] for k in names if k.startswith("aux_")}
            spectra, haadf = z["spectra"], z["haadf"]
    except DataFileError:
        raise
    except Exception as exc:  # BadZipFile (bad CRC), pickled arrays, damaged members
        raise DataFileError(
            f"Cannot read {str(p)!r} as a plasmonwidgets .npz: {type(exc).__name__}: {exc}. "
            "The file is damaged or was not written by plasmonwidgets; save it again.") from exc
    try:
        head = _decode(head, arrays)
        norm = head["normalization"]
        return SpectrumImage(
            spectra, head["energy"], haadf, scale=head["scale"], pixel_size=head["pixel_size"],
            pixel_unit=head["pixel_unit"], metadata=head["metadata"],
            normalization=None if norm is None else Normalization(
                norm["mode"], norm["offset"], norm["factor"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise DataFileError(f"{str(p)!r}: inconsistent plasmonwidgets .npz ({exc}); save it "
                            "again.") from exc


# --------------------------------------------------------------------------- save
def save(si: SpectrumImage, path: str | os.PathLike, overwrite: bool = True) -> Path:
    """Write ``si`` to .hspy/.zspy (HyperSpy) or .npz; :func:`load` reads it back exactly.

    The file is first written under a temporary name in the same folder and then moved
    into place, so an interrupted or failed save leaves any previous file untouched.
    A lazy SI is streamed chunk by chunk to .hspy/.zspy (and read whole for .npz).

    Returns the path written. Raises FileExistsError when the file exists and
    ``overwrite`` is False, DataFileError for an unsupported extension or missing folder,
    TypeError when ``si.metadata`` holds something that cannot be stored.
    """
    if not isinstance(si, SpectrumImage):
        raise TypeError(f"save expects a SpectrumImage, got {type(si).__name__}")
    p = Path(path).expanduser()
    ext = p.suffix.lower()
    if ext not in _SAVE_FORMATS:
        raise DataFileError(f"Cannot save to {str(p)!r}: extension {ext or '(none)'!r} is not "
                            f"one plasmonwidgets writes; use {', '.join(_SAVE_FORMATS)}.")
    if not p.parent.is_dir():
        raise DataFileError(f"Cannot save to {str(p)!r}: the folder {str(p.parent)!r} does not "
                            "exist; create it first.")
    safe_save.recover(p)  # finish or clean up an earlier save that was interrupted
    if p.exists():
        if not overwrite:
            raise FileExistsError(f"{str(p)!r} already exists; pass overwrite=True to replace it.")
        if p.is_dir() and ext != ".zspy":
            raise DataFileError(f"Cannot save to {str(p)!r}: a folder of that name exists.")
    tmp = safe_save.temp_path(p)
    try:
        if ext == ".npz":
            _write_npz(si, tmp)
        else:
            _write_hyperspy(si, tmp)
        safe_save.move_into_place(tmp, p)
    except BaseException:
        safe_save.remove(tmp)
        raise
    log.info("saved %r to %s", si, p)
    return p


def _write_npz(si: SpectrumImage, tmp: Path) -> None:
    packer = _Packer(raw_bytes=False)
    header = _header(si, packer)
    arrays = {f"aux_{k}": v for k, v in packer.arrays.items()}
    with open(tmp, "wb") as f:
        np.savez(f, header=np.array(header), spectra=np.asarray(si.spectra), haadf=si.haadf,
                 **arrays)
        f.flush()
        os.fsync(f.fileno())


def _write_hyperspy(si: SpectrumImage, tmp: Path) -> None:
    eels, _ = _to_signals(si, copy=False, strict=True)
    sums = {"spectra": None if si.is_lazy else _crc(si.spectra), "haadf": _crc(si.haadf)}
    eels.metadata.set_item(f"{_GROUP}.checksums", json.dumps(sums))
    with _quiet_reader():
        eels.save(str(tmp), overwrite=True)
    if tmp.is_file():
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())

