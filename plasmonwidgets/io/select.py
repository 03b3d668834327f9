"""Choosing signals in a multi-signal file: the EELS spectrum image and its HAADF image.

Velox and DigitalMicrograph files hold several signals (EELS SIs at different energies,
EDS maps, detector images); these helpers pick the low-loss EELS SI and the dark-field
image on its scan grid, and describe every signal so that messages can list the choices.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .axes import field_of_view, grid_scale, image_axes, nav_axes, unit_of
from .errors import DataFileError


def is_si(sig) -> bool:
    """Whether ``sig`` has two navigation axes and one signal axis (h, w | E).

    Examples
    --------
    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> eels, haadf = si.to_hyperspy()
    >>> is_si(eels), is_si(haadf)
    (True, False)
    """
    am = sig.axes_manager
    return am.navigation_dimension == 2 and am.signal_dimension == 1


def is_image(sig) -> bool:
    """Whether ``sig`` is a single 2-D image (| H, W).

    Examples
    --------
    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> eels, haadf = si.to_hyperspy()
    >>> is_image(eels), is_image(haadf)
    (False, True)
    """
    am = sig.axes_manager
    return am.navigation_dimension == 0 and am.signal_dimension == 2


def _signal_type(sig) -> str:
    return str(sig.metadata.get_item("Signal.signal_type", "") or "")


def _is_eels_si(sig) -> bool:
    if not is_si(sig):
        return False
    stype = _signal_type(sig).upper()
    if stype.startswith("EDS"):
        return False
    return stype == "EELS" or unit_of(sig.axes_manager.signal_axes[0]) == "eV"


def title_of(sig) -> str:
    """The signal's title (``metadata.General.title``), "" when it has none.

    Examples
    --------
    >>> import hyperspy.api as hs
    >>> import numpy as np
    >>> sig = hs.signals.Signal2D(np.zeros((4, 4)))
    >>> sig.metadata.General.title = "HAADF"
    >>> title_of(sig)
    'HAADF'
    """
    return str(sig.metadata.get_item("General.title", "") or "")


def describe(i: int, sig) -> str:
    """One line naming signal ``i`` of a file: index, type, title, shape (and energy range).

    Examples
    --------
    >>> import hyperspy.api as hs
    >>> import numpy as np
    >>> sig = hs.signals.Signal2D(np.zeros((4, 4)))
    >>> sig.metadata.General.title = "HAADF"
    >>> describe(1, sig)
    "#1 Signal2D 'HAADF' (4, 4)"
    """
    shape = tuple(sig.data.shape)
    text = f"#{i} {type(sig).__name__.replace('Lazy', '')} {title_of(sig)!r} {shape}"
    if is_si(sig):
        ax = sig.axes_manager.signal_axes[0]
        e = np.asarray(ax.axis)
        text += f" {e[0]:.4g} to {e[-1]:.4g} {unit_of(ax) or '(no unit)'}"
    return text


def _select(signals: list, choice: int | str, what: str, path: Path) -> list[int]:
    """Indices of the signals chosen by list index or by title (titles may repeat)."""
    listing = "; ".join(describe(i, s) for i, s in enumerate(signals))
    if isinstance(choice, (int, np.integer)) and not isinstance(choice, bool):
        if 0 <= choice < len(signals):
            return [int(choice)]
        raise DataFileError(f"{what}={choice} is out of range: {str(path)!r} holds "
                            f"{len(signals)} signals: {listing}.")
    if not isinstance(choice, str):
        raise TypeError(f"{what} must be a signal title (str) or index (int), got "
                        f"{type(choice).__name__}")
    for same in (lambda t: t == choice, lambda t: t.lower() == choice.lower()):
        hits = [i for i, s in enumerate(signals) if same(title_of(s))]
        if hits:
            return hits
    raise DataFileError(f"{what}={choice!r}: no signal with that title in {str(path)!r}. It "
                        f"holds: {listing}. Choose by title or by index (#).")


def pick_si(signals: list, path: Path, choice) -> tuple[int, list[str]]:
    """Index of the EELS SI to use and descriptions of the alternatives.

    Examples
    --------
    >>> import pathlib
    >>> import hyperspy.api as hs
    >>> import numpy as np
    >>> eels = hs.signals.Signal1D(np.zeros((4, 4, 8)))
    >>> eels.axes_manager.signal_axes[0].units = "eV"
    >>> pick_si([hs.signals.Signal2D(np.zeros((4, 4))), eels], pathlib.Path("scan.emd"), None)[0]
    1
    """
    if choice is not None:
        pool = _select(signals, choice, "signal", path)
        for i in pool:
            sig = signals[i]
            if not is_si(sig) or _signal_type(sig).upper().startswith("EDS"):
                raise DataFileError(
                    f"signal {describe(i, sig)} in {str(path)!r} is not an EELS spectrum "
                    "image (2 scan dimensions + an energy-loss axis in eV). EELS SIs in the "
                    f"file: {_eels_listing(signals)}."
                )
    else:
        pool = [i for i, s in enumerate(signals) if _is_eels_si(s)]
        if not pool:
            raise DataFileError(
                f"{str(path)!r} contains no EELS spectrum image (a signal with 2 scan "
                "dimensions and an energy-loss axis in eV). It holds: "
                + "; ".join(describe(i, s) for i, s in enumerate(signals))
                + ". Pass the EELS file, or choose a signal with signal=<title or index>."
            )
    # low-loss first: plasmons live at a few eV, so the SI with the lowest start energy wins
    best = min(pool, key=lambda i: float(signals[i].axes_manager.signal_axes[0].axis[0]))
    return best, [describe(i, signals[i]) for i in pool if i != best]


def listing(signals: list, indices: list[int]) -> str:
    """:func:`describe` of the signals at ``indices``, joined by "; ".

    Examples
    --------
    >>> import hyperspy.api as hs
    >>> import numpy as np
    >>> signals = [hs.signals.Signal2D(np.zeros((4, 4))), hs.signals.Signal2D(np.zeros((8, 8)))]
    >>> listing(signals, [0, 1])
    "#0 Signal2D '' (4, 4); #1 Signal2D '' (8, 8)"
    """
    return "; ".join(describe(i, signals[i]) for i in indices)


def _eels_listing(signals: list) -> str:
    found = [describe(i, s) for i, s in enumerate(signals) if _is_eels_si(s)]
    return "; ".join(found) if found else "none"


def detector_rank(title: str) -> int | None:
    """0 HAADF, 1 ADF, 2 DF (dark-field detectors); None for anything else.

    Examples
    --------
    >>> detector_rank("HAADF"), detector_rank("ADF 2"), detector_rank("DF4"), detector_rank("BF")
    (0, 1, 2, None)
    """
    t = title.upper()
    if "HAADF" in t:
        return 0
    if "ADF" in t and "ABF" not in t:
        return 1
    tokens = re.split(r"[^A-Z0-9]+", t)
    if any(re.fullmatch(r"DF\d*", tok) for tok in tokens) or "DARK" in tokens:
        return 2
    return None


def pick_image(signals: list, path: Path, choice, eels, si_where: str,
               exclude: int | None) -> tuple[int | None, list[int]]:
    """Index of the HAADF-like image on the SI's scan grid (None if there is none), and
    the other candidates: further detector images or, when none is named like a detector,
    every image on the grid.

    Examples
    --------
    The image titled HAADF wins over a bright-field one on the same 12 x 12 grid:

    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> eels, haadf = si.to_hyperspy()
    >>> bf = haadf.deepcopy()
    >>> bf.metadata.General.title, haadf.metadata.General.title = "BF", "HAADF"
    >>> pick_image([eels, bf, haadf], None, None, eels, "demo", exclude=0)[0]
    2
    """
    si_shape = tuple(eels.data.shape[:2])
    si_fov = field_of_view(nav_axes(eels))
    if choice is not None:
        i = _select(signals, choice, "haadf_signal", path)[0]
        sig = signals[i]
        if not is_image(sig):
            raise DataFileError(f"haadf_signal: {describe(i, sig)} in {str(path)!r} is not a "
                                "single 2-D image. Images in the file: "
                                + ("; ".join(describe(j, s) for j, s in enumerate(signals)
                                             if is_image(s)) or "none") + ".")
        grid_scale(si_shape, si_fov, sig.data.shape, field_of_view(image_axes(sig)), si_where,
                   f"{describe(i, sig)} in {str(path)!r}", DataFileError)
        return i, []
    images = [i for i, s in enumerate(signals) if i != exclude and is_image(s)]
    on_grid = []
    for i in images:
        try:
            grid_scale(si_shape, si_fov, signals[i].data.shape,
                       field_of_view(image_axes(signals[i])), "", "", ValueError)
            on_grid.append(i)
        except ValueError:
            continue
    ranked = sorted((r, i) for i in on_grid if (r := detector_rank(title_of(signals[i])))
                    is not None)
    if ranked:
        return ranked[0][1], [i for _, i in ranked[1:]]
    return None, on_grid
