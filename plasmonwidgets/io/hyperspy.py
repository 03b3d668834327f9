"""Conversion between :class:`SpectrumImage` and HyperSpy signals.

:func:`to_hyperspy` stores the HAADF, the exact energy axis and our metadata in the EELS
signal's ``metadata.plasmonwidgets`` group, so one signal (or one .hspy/.zspy file) holds
everything; :func:`build_si` reads them back, or builds the SI from a foreign signal.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..spectrum_image import Normalization, SpectrumImage, _is_lazy
from .axes import (
    LENGTH,
    energy_of,
    field_of_view,
    grid_scale,
    image_axes,
    is_uniform,
    nav_axes,
    pixel_calibration,
    scan_origin,
    unit_of,
)
from .backend import exc_name, hyperspy_modules
from .codec import GROUP, Packer, decode, encode_header, plain
from .errors import DataFileError
from .limits import fmt_bytes
from .names import lazy_read_errors, warn_user
from .select import is_si

STAND_IN = "summed-intensity stand-in"
NO_IMAGE = "none (blank: SI too large for a stand-in)"
_REPAIR_HINT = (". To use the data anyway, load it with hyperspy.api.load, repair it, and call "
                "SpectrumImage.from_hyperspy(signal, haadf)")


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

    Examples
    --------
    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> eels, haadf = to_hyperspy(si)
    >>> eels.data.shape, haadf.data.shape
    ((12, 12, 32), (12, 12))
    """
    return to_signals(si, copy=True, strict=False)


