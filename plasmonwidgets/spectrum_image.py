"""SpectrumImage: an EELS spectrum image and its simultaneous HAADF image.

The spectrum image (SI) has shape (h, w, E): h scan rows, w scan columns and E
energy-loss channels (eV). The HAADF image has shape (H, W) = (s*h, s*w) for an
integer oversampling factor ``scale`` = s >= 1, so HAADF pixel block
``[s*r:s*r+s, s*c:s*c+s]`` covers SI pixel (r, c).

Every processing step returns a new object; nothing mutates the arrays a user
already holds.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["SpectrumImage", "Normalization"]


def _is_lazy(array: Any) -> bool:
    """True for dask-backed arrays (lazy HyperSpy signals)."""
    return type(array).__module__.split(".")[0] == "dask"


def _as_float32(name: str, array: Any, ndim: int) -> np.ndarray:
    if _is_lazy(array):
        if array.ndim != ndim:
            raise ValueError(f"{name} must have {ndim} dimensions, got shape {tuple(array.shape)}")
        return array.astype(np.float32)
    try:
        out = np.asarray(array)
    except Exception as exc:  # ragged lists, objects
        raise TypeError(f"{name} must be a numeric array: {exc}") from None
    if out.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {out.dtype}")
    if out.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {out.shape}")
    if out.size == 0:
        raise ValueError(f"{name} is empty (shape {out.shape})")
    out = np.ascontiguousarray(out, dtype=np.float32)
    bad = ~np.isfinite(out)
    if bad.any():
        raise ValueError(
            f"{name} contains {int(bad.sum())} NaN/Inf values (first at index "
            f"{tuple(int(i) for i in np.argwhere(bad)[0])}); replace or mask them "
            "before building a SpectrumImage, e.g. with np.nan_to_num"
        )
    return out


class Normalization:
    """An invertible intensity scaling applied to spectra.

    ``normalized = (raw - offset) / factor`` with ``offset`` and ``factor``
    broadcastable to the spectra: scalars for a global normalisation, (h, w, 1)
    arrays for a per-spectrum one.

    Examples
    --------
    A global scaling: 2 counts above a 1-count offset become 1.0 with ``factor=2``.

    >>> import numpy as np
    >>> norm = Normalization("global", offset=1.0, factor=2.0)
    >>> norm.apply(np.array([3.0, 5.0])), norm.invert(np.array([1.0, 2.0]))
    (array([1., 2.], dtype=float32), array([3., 5.], dtype=float32))
    """

    def __init__(self, mode: str, offset: np.ndarray | float, factor: np.ndarray | float):
        self.mode = mode
        self.offset = np.asarray(offset, dtype=np.float32)
        self.factor = np.asarray(factor, dtype=np.float32)

    def apply(self, spectra: np.ndarray) -> np.ndarray:
        return ((spectra - self.offset) / self.factor).astype(np.float32)

    def invert(self, spectra: np.ndarray) -> np.ndarray:
        """Map normalised spectra (same grid) back to the original units."""
        return (spectra * self.factor + self.offset).astype(np.float32)

    def __repr__(self) -> str:
        return f"Normalization(mode={self.mode!r})"


def _beam_energy(metadata: dict) -> float | None:
    """Beam energy (keV) from the acquisition metadata, when known."""
    tem = (metadata.get("acquisition") or {}).get("TEM") or {}
    value = tem.get("beam_energy") if isinstance(tem, dict) else None
    return float(value) if isinstance(value, (int, float)) and value > 0 else None


def _describe_step(step: dict) -> str:
    """One history entry as short text, e.g. ``crop(0.2-1.2 eV)``."""
    name = step.get("step", "?")
    if name == "remove_zlp":
        lo, hi = step.get("window", (float("nan"),) * 2)
        return f"remove_zlp({step.get('model')}, {step.get('window_rule')} window {lo:.3g}-{hi:.3g} eV)"
    if name == "crop":
        return f"crop({step['e_min']:.3g}-{step['e_max']:.3g} eV)"
    args = ", ".join(f"{k}={v}" for k, v in step.items() if k != "step")
    return f"{name}({args})"


class SpectrumImage:
    """An EELS spectrum image with its HAADF image.

    Parameters
    ----------
    spectra : array (h, w, E)
        Energy-loss intensities (counts or any linear unit).
    energy : array (E,)
        Energy-loss axis in eV, strictly increasing (a descending axis is
        rejected; reverse both axis and spectra first).
    haadf : array (H, W)
        HAADF intensities with H = scale*h and W = scale*w.
    scale : int, optional
        HAADF oversampling factor s; inferred from the shapes when omitted.
    pixel_size : float
        Size of one SI pixel (``pixel_unit``, default nm). A HAADF pixel is
        ``pixel_size / scale``.
    metadata : dict
        Free metadata (title, source file, simulation ground truth, ...).
    normalization : Normalization, optional
        Set by :meth:`normalize`, used by :meth:`denormalize`.

    Examples
    --------
    A 12 x 12 scan with 32 channels from 0.5 to 2.0 eV and a HAADF on the same grid:

    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> si.scan_shape, si.n_energy, si.scale
    ((12, 12), 32, 1)
    """

    def __init__(
        self,
        spectra: Any,
        energy: Any,
        haadf: Any,
        scale: int | None = None,
        pixel_size: float = 1.0,
        pixel_unit: str = "nm",
        metadata: dict | None = None,
        normalization: Normalization | None = None,
    ):
        self._spectra = _as_float32("spectra", spectra, 3)
        self._haadf = _as_float32("haadf", haadf, 2)
        if _is_lazy(self._haadf) and not _is_lazy(self._spectra):  # a lazy SI may keep a lazy HAADF
            self._haadf = np.asarray(self._haadf.compute(), dtype=np.float32)
        self._energy = self._validate_energy(energy, self._spectra.shape[2])
        h, w = self._spectra.shape[:2]
        H, W = self._haadf.shape
        if scale is None:
            if H % h or W % w or H // h != W // w:
                raise ValueError(
                    f"HAADF shape {(H, W)} is not an integer multiple of the SI scan "
                    f"shape {(h, w)}; resample the HAADF or crop both to the same field of view"
                )
            scale = H // h
        scale = int(scale)
        if scale < 1:
            raise ValueError(f"scale must be an integer >= 1, got {scale}")
        if (H, W) != (scale * h, scale * w):
            raise ValueError(
                f"HAADF shape {(H, W)} does not match SI scan shape {(h, w)} at scale "
                f"{scale} (expected {(scale * h, scale * w)})"
            )
        pixel_size = float(pixel_size)
        if not np.isfinite(pixel_size) or pixel_size <= 0:
            raise ValueError(f"pixel_size must be a positive finite number, got {pixel_size}")
        self._scale = scale
        self.pixel_size = pixel_size
        self.pixel_unit = str(pixel_unit)
        self.metadata = dict(metadata or {})
        self.normalization = normalization

    @staticmethod
    def _validate_energy(energy: Any, n_channels: int) -> np.ndarray:
        e = np.asarray(energy, dtype=np.float64)
        if e.ndim != 1:
            raise ValueError(f"energy must be 1-D, got shape {e.shape}")
        if e.size == 0:
            raise ValueError("energy axis is empty")
        if e.size != n_channels:
            raise ValueError(f"energy has {e.size} values but spectra have {n_channels} channels")
        if not np.all(np.isfinite(e)):
            raise ValueError("energy axis contains NaN/Inf")
        if e.size > 1 and not np.all(np.diff(e) > 0):
            if np.all(np.diff(e) < 0):
                raise ValueError(
                    "energy axis is descending; reverse it and the spectra "
                    "(spectra[..., ::-1]) so energy increases"
                )
            raise ValueError("energy axis must be strictly increasing")
        e.setflags(write=False)
        return e

    # --- read-only arrays -------------------------------------------------
    @property
    def spectra(self) -> np.ndarray:
        """(h, w, E) float32 intensities (a dask array when loaded lazily)."""
        return self._spectra

    @property
    def haadf(self) -> np.ndarray:
        """(H, W) float32 HAADF image (a dask array only when the spectra are lazy and the
        HAADF was given lazily, as for a lazy prediction; :meth:`compute` reads both)."""
        return self._haadf

    @property
    def energy(self) -> np.ndarray:
        """(E,) energy-loss axis in eV, strictly increasing."""
        return self._energy

    @property
    def scale(self) -> int:
        """HAADF oversampling factor s (H = s*h)."""
        return self._scale

    @property
    def scan_shape(self) -> tuple[int, int]:
        """(h, w) SI scan shape."""
        return tuple(self._spectra.shape[:2])

    @property
    def n_energy(self) -> int:
        return int(self._spectra.shape[2])

    @property
    def is_lazy(self) -> bool:
        return _is_lazy(self._spectra)

    def compute(self) -> SpectrumImage:
        """Load a lazy SI into memory (no-op when already in memory); a read error names the
        file (:func:`plasmonwidgets.io.lazy_read_errors`)."""
        if not self.is_lazy:
            return self
        with self.reading():
            spectra = np.asarray(self._spectra.compute())
        return self.replace(spectra=spectra)

    def reading(self):
        """Context for computing this SI's lazy data: read errors (OSError, HDF5, zarr) become
        ``DataFileError`` naming the file as the user knows it (``metadata["source"]``)."""
        from .io.names import lazy_read_errors  # io imports this module: import on use

        source = self.metadata.get("source") or {}
        name = source.get("name") or source.get("file") or self.metadata.get("title") or "lazy SI"
        return lazy_read_errors(str(name))

    def replace(self, **changes: Any) -> SpectrumImage:
        """A new SpectrumImage with some constructor arguments changed."""
        args = dict(
            spectra=self._spectra,
            energy=self._energy,
            haadf=self._haadf,
            scale=self._scale,
            pixel_size=self.pixel_size,
            pixel_unit=self.pixel_unit,
            metadata=copy.deepcopy(self.metadata),
            normalization=self.normalization,
        )
        args.update(changes)
        return SpectrumImage(**args)

    def haadf_on_si_grid(self) -> np.ndarray:
        """(h, w) HAADF averaged over each SI pixel's s×s block."""
        s = self._scale
        h, w = self.scan_shape
        return self._haadf.reshape(h, s, w, s).mean(axis=(1, 3))

    @property
    def history(self) -> tuple[dict, ...]:
        """Processing steps applied so far, oldest first (``metadata["history"]``).

        Each step is a dict with a ``"step"`` name ("remove_zlp", "crop", "normalize",
        "denormalize", "bin", "bin_haadf") and its parameters, e.g. the fit window
        ``remove_zlp`` actually used.
        """
        return tuple(self.metadata.get("history", ()))

    @property
    def intensity_unit(self) -> str:
        """"normalised" after :meth:`normalize`, else "counts" (for axis labels)."""
        return "counts" if self.normalization is None else "normalised"

    def __repr__(self) -> str:
        h, w = self.scan_shape
        e = self._energy
        step = f", {(e[-1] - e[0]) / (e.size - 1):.3g} eV/channel" if e.size > 1 else ""
        lines = [
            f"<SpectrumImage scan {h}x{w}, {e.size} channels {e[0]:.4g} to {e[-1]:.4g} eV{step}"
            f"{', lazy' if self.is_lazy else ''}",
            f"  HAADF {self._haadf.shape[0]}x{self._haadf.shape[1]} (scale {self._scale}, "
            f"source {self.metadata.get('haadf_source', 'given')}), "
            f"SI pixel {self.pixel_size:.4g} {self.pixel_unit}",
            "  intensity: " + ("counts" if self.normalization is None
                               else f"normalised ({self.normalization.mode})"),
        ]
        beam = _beam_energy(self.metadata)
        if beam is not None:
            lines.append(f"  beam energy {beam:g} keV")
        steps = [_describe_step(s) for s in self.history]
        lines.append("  history: " + (" -> ".join(steps) if steps else "none (as loaded)"))
        return "\n".join(lines) + ">"

    # --- processing (implemented in preprocess.py) ------------------------
    def remove_zlp(self, *args: Any, **kwargs: Any) -> SpectrumImage:
        """Fit and subtract the zero-loss-peak tail; see :func:`preprocess.remove_zlp`."""
        from .preprocess import remove_zlp

        return remove_zlp(self, *args, **kwargs)

    def crop(self, e_min: float, e_max: float) -> SpectrumImage:
        """Keep channels with e_min <= E <= e_max (eV)."""
        from .preprocess import crop

        return crop(self, e_min, e_max)

    def normalize(self, mode: str = "global", by: str = "max") -> SpectrumImage:
        """Scale intensities, 'global' or per-'spectrum', by their 'max' or 'sum'.

        As :func:`plasmonwidgets.preprocess.normalize`; invertible via :meth:`denormalize`.
        """
        from .preprocess import normalize

        return normalize(self, mode, by=by)

    def denormalize(self) -> SpectrumImage:
        """Undo :meth:`normalize`, returning intensities in the original units."""
        from .preprocess import denormalize

        return denormalize(self)

    def bin_haadf(self, factor: int) -> SpectrumImage:
        """Average the HAADF over factor x factor blocks; see :func:`preprocess.bin_haadf`."""
        from .preprocess import bin_haadf

        return bin_haadf(self, factor)

    def bin(self, spatial: int = 1, energy: int = 1) -> SpectrumImage:
        """Sum-bin the scan by ``spatial`` and the energy axis by ``energy``."""
        from .preprocess import bin_si

        return bin_si(self, spatial, energy)

    # --- conversion and saving (implemented in io.py) ---------------------
    def to_hyperspy(self):
        """(exspy EELSSpectrum (h, w | E), hyperspy Signal2D HAADF (H, W)), calibrated."""
        from .io import to_hyperspy

        return to_hyperspy(self)

    @classmethod
    def from_hyperspy(cls, eels, haadf=None) -> SpectrumImage:
        """Build from a HyperSpy EELS signal (h, w | E) and an optional HAADF Signal2D."""
        from .io import from_hyperspy

        return from_hyperspy(eels, haadf)

    def save(self, path: str | Path, overwrite: bool = True) -> Path:
        """Write to .hspy/.zspy (HyperSpy) or .npz; :func:`plasmonwidgets.load` reads it back exactly."""
        from .io import save

        return save(self, path, overwrite=overwrite)
