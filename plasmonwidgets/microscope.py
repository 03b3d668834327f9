"""Microscopes an autonomous experiment can drive: the HAADF is free, spectra are acquired.

:class:`Microscope` is the protocol: ``haadf()`` (the whole image, known up front),
``scan_shape``, ``energy`` and ``acquire(positions) -> spectra``. Two implementations:

- :class:`RecordedMicroscope` replays a measured SpectrumImage (real data);
- :class:`SimulatedMicroscope` is the built-in simulator (:func:`plasmonwidgets.datasets.nanocube_array`).

Both keep the positions acquired so far and refuse a position twice (a second
spectrum at one spot would be a new measurement, not the recorded one) or outside the scan.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from .spectrum_image import SpectrumImage

__all__ = ["Microscope", "RecordedMicroscope", "SimulatedMicroscope", "AcquisitionError"]


class AcquisitionError(ValueError):
    """A requested beam position is outside the scan or was already acquired.

    Examples
    --------
    >>> scope.acquire([[3, 4]]); scope.acquire([[3, 4]])       # doctest: +SKIP
    Traceback (most recent call last):
    AcquisitionError: ...
    """


@runtime_checkable
class Microscope(Protocol):
    """What an autonomous loop needs from a microscope.

    Attributes
    ----------
    scan_shape : (h, w)
        SI pixels along rows and columns.
    energy : (E,) float
        Energy-loss axis of acquired spectra, eV.

    Examples
    --------
    >>> import plasmonwidgets as pw
    >>> scope = pw.RecordedMicroscope(pw.datasets.nanocube_array(size=24, n_energy=16))
    >>> isinstance(scope, pw.Microscope)
    True
    """

    scan_shape: tuple[int, int]
    energy: np.ndarray

    def haadf(self) -> np.ndarray:
        """The whole HAADF image (H, W) = (s*h, s*w), counts; cheap and known up front."""

    def acquire(self, positions: Any) -> np.ndarray:
        """Spectra (K, E) at SI pixels ``positions`` (K, 2) int (row, col)."""


class RecordedMicroscope:
    """Replay the spectra of a recorded SpectrumImage at the requested positions.

    Parameters
    ----------
    si : SpectrumImage
        The measured (or simulated) scan; lazy SIs are read only at acquired pixels.

    Attributes
    ----------
    si : SpectrumImage
        The replayed scan (its full spectra are the ground truth for benchmarks).
    acquired : (K, 2) int64
        Positions acquired so far, in order.

    Examples
    --------
    >>> import plasmonwidgets as pw
    >>> si = pw.datasets.nanocube_array(size=24, n_energy=16)
    >>> scope = pw.RecordedMicroscope(si)
    >>> spectra = scope.acquire([[0, 0], [5, 7]])
    >>> spectra.shape, bool((spectra[1] == si.spectra[5, 7]).all())
    ((2, 16), True)
    >>> scope.acquire([[5, 7]])
    Traceback (most recent call last):
    ...
    plasmonwidgets.microscope.AcquisitionError: position (5, 7) was already acquired (acquisition 2); ...
    """

    def __init__(self, si: SpectrumImage):
        if not isinstance(si, SpectrumImage):
            raise TypeError(f"RecordedMicroscope needs a SpectrumImage, got {type(si).__name__}")
        self.si = si
        self.scan_shape = tuple(int(v) for v in si.scan_shape)
        self.energy = np.asarray(si.energy, dtype=np.float64)
        self._order: dict[tuple[int, int], int] = {}
        self._acquired: list[tuple[int, int]] = []

    @property
    def scale(self) -> int:
        """HAADF pixels per SI pixel."""
        return int(self.si.scale)

    @property
    def acquired(self) -> np.ndarray:
        """(K, 2) int64 positions acquired so far, in order."""
        return np.array(self._acquired, dtype=np.int64).reshape(-1, 2)

    def haadf(self) -> np.ndarray:
        """The whole HAADF (H, W) float32, counts."""
        return np.asarray(self.si.haadf, dtype=np.float32)

    def acquire(self, positions: Any) -> np.ndarray:
        """Spectra (K, E) float32 at SI pixels ``positions`` (K, 2) (row, col).

        Raises :class:`AcquisitionError` (nothing is acquired) when a position is outside
        the scan, repeated in the request, or acquired before.
        """
        pos = self._check(positions)
        spectra = self._read(pos)
        for r, c in pos.tolist():
            self._order[(r, c)] = len(self._acquired)
            self._acquired.append((r, c))
        return spectra

    def _read(self, pos: np.ndarray) -> np.ndarray:
        data = self.si.spectra
        if hasattr(data, "vindex"):  # a lazy (dask) SI: read only these pixels
            out = data.vindex[pos[:, 0], pos[:, 1]].compute()
        else:
            out = data[pos[:, 0], pos[:, 1]]
        return np.array(out, dtype=np.float32).reshape(len(pos), len(self.energy))

    def _check(self, positions: Any) -> np.ndarray:
        arr = np.asarray(positions)
        if arr.ndim == 1 and arr.shape == (2,):
            arr = arr[None]
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise AcquisitionError(f"positions must be (K, 2) SI (row, col) pixels, got shape {arr.shape}")
        if arr.size and not (np.issubdtype(arr.dtype, np.integer)
                             or np.all(np.equal(np.mod(arr, 1), 0))):
            raise AcquisitionError("positions must be whole SI pixel indices (integers)")
        pos = arr.astype(np.int64)
        h, w = self.scan_shape
        bad = (pos[:, 0] < 0) | (pos[:, 0] >= h) | (pos[:, 1] < 0) | (pos[:, 1] >= w)
        if bad.any():
            r, c = pos[np.argmax(bad)]
            raise AcquisitionError(f"position ({r}, {c}) is outside the {h}x{w} scan; rows must be "
                                   f"0..{h - 1} and columns 0..{w - 1}")
        seen: set[tuple[int, int]] = set()
        for r, c in pos.tolist():
            if (r, c) in self._order:
                raise AcquisitionError(
                    f"position ({r}, {c}) was already acquired (acquisition {self._order[(r, c)] + 1}); "
                    "each beam position is measured once: choose another pixel")
            if (r, c) in seen:
                raise AcquisitionError(f"position ({r}, {c}) appears twice in one request")
            seen.add((r, c))
        return pos


class SimulatedMicroscope(RecordedMicroscope):
    """The built-in nanocube simulator as a microscope.

    The simulator computes a scene's spectra all at once (the shot noise is drawn for the
    whole scan from one random stream, and the film's coupled solve is
    shared by all beam positions), so spectra at single positions are not cheaper than
    the scene. This microscope therefore **simulates the whole scene once** (through the
    dataset cache, :func:`~plasmonwidgets.datasets.nanocube_array`) and replays it: the
    spectrum acquired at a pixel is exactly the full simulation's spectrum there, noise
    included.

    Parameters
    ----------
    seed, size, n_energy, physics, ... :
        Passed to :func:`~plasmonwidgets.datasets.nanocube_array` (``physics="quasistatic"``
        for the quasi-static scene).

    Examples
    --------
    >>> import numpy as np, plasmonwidgets as pw
    >>> scope = pw.SimulatedMicroscope(seed=0, size=24, n_energy=16)
    >>> full = pw.datasets.nanocube_array(seed=0, size=24, n_energy=16)
    >>> bool(np.array_equal(scope.acquire([[3, 4]])[0], full.spectra[3, 4]))
    True
    """

    def __init__(self, seed: int = 0, size: int = 96, n_energy: int = 100, **options: Any):
        from .datasets import nanocube_array

        self.simulation = {"seed": seed, "size": size, "n_energy": n_energy, **options}
        super().__init__(nanocube_array(seed=seed, size=size, n_energy=n_energy, **options))
