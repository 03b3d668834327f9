"""A deep ensemble: several models from different seeds, their mean and their spread.

Members are independent models (e.g. :class:`~plasmonwidgets.Im2Spec`) built by one factory
from different seeds (weight initialisation and batch order) and trained one after another
on the same data with :class:`~plasmonwidgets.Trainer`. Where they agree the prediction is
trusted; where they disagree (tiles unlike the training tiles) the spread is large.

The spread is model uncertainty only: it does not include the noise of the measured spectra,
so its intervals are too narrow against measured values. :meth:`Ensemble.calibrate` fits one
post-hoc factor for the standard deviation on a validation set
(:func:`plasmonwidgets.analysis.calibration.fit_std_scale`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from .analysis.calibration import fit_std_scale, z_value
from .models import ImSpecModel
from .training import History, Trainer

__all__ = ["Ensemble", "member_seeds"]


def member_seeds(seed: int, n_members: int) -> list[int]:
    """Distinct, reproducible member seeds derived from one ensemble seed.

    Examples
    --------
    >>> member_seeds(0, 3) == member_seeds(0, 3), len(set(member_seeds(0, 3)))
    (True, 3)
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    # 31 bits: torch.manual_seed and the model configs take any int, checkpoints store it
    state = np.random.SeedSequence(int(seed)).generate_state(n_members, dtype=np.uint32)
    return [int(v) >> 1 for v in state]


