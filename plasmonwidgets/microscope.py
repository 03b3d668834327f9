"""Microscopes an autonomous experiment can drive: the HAADF is free, spectra are acquired.

:class:`Microscope` is the protocol: ``haadf()`` (the whole image, known up front),
``scan_shape``, ``energy`` and ``acquire(positions) -> spectra``. Two implementations:

- :class:`RecordedMicroscope` replays a measured SpectrumImage (real data);
- :class:`SimulatedMicroscope` is the built-in simulator (:func:`plasmonwidgets.datasets.nanocube_array`),
  replayed from the whole scene or, with ``on_demand=True``, computed at the requested positions only.

Both keep the positions acquired so far and refuse a position twice (a second
spectrum at one spot would be a new measurement, not the recorded one) or outside the scan.
"""

from __future__ import annotations

import copy
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


#: The spawn-key slot of per-pixel noise streams: the scene itself uses slots 0..7.
_PIXEL_NOISE_SLOT = 8

#: nanocube_array's options an on-demand microscope takes (``physics`` only "quasistatic").
_ON_DEMAND_OPTIONS = ("e_min", "e_max", "scale", "dose", "noise", "zlp_tail", "pixel_size", "physics",
                      "cache", "config")


class SimulatedMicroscope(RecordedMicroscope):
    """The built-in nanocube simulator as a microscope: replayed (default) or computed on demand.

    **Replay** (``on_demand=False``): the simulator computes a scene's spectra all at once
    (the shot noise is drawn for the whole scan from one random stream), so this microscope
    **simulates the whole scene once** (through the dataset cache,
    :func:`~plasmonwidgets.datasets.nanocube_array`) and replays it: the spectrum acquired
    at a pixel is exactly the full simulation's spectrum there, noise included.

    **On demand** (``on_demand=True``, quasi-static physics only): the scene is set up once
    (:func:`~plasmonwidgets.simulate.quasistatic.scene.quasistatic_scene`: layout, materials,
    the coupled film's solve, the HAADF), and each :meth:`acquire` computes the noiseless
    spectra only at the requested pixels (cost ∝ their number; they equal the full
    simulation's ``clean`` there to float32 rounding) and draws their Poisson shot noise, the
    scene's noise model, from one random stream per pixel keyed by (seed, row, col): a
    pixel's spectrum does not depend on when, or with which others, it is requested. The
    noise *values* therefore differ from the replayed scene's (one stream for the whole scan).
    There is no whole-scan ``si`` (it is None: tools that need the truth, such as the
    autonomous panel's error maps and replays, do without it); :meth:`truth` computes it on
    request, at the cost of the whole scene.

    Parameters
    ----------
    seed, size, n_energy, physics, ... :
        Passed to :func:`~plasmonwidgets.datasets.nanocube_array` (``physics="quasistatic"``
        for the quasi-static scene).
    on_demand : bool
        Compute spectra at the requested positions only (see above). Takes ``e_min``,
        ``e_max``, ``scale``, ``dose``, ``noise`` (False: the clean spectra, expected counts),
        ``pixel_size`` and ``config`` (a
        :class:`~plasmonwidgets.simulate.quasistatic.scene.QuasistaticSceneConfig`);
        ``cache`` is ignored. ``zlp_tail=True`` (the raw instrument) and ``physics="toy"``
        need the whole scene: ValueError.

    Attributes
    ----------
    si : SpectrumImage or None
        The replayed scan; None on demand.
    scene : QuasistaticScene
        On demand only: the set-up scene (``scene.expected_counts(pixels)`` gives noiseless
        spectra without acquiring).

    Examples
    --------
    >>> import numpy as np, plasmonwidgets as pw
    >>> scope = pw.SimulatedMicroscope(seed=0, size=24, n_energy=16)
    >>> full = pw.datasets.nanocube_array(seed=0, size=24, n_energy=16)
    >>> bool(np.array_equal(scope.acquire([[3, 4]])[0], full.spectra[3, 4]))
    True

    On demand, a few spectra of a large scene cost a few seconds, not the whole scene:

    >>> live = pw.SimulatedMicroscope(seed=0, size=96, n_energy=100, on_demand=True)  # doctest: +SKIP
    >>> live.acquire([[10, 20], [50, 60]]).shape                                      # doctest: +SKIP
    (2, 100)
    """

    def __init__(self, seed: int = 0, size: int = 96, n_energy: int = 100, on_demand: bool = False,
                 **options: Any):
        from .datasets import nanocube_array

        self.simulation = {"seed": seed, "size": size, "n_energy": n_energy, **options}
        self.on_demand = bool(on_demand)
        if not self.on_demand:
            super().__init__(nanocube_array(seed=seed, size=size, n_energy=n_energy, **options))
            return
        self.simulation["on_demand"] = True
        self.scene, self._noise = _on_demand_scene(seed, size, n_energy, options)
        self.si = None
        self.scan_shape = (self.scene.size, self.scene.size)
        self.energy = np.asarray(self.scene.energy, dtype=np.float64)
        self._haadf = np.asarray(self.scene.haadf(self._noise)[1], dtype=np.float32)
        self._truth: np.ndarray | None = None
        self._order: dict[tuple[int, int], int] = {}
        self._acquired: list[tuple[int, int]] = []

    @property
    def scale(self) -> int:
        """HAADF pixels per SI pixel."""
        return int(self.scene.scale) if self.on_demand else int(self.si.scale)

    def fresh(self) -> SimulatedMicroscope:
        """The same scene with nothing acquired yet (sharing the set-up scene or replayed SI).

        Examples
        --------
        >>> again = scope.fresh()            # doctest: +SKIP
        >>> again.acquired.shape             # doctest: +SKIP
        (0, 2)
        """
        twin = copy.copy(self)
        twin._order, twin._acquired = {}, []
        return twin

    def haadf(self) -> np.ndarray:
        """The whole HAADF (H, W) float32, counts (on demand: the scene's, as the full simulation's)."""
        return self._haadf.copy() if self.on_demand else super().haadf()

    def truth(self) -> np.ndarray:
        """(h, w, E) float32 every pixel's spectrum, counts, as :meth:`acquire` would give it.

        Replay: the SI's spectra. On demand: computed on the first call at the cost of the
        whole scene (then kept), acquiring nothing; its noise is each pixel's own stream, so it
        is what :meth:`acquire` returns there, but for a rare ±1 count where the whole scan's
        and a batch's expected counts differ in float32 rounding.

        Examples
        --------
        >>> scope = pw.SimulatedMicroscope(seed=0, size=16, n_energy=16, on_demand=True)  # doctest: +SKIP
        >>> scope.truth().shape                                                         # doctest: +SKIP
        (16, 16, 16)
        """
        if not self.on_demand:
            data = self.si.spectra
            return np.asarray(data.compute() if hasattr(data, "compute") else data, dtype=np.float32)
        if self._truth is None:
            pix = self.scene.all_pixels()
            self._truth = self._spectra(pix).reshape(*self.scan_shape, len(self.energy))
        return self._truth.copy()

    def _read(self, pos: np.ndarray) -> np.ndarray:
        return self._spectra(pos) if self.on_demand else super()._read(pos)

    def _spectra(self, pos: np.ndarray) -> np.ndarray:
        """(K, E) float32: expected counts at ``pos`` (K, 2), each with its own pixel's shot noise."""
        from .simulate.instrument import poisson

        clean = self.scene.expected_counts(pos)
        if not self._noise:
            return clean.astype(np.float32)
        out = np.empty(clean.shape, dtype=np.float32)
        for i, (r, c) in enumerate(pos.tolist()):
            key = np.random.SeedSequence(self.scene.seed, spawn_key=(_PIXEL_NOISE_SLOT, r, c))
            out[i] = poisson(np.random.default_rng(key), clean[i])
        return out


def _on_demand_scene(seed: int, size: int, n_energy: int, options: dict) -> tuple[Any, bool]:
    """The set-up quasi-static scene and the noise flag of an on-demand microscope."""
    from .simulate.quasistatic.scene import quasistatic_scene

    unknown = sorted(set(options) - set(_ON_DEMAND_OPTIONS))
    if unknown:
        raise TypeError(f"SimulatedMicroscope(on_demand=True) got unexpected options {unknown}; "
                        f"it takes {', '.join(_ON_DEMAND_OPTIONS)}")
    opts = dict(options)
    physics = opts.pop("physics", "quasistatic")
    if physics != "quasistatic":
        raise ValueError(f"on_demand=True needs physics='quasistatic' (the toy scene is solved whole), "
                         f"got {physics!r}; use on_demand=False to replay it")
    if opts.pop("zlp_tail", False):
        raise ValueError("on_demand=True cannot simulate zlp_tail=True (the energy drift and zero-loss "
                         "tail are drawn for the whole scan); use on_demand=False")
    opts.pop("cache", None)
    noise = bool(opts.pop("noise", True))
    return quasistatic_scene(seed=seed, size=size, n_energy=n_energy, **opts), noise
