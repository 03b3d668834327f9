"""Simple predictors a network has to beat, fitted on the training side only.

Each baseline is a small class with ``fit(train_pairs)`` and ``predict(inputs)`` in
physical units, a ``direction`` ("im2spec" or "spec2im") and a ``name``, so
:func:`~plasmonwidgets.analysis.evaluation.evaluate` scores it exactly like a model:

- :class:`MeanTarget`: the training-mean spectrum (im2spec) or tile (spec2im);
- :class:`IntensityTimesMeanSpectrum` (im2spec): 3 parameters, the spectrum's total counts
  from (1, tile sum, centre pixel) by least squares, times the training-mean shape;
- :class:`IntensityOracle`: knows each test target and predicts the mean shape scaled
  optimally (least squares). Not a fair baseline (it sees the answer): it tells how much
  of the error is intensity rather than shape;
- :class:`RotationOracle` (spec2im): the true tile averaged over the 4 rotations about the
  probe, the best any rotation-symmetric prediction can do;
- :class:`PCARidge`: standardised inputs -> PCA -> ridge regression;
- :class:`KNN`: standardised inputs -> PCA -> distance-weighted k nearest neighbours,
  with ``symmetric=True`` (spec2im) its output is rotation-averaged about the probe.

:func:`default_baselines` builds the standard set; :func:`strongest_baseline` picks the
best non-oracle entry of a collection of evaluation tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from ..roles import DIRECTIONS, Role, role_of
from .evaluation import EvaluationTable

__all__ = ["KNN", "Baseline", "IntensityOracle", "IntensityTimesMeanSpectrum", "MeanTarget",
           "PCARidge", "RotationOracle", "default_baselines", "strongest_baseline"]


def _training_arrays(pairs: Any, role: Role) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) float64 of a TilePairs (or an ``(inputs, targets)`` tuple)."""
    if isinstance(pairs, tuple) and len(pairs) == 2:
        x, y = pairs
    else:
        x, y = role.inputs_of(pairs), role.targets_of(pairs)
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(x) != len(y) or len(x) < 2:
        raise ValueError(f"need at least 2 training pairs with as many inputs as targets, got "
                         f"{len(x)} inputs and {len(y)} targets")
    return x, y


