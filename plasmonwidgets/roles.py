"""What a predictor maps to what: the two roles of a tile pair, said once.

A :class:`~plasmonwidgets.tiles.TilePairs` holds HAADF tiles (N, w, w) and spectra (N, E).
An im2spec predictor reads the tiles and predicts the spectra; a spec2im predictor the
other way round. Each model (:mod:`plasmonwidgets.models`) and each baseline
(:mod:`plasmonwidgets.analysis.baselines`) carries one :class:`Role` and answers
``inputs_of(pairs)`` / ``targets_of(pairs)`` / ``input_kind`` / ``target_kind`` from it,
so no caller works out inputs and targets from the direction string again. The direction
name ("im2spec", "spec2im") stays as a label: in checkpoints, file names, tables.

This module imports nothing heavy (no torch), so the analysis tools and baselines can
use it without loading the networks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["DIRECTIONS", "IM2SPEC", "ROLES", "SPEC2IM", "Role", "role_of"]

#: the TilePairs attribute that holds each kind of sample
_FIELDS = {"image": "images", "spectrum": "spectra"}


@dataclass(frozen=True)
class Role:
    """Which side of a tile pair a predictor reads (inputs) and which it predicts (targets).

    Attributes
    ----------
    direction : str
        The label, ``"im2spec"`` or ``"spec2im"``.
    input_kind, target_kind : str
        ``"image"`` (a HAADF tile, (w, w)) or ``"spectrum"`` (an EEL spectrum, (E,)).

    Examples
    --------
    >>> from plasmonwidgets.roles import IM2SPEC
    >>> IM2SPEC.input_kind, IM2SPEC.target_kind
    ('image', 'spectrum')
    >>> IM2SPEC.target_shape(window=16, n_energy=300)        # one target: a spectrum (E,)
    (300,)
    """

    direction: str
    input_kind: str
    target_kind: str

    def inputs_of(self, pairs: Any) -> Any:
        """The inputs held by ``pairs`` (TilePairs): tiles (N, w, w) or spectra (N, E).

        Examples
        --------
        >>> import numpy as np
        >>> from types import SimpleNamespace
        >>> pairs = SimpleNamespace(images=np.zeros((5, 16, 16)), spectra=np.zeros((5, 300)))
        >>> SPEC2IM.inputs_of(pairs).shape                    # spec2im reads the spectra
        (5, 300)
        """
        return getattr(pairs, _FIELDS[self.input_kind])

    def targets_of(self, pairs: Any) -> Any:
        """The targets held by ``pairs``: spectra (N, E) or tiles (N, w, w).

        Examples
        --------
        >>> import numpy as np
        >>> from types import SimpleNamespace
        >>> pairs = SimpleNamespace(images=np.zeros((5, 16, 16)), spectra=np.zeros((5, 300)))
        >>> SPEC2IM.targets_of(pairs).shape                   # ... and predicts the tiles
        (5, 16, 16)
        """
        return getattr(pairs, _FIELDS[self.target_kind])

    def input_shape(self, *, window: int, n_energy: int) -> tuple[int, ...]:
        """Shape of one input: (window, window) for a tile, (n_energy,) for a spectrum.

        Examples
        --------
        >>> IM2SPEC.input_shape(window=16, n_energy=300)
        (16, 16)
        """
        return _shape(self.input_kind, window, n_energy)

    def target_shape(self, *, window: int, n_energy: int) -> tuple[int, ...]:
        """Shape of one target: (n_energy,) for a spectrum, (window, window) for a tile.

        Examples
        --------
        >>> SPEC2IM.target_shape(window=16, n_energy=300)
        (16, 16)
        """
        return _shape(self.target_kind, window, n_energy)


def _shape(kind: str, window: int, n_energy: int) -> tuple[int, ...]:
    return {"image": (int(window), int(window)), "spectrum": (int(n_energy),)}[kind]


IM2SPEC = Role("im2spec", input_kind="image", target_kind="spectrum")
SPEC2IM = Role("spec2im", input_kind="spectrum", target_kind="image")

#: direction label -> Role
ROLES: dict[str, Role] = {r.direction: r for r in (IM2SPEC, SPEC2IM)}
DIRECTIONS: tuple[str, ...] = tuple(ROLES)


def role_of(direction: str | Role) -> Role:
    """The :class:`Role` of a direction label (a Role is returned as it is).

    Examples
    --------
    >>> role_of("spec2im").input_kind
    'spectrum'
    >>> role_of("img2spec")
    Traceback (most recent call last):
    ...
    ValueError: direction must be 'im2spec' or 'spec2im', got 'img2spec'
    """
    if isinstance(direction, Role):
        return direction
    try:
        return ROLES[direction]
    except (KeyError, TypeError):
        raise ValueError(f"direction must be {' or '.join(map(repr, DIRECTIONS))}, "
                         f"got {direction!r}") from None
