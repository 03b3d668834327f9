"""Finding the zero-loss peak (ZLP) and choosing the window its tail is fitted in.

Works on the summed spectrum of a spectrum image (one energy axis for all pixels, so the
per-pixel fits in :mod:`plasmonwidgets.preprocess` stay vectorised). Three kinds of axis:

``"zlp"``
    The axis holds the ZLP itself (it starts at or below 0 eV, as low-loss SIs do):
    the peak is the largest summed intensity within ``ZLP_SEARCH_EV`` of 0 eV, and it
    must stand at least ``ZLP_MIN_CONTRAST`` times above the median of the spectrum
    beyond it. Its centre (parabola through the top three channels) and full width at
    half maximum (FWHM, linear interpolation) are measured. Automatic window:
    ``(centre + 3 FWHM, centre + 6 FWHM)``, widened to hold at least ``MIN_CHANNELS``.
``"tail"``
    The ZLP was cropped away and the axis starts on its falling tail (0 < start <
    ``TAIL_MAX_START_EV``, the summed spectrum largest at the first channel of the
    window): automatic window ``(start, 3 * start)``, i.e. the first factor of three in
    energy loss, widened to at least ``MIN_CHANNELS``.
``"none"``
    Anything else: core-loss data (the axis starts far above 0 eV) or an axis whose
    intensity does not fall off like a ZLP tail. No automatic window is chosen; the
    error says why and points to a background fit instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["ZLPInfo", "find_zlp", "auto_window", "NoZLPError"]

#: the ZLP is searched for within this distance (eV) of 0 eV
ZLP_SEARCH_EV = 5.0
#: the ZLP maximum must be at least this many times the median intensity above it
ZLP_MIN_CONTRAST = 5.0
#: an axis starting above this (eV) holds no ZLP tail worth fitting: a fit there is a
#: background fit under an edge (core loss)
TAIL_MAX_START_EV = 10.0
#: an automatic window is widened to hold at least this many channels
MIN_CHANNELS = 5


class NoZLPError(ValueError):
    """The data hold no zero-loss peak (or tail) to fit automatically.

    Examples
    --------
    Raised by :func:`find_zlp` when an axis holds neither a peak nor its tail:

    >>> issubclass(NoZLPError, ValueError)
    True
    """


@dataclass(frozen=True)
class ZLPInfo:
    """Where the zero-loss peak is on an energy axis.

    kind : "zlp" (the peak is on the axis) or "tail" (the axis starts on its tail)
    centre : eV, the peak maximum (0 for "tail": the peak lies below the axis)
    fwhm : eV, full width at half maximum (NaN for "tail")

    Examples
    --------
    A peak at 0 eV with 0.1 eV full width at half maximum:

    >>> info = ZLPInfo(kind="zlp", centre=0.0, fwhm=0.1)
    >>> info.kind, info.fwhm
    ('zlp', 0.1)
    """

    kind: str
    centre: float
    fwhm: float

    def as_dict(self) -> dict:
        out = {"kind": self.kind, "centre": float(self.centre)}
        if np.isfinite(self.fwhm):
            out["fwhm"] = float(self.fwhm)
        return out


def _background_advice(energy: np.ndarray) -> str:
    return (
        "To remove a power-law background before an edge, use exspy: "
        "eels, haadf = si.to_hyperspy(); eels.remove_background(signal_range=(start, end)); "
        "si = pw.SpectrumImage.from_hyperspy(eels, haadf). If you know where a tail is, "
        "pass remove_zlp(window=(start, end)) in eV"
    )


def _half_max_crossing(energy: np.ndarray, s: np.ndarray, peak: int, half: float, step: int) -> float:
    """Energy where s first falls to ``half`` walking from ``peak`` by ``step`` (+1/-1); NaN if never."""
    i = peak
    while 0 <= i + step < s.size:
        j = i + step
        if s[j] <= half:
            frac = (s[i] - half) / (s[i] - s[j]) if s[i] != s[j] else 0.0
            return float(energy[i] + frac * (energy[j] - energy[i]))
        i = j
    return float("nan")


def find_zlp(energy: np.ndarray, summed: np.ndarray) -> ZLPInfo:
    """Locate the zero-loss peak on ``energy`` (E,) eV from the summed spectrum (E,).

    Raises :class:`NoZLPError` (a ValueError) with advice when there is none; see the
    module docstring for the rules.

    Examples
    --------
    >>> e = np.linspace(-2, 10, 601)
    >>> info = find_zlp(e, 1e4 * np.exp(-0.5 * (e / 0.2) ** 2) + 10)
    >>> round(info.fwhm, 2)
    0.47
    """
    e = np.asarray(energy, dtype=np.float64)
    s = np.asarray(summed, dtype=np.float64)
    if e[0] <= 0 < e[-1]:
        near = np.flatnonzero(np.abs(e) <= ZLP_SEARCH_EV)
        if near.size == 0:  # a coarse axis: the channel nearest 0 eV
            near = np.array([int(np.argmin(np.abs(e)))])
        peak = int(near[np.argmax(s[near])])
        above = s[peak + 1 :]
        floor = float(np.median(above)) if above.size else 0.0
        if s[peak] <= 0 or s[peak] < ZLP_MIN_CONTRAST * max(floor, 0.0) or above.size < 2:
            ratio = s[peak] / floor if floor > 0 else float("nan")
            raise NoZLPError(
                f"the energy axis spans 0 eV ({e[0]:g} to {e[-1]:g} eV) but no zero-loss peak "
                f"stands out: the largest summed intensity within {ZLP_SEARCH_EV:g} eV of 0 "
                f"(at {e[peak]:.3g} eV) is {ratio:.3g} times the median intensity above it "
                f"(a ZLP needs >= {ZLP_MIN_CONTRAST:g}). Calibrate the energy axis, or pass "
                "window=(start, end) in eV to fit a tail where you know it is"
            )
        half = 0.5 * s[peak]
        left = _half_max_crossing(e, s, peak, half, -1)
        right = _half_max_crossing(e, s, peak, half, +1)
        if not np.isfinite(right):
            raise NoZLPError(
                f"the peak at {e[peak]:.3g} eV never falls to half its height on the axis "
                f"(up to {e[-1]:g} eV), so it has no tail to fit; pass window=(start, end) in eV"
            )
        if not np.isfinite(left):  # peak cut at the axis start: mirror the right half
            left = e[peak] - (right - e[peak])
        centre = float(e[peak])
        if 0 < peak < s.size - 1:  # parabola through the top three channels
            y0, y1, y2 = s[peak - 1 : peak + 2]
            denom = y0 - 2 * y1 + y2
            if denom < 0:
                shift = float(np.clip(0.5 * (y0 - y2) / denom, -0.5, 0.5))
                step = e[peak + 1] - e[peak] if shift > 0 else e[peak] - e[peak - 1]
                centre += shift * step
        fwhm = max(right - left, float(np.min(np.diff(e))))
        return ZLPInfo("zlp", centre, fwhm)
    if 0 < e[0] < TAIL_MAX_START_EV:
        stop = max(int(np.searchsorted(e, 3 * e[0], side="right")), min(MIN_CHANNELS, e.size))
        if s[0] >= s[:stop].max():  # falling (or flat) from the axis start
            return ZLPInfo("tail", 0.0, float("nan"))
        raise NoZLPError(
            f"the energy axis starts at {e[0]:g} eV and the summed intensity does not fall off "
            f"from there like a zero-loss-peak tail (it is largest at {e[int(np.argmax(s[:stop]))]:.3g} "
            f"eV, not at the start), so no fit window is chosen automatically. "
            + _background_advice(e)
        )
    if e[0] >= TAIL_MAX_START_EV:
        what = "core-loss data" if e[0] >= 50 else "data above the low-loss region"
        raise NoZLPError(
            f"the energy axis starts at {e[0]:g} eV, far above the zero-loss peak: this looks "
            f"like {what}, with no ZLP tail to remove. " + _background_advice(e)
        )
    raise NoZLPError(  # e[-1] <= 0: only energy gains
        f"the energy axis ends at {e[-1]:g} eV: there are no energy losses to fit a tail on"
    )


def auto_window(energy: np.ndarray, info: ZLPInfo) -> tuple[float, float]:
    """The automatic fit window (start, end) in eV for a located ZLP (module docstring).

    Examples
    --------
    The fit window (eV) for a Gaussian zero-loss peak of 0.1 eV FWHM on a -0.5..3 eV axis:

    >>> import numpy as np
    >>> energy = np.linspace(-0.5, 3.0, 351)
    >>> info = find_zlp(energy, np.exp(-0.5 * (energy / 0.0425) ** 2) + 1e-3)
    >>> start, end = auto_window(energy, info)
    >>> bool(0.0 < start < end)
    True
    """
    e = np.asarray(energy, dtype=np.float64)
    if info.kind == "zlp":
        start, end = info.centre + 3 * info.fwhm, info.centre + 6 * info.fwhm
    else:
        start, end = float(e[0]), 3 * float(e[0])
    first = int(np.searchsorted(e, start, side="left"))
    if first >= e.size:
        raise NoZLPError(
            f"the automatic fit window starts at {start:.3g} eV (ZLP + 3 FWHM), beyond the "
            f"axis end {e[-1]:g} eV; pass window=(start, end) in eV"
        )
    last = min(first + MIN_CHANNELS - 1, e.size - 1)
    return float(e[first]), float(max(end, e[last]))
