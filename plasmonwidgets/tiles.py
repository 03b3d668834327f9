"""Image-tile / spectrum pairs and spatial train/test splits.

Tile convention: for SI pixel (r, c) and HAADF oversampling s, the window of
``w`` HAADF pixels starts at HAADF row ``s*r + s//2 - w//2`` (same for
columns). Index ``w//2`` of the tile is therefore the HAADF pixel at the SI
pixel's centre (``s*r + s//2``); for an even ``w`` the centre sits just right of
and below the geometric middle of the tile. With ``s`` even and ``w`` even the
window is exactly centred on the SI pixel's centre.

Windows are given in HAADF pixels or, with ``window_unit="si"``, in SI pixels (an
oversampled HAADF, e.g. 32 HAADF pixels per SI pixel, then needs no arithmetic by the
caller); a window smaller than one SI pixel warns.

Tiles are served from a zero-copy sliding-window view of the HAADF; the
(N, w, w) stack is only materialised when ``.images`` is read. The spectra of a lazy
(dask-backed) SI are streamed band by band of scan rows into the (N, E) output, so
``make_tiles`` never holds the whole SI; ``rows=(start, stop)`` tiles one band of the
scan, for SIs whose tiled spectra alone would not fit in memory.
"""

from __future__ import annotations

import warnings
from typing import Any, NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .spectrum_image import SpectrumImage

__all__ = ["TilePairs", "make_tiles", "split_mask", "tile_layout", "SPLIT_METHODS", "WINDOW_UNITS"]

SPLIT_METHODS = ("halves", "stripes", "blocks", "random")


