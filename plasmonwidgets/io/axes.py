"""Units, axes and calibration of HyperSpy signals: energy in eV, fields of view in metres.

Headers of real files disagree on units (nm, µm, Å; eV, keV), so every comparison goes
through these helpers; :func:`grid_scale` checks that a HAADF image covers the SI's scan.
"""

from __future__ import annotations

import numpy as np

from .names import warn_user

# length units -> metres, to compare fields of view written in different units
LENGTH = {
    "m": 1.0, "cm": 1e-2, "mm": 1e-3, "µm": 1e-6, "μm": 1e-6, "um": 1e-6, "micron": 1e-6,
    "nm": 1e-9, "Å": 1e-10, "A": 1e-10, "angstrom": 1e-10, "Angstrom": 1e-10, "pm": 1e-12,
}
_ENERGY = {"eV": 1.0, "keV": 1e3, "meV": 1e-3}
_FOV_RTOL = 0.02  # header pixel sizes are rounded; 2 % still catches a wrong image


def unit_of(axis) -> str:
    """The unit of a HyperSpy axis, stripped; "" when it has none (or "<undefined>").

    Examples
    --------
    A 12 x 12 SI (in nm) and its 32-channel energy axis (eV) as HyperSpy signals:

    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> eels, haadf = si.to_hyperspy()
    >>> unit_of(eels.axes_manager.signal_axes[0])
    'eV'
    """
    u = getattr(axis, "units", "")
    return u.strip() if isinstance(u, str) and u.strip() != "<undefined>" else ""


def nav_axes(sig) -> list:
    """Navigation axes in array order (rows first).

    Examples
    --------
    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> eels, _ = si.to_hyperspy()
    >>> [ax.name for ax in nav_axes(eels)]
    ['y', 'x']
    """
    return list(reversed(sig.axes_manager.navigation_axes))


def image_axes(sig) -> list:
    """Signal axes of an image in array order (rows first).

    Examples
    --------
    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> _, haadf = si.to_hyperspy()
    >>> [ax.size for ax in image_axes(haadf)]
    [12, 12]
    """
    return list(reversed(sig.axes_manager.signal_axes))


def field_of_view(axes: list) -> tuple[float, ...] | None:
    """Field of view per axis in metres, or None when the axes carry no length unit.

    Examples
    --------
    A 12 x 12 scan of 1 nm pixels spans 12 nm = 1.2e-8 m per axis:

    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> eels, _ = si.to_hyperspy()
    >>> [round(v * 1e9, 6) for v in field_of_view(nav_axes(eels))]
    [12.0, 12.0]
    """
    out = []
    for ax in axes:
        factor = LENGTH.get(unit_of(ax))
        if factor is None:
            return None
        out.append(ax.size * abs(float(ax.scale)) * factor)
    return tuple(out)


def _fmt_fov(fov: tuple[float, ...]) -> str:
    return " x ".join(f"{v * 1e9:.4g}" for v in fov) + " nm"


def energy_of(sig, where: str, err: type[Exception]) -> np.ndarray:
    """The energy-loss axis in eV (float64).

    Examples
    --------
    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> eels, _ = si.to_hyperspy()
    >>> energy = energy_of(eels, "demo", ValueError)
    >>> energy.shape, float(energy[0]), float(energy[-1])
    ((32,), 0.5, 2.0)
    """
    ax = sig.axes_manager.signal_axes[0]
    units = unit_of(ax)
    e = np.array(ax.axis, dtype=np.float64)
    if units in _ENERGY:
        return e * _ENERGY[units]
    if units == "":
        warn_user(f"{where}: the energy axis has no units; assuming eV.")
        return e
    raise err(
        f"{where}: the signal axis is in {units!r}, not an energy-loss axis in eV; "
        "pick the EELS spectrum image (signal=...)."
    )


def is_uniform(e: np.ndarray) -> bool:
    """Whether the energies ``e`` (1-D) are evenly spaced, to rounding error.

    Examples
    --------
    >>> import numpy as np
    >>> is_uniform(np.linspace(0.5, 2.0, 32)), is_uniform(np.array([0.5, 0.6, 0.8]))
    (True, False)
    """
    if e.size < 3:
        return True
    ramp = e[0] + (e[-1] - e[0]) / (e.size - 1) * np.arange(e.size)
    return bool(np.allclose(ramp, e, rtol=1e-9, atol=1e-12 * np.max(np.abs(e))))


def pixel_calibration(eels, where: str) -> tuple[float, str]:
    """(pixel size, unit) from the scan axes; 'px' when the file has no length unit.

    Examples
    --------
    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> eels, _ = si.to_hyperspy()
    >>> pixel_calibration(eels, "demo")
    (1.0, 'nm')
    """
    y, x = nav_axes(eels)
    size, unit = abs(float(x.scale)), unit_of(x)
    if not np.isclose(abs(float(y.scale)), size, rtol=1e-3) or unit_of(y) != unit:
        warn_user(
            f"{where}: scan pixels are not square (x {x.scale} {unit}, y {y.scale} "
            f"{unit_of(y)}); using the x pixel size.")
    if not unit or not np.isfinite(size) or size <= 0:
        return 1.0, "px"
    return size, unit


def scan_origin(eels, pixel_unit: str) -> list[float] | None:
    """[y, x] position of the first scan pixel in ``pixel_unit`` (Velox scans start at
    e.g. -3966 nm), or None when the file puts it at 0.

    Examples
    --------
    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> eels, _ = si.to_hyperspy()
    >>> scan_origin(eels, "nm") is None              # this scan starts at (0, 0)
    True
    """
    axes = nav_axes(eels)
    origin = []
    for ax in axes:
        offset = float(ax.offset)
        unit = unit_of(ax)
        if unit != pixel_unit and unit in LENGTH and pixel_unit in LENGTH:
            offset *= LENGTH[unit] / LENGTH[pixel_unit]
        origin.append(offset if np.isfinite(offset) else 0.0)
    return origin if any(origin) else None


def grid_scale(si_shape, si_fov, img_shape, img_fov, si_where, img_where, err) -> int:
    """Oversampling s with img_shape == s * si_shape, or a clear error naming both.

    Examples
    --------
    A 24 x 24 HAADF over the same 12 nm field as a 12 x 12 SI is oversampled 2 times:

    >>> grid_scale((12, 12), None, (24, 24), None, "si.hspy", "haadf.hspy", ValueError)
    2
    """
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
