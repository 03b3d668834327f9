"""Training losses on normalised tensors that measure errors in physical units."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["RelativeSquaredError"]


class RelativeSquaredError(nn.Module):
    """Per-sample squared error relative to the sample's own signal, averaged over samples.

    ``loss = mean_i  Σ_j (ŷ_ij − y_ij)² / (Σ_j y_ij² + floor · ē)``

    with ŷ, y in physical units (counts) and ē the mean Σ_j y_ij² of the training
    targets. With ``floor = 0`` this is the per-sample NMSE that the benchmarks report
    (as a fraction); plain MSE instead weights every sample by its absolute error, so
    weak samples — spectra in vacuum, HAADF tiles of empty support — hardly count,
    and a model trained with it misses their level by tens of percent. The floor keeps
    the tiles whose Σy² is mostly detector noise (a vacuum HAADF tile is ~2 counts plus
    3 counts of read noise) from dominating instead.

    The model works on normalised tensors, ``normalised = (physical − offset) / scale``
    with a per-feature ``offset`` and a scalar ``scale``, so the loss takes normalised
    predictions and targets and converts: ŷ − y = scale·(ŷₙ − yₙ), y = scale·yₙ + offset.

    Parameters
    ----------
    offset : per-feature target offset, shape of one target (E,) or (w, w).
    scale : scalar target scale.
    mean_energy : ē, mean over the training targets of Σ_j y_ij² (physical units²).
    floor : weight of ē in every denominator (default 0.1).

    Examples
    --------
    Targets in counts; ``offset`` and ``scale`` undo the z-scoring of the network's output:

    >>> import torch
    >>> loss = RelativeSquaredError(offset=torch.zeros(32), scale=1.0, mean_energy=32.0, floor=0.0)
    >>> target = torch.ones(4, 32)                   # 4 spectra, 32 channels
    >>> round(float(loss(1.1 * target, target)), 4)
    0.01
    """

    def __init__(self, offset: torch.Tensor, scale: float, mean_energy: float,
                 floor: float = 0.1):
        super().__init__()
        if not floor >= 0:
            raise ValueError(f"floor must be >= 0, got {floor!r}")
        self.register_buffer("offset", offset.detach().clone().float())
        self.scale = float(scale)
        # a tiny bias even at floor 0 keeps an all-zero target finite; all-zero training
        # targets fall back to the plain squared error, not 0/0
        self.bias = max(float(floor), 1e-12) * float(mean_energy) if mean_energy > 0 else 1.0
        self.floor = float(floor)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Normalised (N, *shape) predictions and targets -> scalar loss."""
        dims = tuple(range(1, target.ndim))
        energy = ((target * self.scale + self.offset) ** 2).sum(dims)
        error = ((pred - target) ** 2).sum(dims) * self.scale ** 2
        return (error / (energy + self.bias)).mean()
