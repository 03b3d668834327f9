"""Training tiles from many spectrum images, read band by band of scan rows.

A :class:`TileDataset` holds, per scan, only the tile *layout* (centre positions, window
starts on the HAADF and which tiles belong to its part of the split); the spectra are read
one band of scan rows at a time with ``make_tiles(si, rows=...)``, so a training epoch over
many lazily loaded scans never holds more than one band of spectra and tiles.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from .spectrum_image import SpectrumImage
from .tiles import SPLIT_METHODS, TilePairs, make_tiles, tile_layout

__all__ = ["TileDataset", "BAND_BYTES", "PARTS"]

#: bytes of spectra plus tiles (float32) one band of scan rows may take when read
BAND_BYTES = 64 * 2**20
PARTS = ("train", "test")
_SPLIT_KEYS = ("method", "test_fraction", "seed", "n_stripes", "n_blocks", "axis")


class _Scan:
    """One source: its SI, how the user knows it, its tile layout and kept tiles."""

    def __init__(self, si: SpectrumImage, name: str, layout: TilePairs, keep: dict[str, np.ndarray]):
        self.si, self.name, self.layout, self.keep = si, name, layout, keep


class TileDataset:
    """Tile/spectrum pairs of several spectrum images, each split spatially on its own,
    served band by band of scan rows (bounded memory).

    Parameters
    ----------
    sources : sequence of SpectrumImage or file paths
        Paths are opened with ``pw.load(path, lazy=True)``; lazy SIs stay lazy. All must
        share one energy axis (E,) in eV and give the same tile window in HAADF pixels.
    window, step, pad, window_unit : as for :func:`~plasmonwidgets.make_tiles`.
    split : str, dict or a list of those (one per source)
        The spatial split of each scan: a method name (``"halves"``, ``"stripes"``,
        ``"blocks"``, ``"random"``) or a dict of :meth:`TilePairs.split` keywords
        (``{"method": "halves", "axis": "rows", "test_fraction": 0.3}``). The split is the
        one ``make_tiles(si, ...).split(...)`` gives, guard band included.
    part : "train" or "test"
        Which side of every split this dataset serves; :meth:`with_part` gives the other.
    band_bytes : int
        Bytes of float32 spectra plus tiles read per band (at least one scan row).
    mix : int
        Bands (drawn at random across scans) read together and shuffled as one when
        batching, so a batch mixes scans and regions; the peak is about
        ``mix * band_bytes``.

    Examples
    --------
    >>> train_set = pw.TileDataset(["a.hspy", "b.hspy"], window=16, split="halves")  # doctest: +SKIP
    >>> history = pw.train(model, train_set, train_set.with_part("test"))           # doctest: +SKIP
    """

    def __init__(self, sources: Sequence[SpectrumImage | str | os.PathLike], *, window: int,
                 split: str | dict | Sequence[str | dict] = "halves", part: str = "train",
                 step: int = 1, pad: str | None = None, window_unit: str = "haadf",
                 band_bytes: int = BAND_BYTES, mix: int = 4):
        if isinstance(sources, (str, os.PathLike, SpectrumImage)):
            sources = [sources]
        sources = list(sources)
        if not sources:
            raise ValueError("a TileDataset needs at least one spectrum image or file")
        if part not in PARTS:
            raise ValueError(f"part must be 'train' or 'test', got {part!r}")
        if isinstance(band_bytes, bool) or not isinstance(band_bytes, int) or band_bytes < 1:
            raise ValueError(f"band_bytes must be a positive integer, got {band_bytes!r}")
        if isinstance(mix, bool) or not isinstance(mix, int) or mix < 1:
            raise ValueError(f"mix must be a positive integer, got {mix!r}")
        self.mix = mix
        specs = _split_specs(split, len(sources))
        self.part = part
        self.band_bytes = band_bytes
        self._tiling = dict(window=window, step=step, pad=pad, window_unit=window_unit)
        self._scans: list[_Scan] = []
        for i, (source, spec) in enumerate(zip(sources, specs)):
            si, name = _open(source, i)
            self._check_against_first(si, name)
            layout = tile_layout(si, window, step, pad, window_unit=window_unit)
            if self._scans and layout.window != self.window:
                first = self._scans[0]
                raise ValueError(
                    f"{name!r} gives {layout.window}x{layout.window} HAADF-pixel tiles (scale "
                    f"{si.scale}) but {first.name!r} gives {self.window}x{self.window} (scale "
                    f"{first.si.scale}); all scans need one window in HAADF pixels: bin the "
                    "HAADF (si.bin_haadf) or give the window in HAADF pixels")
            try:
                train, test = layout.split(**spec)
            except ValueError as exc:
                raise ValueError(f"{name!r}: {exc}") from None
            keep = {p: _member(layout, sub) for p, sub in (("train", train), ("test", test))}
            self._scans.append(_Scan(si, name, layout, keep))

    # ------------------------------------------------------------------ facts
    def _check_against_first(self, si: SpectrumImage, name: str) -> None:
        if not self._scans:
            return
        first = self._scans[0]
        e0, e = first.si.energy, si.energy
        width = float(np.abs(np.diff(e0)).min()) if e0.size > 1 else 1.0
        if e.shape != e0.shape or not np.allclose(e, e0, rtol=0, atol=1e-3 * width):
            raise ValueError(
                f"{name!r} has an energy axis of {e.size} channels, {_span(e)}, but {first.name!r} "
                f"has {e0.size} channels, {_span(e0)}; all scans of a TileDataset need one energy "
                "axis: crop and rebin them to the same channels first")

    def with_part(self, part: str) -> TileDataset:
        """The same scans and splits serving ``part`` ("train" or "test"), nothing re-read."""
        if part not in PARTS:
            raise ValueError(f"part must be 'train' or 'test', got {part!r}")
        other = object.__new__(TileDataset)
        other.__dict__.update(self.__dict__)
        other.part = part
        return other

    def __len__(self) -> int:
        return int(sum(int(s.keep[self.part].sum()) for s in self._scans))

    @property
    def names(self) -> list[str]:
        """How each scan is named in messages (its file as the user knows it)."""
        return [s.name for s in self._scans]

    @property
    def counts(self) -> list[int]:
        """Tiles of this part in each scan."""
        return [int(s.keep[self.part].sum()) for s in self._scans]

    @property
    def energy(self) -> np.ndarray:
        """(E,) shared energy axis in eV."""
        return self._scans[0].si.energy

    @property
    def n_energy(self) -> int:
        return int(self.energy.size)

    @property
    def window(self) -> int:
        """Tile side in HAADF pixels."""
        return self._scans[0].layout.window

    def __repr__(self) -> str:
        return (f"<TileDataset {self.part}: {len(self)} tiles from {len(self._scans)} scans, "
                f"tiles {self.window}x{self.window}, {self.n_energy} channels>")

    # ------------------------------------------------------------------ reading
    def bands(self) -> list[tuple[int, int, int]]:
        """(scan index, first row, stop row) of every band holding tiles of this part."""
        out = []
        for k, scan in enumerate(self._scans):
            pos_rows = scan.layout.positions[:, 0]
            kept_rows = np.unique(pos_rows[scan.keep[self.part]])
            if kept_rows.size == 0:
                continue
            n_cols = int(np.unique(scan.layout.positions[:, 1]).size)
            row_bytes = n_cols * (self.n_energy + self.window ** 2) * 4
            height = max(1, self.band_bytes // max(row_bytes, 1))
            if scan.si.is_lazy:  # whole dask chunks per band: none is decompressed twice
                chunk = int(max(scan.si.spectra.chunks[0]))
                height = max(chunk, height // chunk * chunk)
            for lo in range(int(kept_rows[0]) // height * height, int(kept_rows[-1]) + 1, height):
                hi = min(lo + height, scan.si.scan_shape[0])
                if ((kept_rows >= lo) & (kept_rows < hi)).any():
                    out.append((k, lo, hi))
        return out

    def read_band(self, scan: int, lo: int, hi: int) -> TilePairs:
        """The tiles of this part centred in SI rows ``lo <= r < hi`` of scan ``scan``
        (spectra read now, tiles materialised when ``.images`` is read)."""
        s = self._scans[scan]
        rows = s.layout.positions[:, 0]
        a, b = np.searchsorted(rows, lo), np.searchsorted(rows, hi)
        with warnings.catch_warnings():  # said once, when the layout was made
            warnings.filterwarnings("ignore", message=".*covers less than one SI pixel")
            pairs = make_tiles(s.si, rows=(lo, hi), **self._tiling)
        if len(pairs) != b - a:
            raise RuntimeError(f"{s.name!r}: band {lo}-{hi} gave {len(pairs)} tiles, expected {b - a}")
        return pairs.subset(np.flatnonzero(s.keep[self.part][a:b]))

    def chunks(self, *, shuffle: bool = False, seed: Any = 0) -> Iterator[TilePairs]:
        """One TilePairs per band, scans in order (``shuffle``: bands in a seeded random order)."""
        order = self.bands()
        if shuffle:
            rng = np.random.default_rng(seed)
            order = [order[i] for i in rng.permutation(len(order))]
        for band in order:
            yield self.read_band(*band)

    def batches(self, batch_size: int, *, shuffle: bool = True, seed: Any = 0,
                convert: Callable[[TilePairs], tuple] | None = None) -> Iterator[tuple]:
        """Batches of ``batch_size`` over one epoch: bands in a seeded random order, read
        ``mix`` at a time and their tiles shuffled together; a group's remainder is carried
        into the next batch, so every batch but the last is full and every tile comes
        exactly once.

        ``convert`` turns a band into a tuple of arrays or torch tensors of equal length
        (default: ``(images (n, w, w), spectra (n, E))`` float32 numpy).
        """
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        convert = convert or (lambda p: (p.images, p.spectra))
        rng = np.random.default_rng(seed)
        carry: tuple | None = None
        group: list[tuple] = []
        order = self.bands()
        if shuffle:
            order = [order[i] for i in rng.permutation(len(order))]
        for k, band in enumerate(order):
            group.append(convert(self.read_band(*band)))
            if len(group) < self.mix and k + 1 < len(order):
                continue
            if carry is not None:
                group.insert(0, carry)
            parts = group[0] if len(group) == 1 else tuple(_cat(*p) for p in zip(*group))
            group = []
            if shuffle:
                parts = _take(parts, rng.permutation(len(parts[0])))
            n = len(parts[0])
            full = n // batch_size * batch_size
            for i in range(0, full, batch_size):
                yield tuple(p[i:i + batch_size] for p in parts)
            carry = tuple(p[full:] for p in parts) if full < n else None
        if carry is not None:
            yield carry


# ---------------------------------------------------------------------- helpers
def _open(source: Any, i: int) -> tuple[SpectrumImage, str]:
    if isinstance(source, SpectrumImage):
        name = (source.metadata.get("source") or {}).get("name") or f"spectrum image #{i}"
        return source, str(name)
    if isinstance(source, (str, os.PathLike)):
        from .io import load

        si = load(source, lazy=True)
        name = (si.metadata.get("source") or {}).get("name") or os.fspath(source)
        return si, str(name)
    raise TypeError(f"TileDataset sources must be SpectrumImages or file paths; source #{i} is "
                    f"a {type(source).__name__}")


def _split_specs(split: Any, n: int) -> list[dict]:
    items = list(split) if isinstance(split, (list, tuple)) else [split] * n
    if len(items) != n:
        raise ValueError(f"split has {len(items)} entries for {n} sources; give one split for "
                         "all or one per source")
    specs = []
    for item in items:
        spec = {"method": item} if isinstance(item, str) else dict(item)
        unknown = set(spec) - set(_SPLIT_KEYS)
        if unknown:
            raise ValueError(f"unknown split keywords {sorted(unknown)}; use {list(_SPLIT_KEYS)}")
        if spec.get("method", "halves") not in SPLIT_METHODS:
            raise ValueError(f"unknown split method {spec['method']!r}; choose one of {SPLIT_METHODS}")
        specs.append(spec)
    return specs


def _member(layout: TilePairs, sub: TilePairs) -> np.ndarray:
    """(N,) bool: which of the layout's tiles ``sub`` (a subset of it) holds."""
    w = layout.scan_shape[1]
    return np.isin(layout.positions @ (w, 1), sub.positions @ (w, 1))


def _span(e: np.ndarray) -> str:
    return f"{e[0]:.4g}-{e[-1]:.4g} eV" if e.size else "empty"


def _take(parts: tuple, order: np.ndarray) -> tuple:
    out = []
    for p in parts:
        if hasattr(p, "index_select"):  # a torch tensor: index on its own device
            import torch

            out.append(p.index_select(0, torch.from_numpy(order).to(p.device)))
        else:
            out.append(p[order])
    return tuple(out)


def _cat(*arrays: Any) -> Any:
    if hasattr(arrays[0], "index_select"):
        import torch

        return torch.cat(arrays)
    return np.concatenate(arrays)
