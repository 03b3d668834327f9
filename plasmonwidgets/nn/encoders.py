"""Encoders: a HAADF tile or a spectrum -> a latent vector (N, d).

Examples
--------
>>> import torch
>>> enc = ImageEncoder(window=16, latent_dim=2, n_layers=2, n_filters=16)
>>> enc(torch.zeros(5, 16, 16)).shape
torch.Size([5, 2])
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import ConvBlock

__all__ = ["ImageEncoder", "SpectrumEncoder"]


class ImageEncoder(nn.Module):
    """(N, w, w) -> (N, d): 2-D conv block, flatten, dense.

    Examples
    --------
    >>> import torch
    >>> encoder = ImageEncoder(window=16, latent_dim=2, n_layers=2, n_filters=8)
    >>> encoder(torch.zeros(4, 16, 16)).shape        # 4 HAADF tiles -> 4 latent points
    torch.Size([4, 2])
    """

    def __init__(self, window: int, latent_dim: int, n_layers: int, n_filters: int):
        super().__init__()
        self.conv = ConvBlock(2, n_layers, 1, n_filters)
        self.fc = nn.Linear(n_filters * window * window, latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x.unsqueeze(1)).flatten(1))


class SpectrumEncoder(nn.Module):
    """(N, E) -> (N, d): average-pool by ``pool``, 1-D conv block, flatten, dense.

    Examples
    --------
    >>> import torch
    >>> encoder = SpectrumEncoder(n_energy=32, latent_dim=2, n_layers=2, n_filters=8, pool=2)
    >>> encoder(torch.zeros(4, 32)).shape            # 4 spectra -> 4 latent points
    torch.Size([4, 2])
    """

    def __init__(self, n_energy: int, latent_dim: int, n_layers: int, n_filters: int, pool: int):
        super().__init__()
        self.pool = pool
        # ceil_mode keeps the last partial bin (its mean over the channels that exist)
        # instead of silently dropping the top of the energy range.
        self.length = math.ceil(n_energy / pool)
        self.conv = ConvBlock(1, n_layers, 1, n_filters)
        self.fc = nn.Linear(n_filters * self.length, latent_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(1)
        if self.pool > 1:
            x = F.avg_pool1d(x, self.pool, self.pool, ceil_mode=True)
        return self.fc(self.conv(x).flatten(1))
