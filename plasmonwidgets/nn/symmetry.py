"""Exact symmetries of a tile about its probe pixel (w//2, w//2).

The energy loss at a beam position depends only on the geometry around the beam, so it is
unchanged when the whole tile is rotated by 90° about the probe or mirrored through it. For
an even window the square block centred on the probe is rows/cols ``1:`` (the probe sits at
index w//2, one past the array centre); row 0 and column 0 have no partner and are kept.
"""

from __future__ import annotations

import torch

__all__ = ["dihedral_about_probe", "probe_block_start", "rotation_average"]


def probe_block_start(window: int) -> int:
    """First row/col of the largest square block centred on pixel window//2: 1 if even, else 0.

    Examples
    --------
    >>> probe_block_start(16), probe_block_start(15)
    (1, 0)
    """
    return 2 * (window // 2) - (window - 1)


def _with_block(tiles: torch.Tensor, block: torch.Tensor, lo: int) -> torch.Tensor:
    if lo == 0:
        return block.contiguous()
    out = tiles.clone()
    out[..., lo:, lo:] = block
    return out


def dihedral_about_probe(tiles: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """Tiles (..., w, w) mirrored (if ``flip``) then rotated by k·90° about the probe pixel.

    Examples
    --------
    A quarter turn maps the 4 rotations onto each other; four of them give the tile back:

    >>> import torch
    >>> tiles = torch.arange(16.0).reshape(1, 4, 4)
    >>> turned = tiles
    >>> for _ in range(4):
    ...     turned = dihedral_about_probe(turned, 1, False)
    >>> bool(torch.equal(turned, tiles))
    True
    """
    lo = probe_block_start(tiles.shape[-1])
    block = tiles[..., lo:, lo:]
    if flip:
        block = block.flip(-1)
    return _with_block(tiles, block.rot90(k, (-2, -1)), lo)


def rotation_average(tiles: torch.Tensor) -> torch.Tensor:
    """Tiles (..., w, w) averaged over the 4 rotations about the probe pixel.

    Examples
    --------
    The average is unchanged by a further quarter turn about the probe pixel:

    >>> import torch
    >>> avg = rotation_average(torch.rand(2, 5, 5))
    >>> bool(torch.allclose(dihedral_about_probe(avg, 1, False), avg))
    True
    """
    lo = probe_block_start(tiles.shape[-1])
    block = tiles[..., lo:, lo:]
    mean = sum(block.rot90(k, (-2, -1)) for k in range(4)) / 4
    return _with_block(tiles, mean, lo)