class Ensemble:
    """A deep ensemble of models built by ``model_factory(seed)`` with different seeds.

    Parameters
    ----------
    model_factory : callable(seed: int) -> Im2Spec (or another ImSpecModel)
        Builds one untrained member; it must pass ``seed`` on to the model (its weight
        initialisation). Every member must have the same input and target shapes.
    n_members : int >= 2
        Number of members M (5 is the usual choice; 3 is cheaper).
    seed : int >= 0
        Ensemble seed; member seeds come from it (:func:`member_seeds`), so the same seed
        and data give the same predictions.

    Attributes
    ----------
    members : list of ImSpecModel
    seeds : list of int
        Each member's seed (weights and batch order).
    std_scale : float
        Factor applied to the members' spread by :meth:`predict` and :meth:`interval`
        (1.0 until :meth:`calibrate` fits one).

    Notes
    -----
    Members are trained one after another (not batched as one network), so training cost
    grows linearly with M.

    Examples
    --------
    >>> import numpy as np, plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 16)), np.linspace(0.5, 2.0, 16),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> pairs = pw.make_tiles(si, window=8, pad="reflect")
    >>> ens = pw.Ensemble(lambda s: pw.Im2Spec(window=8, n_energy=16, latent_dim=2, seed=s,
    ...                                        device="cpu"), n_members=3, seed=0)
    >>> _ = ens.fit(pairs, epochs=2)
    >>> mean, std = ens.predict(pairs)
    >>> mean.shape, std.shape, bool((std > 0).all())
    ((144, 16), (144, 16), True)
    >>> lo, hi = ens.interval(pairs, level=0.9)
    >>> bool((lo <= mean).all() and (mean <= hi).all())
    True
    """

    def __init__(self, model_factory: Callable[[int], ImSpecModel], *, n_members: int = 5,
                 seed: int = 0):
        if not callable(model_factory):
            raise TypeError(f"model_factory must be a callable seed -> model, got "
                            f"{type(model_factory).__name__}")
        if isinstance(n_members, bool) or not isinstance(n_members, (int, np.integer)) or n_members < 2:
            raise ValueError(f"n_members must be an integer >= 2 (a spread needs two members), "
                             f"got {n_members!r}")
        self.model_factory = model_factory
        self.n_members = int(n_members)
        self.seed = int(seed)
        self.seeds = member_seeds(seed, self.n_members)
        self.std_scale = 1.0
        self.n_fits = 0
        self.members: list[ImSpecModel] = []
        self.reset()

    def reset(self) -> None:
        """Build fresh, untrained members (same seeds: the same initial weights)."""
        members = []
        for s in self.seeds:
            model = self.model_factory(s)
            if not isinstance(model, ImSpecModel):
                raise TypeError(f"model_factory returned {type(model).__name__}; it must return an "
                                "Im2Spec or Spec2Im (e.g. lambda s: pw.Im2Spec(..., seed=s))")
            members.append(model)
        shapes = {(m.input_shape, m.target_shape) for m in members}
        if len(shapes) != 1:
            raise ValueError(f"model_factory built members of different shapes {sorted(shapes)}; "
                             "every member must read and predict the same shapes")
        self.members = members
        self.std_scale = 1.0
        self.n_fits = 0

    # ------------------------------------------------------------------ facts
    @property
    def window(self) -> int:
        """Tile side of the members (HAADF pixels)."""
        return self.members[0].window

    @property
    def n_energy(self) -> int:
        """Energy channels E of the members' spectra."""
        return self.members[0].n_energy

    def __repr__(self) -> str:
        m = self.members[0]
        return (f"Ensemble({self.n_members} x {type(m).__name__}, seed={self.seed}, "
                f"fits={self.n_fits}, std_scale={self.std_scale:.3g})")

    # --------------------------------------------------------------- training
    def fit(self, train: Any, test: Any = None, *, epochs: int = 20, batch_size: int = 64,
            lr: float = 1e-3, **options: Any) -> list[History]:
        """Train every member on ``train`` (TilePairs), one after another; returns their histories.

        Calling ``fit`` again continues from the members' current weights (a warm start;
        normalisation fitted on the first call is kept); call :meth:`reset` first to start
        over. Member ``i`` uses seed ``seeds[i] + n_fits`` for its batch order, so repeated
        fits are reproducible too. ``options`` go to :class:`~plasmonwidgets.Trainer`.

        Examples
        --------
        >>> histories = ens.fit(train_pairs, epochs=10)      # doctest: +SKIP
        """
        histories = []
        for s, model in zip(self.seeds, self.members):
            trainer = Trainer(model, train, test, epochs=epochs, batch_size=batch_size, lr=lr,
                              seed=(s + self.n_fits) % 2**31, **options)
            history = trainer.run()
            if trainer.state == "failed":
                raise RuntimeError(f"ensemble member (seed {s}) failed to train: {trainer.error}")
            histories.append(history)
        self.n_fits += 1
        return histories

    # ------------------------------------------------------------- prediction
    def _inputs(self, tiles: Any) -> Any:
        # TilePairs (or anything with spectra) -> what the members read
        return self.members[0].inputs_of(tiles) if hasattr(tiles, "spectra") else tiles

    def predict_members(self, tiles: Any) -> np.ndarray:
        """Every member's prediction: (M, N, E) float32 for tiles (N, w, w) or TilePairs."""
        x = self._inputs(tiles)
        return np.stack([np.asarray(m.predict(x), dtype=np.float32) for m in self.members])

    def predict(self, tiles: Any) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation over the members: each (N, E).

        ``tiles`` is (N, w, w) HAADF tiles or a TilePairs. The standard deviation is the
        members' sample spread (ddof=1) times :attr:`std_scale`.

        Examples
        --------
        >>> mean, std = ens.predict(pairs)                   # doctest: +SKIP
        """
        preds = self.predict_members(tiles)
        return self._mean_std(preds)

    def _mean_std(self, preds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = preds.mean(axis=0, dtype=np.float64)
        std = preds.std(axis=0, ddof=1, dtype=np.float64) * self.std_scale
        return mean.astype(np.float32), std.astype(np.float32)

    def interval(self, tiles: Any, level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
        """Central predictive interval ``mean -/+ z(level) * std``: (lower, upper), each (N, E).

        Gaussian: ``z(0.9) = 1.645``. Calibrate first (:meth:`calibrate`) for intervals that
        should hold measured values.

        Examples
        --------
        >>> lower, upper = ens.interval(pairs, level=0.9)   # doctest: +SKIP
        """
        z = z_value(level)
        mean, std = self.predict(tiles)
        return mean - z * std, mean + z * std

    def calibrate(self, tiles: Any, spectra: Any = None, *, level: float = 0.9) -> float:
        """Fit and set :attr:`std_scale` on a validation set; returns the new scale.

        ``tiles`` is a TilePairs not used for training (its spectra are the true values), or
        (N, w, w) tiles with ``spectra`` (N, E). The scale makes the ``level`` interval hold
        ``level`` of the validation spectra (see
        :func:`~plasmonwidgets.analysis.calibration.fit_std_scale`).

        Examples
        --------
        >>> ens.calibrate(validation_pairs)                  # doctest: +SKIP
        3.2
        """
        if spectra is None:
            if not hasattr(tiles, "spectra"):
                raise ValueError("give the true spectra: calibrate(tiles, spectra) or a TilePairs")
            spectra = self.members[0].targets_of(tiles)
        preds = self.predict_members(tiles)
        mean = preds.mean(axis=0, dtype=np.float64)
        spread = preds.std(axis=0, ddof=1, dtype=np.float64)
        self.std_scale = fit_std_scale(mean, spread, spectra, level=level)
        return self.std_scale