class TilePairs:
    """N pairs of (HAADF tile, spectrum at the tile's centre).

    Attributes
    ----------
    images : (N, w, w) float32
        HAADF windows (HAADF counts), materialised on first access.
    spectra : (N, E) float32
        Spectrum at each tile's centre pixel.
    positions : (N, 2) int64
        SI (row, col) of each tile's centre.
    energy : (E,) float64
        Energy-loss axis in eV.
    scan_shape : (h, w)
        Shape of the SI scan the positions refer to.
    regions : (N,) int or None
        Region label of each centre when the SI carried ``metadata["regions"]``.

    Examples
    --------
    Usually made by :func:`make_tiles`: one pair per SI pixel of a 12 x 12 scan.

    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> pairs = pw.make_tiles(si, window=4, pad="reflect")
    >>> pairs.images.shape, pairs.spectra.shape, pairs.positions.shape
    ((144, 4, 4), (144, 32), (144, 2))
    """

    def __init__(
        self,
        images: np.ndarray | None,
        spectra: np.ndarray,
        positions: np.ndarray,
        energy: np.ndarray,
        scan_shape: tuple[int, int],
        regions: np.ndarray | None = None,
        region_names: list[str] | None = None,
        *,
        _view: np.ndarray | None = None,
        _starts: np.ndarray | None = None,
        split_info: dict | None = None,
    ):
        # contiguous copies: torch cannot wrap arrays with negative strides (flipped views)
        spectra = np.ascontiguousarray(spectra, dtype=np.float32)
        positions = np.asarray(positions, dtype=np.int64)
        if spectra.ndim != 2:
            raise ValueError(f"spectra must be (N, E), got shape {spectra.shape}")
        n = spectra.shape[0]
        if positions.shape != (n, 2):
            raise ValueError(f"positions must be ({n}, 2), got shape {positions.shape}")
        if images is None and (_view is None or _starts is None):
            raise ValueError("images are required")
        if images is not None:
            images = np.ascontiguousarray(images, dtype=np.float32)
            if images.ndim != 3 or images.shape[1] != images.shape[2] or images.shape[0] != n:
                raise ValueError(f"images must be ({n}, w, w) to match {n} spectra, got shape {images.shape}")
        self._images = images
        self._view = _view
        self._starts = _starts
        self.spectra = spectra
        self.positions = positions
        self.energy = np.asarray(energy, dtype=np.float64)
        if self.energy.shape != (spectra.shape[1],):
            raise ValueError(f"energy has shape {self.energy.shape}; expected ({spectra.shape[1]},)")
        self.scan_shape = (int(scan_shape[0]), int(scan_shape[1]))
        self.regions = None if regions is None else np.asarray(regions)
        self.region_names = list(region_names) if region_names is not None else None
        self.split_info = dict(split_info or {})

    # --- shape facts ------------------------------------------------------
    def __len__(self) -> int:
        return int(self.spectra.shape[0])

    @property
    def window(self) -> int:
        if self._images is not None:
            return int(self._images.shape[1])
        return int(self._view.shape[-1])

    @property
    def n_energy(self) -> int:
        return int(self.spectra.shape[1])

    @property
    def images(self) -> np.ndarray:
        """(N, w, w) float32 HAADF tiles (materialised once, then cached)."""
        if self._images is None:
            rows, cols = self._starts[:, 0], self._starts[:, 1]
            self._images = np.ascontiguousarray(self._view[rows, cols], dtype=np.float32)
        return self._images

    def tile(self, i: int) -> np.ndarray:
        """The i-th (w, w) tile; a read-only view when not yet materialised."""
        if self._images is not None:
            return self._images[i]
        r, c = self._starts[i]
        return self._view[r, c]

    def index_of(self, row: int, col: int) -> int | None:
        """Index of the pair centred on SI pixel (row, col), or None."""
        hit = np.flatnonzero((self.positions[:, 0] == row) & (self.positions[:, 1] == col))
        return int(hit[0]) if hit.size else None

    def __repr__(self) -> str:
        return (
            f"<TilePairs {len(self)} pairs, tiles {self.window}x{self.window}, "
            f"{self.n_energy} channels, scan {self.scan_shape[0]}x{self.scan_shape[1]}>"
        )

    # --- subsets and splits ----------------------------------------------
    def subset(self, indices: Any, split_info: dict | None = None) -> TilePairs:
        """A new TilePairs holding the pairs at ``indices`` (int array or bool mask)."""
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise ValueError(f"mask must have shape ({len(self)},), got {idx.shape}")
            idx = np.flatnonzero(idx)
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError(f"indices out of range for {len(self)} pairs")
        return TilePairs(
            None if self._images is None else self._images[idx],
            self.spectra[idx],
            self.positions[idx],
            self.energy,
            self.scan_shape,
            None if self.regions is None else self.regions[idx],
            self.region_names,
            _view=self._view,
            _starts=None if self._starts is None else self._starts[idx],
            split_info=split_info if split_info is not None else self.split_info,
        )

    def footprints(self) -> np.ndarray:
        """(N, 2) HAADF-pixel (row, col) of each tile's top-left corner (unpadded frame)."""
        if self._starts is not None:
            return self._starts - self.split_info.get("pad", 0)
        s = self.split_info.get("scale", 1)
        return self.positions * s + s // 2 - self.window // 2

    def split_by_mask(self, test_mask: np.ndarray, method: str = "mask") -> tuple[TilePairs, TilePairs]:
        """Split with an (h, w) boolean SI-grid mask: True pixels are test centres.

        Training tiles whose window contains any test centre are dropped, so
        no test centre lies inside a training tile (overlapping tiles would
        otherwise leak test pixels into training).
        """
        test_mask = np.asarray(test_mask, dtype=bool)
        if test_mask.shape != self.scan_shape:
            raise ValueError(f"test mask shape {test_mask.shape} does not match scan shape {self.scan_shape}")
        is_test = test_mask[self.positions[:, 0], self.positions[:, 1]]
        if not is_test.any() or is_test.all():
            raise ValueError(
                f"split '{method}' puts {int(is_test.sum())} of {len(self)} pairs in the test "
                "set; choose a test_fraction that leaves both sets non-empty"
            )
        contains_test = self._windows_containing(self.positions[is_test])
        train_idx = np.flatnonzero(~is_test & ~contains_test)
        if train_idx.size == 0:
            raise ValueError(
                f"split '{method}' leaves no training tile that is clear of the test region; "
                "use a smaller window or a split with larger contiguous regions"
            )
        info = dict(self.split_info, method=method, n_guard_dropped=int((~is_test & contains_test).sum()))
        return (
            self.subset(train_idx, dict(info, part="train")),
            self.subset(np.flatnonzero(is_test), dict(info, part="test")),
        )

    def source_boxes(self) -> np.ndarray:
        """(N, 4) HAADF-pixel box ``(row0, row1, col0, col1)``, ends exclusive, holding every
        pixel a tile's values come from.

        Without padding that is the tile's window. With ``pad="reflect"`` a border tile also
        holds mirror images of pixels outside its window (the mirror of row -k is row k),
        and the box grows to cover them: the reflection is a continuous zigzag, so the
        pixels one window draws from always form a contiguous range per axis.
        """
        s, w = self.split_info.get("scale", 1), self.window
        margin = int(self.split_info.get("pad", 0))
        top_left = self.footprints() + margin  # in the padded frame
        h, wd = self.scan_shape
        boxes = []
        for axis, size in ((0, h * s), (1, wd * s)):
            source = np.arange(size)
            if margin:
                source = np.pad(source, margin, mode="reflect")
            windows = sliding_window_view(source, w)
            start = np.clip(top_left[:, axis], 0, len(windows) - 1)
            boxes += [windows.min(axis=1)[start], windows.max(axis=1)[start] + 1]
        return np.stack(boxes, axis=1)

    def _windows_containing(self, centres: np.ndarray) -> np.ndarray:
        """(N,) bool: does pair i hold the HAADF pixel of any of the given SI centres?"""
        s = self.split_info.get("scale", 1)
        h, wd = self.scan_shape
        grid = np.zeros((h * s, wd * s), dtype=np.int32)
        grid[centres[:, 0] * s + s // 2, centres[:, 1] * s + s // 2] = 1
        table = np.zeros((grid.shape[0] + 1, grid.shape[1] + 1), dtype=np.int64)
        table[1:, 1:] = grid.cumsum(0).cumsum(1)
        r0, r1, c0, c1 = np.clip(self.source_boxes(), 0, None).T
        r1, c1 = np.minimum(r1, grid.shape[0]), np.minimum(c1, grid.shape[1])
        total = table[r1, c1] - table[r0, c1] - table[r1, c0] + table[r0, c0]
        return total > 0

    def split(
        self,
        method: str = "halves",
        test_fraction: float = 0.5,
        seed: int = 0,
        n_stripes: int = 4,
        n_blocks: int = 4,
        *,
        axis: int | str | None = None,
    ) -> tuple[TilePairs, TilePairs]:
        """Spatial train/test split -> (train, test).

        ``"halves"``: the last ``test_fraction`` of the scan along ``axis`` is test (the
        bottom rows or the right columns).
        ``"stripes"``: ``n_stripes`` periods along ``axis``, the last part of each is test.
        ``"blocks"``: an ``n_blocks``×``n_blocks`` grid, a random ``test_fraction`` of
        the blocks (seeded) is test.
        ``"random"``: pixels drawn at random (for comparison only: overlapping tiles leak).
        Except for ``"random"``, training tiles that contain a test centre are dropped.

        ``axis``: the scan axis the halves/stripes run along, ``"rows"`` (0: the split
        line is horizontal, test = the last rows) or ``"columns"`` (1: a vertical line,
        test = the last columns). Default: the longer scan axis (columns for a square
        scan), so a 49x6 scan is split into top and bottom rather than into thin columns.

        Examples
        --------
        >>> train, test = pairs.split("halves")                 # doctest: +SKIP
        >>> train, test = pairs.split("halves", axis="rows")    # doctest: +SKIP
        """
        if method not in SPLIT_METHODS:
            raise ValueError(f"unknown split method {method!r}; choose one of {SPLIT_METHODS}")
        if not 0.0 < float(test_fraction) < 1.0:
            raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
        if method == "random":
            _split_axis(axis, self.scan_shape)  # a wrong axis is an error whatever the method
            rng = np.random.default_rng(seed)
            n_test = int(round(test_fraction * len(self)))
            if n_test in (0, len(self)):
                raise ValueError(f"test_fraction {test_fraction} leaves an empty set of {len(self)}")
            order = rng.permutation(len(self))
            info = dict(self.split_info, method="random")
            return (
                self.subset(np.sort(order[n_test:]), dict(info, part="train")),
                self.subset(np.sort(order[:n_test]), dict(info, part="test")),
            )
        test_mask, axis_name = split_mask(self.scan_shape, method, test_fraction=test_fraction, seed=seed,
                                          n_stripes=n_stripes, n_blocks=n_blocks, axis=axis)
        train, test = self.split_by_mask(np.asarray(test_mask), method)
        if axis_name is not None:
            train.split_info["axis"] = test.split_info["axis"] = axis_name
        return train, test



def split_mask(
    scan_shape: tuple[int, int],
    method: str = "halves",
    *,
    test_fraction: float = 0.5,
    seed: int = 0,
    n_stripes: int = 4,
    n_blocks: int = 4,
    axis: int | str | None = None,
) -> tuple[np.ndarray, str | None]:
    """The (h, w) boolean SI-grid test mask of a spatial split, and the axis name it runs
    along (None for ``"blocks"``); arguments as for :meth:`TilePairs.split`, which uses it.
    ``"random"`` depends on the tile count, not on the grid, so it has no mask here.

    Examples
    --------
    The default split tests on one half of a (12, 12) scan:

    >>> mask, axis = split_mask((12, 12))
    >>> mask.shape, int(mask.sum()), axis
    ((12, 12), 72, 'columns')
    """
    if method not in SPLIT_METHODS or method == "random":
        raise ValueError(f"unknown grid split method {method!r}; choose one of {SPLIT_METHODS[:-1]}")
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}")
    h, w = scan_shape
    along = _split_axis(axis, (h, w))
    rng = np.random.default_rng(seed)
    size = (h, w)[along]
    index = np.arange(size)
    if method == "halves":
        line = index >= int(round(size * (1 - test_fraction)))
    elif method == "stripes":
        if n_stripes < 1:
            raise ValueError("n_stripes must be >= 1")
        period = size / n_stripes
        line = (index % period) / period >= 1 - test_fraction
    if method in ("halves", "stripes"):
        mask = np.broadcast_to(line[:, None] if along == 0 else line[None, :], (h, w))
        return np.asarray(mask), _AXIS_NAMES[along]
    if n_blocks < 2:
        raise ValueError("n_blocks must be >= 2")
    n_cells = n_blocks * n_blocks
    n_test = max(1, min(n_cells - 1, int(round(test_fraction * n_cells))))
    chosen = np.zeros(n_cells, dtype=bool)
    chosen[rng.choice(n_cells, n_test, replace=False)] = True
    block_r = np.minimum(np.arange(h) * n_blocks // h, n_blocks - 1)
    block_c = np.minimum(np.arange(w) * n_blocks // w, n_blocks - 1)
    return chosen.reshape(n_blocks, n_blocks)[block_r[:, None], block_c[None, :]], None


_AXIS_NAMES = ("rows", "columns")


def _split_axis(axis: int | str | None, scan_shape: tuple[int, int]) -> int:
    """0 (rows) or 1 (columns); None picks the longer scan axis, columns on a tie."""
    if axis is None:
        return 0 if scan_shape[0] > scan_shape[1] else 1
    if isinstance(axis, str) and axis in _AXIS_NAMES:
        return _AXIS_NAMES.index(axis)
    if not isinstance(axis, bool) and axis in (0, 1):
        return int(axis)
    raise ValueError(f"axis must be 'rows' (0), 'columns' (1) or None (the longer axis), got {axis!r}")


#: bytes of spectra read from a lazy SI per step (one band of scan rows); with the output
#: itself this bounds the peak memory of make_tiles
STREAM_BLOCK_BYTES = 64 * 2**20

WINDOW_UNITS = ("haadf", "si")


def make_tiles(
    si: SpectrumImage,
    window: int = 16,
    step: int = 1,
    pad: str | None = None,
    *,
    window_unit: str = "haadf",
    rows: tuple[int, int] | None = None,
) -> TilePairs:
    """Pair every SI pixel's spectrum with the HAADF window centred on it.

    Parameters
    ----------
    si : SpectrumImage
    window : int
        Tile size, in HAADF pixels (``window_unit="haadf"``, the paper uses 16) or in SI
        pixels (``window_unit="si"``: the tile is ``window * si.scale`` HAADF pixels, so
        it covers ``window`` x ``window`` SI pixels whatever the oversampling). A window
        smaller than one SI pixel (``si.scale`` HAADF pixels) gives a warning: such tiles
        see only part of the area the spectrum comes from; bin the HAADF down
        (``si.bin_haadf``) or give the window in SI pixels.
    step : int
        Take every ``step``-th SI pixel along rows and columns.
    pad : None or "reflect"
        None drops centres whose window would leave the HAADF; "reflect" mirrors
        the HAADF at its borders so every SI pixel gets a tile.
    window_unit : "haadf" or "si"
    rows : (start, stop), optional
        Only SI rows ``start <= r < stop`` become tile centres (tiles still see the
        whole HAADF), to tile a very large scan band by band.

    Returns
    -------
    TilePairs with N = number of kept centres; ``positions`` are in the full scan.

    Memory. A lazy (dask-backed) SI is read one band of scan rows at a time (about
    ``STREAM_BLOCK_BYTES``, at least one dask chunk high) straight into the (N, E)
    float32 output, so the peak is the output plus one band, never the whole SI;
    read errors name the file (``plasmonwidgets.io.lazy_read_errors``).

    Examples
    --------
    >>> pairs = pw.make_tiles(si, window=16)                    # doctest: +SKIP
    >>> pairs = pw.make_tiles(si, window=2, window_unit="si")   # doctest: +SKIP
    """
    return _make_tiles(si, window, step, pad, window_unit=window_unit, rows=rows, with_spectra=True)


def tile_layout(si: SpectrumImage, window: int = 16, step: int = 1, pad: str | None = None, *,
                window_unit: str = "haadf", rows: tuple[int, int] | None = None) -> TilePairs:
    """The TilePairs :func:`make_tiles` would return, without reading any spectrum: its
    ``spectra`` are (N, 0) and ``energy`` is empty. Positions, tiles, splits and
    ``split_by_mask`` work as usual, so a split can be planned on a scan that is never loaded
    whole (``plasmonwidgets.tile_dataset``).

    Examples
    --------
    Positions of the 4 x 4 HAADF tiles of a 12 x 12 scan, without reading a spectrum:

    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> layout = tile_layout(si, window=4, pad="reflect")
    >>> layout.positions.shape, layout.spectra.shape
    ((144, 2), (144, 0))
    """
    return _make_tiles(si, window, step, pad, window_unit=window_unit, rows=rows, with_spectra=False,
                       stacklevel=3)


def _make_tiles(si: SpectrumImage, window: int, step: int, pad: str | None, *, window_unit: str,
                rows: tuple[int, int] | None, with_spectra: bool, stacklevel: int = 3) -> TilePairs:
    if not isinstance(si, SpectrumImage):
        raise TypeError(f"make_tiles needs a SpectrumImage, got {type(si).__name__}")
    if isinstance(window, bool) or int(window) != window:
        raise TypeError(f"window must be an integer, got {window!r}")
    if isinstance(step, bool) or int(step) != step or step < 1:
        raise ValueError(f"step must be a positive integer, got {step!r}")
    if window_unit not in WINDOW_UNITS:
        raise ValueError(f"window_unit must be 'haadf' or 'si', got {window_unit!r}")
    s = si.scale
    window = int(window) * (s if window_unit == "si" else 1)
    H, W = si.haadf.shape
    if window < 2:
        raise ValueError(f"window must be at least 2 HAADF pixels, got {window}")
    if min(H, W) < 2:
        raise ValueError(
            f"the HAADF image is {H}x{W}: tiles need at least 2x2 HAADF pixels, so a scan "
            "1 pixel wide can only be tiled with an oversampled HAADF (scale >= 2)"
        )
    if window > min(H, W):
        raise ValueError(
            f"window {window} is larger than the HAADF image {H}x{W}; use a window <= {min(H, W)}"
        )
    if pad not in (None, "reflect"):
        raise ValueError(f"pad must be None or 'reflect', got {pad!r}")
    if window < s:
        warnings.warn(
            f"a {window}x{window} HAADF-pixel window covers less than one SI pixel (the HAADF "
            f"has {s}x{s} pixels per SI pixel), so each tile sees only part of the area its "
            f"spectrum comes from; use window={s} or more, window_unit='si', or "
            f"si.bin_haadf({_smallest_divisor_at_least(s, s / window)}) first",
            UserWarning,
            stacklevel=stacklevel,
        )
    h, w = si.scan_shape
    grid = tile_grid((H, W), s, window, step=step, pad=pad, rows=rows)
    rows, cols = grid.rows, grid.cols
    view = sliding_window_view(grid.image(si.haadf), (window, window))
    rr, cc = np.meshgrid(rows, cols, indexing="ij")
    positions = np.stack([rr.ravel(), cc.ravel()], axis=1)
    sr, sc = np.meshgrid(grid.start_r, grid.start_c, indexing="ij")
    starts = np.stack([sr.ravel(), sc.ravel()], axis=1)
    margin = grid.margin
    energy = si.energy
    if not with_spectra:
        spectra, energy = np.empty((positions.shape[0], 0), dtype=np.float32), np.empty(0)
    elif si.is_lazy:
        spectra = _stream_spectra(si, rows, cols)
    else:
        spectra = si.spectra[rr, cc].reshape(-1, si.n_energy)
    regions = si.metadata.get("regions")
    region_labels = None
    if regions is not None and np.shape(regions) == (h, w):
        region_labels = np.asarray(regions)[positions[:, 0], positions[:, 1]]
    return TilePairs(
        None,
        spectra,
        positions,
        energy,
        (h, w),
        region_labels,
        si.metadata.get("region_names"),
        _view=view,
        _starts=starts,
        split_info={"scale": s, "pad": margin, "window": window},
    )


def _smallest_divisor_at_least(n: int, bound: float) -> int:
    """The smallest d dividing n with d >= bound (a HAADF bin factor that is allowed)."""
    return min(d for d in range(1, n + 1) if n % d == 0 and d >= bound)


class TileGrid(NamedTuple):
    """Which SI pixels get a tile and where their windows start (see :func:`tile_grid`)."""

    rows: np.ndarray  # (n_r,) SI rows of the tile centres
    cols: np.ndarray  # (n_c,) SI columns
    start_r: np.ndarray  # (n_r,) first HAADF row of each window, in the padded frame
    start_c: np.ndarray  # (n_c,) first HAADF column
    margin: int  # HAADF pixels of reflection padding on every side (0 without padding)

    def image(self, haadf: np.ndarray) -> np.ndarray:
        """The HAADF the window starts refer to (reflect-padded by ``margin``)."""
        return np.pad(haadf, self.margin, mode="reflect") if self.margin else haadf


def tile_grid(haadf_shape: tuple[int, int], scale: int, window: int, *, step: int = 1,
              pad: str | None = None, rows: tuple[int, int] | None = None) -> TileGrid:
    """The README tile convention on a HAADF of ``haadf_shape`` (H, W) with ``scale``
    HAADF pixels per SI pixel, for a ``window`` in HAADF pixels; arguments as for
    :func:`make_tiles` (already validated there). Raises ValueError when no centre keeps
    a full window. Used by make_tiles and by whole-image prediction, so both cut tiles
    the same way."""
    H, W = haadf_shape
    s = int(scale)
    h, w = H // s, W // s
    row_lo, row_hi = _row_range(rows, h)
    margin = window if pad == "reflect" else 0
    rows = np.arange(row_lo, row_hi)
    rows = rows[rows % step == 0]
    cols = np.arange(0, w, step)
    start_r = rows * s + s // 2 - window // 2 + margin
    start_c = cols * s + s // 2 - window // 2 + margin
    keep_r = (start_r >= 0) & (start_r + window <= H + 2 * margin)
    keep_c = (start_c >= 0) & (start_c + window <= W + 2 * margin)
    rows, cols, start_r, start_c = rows[keep_r], cols[keep_c], start_r[keep_r], start_c[keep_c]
    if rows.size == 0 or cols.size == 0:
        where = "" if (row_lo, row_hi) == (0, h) else f" in rows {row_lo}-{row_hi - 1}"
        raise ValueError(
            f"no SI pixel{where} has a full {window}x{window} window inside the {H}x{W} HAADF; "
            "use a smaller window or pad='reflect'"
        )
    return TileGrid(rows, cols, start_r, start_c, margin)


def _row_range(rows: tuple[int, int] | None, h: int) -> tuple[int, int]:
    if rows is None:
        return 0, h
    try:
        lo, hi = (int(v) for v in rows)
    except (TypeError, ValueError):
        raise ValueError(f"rows must be a (start, stop) pair of SI row indices, got {rows!r}") from None
    if not 0 <= lo < hi <= h:
        raise ValueError(f"rows must satisfy 0 <= start < stop <= {h} (the scan height), got {rows!r}")
    return lo, hi


def _stream_spectra(si: SpectrumImage, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """(len(rows) * len(cols), E) float32 spectra at the grid rows x cols of a lazy SI,
    read band by band of scan rows (see :func:`make_tiles`, Memory)."""
    data = si.spectra
    n_e = si.n_energy
    c0, c1 = int(cols[0]), int(cols[-1]) + 1
    row_bytes = max(1, (c1 - c0) * n_e * 4)
    chunk_rows = int(max(data.chunks[0]))
    band = max(1, STREAM_BLOCK_BYTES // row_bytes)
    band = max(chunk_rows, band // chunk_rows * chunk_rows)  # whole dask chunks per read
    out = np.empty((rows.size * cols.size, n_e), dtype=np.float32)
    done = 0
    while done < rows.size:
        # bands end on multiples of `band`, which are dask chunk boundaries: no chunk is
        # decompressed twice
        r0 = int(rows[done])
        r1 = (r0 // band + 1) * band
        picked = rows[done:][rows[done:] < r1]
        with si.reading():
            part = np.asarray(data[r0 : int(picked[-1]) + 1, c0:c1].compute())
        # copies only when step > 1 skips rows or columns inside the band read
        if picked.size != part.shape[0]:
            part = part[picked - r0]
        if cols.size != part.shape[1]:
            part = part[:, cols - c0]
        # NaN/Inf propagate into a float64 sum (which cannot overflow from float32 values), so
        # the mask the error message needs is only built for a band that holds one
        if not np.isfinite(part.sum(dtype=np.float64)):  # checked only when the data is read
            bad = ~np.isfinite(part)
            i, j, channel = (int(v) for v in np.argwhere(bad)[0])
            raise ValueError(
                f"spectra contains {int(bad.sum())} NaN/Inf values in the tiled pixels (first at "
                f"index {(int(picked[i]), int(cols[j]), channel)}); replace or mask them before "
                "building a SpectrumImage, e.g. with np.nan_to_num"
            )
        out[done * cols.size : (done + picked.size) * cols.size] = part.reshape(-1, n_e)
        done += picked.size
    return out