def to_signals(si: SpectrumImage, copy: bool, strict: bool):
    """:func:`to_hyperspy` with a choice: ``copy`` the arrays; ``strict`` for saving.

    Examples
    --------
    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> eels, haadf = to_signals(si, copy=False, strict=False)
    >>> type(eels).__name__
    'EELSSpectrum'
    """
    hs, exspy = hyperspy_modules()
    h, w = si.scan_shape
    # uncalibrated scans keep HyperSpy's own "no unit" rather than a made-up "px"
    unit = "" if si.pixel_unit == "px" else si.pixel_unit
    origin = _origin_of(si)
    nav = [dict(name=n, size=s, offset=o, scale=si.pixel_size, units=unit)
           for n, s, o in (("y", h, origin[0]), ("x", w, origin[1]))]
    e = si.energy
    if is_uniform(e):
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
    if _is_lazy(si.haadf):  # a lazy prediction's HAADF: written block by block, never read whole
        haadf = haadf.as_lazy()
    haadf.metadata.General.title = "HAADF"
    acquisition = _acquisition_tree(si)
    if acquisition:
        for sig in (eels, haadf):
            sig.metadata.set_item("Acquisition_instrument", acquisition)
    packer = Packer(raw_bytes=True)
    try:
        header = encode_header(si, packer)
    except TypeError as exc:
        if strict:
            raise
        warn_user(f"to_hyperspy: {exc}; the metadata dict is left out of "
                  "eels.metadata.plasmonwidgets.")
        packer = Packer(raw_bytes=True)
        header = encode_header(si, packer, with_metadata=False)
    eels.metadata.set_item(GROUP, {"header": header, "arrays": packer.arrays,
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

    Examples
    --------
    A round trip through HyperSpy signals gives the same arrays back:

    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> back = from_hyperspy(*to_hyperspy(si))
    >>> bool(np.array_equal(back.spectra, si.spectra)), back.scan_shape
    (True, (12, 12))
    """
    hs, _ = hyperspy_modules()
    if not isinstance(eels, hs.signals.BaseSignal):
        raise TypeError(f"eels must be a HyperSpy signal, got {type(eels).__name__}")
    if not is_si(eels):
        raise ValueError(
            f"eels must have 2 navigation (scan) dimensions and 1 signal (energy) dimension, "
            f"got {eels.axes_manager.navigation_dimension} and "
            f"{eels.axes_manager.signal_dimension} (data shape {tuple(eels.data.shape)})"
        )
    return build_si(eels, haadf, where="from_hyperspy", err=ValueError)


def _stored_group(eels, where: str) -> dict | None:
    """Our group in a signal's metadata, decoded; None when absent or out of date."""
    md = eels.metadata
    if not md.has_item(f"{GROUP}.header"):
        return None
    try:
        head = json.loads(md.get_item(f"{GROUP}.header"))
        arrays = md.get_item(f"{GROUP}.arrays").as_dictionary() if md.has_item(
            f"{GROUP}.arrays") else {}
        group = decode(head, arrays)
    except Exception as exc:  # a damaged or foreign group must not block the data itself
        warn_user(f"{where}: ignoring unreadable plasmonwidgets metadata ({exc}).")
        return None
    h, w, n = eels.data.shape
    if group.get("scan_shape") != [h, w] or group.get("n_energy") != n:
        warn_user(
            f"{where}: the signal was cropped or binned after plasmonwidgets wrote it (scan "
            f"{tuple(group.get('scan_shape', ()))}, {group.get('n_energy')} channels then; "
            f"{(h, w)}, {n} now); its stored HAADF, exact energy axis and normalisation are "
            "ignored, the metadata dict is kept.")
        return {"metadata": group.get("metadata", {})}
    group["haadf"] = md.get_item(f"{GROUP}.haadf") if md.has_item(f"{GROUP}.haadf") else None
    return group


def build_si(eels, haadf, *, where: str, err: type[Exception], source: dict | None = None,
             haadf_label: str | None = None, haadf_where: str | None = None,
             defer_stand_in: bool = False, budget: int | None = None) -> SpectrumImage:
    """The SpectrumImage for an SI signal and an optional HAADF (Signal2D, array or None).

    ``defer_stand_in``: the (lazy) SI is larger than the memory budget, so summing it for
    a stand-in image would stream the whole file: a blank image is used instead.

    Examples
    --------
    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> eels, haadf = to_hyperspy(si)
    >>> build_si(eels, haadf, where="demo", err=ValueError).scan_shape
    (12, 12)
    """
    hs, _ = hyperspy_modules()
    group = _stored_group(eels, where)
    data = eels.data
    energy = energy_of(eels, where, err)
    if group and "energy" in group:
        stored = np.asarray(group["energy"], dtype=np.float64)
        if stored.shape == energy.shape and np.allclose(stored, energy, rtol=1e-7, atol=1e-9):
            energy = stored  # bit-exact copy of what was saved
    if energy.size > 1 and np.all(np.diff(energy) < 0):
        warn_user(f"{where}: the energy axis is descending; reversed it (and the spectra) so "
                  "energy increases.")
        energy, data = energy[::-1].copy(), data[..., ::-1]

    if group and "pixel_size" in group:
        pixel_size, pixel_unit = group["pixel_size"], group["pixel_unit"]
    else:
        pixel_size, pixel_unit = pixel_calibration(eels, where)

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
                          f"({exc_name(exc)}: {exc}); the file may be damaged.") from exc
            img_fov = field_of_view(image_axes(haadf))
        else:
            image = np.asarray(haadf)
            img_fov = None
        scale = grid_scale(si_shape, field_of_view(nav_axes(eels)), image.shape, img_fov,
                           where, haadf_where or "(the haadf argument)", err)
        haadf_source = haadf_label  # None: keep what stored metadata says
        if pixel_unit == "px" and isinstance(haadf, hs.signals.BaseSignal):
            # the SI has no length calibration but its HAADF has: use the HAADF's
            _, x_img = image_axes(haadf)
            if unit_of(x_img) in LENGTH and np.isfinite(x_img.scale) and x_img.scale:
                pixel_size, pixel_unit = abs(float(x_img.scale)) * scale, unit_of(x_img)

    if group and "metadata" in group:
        metadata = dict(group["metadata"])
    else:
        metadata = {"title": str(eels.metadata.get_item("General.title", ""))}
        origin = scan_origin(eels, pixel_unit)
        if origin is not None:
            metadata["scan_origin"] = origin
        acq = eels.metadata.get_item("Acquisition_instrument")
        if acq is not None:
            metadata["acquisition"] = plain(acq.as_dictionary())
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
        warn_user(f"{where}: no HAADF/ADF/DF image, and the SI is too large to sum for a stand-in "
                  f"image without reading the whole file; the HAADF is blank (metadata"
                  f"['haadf_source'] = {NO_IMAGE!r}). Pass haadf='HAADF file' to pair it with the "
                  "real image.")
    if haadf_source == STAND_IN:
        warn_user(f"{where}: no HAADF/ADF/DF image; using the summed EELS intensity over "
                  f"{energy[0]:.4g} to {energy[-1]:.4g} eV as a stand-in image "
                  f"(metadata['haadf_source'] = {STAND_IN!r}). Pass haadf='HAADF file' to pair it "
                  "with the real image.")
    return si


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
