"""``load``: a spectrum image and its HAADF from an instrument file or one of ours.

The order of work: recover an interrupted save, check the path, check the headers
(:func:`~plasmonwidgets.io.limits.check_data_file`) before any reader runs, read with
HyperSpy, choose the signals, build the SpectrumImage, and say what was chosen.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from .. import _atomic
from ..spectrum_image import SpectrumImage
from . import backend
from .codec import GROUP, crc, plain
from .errors import DataFileError
from .hyperspy import build_si, to_signals
from .limits import check_data_file, default_memory_budget, fmt_bytes
from .names import messages_as, warn_user
from .npz import read_npz
from .paths import check_path
from .select import describe, detector_rank, is_image, listing, pick_image, pick_si, title_of

log = logging.getLogger(__name__)


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
        :func:`~plasmonwidgets.io.default_memory_budget`. A file whose headers
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

    Examples
    --------
    A spectrum image saved by :func:`plasmonwidgets.io.save` comes back exactly:

    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> import pathlib, tempfile
    >>> path = si.save(pathlib.Path(tempfile.mkdtemp()) / "scan.hspy")
    >>> back = load(path)
    >>> back.spectra.shape, bool(np.array_equal(back.energy, si.energy))
    ((12, 12, 32), True)
    >>> si = load("velox_scan.emd", signal="EELS")   # doctest: +SKIP
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
        _atomic.recover(Path(path).expanduser())  # an interrupted save of this path
    p = check_path(path, "spectrum image", hints=display_name is None)
    shown = display_name or p.name
    declared = check_data_file(p, display_name=display_name, memory_budget=budget,
                               role="spectrum image")
    too_big = declared > budget
    if too_big and not lazy:
        warn_user(f"{shown}: its data take {fmt_bytes(declared)} (as declared by the file), more "
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
            warn_user(f"{shown}: .npz files are always read into memory; save as .hspy or .zspy "
                      "for lazy access.")
        si = read_npz(p)
        si.metadata["source"] = source
        if haadf is None:
            return si
        eels, _ = to_signals(si, copy=False, strict=True)
        return _attach_haadf_file(eels, haadf, haadf_signal, source, repr(str(p)), display_name,
                                  budget)

    signals = backend.hs_load(p, lazy, "spectrum image")
    i_si, alternatives = pick_si(signals, p, signal)
    eels = signals[i_si]
    si_where = f"{str(p)!r} (signal #{i_si} {title_of(eels)!r})"
    own = eels.metadata.has_item(f"{GROUP}.header")
    source.update(signal=title_of(eels), signal_index=i_si, n_signals=len(signals),
                  alternatives=alternatives)
    notes = []
    if alternatives:
        notes.append(f"used EELS SI {describe(i_si, eels)} (lowest start energy: low-loss); "
                     f"other EELS SIs: {'; '.join(alternatives)}; choose with signal=<index "
                     "or title>")

    if haadf is not None:
        si = _attach_haadf_file(eels, haadf, haadf_signal, source, si_where, display_name, budget)
    else:
        i_img, others = (None, []) if own and haadf_signal is None else pick_image(
            signals, p, haadf_signal, eels, si_where, exclude=i_si)
        image = signals[i_img] if i_img is not None else None
        label = None
        if image is not None:
            label = f"{title_of(image)!r} (#{i_img}) in {shown}"
            source.update(haadf_file=source["file"], haadf_signal=title_of(image),
                          haadf_signal_index=i_img)
            if others:
                notes.append(f"used {describe(i_img, image)} as HAADF; other candidate images: "
                             f"{listing(signals, others)}; choose with haadf_signal=<index or title>")
        elif others:
            notes.append(f"no image titled HAADF/ADF/DF; images on the same scan grid: "
                         f"{listing(signals, others)}; choose one with haadf_signal=<index or title>")
        si = build_si(eels, image, where=si_where, err=DataFileError, source=source,
                      haadf_label=label, haadf_where=label, defer_stand_in=too_big, budget=budget)
    if notes:
        warn_user(f"{shown}: " + ". ".join(notes) + ".")
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
                tem[key] = plain(value)
    if not tem:
        del si.metadata["acquisition"]["TEM"]
        if not si.metadata["acquisition"]:
            del si.metadata["acquisition"]


def _attach_haadf_file(eels, haadf: Any, haadf_signal, source: dict, si_where: str,
                       display_name: str | None, budget: int) -> SpectrumImage:
    """SI from ``eels`` with the HAADF read from a separate file (or given as an array)."""
    hs, _ = backend.hyperspy_modules()
    if isinstance(haadf, (np.ndarray, hs.signals.BaseSignal)):
        return build_si(eels, haadf, where=si_where, err=DataFileError, source=source or None,
                        haadf_label="given HAADF image", haadf_where="(the haadf argument)")
    if isinstance(haadf, (str, os.PathLike)):
        _atomic.recover(Path(haadf).expanduser())
    hp = check_path(haadf, "HAADF", hints=display_name is None)
    if hp.suffix.lower() == ".npz":
        raise DataFileError(f"HAADF file {str(hp)!r}: give the HAADF as a .dm3/.dm4/.emd/"
                            ".hspy/.zspy image; a .npz holds a whole spectrum image.")
    # only the chosen image is read: other signals in the file may stay on disk
    declared = check_data_file(hp, display_name=hp.name if display_name else None,
                               memory_budget=budget, role="HAADF")
    images = backend.hs_load(hp, declared > budget, "HAADF")
    if haadf_signal is not None:
        i_img, _ = pick_image(images, hp, haadf_signal, eels, si_where, exclude=None)
    else:
        i_img, others = pick_image(images, hp, None, eels, si_where, exclude=None)
        if i_img is None and others:  # images on the SI's grid, none titled like a detector
            i_img, others = others[0], others[1:]
        if i_img is None:  # nothing fits: take the best-named image, the grid check explains
            candidates = [i for i, s in enumerate(images) if is_image(s)]
            if not candidates:
                raise DataFileError(
                    f"HAADF file {str(hp)!r} contains no single 2-D image; it holds: "
                    + "; ".join(describe(i, s) for i, s in enumerate(images)) + ".")
            i_img = min(candidates, key=lambda i: (detector_rank(title_of(images[i])) is None,
                                                   detector_rank(title_of(images[i])) or 0))
        elif others:
            warn_user(f"{hp.name}: used image {describe(i_img, images[i_img])} as HAADF; "
                      f"others: {listing(images, others)}; choose with haadf_signal=<index or "
                      "title>.")
    image = images[i_img]
    if _nbytes_of(image) > budget:
        raise DataFileError(f"HAADF file {str(hp)!r}: image #{i_img} takes "
                            f"{fmt_bytes(_nbytes_of(image))}, more than the memory budget of "
                            f"{fmt_bytes(budget)}; bin it down before pairing it with the SI.")
    label = f"{title_of(image)!r} (#{i_img}) in {hp.name}"
    source = dict(source, haadf_file=hp.name if display_name else str(hp),
                  haadf_signal=title_of(image), haadf_signal_index=i_img)
    return build_si(eels, image, where=si_where, err=DataFileError, source=source,
                    haadf_label=label, haadf_where=f"{str(hp)!r} (#{i_img} {title_of(image)!r})")


def _nbytes_of(sig) -> int:
    data = sig.data
    return int(np.prod(data.shape, dtype=np.float64) * np.dtype(data.dtype).itemsize)


def _verify_checksums(eels, si: SpectrumImage, shown: str, check_haadf: bool) -> None:
    """Warn when data differs from what save() wrote (edited since, or damaged: a .zspy
    folder copied incompletely reads missing chunks as zeros without any error)."""
    sums = eels.metadata.get_item(f"{GROUP}.checksums")
    if sums is None:
        return
    sums = json.loads(sums)
    checks = [("spectra", si.spectra)] + ([("haadf", si.haadf)] if check_haadf else [])
    bad = [name for name, arr in checks if sums.get(name) is not None and crc(arr) != sums[name]]
    if bad:
        warn_user(
            f"{shown}: the {' and '.join(bad)} differ from the checksum written when "
            "plasmonwidgets saved this file: it was modified afterwards or is damaged (e.g. "
            "an incomplete copy). Check the data or copy the file again.")
