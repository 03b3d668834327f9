"""Convolutional building blocks of the encoder-decoders (Roccapriore et al. 2021, AtomAI ImSpec).

Every block works in 1-D (spectra, tensors shaped (N, C, L)) or 2-D (images, (N, C, H, W)).
A "layer" is convolution -> LeakyReLU -> batch-norm, the order used by AtomAI's ImSpec.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

_CONV = {1: nn.Conv1d, 2: nn.Conv2d}
_NORM = {1: nn.BatchNorm1d, 2: nn.BatchNorm2d}


def _layer(ndim: int, c_in: int, c_out: int, dilation: int, slope: float, batch_norm: bool):
    """Kernel-3 'same' convolution (padding = dilation keeps the length), activation, norm."""
    if ndim not in _CONV:
        raise ValueError(f"ndim must be 1 or 2, got {ndim}")
    layers: list[nn.Module] = [
        _CONV[ndim](c_in, c_out, kernel_size=3, padding=dilation, dilation=dilation),
        nn.LeakyReLU(negative_slope=slope),
    ]
    if batch_norm:
        layers.append(_NORM[ndim](c_out))
    return nn.Sequential(*layers)


class ConvBlock(nn.Sequential):
    """``n_layers`` stacked kernel-3 conv layers; shape (N, c_in, *S) -> (N, c_out, *S).

    Examples
    --------
    Two 1-D conv layers, 1 -> 8 channels, on 4 spectra of 32 channels:

    >>> import torch
    >>> ConvBlock(1, 2, 1, 8)(torch.zeros(4, 1, 32)).shape
    torch.Size([4, 8, 32])
    """

    def __init__(self, ndim: int, n_layers: int, c_in: int, c_out: int, *,
                 slope: float = 0.1, batch_norm: bool = True):
        if n_layers < 1:
            raise ValueError(f"a ConvBlock needs at least one layer, got n_layers={n_layers}")
        super().__init__(*[
            _layer(ndim, c_in if i == 0 else c_out, c_out, 1, slope, batch_norm)
            for i in range(n_layers)
        ])


class DilatedPyramid(nn.Module):
    """Cascade of dilated conv layers whose outputs are all summed (spatial pyramid).

    Stage k sees the output of stage k-1 with dilation ``dilations[k]``, so the receptive
    field grows to 1 + 2*sum(dilations) samples; the sum of all stages mixes every scale.
    Shape (N, c_in, *S) -> (N, channels, *S).

    Examples
    --------
    Receptive field 1 + 2 * (1 + 2 + 4) = 15 channels:

    >>> import torch
    >>> DilatedPyramid(1, 8, 8, (1, 2, 4))(torch.zeros(4, 8, 32)).shape
    torch.Size([4, 8, 32])
    """

    def __init__(self, ndim: int, c_in: int, channels: int, dilations: Sequence[int], *,
                 slope: float = 0.1, batch_norm: bool = True):
        super().__init__()
        if len(dilations) < 1 or any(int(d) < 1 for d in dilations):
            raise ValueError(f"dilations must be positive integers, got {list(dilations)}")
        self.stages = nn.ModuleList([
            _layer(ndim, c_in if i == 0 else channels, channels, int(d), slope, batch_norm)
            for i, d in enumerate(dilations)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = None
        for stage in self.stages:
            x = stage(x)
            total = x if total is None else total + x
        return total
