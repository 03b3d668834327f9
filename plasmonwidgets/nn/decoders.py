"""Decoders: a latent vector (N, d) -> a spectrum (N, E) or a HAADF tile (N, w, w).

Each decoder lists its layers in forward order (``export_parts``), which
:func:`~plasmonwidgets.nn.export.decoder_program` turns into the program the browser runs.

Examples
--------
>>> import torch
>>> dec = SpectrumDecoder(n_energy=100, latent_dim=2, n_filters=16, dilations=(1, 2, 3))
>>> dec(torch.zeros(5, 2)).shape
torch.Size([5, 100])
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ConvBlock, DilatedPyramid

__all__ = ["ImageDecoder", "SpectrumDecoder"]


class SpectrumDecoder(nn.Module):
    """(N, d) -> (N, E): dense to (filters, E), 1-D dilated pyramid, conv to 1, 1x1 conv.

    Examples
    --------
    >>> import torch
    >>> decoder = SpectrumDecoder(n_energy=32, latent_dim=2, n_filters=8, dilations=(1, 2))
    >>> decoder(torch.zeros(4, 2)).shape             # 4 latent points -> 4 spectra
    torch.Size([4, 32])
    """

    def __init__(self, n_energy: int, latent_dim: int, n_filters: int, dilations: tuple[int, ...]):
        super().__init__()
        self.shape = (n_filters, n_energy)
        self.fc = nn.Linear(latent_dim, n_filters * n_energy)
        self.pyramid = DilatedPyramid(1, n_filters, n_filters, dilations)
        self.conv = ConvBlock(1, 1, n_filters, 1)
        self.out = nn.Conv1d(1, 1, kernel_size=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.fc(z).view(-1, *self.shape)
        return self.out(self.conv(self.pyramid(x))).squeeze(1)

    def export_parts(self) -> list[Any]:
        """The layers in :meth:`forward`'s order, for :func:`~plasmonwidgets.nn.export.decoder_program`:
        modules, ``("reshape", shape)`` and named parameter-free steps."""
        return [self.fc, ("reshape", list(self.shape)), self.pyramid, self.conv, self.out]


class ImageDecoder(nn.Module):
    """(N, d) -> (N, w, w): dense to (filters, w/4, w/4), [conv, x2 upsample] twice,
    2-D dilated pyramid, conv to 1 channel, 1x1 conv.

    Examples
    --------
    >>> import torch
    >>> decoder = ImageDecoder(window=16, latent_dim=2, n_filters=8, dilations=(1, 2))
    >>> decoder(torch.zeros(4, 2)).shape             # 4 latent points -> 4 tiles 16 x 16
    torch.Size([4, 16, 16])
    """

    def __init__(self, window: int, latent_dim: int, n_filters: int, dilations: tuple[int, ...]):
        super().__init__()
        self.shape = (n_filters, window // 4, window // 4)
        self.fc = nn.Linear(latent_dim, n_filters * (window // 4) ** 2)
        self.up1 = ConvBlock(2, 1, n_filters, n_filters)
        self.up2 = ConvBlock(2, 1, n_filters, n_filters)
        self.pyramid = DilatedPyramid(2, n_filters, n_filters, dilations)
        self.conv = ConvBlock(2, 1, n_filters, 1)
        self.out = nn.Conv2d(1, 1, kernel_size=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.fc(z).view(-1, *self.shape)
        x = F.interpolate(self.up1(x), scale_factor=2, mode="nearest")
        x = F.interpolate(self.up2(x), scale_factor=2, mode="nearest")
        return self.out(self.conv(self.pyramid(x))).squeeze(1)

    def export_parts(self) -> list[Any]:
        """The layers in :meth:`forward`'s order (see :meth:`SpectrumDecoder.export_parts`)."""
        return [self.fc, ("reshape", list(self.shape)), self.up1, "upsample2", self.up2,
                "upsample2", self.pyramid, self.conv, self.out]