class Baseline:
    """Base class: ``role``, ``name``, ``fit(train)`` -> self, ``predict(inputs)``.

    Like a model, a baseline says what it reads and predicts: ``inputs_of(pairs)``,
    ``targets_of(pairs)``, ``input_kind``, ``target_kind`` (from its
    :class:`~plasmonwidgets.roles.Role`); ``direction`` is the role's label, read-only.
    Oracles (``kind = "oracle"``) see the test targets (``needs_truth``) and are never
    reported as the strongest baseline.

    Parameters
    ----------
    direction : "im2spec" or "spec2im" (or a :class:`~plasmonwidgets.roles.Role`); the
        classes that need one kind of input or target accept only their ``directions``.

    Examples
    --------
    >>> import numpy as np
    >>> x, y = np.arange(8.0).reshape(4, 2), np.ones((4, 3))      # 4 inputs (2,), targets (3,)
    >>> MeanTarget("im2spec").fit((x, y)).predict(x[:2]).shape
    (2, 3)
    >>> MeanTarget("im2spec").target_kind
    'spectrum'
    """

    name = "baseline"
    kind = "baseline"
    needs_truth = False
    directions: tuple[str, ...] = DIRECTIONS

    def __init__(self, direction: str | Role):
        role = role_of(direction)
        if role.direction not in self.directions:
            raise ValueError(f"{type(self).__name__} supports direction {self.directions}, "
                             f"got {role.direction!r}")
        self.role = role
        self.target_shape: tuple[int, ...] | None = None

    @property
    def direction(self) -> str:
        """The role's label, "im2spec" or "spec2im" (read-only)."""
        return self.role.direction

    @property
    def input_kind(self) -> str:
        """"image" or "spectrum": what :meth:`predict` takes."""
        return self.role.input_kind

    @property
    def target_kind(self) -> str:
        """"spectrum" or "image": what :meth:`predict` returns."""
        return self.role.target_kind

    def inputs_of(self, pairs: Any) -> Any:
        """The inputs this baseline reads from a TilePairs (tiles or spectra)."""
        return self.role.inputs_of(pairs)

    def targets_of(self, pairs: Any) -> Any:
        """The targets this baseline predicts for a TilePairs (spectra or tiles)."""
        return self.role.targets_of(pairs)

    def fit(self, train: Any) -> Baseline:
        """Fit on the training pairs (TilePairs or ``(inputs, targets)``); returns self.

        Examples
        --------
        >>> import numpy as np
        >>> MeanTarget("spec2im").fit((np.ones((5, 16)), np.ones((5, 8, 8)))).target_shape
        (8, 8)
        """
        x, y = _training_arrays(train, self.role)
        self.target_shape = y.shape[1:]
        self._fit(x.reshape(len(x), -1), y.reshape(len(y), -1))
        return self

    def predict(self, inputs: Any) -> np.ndarray:
        """Predictions (N, *target_shape) in physical units for inputs (N, ...).

        Examples
        --------
        >>> import numpy as np
        >>> baseline = MeanTarget("im2spec").fit((np.ones((5, 8, 8)), np.full((5, 16), 2.0)))
        >>> baseline.predict(np.ones((3, 8, 8)))[:, 0]                # the training-mean spectrum
        array([2., 2., 2.])
        """
        if self.target_shape is None:
            raise RuntimeError(f"{self.name}: call fit(train_pairs) before predict")
        x = np.asarray(inputs, dtype=np.float64)
        return self._predict(x.reshape(len(x), -1)).reshape(len(x), *self.target_shape)

    def _fit(self, x: np.ndarray, y: np.ndarray) -> None:  # x (N, F), y (N, T)
        raise NotImplementedError

    def _predict(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} ({self.direction})>"


class MeanTarget(Baseline):
    """The training-mean target for every input (mean spectrum / mean tile).

    Examples
    --------
    >>> import numpy as np
    >>> tiles, spectra = np.ones((10, 8, 8)), np.ones((10, 16))
    >>> MeanTarget("im2spec").fit((tiles, spectra)).predict(tiles[:3]).shape   # (N, E)
    (3, 16)
    """

    name = "mean target"

    def _fit(self, x, y):
        self.mean_ = y.mean(axis=0)

    def _predict(self, x):
        return np.broadcast_to(self.mean_, (len(x), self.mean_.size)).copy()


class IntensityTimesMeanSpectrum(Baseline):
    """im2spec with 3 parameters: total counts ≈ a + b·(tile sum) + c·(centre pixel), times
    the training-mean spectrum normalised to unit sum.

    Exact on data whose spectra are one shape times an intensity that is linear in the
    tile sum and the centre pixel.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> tiles, spectra = rng.uniform(1, 2, (30, 8, 8)), rng.uniform(1, 2, (30, 16))

    >>> IntensityTimesMeanSpectrum("im2spec").fit((tiles, spectra)).predict(tiles[:2]).shape
    (2, 16)
    """

    name = "intensity × mean spectrum"
    directions = ("im2spec",)

    def _features(self, x: np.ndarray) -> np.ndarray:
        w = int(round(np.sqrt(x.shape[1])))
        centre = x[:, (w // 2) * w + w // 2]  # the probe pixel (tiles.py convention)
        return np.column_stack([np.ones(len(x)), x.sum(axis=1), centre])

    def _fit(self, x, y):
        mean = y.mean(axis=0)
        total = mean.sum()
        if total == 0:
            raise ValueError("the training spectra sum to zero; nothing to scale")
        self.shape_ = mean / total
        self.coef_, *_ = np.linalg.lstsq(self._features(x), y.sum(axis=1), rcond=None)

    def _predict(self, x):
        return (self._features(x) @ self.coef_)[:, None] * self.shape_[None, :]


class IntensityOracle(Baseline):
    """Oracle: the training-mean shape scaled to each test target by least squares
    (c = ⟨y, m⟩/⟨m, m⟩). Sees the test targets, so it is a diagnostic, not a baseline.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> tiles, spectra = rng.uniform(1, 2, (30, 8, 8)), rng.uniform(1, 2, (30, 16))

    >>> oracle = IntensityOracle("im2spec").fit((tiles, spectra))
    >>> oracle.predict(tiles[:2], truth=spectra[:2]).shape          # sees the true spectra
    (2, 16)
    """

    name = "intensity oracle"
    kind = "oracle"
    needs_truth = True

    def _fit(self, x, y):
        self.mean_ = y.mean(axis=0)
        if not np.any(self.mean_):
            raise ValueError("the training targets are all zero; nothing to scale")

    def predict(self, inputs: Any, truth: Any = None) -> np.ndarray:
        """Predictions for ``inputs`` given the true targets ``truth`` (same shape as output)."""
        if self.target_shape is None:
            raise RuntimeError(f"{self.name}: call fit(train_pairs) before predict")
        if truth is None:
            raise ValueError(f"{self.name} is an oracle: pass truth=<the true targets>")
        t = np.asarray(truth, dtype=np.float64).reshape(len(truth), -1)
        c = t @ self.mean_ / (self.mean_ @ self.mean_)
        return (c[:, None] * self.mean_[None, :]).reshape(len(t), *self.target_shape)


class RotationOracle(Baseline):
    """Oracle (spec2im): each true tile averaged over the 4 rotations about its probe pixel.

    Any rotation-symmetric prediction P of a tile T has ‖P−T‖² ≥ ‖S(T)−T‖², so this is
    a floor for symmetric predictors (e.g. ``Spec2Im(symmetric=True)``).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> tiles, spectra = rng.uniform(1, 2, (30, 8, 8)), rng.uniform(1, 2, (30, 16))

    >>> oracle = RotationOracle("spec2im").fit((spectra, tiles))
    >>> oracle.predict(spectra[:2], truth=tiles[:2]).shape          # the true tiles, symmetrised
    (2, 8, 8)
    """

    name = "rotation oracle"
    kind = "oracle"
    needs_truth = True
    directions = ("spec2im",)

    def _fit(self, x, y):
        pass

    def predict(self, inputs: Any, truth: Any = None) -> np.ndarray:
        if truth is None:
            raise ValueError(f"{self.name} is an oracle: pass truth=<the true tiles>")
        from .evaluation import _rotation_average

        return _rotation_average(np.asarray(truth, dtype=np.float64))


class PCARidge(Baseline):
    """Standardised inputs -> PCA(``n_components``) -> ridge regression (scikit-learn).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> tiles, spectra = rng.uniform(1, 2, (30, 8, 8)), rng.uniform(1, 2, (30, 16))

    >>> PCARidge("spec2im", n_components=5).fit((spectra, tiles)).predict(spectra[:2]).shape
    (2, 8, 8)
    """

    def __init__(self, direction: str, *, n_components: int = 10, alpha: float = 1.0):
        super().__init__(direction)
        self.n_components, self.alpha = int(n_components), float(alpha)
        self.name = f"PCA({self.n_components}) + ridge"

    def _fit(self, x, y):
        from sklearn.decomposition import PCA
        from sklearn.linear_model import Ridge
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        k = min(self.n_components, *x.shape)
        self.model_ = make_pipeline(StandardScaler(), PCA(k, random_state=0),
                                    Ridge(alpha=self.alpha)).fit(x, y)

    def _predict(self, x):
        return self.model_.predict(x)


class KNN(Baseline):
    """Standardised inputs -> PCA(``n_components``) -> distance-weighted kNN (k=``k``).

    ``symmetric=True`` (spec2im only) averages each predicted tile over the 4 rotations
    about the probe, as ``Spec2Im(symmetric=True)`` does with its own output.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> tiles, spectra = rng.uniform(1, 2, (30, 8, 8)), rng.uniform(1, 2, (30, 16))

    >>> knn = KNN("spec2im", k=5, n_components=4, symmetric=True).fit((spectra, tiles))
    >>> knn.name, knn.predict(spectra[:2]).shape
    ('rotation-averaged kNN (k=5, PCA 4)', (2, 8, 8))
    """

    def __init__(self, direction: str, *, k: int = 20, n_components: int = 20,
                 symmetric: bool = False):
        super().__init__(direction)
        if symmetric and self.target_kind != "image":
            raise ValueError("symmetric=True rotation-averages predicted tiles: spec2im only")
        self.k, self.n_components, self.symmetric = int(k), int(n_components), bool(symmetric)
        self.name = ("rotation-averaged " if symmetric else "") + \
            f"kNN (k={self.k}, PCA {self.n_components})"

    def _fit(self, x, y):
        from sklearn.decomposition import PCA
        from sklearn.neighbors import KNeighborsRegressor
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        k = min(self.n_components, *x.shape)
        self.model_ = make_pipeline(StandardScaler(), PCA(k, random_state=0),
                                    KNeighborsRegressor(min(self.k, len(x)), weights="distance"))
        self.model_.fit(x, y)

    def _predict(self, x):
        y = self.model_.predict(x)
        if self.symmetric:
            from .evaluation import _rotation_average

            y = _rotation_average(y.reshape(len(y), *self.target_shape)).reshape(len(y), -1)
        return y


def default_baselines(direction: str, *, oracles: bool = True) -> list[Baseline]:
    """The standard (unfitted) baselines of a direction, in reporting order.

    im2spec: mean target, intensity × mean spectrum, PCA(2/10) + ridge, kNN, and the
    intensity oracle; spec2im: mean tile, PCA(2/10) + ridge, kNN, rotation-averaged kNN,
    and the intensity and rotation oracles. ``oracles=False`` leaves the oracles out.

    Examples
    --------
    >>> [b.name for b in default_baselines("im2spec", oracles=False)]
    ['mean target', 'intensity × mean spectrum', 'PCA(2) + ridge', 'PCA(10) + ridge', 'kNN (k=20, PCA 20)']
    """
    role = role_of(direction)
    tiles_out = role.target_kind == "image"  # rotation averaging applies to predicted tiles
    candidates: list[tuple[type[Baseline], dict]] = [
        (MeanTarget, {}), (IntensityTimesMeanSpectrum, {}),
        (PCARidge, {"n_components": 2}), (PCARidge, {"n_components": 10}), (KNN, {}),
    ]
    if tiles_out:
        candidates.append((KNN, {"symmetric": True}))
    if oracles:
        candidates += [(IntensityOracle, {}), (RotationOracle, {})]
    # each class lists the directions it supports: the rest are left out, not branched on
    return [cls(role, **kw) for cls, kw in candidates if role.direction in cls.directions]


def strongest_baseline(tables: Iterable[EvaluationTable], *, row: str = "all",
                       metric: str = "mean") -> EvaluationTable:
    """The table of the best (lowest ``metric`` in ``row``) non-oracle baseline.

    ``tables`` may mix models, baselines and oracles: only tables whose ``info["kind"]`` is
    "baseline" (set by :func:`evaluate` from the predictor's ``kind``) take part.

    Examples
    --------
    >>> import numpy as np
    >>> from plasmonwidgets.analysis import evaluate
    >>> rng = np.random.default_rng(0)
    >>> tiles = rng.uniform(1, 2, (40, 8, 8))
    >>> spectra = tiles.sum(axis=(1, 2))[:, None] * np.linspace(1, 2, 16)   # intensity x shape
    >>> data = (tiles, spectra)
    >>> tables = [evaluate(b.fit(data), data) for b in default_baselines("im2spec")]
    >>> strongest_baseline(tables).name                            # the oracle never wins
    'intensity × mean spectrum'
    """
    best = None
    for t in tables:
        if t.info.get("kind") != "baseline":
            continue
        s = t.rows.get(row)
        if s is None or not np.isfinite(getattr(s, metric)):
            continue
        if best is None or getattr(s, metric) < getattr(best.rows[row], metric):
            best = t
    if best is None:
        raise ValueError(f"no baseline table with a finite {metric!r} in row {row!r}")
    return best
