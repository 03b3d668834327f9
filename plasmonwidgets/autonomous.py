"""An autonomous experiment: measure spectra only where the model needs them.

The HAADF image is known up front (imaging is fast); spectra are slow. Starting from a few
seed spectra, each step trains a deep ensemble (:class:`~plasmonwidgets.Ensemble`) on the
tiles centred at the positions measured so far (cut from the whole HAADF), predicts the
whole scan with its uncertainty, chooses the next batch of beam positions and acquires
them from a :class:`~plasmonwidgets.Microscope`, until the budget of spectra is spent.

Strategies
----------
``"random"``
    Unmeasured pixels uniformly at random.
``"raster"``
    A regular grid refined: every 2^k-th pixel along rows and columns, coarsest first,
    row by row (the order does not depend on the model).
``"uncertainty"``
    Largest expected error of the prediction: by default (``score="relative"``) the
    ensemble variance summed over energy relative to the predicted spectrum's power, i.e.
    the expected per-spectrum NMSE, the quantity the whole-scan error averages;
    ``score="absolute"`` ranks by the spread summed over energy (counts), which favours
    bright pixels.
``"scalarizer"``
    Expected improvement (``acquisition="ei"``) or upper confidence bound (``"ucb"``) of a
    user scalar of the spectrum (e.g. the peak energy), computed from every member's
    prediction; the best value so far is that of the measured spectra.

``"uncertainty"`` picks its batch by coverage (``batch_selection="coverage"``, the
default, :func:`cover_greedy`): each pick is the pixel whose most similar tiles
(``neighbours``, :func:`tile_neighbours`) carry the most expected error not yet covered by
the batch, so a batch spreads over the kinds of local structure in proportion to how much
of the scan each is and how uncertain the model is about it. Uncertainty alone chases the
rare tiles (holes, the film edge) while the whole-scan error is mostly the common ones.
``batch_selection="distance"`` and ``"scalarizer"`` pick greedily by score with no two
picks closer than ``min_distance`` SI pixels (a batch of neighbours would measure one
uncertain spot several times). The seed spectra (``n_seed``) are random for
``"random"``, the coarsest raster grid for ``"raster"`` and, for the model-driven
strategies, an even grid over the scan (``seed_design="grid"``, the default:
a model trained on a clump of random seed spectra starts blind to whole regions of the
scan; ``seed_design="random"`` shares random's seed spectra instead).

Training. Each step trains every member for ``epochs`` epochs but at least ``updates``
gradient updates (twice as many in the first step). With a few dozen spectra an epoch is a
single update: epochs alone leave the first models nearly untrained (on the built-in
scene, 32x32, random sampling: whole-scan NMSE 9.8 % after 1 % of the pixels with 4 epochs
per step, 3.0 % with 60 updates per step).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.special import ndtr

from .ensemble import Ensemble
from .metrics import nmse_percent
from .microscope import Microscope
from .tiles import TilePairs, tile_grid

__all__ = ["STRATEGIES", "StepRecord", "AutonomousResult", "Loop", "run", "raster_order",
           "grid_positions", "spread_out", "tile_neighbours", "cover_greedy", "scan_tiles",
           "default_model_factory", "whole_scan_nmse"]

STRATEGIES = ("random", "raster", "uncertainty", "scalarizer")
ACQUISITIONS = ("ei", "ucb")
SCORES = ("relative", "absolute")
SEED_DESIGNS = ("grid", "random")
BATCH_SELECTIONS = ("coverage", "distance")


@dataclass
class StepRecord:
    """What one loop step did and what the model predicted afterwards.

    Attributes
    ----------
    step : int
        0 for the seed spectra, then 1, 2, ...
    positions : (k, 2) int64
        SI pixels acquired in this step, in order.
    n_measured : int
        Spectra measured so far (all steps).
    wall_s, select_s, acquire_s, train_s, predict_s : float
        Seconds for the whole step and its parts.
    mean_spectrum : (E,) float32
        Predicted mean spectrum averaged over the scan.
    uncertainty_map : (h, w) float32
        Ensemble spread summed over energy per pixel.
    mean_uncertainty : float
        ``uncertainty_map`` averaged over the scan.
    epochs : int
        Epochs every member trained in this step (``epochs``, or more to reach ``updates``).

    Examples
    --------
    >>> record = loop.step()                                    # doctest: +SKIP
    >>> record.n_measured, record.positions.shape, record.wall_s  # doctest: +SKIP
    (20, (10, 2), 1.7)
    """

    step: int
    positions: np.ndarray
    n_measured: int
    wall_s: float
    select_s: float
    acquire_s: float
    train_s: float
    predict_s: float
    mean_spectrum: np.ndarray
    uncertainty_map: np.ndarray
    mean_uncertainty: float
    epochs: int = 0


@dataclass
class AutonomousResult:
    """A (possibly unfinished) autonomous run.

    Attributes
    ----------
    strategy : str
    budget : int
    positions : (K, 2) int64
        Every acquired SI pixel, in acquisition order.
    spectra : (K, E) float32
        The acquired spectra, in the same order.
    steps : list of StepRecord
    mean, std : (h, w, E) float32
        The latest whole-scan prediction and its spread.
    finished : bool
        True once the budget is spent.

    Examples
    --------
    >>> result = pw.autonomous.run(scope, factory, budget=40, batch=10)   # doctest: +SKIP
    >>> result.positions.shape, result.mean.shape, result.finished          # doctest: +SKIP
    ((40, 2), (48, 48, 64), True)
    """

    strategy: str
    budget: int
    positions: np.ndarray
    spectra: np.ndarray
    steps: list[StepRecord] = field(default_factory=list)
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    finished: bool = False

    @property
    def wall_times(self) -> np.ndarray:
        """(n_steps,) seconds per step."""
        return np.array([s.wall_s for s in self.steps])

    @property
    def n_measured(self) -> np.ndarray:
        """(n_steps,) spectra measured after each step."""
        return np.array([s.n_measured for s in self.steps], dtype=np.int64)


def default_model_factory(n_energy: int, window: int = 16) -> Callable[[int], Any]:
    """A factory of small, fast Im2Spec members (lean, 8 filters, dilations 1-2, CPU).

    One step of a 3-member ensemble on a 32x32 scan takes about a second on one CPU core.

    Examples
    --------
    >>> factory = default_model_factory(n_energy=16, window=8)
    >>> model = factory(0)
    >>> model.window, model.n_energy
    (8, 16)
    """
    from .models import Im2Spec

    n_energy, window = int(n_energy), int(window)

    def build(seed: int) -> Im2Spec:
        return Im2Spec(window=window, n_energy=n_energy, latent_dim=4, n_filters_enc=8,
                       n_filters_dec=8, dilations=(1, 2), seed=seed, device="cpu")

    return build


def whole_scan_nmse(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean over pixels of the per-spectrum NMSE (%) of a predicted SI; NaN if none is finite.

    Examples
    --------
    >>> import numpy as np
    >>> true = np.ones((2, 2, 4)); pred = true.copy(); pred[0, 0] = 0
    >>> whole_scan_nmse(pred, true)
    25.0
    """
    values = np.asarray(nmse_percent(pred, true, axis=-1), dtype=np.float64)
    values = values[np.isfinite(values)]
    return float(values.mean()) if values.size else float("nan")


def scan_tiles(haadf: np.ndarray, scan_shape: tuple[int, int], window: int) -> np.ndarray:
    """Read-only (h, w, window, window) view: the tile of every SI pixel, borders reflected.

    Same cut as :func:`~plasmonwidgets.make_tiles` with ``pad="reflect"``.

    Examples
    --------
    >>> import numpy as np
    >>> scan_tiles(np.zeros((24, 24)), (12, 12), 8).shape
    (12, 12, 8, 8)
    """
    h, w = scan_shape
    H, W = haadf.shape
    if H % h or W % w or H // h != W // w:
        raise ValueError(f"the HAADF {H}x{W} is not a whole multiple of the {h}x{w} scan")
    grid = tile_grid((H, W), H // h, window, pad="reflect")
    view = sliding_window_view(grid.image(np.asarray(haadf, dtype=np.float32)), (window, window))
    return view[np.ix_(grid.start_r, grid.start_c)]


def raster_order(scan_shape: tuple[int, int]) -> np.ndarray:
    """(h*w, 2) every pixel once, coarse grid first: stride 2^k, 2^(k-1), ..., 1.

    A pixel belongs to the coarsest grid (largest power-of-two stride dividing both its
    row and column); within a grid, row-major.

    Examples
    --------
    >>> raster_order((4, 4))[:4].tolist()
    [[0, 0], [0, 2], [2, 0], [2, 2]]
    """
    h, w = scan_shape
    rr, cc = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    top = 1 << int(np.floor(np.log2(max(1, min(h, w) // 2))))

    def stride(v: np.ndarray) -> np.ndarray:
        # largest power of two (<= top) dividing v; 0 is divisible by every stride
        out = np.ones_like(v)
        s = 2
        while s <= top:
            out[v % s == 0] = s
            s *= 2
        return out

    level = np.minimum(stride(rr), stride(cc)).ravel()
    order = np.lexsort((cc.ravel(), rr.ravel(), -level))
    return np.stack([rr.ravel()[order], cc.ravel()[order]], axis=1).astype(np.int64)


def grid_positions(scan_shape: tuple[int, int], k: int) -> np.ndarray:
    """(k, 2) int64 pixels on an even grid over the scan, as square as the shape allows.

    ``ny`` rows by ``nx`` columns of cells (``ny * nx >= k``, cells about square), one pixel
    at the centre of each; when the grid has more cells than ``k``, the last row is
    filled only partly, its points spread evenly along it.

    Examples
    --------
    >>> grid_positions((8, 8), 4).tolist()
    [[2, 2], [2, 6], [6, 2], [6, 6]]
    >>> len(grid_positions((96, 96), 92))
    92
    """
    h, w = (int(v) for v in scan_shape)
    k = int(k)
    if not 1 <= k <= h * w:
        raise ValueError(f"k must be between 1 and the {h * w} pixels of the scan, got {k}")
    ny = min(h, max(1, round(np.sqrt(k * h / w))))
    nx = min(w, int(np.ceil(k / ny)))
    ny = int(np.ceil(k / nx))  # the scan may be too narrow for the square guess
    rows = ((np.arange(ny) + 0.5) * h / ny).astype(np.int64)
    out = []
    for i, r in enumerate(rows):
        n = nx if i < ny - 1 else k - nx * (ny - 1)
        cols = ((np.arange(n) + 0.5) * w / n).astype(np.int64)
        out.append(np.stack([np.full(n, r), cols], axis=1))
    return np.concatenate(out).astype(np.int64)


def spread_out(score: np.ndarray, available: np.ndarray, k: int, min_distance: float) -> np.ndarray:
    """Pick ``k`` pixels by descending score, no two closer than ``min_distance`` px.

    ``score`` and ``available`` are (h, w). If fewer than ``k`` pixels satisfy the distance,
    the rest are filled by score alone. Returns (k', 2) int64 (k' = min(k, available)).

    Examples
    --------
    >>> import numpy as np
    >>> score = np.zeros((8, 8)); score[4, 4] = 2; score[4, 5] = 1; score[0, 0] = 0.5
    >>> spread_out(score, np.ones((8, 8), bool), 2, 3).tolist()
    [[4, 4], [0, 0]]
    """
    w = score.shape[1]
    flat = np.where(available, score, -np.inf).ravel()
    order = np.argsort(-flat, kind="stable")
    order = order[np.isfinite(flat[order])]
    k = min(int(k), order.size)
    rows, cols = np.divmod(order, w)
    picked: list[int] = []
    free = np.ones(order.size, dtype=bool)
    r2 = float(min_distance) ** 2
    for i in range(order.size):
        if len(picked) == k:
            break
        if not free[i]:
            continue
        picked.append(i)
        if r2 > 0:
            free &= (rows - rows[i]) ** 2 + (cols - cols[i]) ** 2 >= r2
    if len(picked) < k:  # not enough room at this distance: best of the rest
        taken = set(picked)
        picked += [i for i in range(order.size) if i not in taken][: k - len(picked)]
    idx = np.array(picked, dtype=np.int64)
    return np.stack([rows[idx], cols[idx]], axis=1).astype(np.int64)


def tile_neighbours(tiles: np.ndarray, k: int = 16, *, n_components: int = 16,
                    chunk: int = 1024) -> np.ndarray:
    """(N, k) int64: for every tile, the ``k`` most similar tiles (itself included).

    Similarity is the Euclidean distance between the tiles' first ``n_components``
    principal components (fitted on at most 4096 tiles): tiles that look alike are
    expected to have alike spectra, which is what im2spec learns.

    Parameters
    ----------
    tiles : (..., w, w) array
        HAADF tiles, e.g. :func:`scan_tiles` (h, w, window, window); N = their count.
    k : int
        Neighbours per tile, at most N.

    Examples
    --------
    >>> import numpy as np
    >>> tiles = np.zeros((6, 2, 2)); tiles[3:] = 1
    >>> nbr = tile_neighbours(tiles, 3)
    >>> sorted(nbr[0].tolist()), sorted(nbr[5].tolist())
    ([0, 1, 2], [3, 4, 5])
    """
    x = np.asarray(tiles, dtype=np.float64)
    x = x.reshape(-1, x.shape[-2] * x.shape[-1])
    n = len(x)
    k = int(k)
    if not 1 <= k <= n:
        raise ValueError(f"k must be between 1 and the {n} tiles, got {k}")
    x = x - x.mean(axis=0)
    sample = x[:: max(1, n // 4096)]
    _, _, vt = np.linalg.svd(sample, full_matrices=False)
    f = x @ vt[: min(int(n_components), len(vt))].T
    sq = (f**2).sum(axis=1)
    out = np.empty((n, k), dtype=np.int64)
    for a in range(0, n, chunk):
        d = sq[a:a + chunk, None] - 2.0 * (f[a:a + chunk] @ f.T) + sq[None]
        rows = np.arange(len(d))
        d[rows, a + rows] = -np.inf  # a tile is its own nearest neighbour, ties or not
        out[a:a + chunk] = np.argpartition(d, k - 1, axis=1)[:, :k] if k < n else np.arange(n)
    return out


def cover_greedy(score: np.ndarray, neighbours: np.ndarray, available: np.ndarray,
                 k: int) -> np.ndarray:
    """Pick ``k`` pixels that together cover the most expected error (greedy).

    A pixel's gain is the expected error ``score`` summed over its tile neighbours
    (:func:`tile_neighbours`): measuring it is expected to fix the prediction of tiles
    like it. After each pick its neighbours' error counts as covered (set to 0), so the
    next pick goes to structure not yet covered: a batch spreads over the kinds of local
    structure, weighted by how much of the scan each kind is and how uncertain it is.
    Measured pixels carry no error to cover.

    Parameters
    ----------
    score, available : (h, w)
        Expected error per pixel (>= 0) and the pixels that may be picked.
    neighbours : (h * w, m) int64
        Row-major flat indices of each pixel's neighbours.

    Returns
    -------
    (k', 2) int64 pixels in the order picked, k' = min(k, available pixels).

    Examples
    --------
    >>> import numpy as np
    >>> nbr = np.array([[0, 1], [1, 0], [2, 3], [3, 2]])      # two pairs of alike tiles
    >>> score = np.array([[1.0, 1.0], [0.0, 1.5]])
    >>> cover_greedy(score, nbr, np.ones((2, 2), bool), 2).tolist()  # one pixel of each pair
    [[0, 0], [1, 0]]
    """
    w = score.shape[1]
    err = np.where(available, np.maximum(np.asarray(score, dtype=np.float64), 0.0), 0.0).ravel()
    free = np.asarray(available, dtype=bool).ravel().copy()
    picks: list[int] = []
    for _ in range(min(int(k), int(free.sum()))):
        gain = err[neighbours].sum(axis=1)
        gain[~free] = -np.inf
        i = int(np.argmax(gain))
        picks.append(i)
        free[i] = False
        err[neighbours[i]] = 0.0
        err[i] = 0.0
    idx = np.array(picks, dtype=np.int64)
    return np.stack(np.divmod(idx, w), axis=1).astype(np.int64)


def _apply_scalarizer(fn: Callable, spectra: np.ndarray, vectorized: bool) -> np.ndarray:
    flat = spectra.reshape(-1, spectra.shape[-1])
    if vectorized:
        values = np.asarray(fn(flat), dtype=np.float64)
        if values.shape != (len(flat),):
            raise ValueError(f"a vectorized scalarizer must map spectra (N, E) to (N,), got shape "
                             f"{values.shape} for N={len(flat)}")
    else:
        values = np.array([float(fn(s)) for s in flat], dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError("the scalarizer returned NaN/Inf for some spectra; make it return a finite "
                         "number for every spectrum")
    return values.reshape(spectra.shape[:-1])


class Loop:
    """An autonomous experiment that advances one step at a time (stop and resume freely).

    Parameters are those of :func:`run`. ``step()`` performs one step and returns its
    :class:`StepRecord` (None once the budget is spent); ``run()`` steps until the budget
    is spent or ``on_step`` returns False, and can be called again to resume.

    Examples
    --------
    >>> import plasmonwidgets as pw
    >>> scope = pw.SimulatedMicroscope(seed=0, size=24, n_energy=16)
    >>> factory = lambda s: pw.Im2Spec(window=8, n_energy=16, latent_dim=2, seed=s, device="cpu")
    >>> loop = pw.autonomous.Loop(scope, factory, budget=20, batch=5, strategy="uncertainty",
    ...                           n_seed=5, n_members=2, epochs=2)
    >>> record = loop.step()                     # the seed spectra, then a first model
    >>> record.n_measured, loop.done
    (5, False)
    >>> result = loop.run()                      # three more steps of 5 spectra
    >>> result.positions.shape, result.finished
    ((20, 2), True)
    """

    def __init__(self, microscope: Microscope, model_factory: Callable[[int], Any], *, budget: int,
                 batch: int = 10, strategy: str = "uncertainty", seed: int = 0, n_seed: int = 10,
                 warm_start: bool = True, on_step: Callable[[Loop, StepRecord], Any] | None = None,
                 n_members: int = 3, epochs: int = 10, epochs_first: int | None = None,
                 updates: int = 100, updates_first: int | None = None,
                 batch_size: int = 64, lr: float = 1e-2, min_distance: float = 3.0,
                 score: str = "relative", seed_design: str = "grid",
                 batch_selection: str = "coverage", neighbours: int = 16,
                 scalarizer: Callable[[np.ndarray], float] | None = None,
                 scalarizer_vectorized: bool = False, acquisition: str = "ei", kappa: float = 2.0,
                 trainer_options: dict | None = None):
        if not isinstance(microscope, Microscope):
            raise TypeError(f"microscope must have haadf(), acquire(), scan_shape and energy "
                            f"(plasmonwidgets.Microscope), got {type(microscope).__name__}")
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
        if strategy == "scalarizer" and not callable(scalarizer):
            raise ValueError("strategy='scalarizer' needs scalarizer=, a function spectrum (E,) -> "
                             "float such as the peak energy")
        for name, value, allowed in (("acquisition", acquisition, ACQUISITIONS), ("score", score, SCORES),
                                     ("seed_design", seed_design, SEED_DESIGNS),
                                     ("batch_selection", batch_selection, BATCH_SELECTIONS)):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        h, w = (int(v) for v in microscope.scan_shape)
        for name, value, lo in (("budget", budget, 2), ("batch", batch, 1), ("n_seed", n_seed, 2),
                                ("epochs", epochs, 1), ("updates", updates, 0),
                                ("neighbours", neighbours, 1)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {value!r}")
        if budget > h * w:
            raise ValueError(f"budget {budget} exceeds the {h * w} pixels of the {h}x{w} scan")
        if n_seed > budget:
            raise ValueError(f"n_seed ({n_seed}) is larger than the budget ({budget})")
        self.microscope = microscope
        self.scan_shape = (h, w)
        self.budget, self.batch, self.n_seed = int(budget), int(batch), int(n_seed)
        self.strategy, self.seed, self.warm_start = strategy, int(seed), bool(warm_start)
        self.on_step = on_step
        self.epochs = int(epochs)
        self.epochs_first = int(epochs_first) if epochs_first is not None else 2 * self.epochs
        self.updates = int(updates)
        self.updates_first = int(updates_first) if updates_first is not None else 2 * self.updates
        self.score, self.seed_design = score, seed_design
        self.batch_selection, self.neighbours = batch_selection, min(int(neighbours), h * w)
        self._neighbours: np.ndarray | None = None  # (h*w, neighbours), built when first needed
        self.batch_size, self.lr = int(batch_size), float(lr)
        self.min_distance = float(min_distance)
        self.scalarizer, self.scalarizer_vectorized = scalarizer, bool(scalarizer_vectorized)
        self.acquisition, self.kappa = acquisition, float(kappa)
        # float32: bfloat16 autocast ("auto" on CPUs with bf16) was 4-8x slower for these
        # small batches on the benchmark CPU
        self.trainer_options = {"precision": "float32", **(trainer_options or {})}
        self.ensemble = Ensemble(model_factory, n_members=n_members, seed=self.seed)
        self.energy = np.asarray(microscope.energy, dtype=np.float64)
        if self.ensemble.n_energy != len(self.energy):
            raise ValueError(f"the models predict {self.ensemble.n_energy} energy channels but the "
                             f"microscope acquires {len(self.energy)}; build them with "
                             f"n_energy={len(self.energy)}")
        self._tiles = scan_tiles(microscope.haadf(), self.scan_shape, self.ensemble.window)
        self._rng = np.random.default_rng(self.seed)
        self._measured = np.zeros(self.scan_shape, dtype=bool)
        self._positions: list[np.ndarray] = []
        self._spectra: list[np.ndarray] = []
        self._raster = raster_order(self.scan_shape) if strategy == "raster" else None
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self._members: np.ndarray | None = None  # (M, h, w, E) latest member predictions
        self.steps: list[StepRecord] = []

    # ------------------------------------------------------------------ state
    @property
    def n_measured(self) -> int:
        """Spectra acquired so far."""
        return int(self._measured.sum())

    @property
    def measured(self) -> np.ndarray:
        """(h, w) bool: True at the pixels acquired so far."""
        return self._measured.copy()

    @property
    def done(self) -> bool:
        """True once the budget is spent."""
        return self.n_measured >= self.budget

    @property
    def positions(self) -> np.ndarray:
        """(K, 2) int64 acquired positions in order."""
        return np.concatenate(self._positions) if self._positions else np.zeros((0, 2), np.int64)

    @property
    def result(self) -> AutonomousResult:
        """The run so far as an :class:`AutonomousResult`."""
        spectra = (np.concatenate(self._spectra) if self._spectra
                   else np.zeros((0, len(self.energy)), np.float32))
        return AutonomousResult(self.strategy, self.budget, self.positions, spectra, list(self.steps),
                                self.mean, self.std, self.done)

    # --------------------------------------------------------------- running
    def run(self, on_step: Callable[[Loop, StepRecord], Any] | None = None) -> AutonomousResult:
        """Step until the budget is spent or ``on_step(loop, record)`` returns False.

        ``on_step`` defaults to the one given at construction. Call again to resume.
        """
        callback = on_step if on_step is not None else self.on_step
        while not self.done:
            record = self.step()
            if callback is not None and callback(self, record) is False:
                break
        return self.result

    def step(self) -> StepRecord | None:
        """Select, acquire, train and predict once; None if the budget is already spent."""
        if self.done:
            return None
        t0 = time.perf_counter()
        first = not self.steps
        k = min(self.n_seed if first else self.batch, self.budget - self.n_measured)
        new = self._seed_positions(k) if first else self._select(k)
        t1 = time.perf_counter()
        spectra = np.asarray(self.microscope.acquire(new), dtype=np.float32)
        if spectra.shape != (len(new), len(self.energy)):
            raise ValueError(f"the microscope returned spectra of shape {spectra.shape} for "
                             f"{len(new)} positions; expected {(len(new), len(self.energy))}")
        self._measured[new[:, 0], new[:, 1]] = True
        self._positions.append(new)
        self._spectra.append(spectra)
        t2 = time.perf_counter()
        epochs = self._train(first)
        t3 = time.perf_counter()
        self._predict()
        t4 = time.perf_counter()
        umap = self.std.sum(axis=-1, dtype=np.float64).astype(np.float32)
        record = StepRecord(
            step=len(self.steps), positions=new, n_measured=self.n_measured, wall_s=t4 - t0,
            select_s=t1 - t0, acquire_s=t2 - t1, train_s=t3 - t2, predict_s=t4 - t3,
            mean_spectrum=self.mean.reshape(-1, self.mean.shape[-1]).mean(axis=0),
            uncertainty_map=umap, mean_uncertainty=float(umap.mean()), epochs=epochs)
        self.steps.append(record)
        return record

    # ------------------------------------------------------------ internals
    def _training_pairs(self) -> TilePairs:
        pos = self.positions
        images = np.ascontiguousarray(self._tiles[pos[:, 0], pos[:, 1]], dtype=np.float32)
        return TilePairs(images, np.concatenate(self._spectra), pos, self.energy, self.scan_shape)

    def _train(self, first: bool) -> int:
        if not self.warm_start and not first:
            self.ensemble.reset()
        cold = first or not self.warm_start
        epochs = self.epochs_first if cold else self.epochs
        updates = self.updates_first if cold else self.updates
        # an epoch of a few dozen spectra is one update: train for at least `updates`
        batches = -(-self.n_measured // self.batch_size)
        epochs = max(epochs, -(-updates // batches))
        self.ensemble.fit(self._training_pairs(), epochs=epochs, batch_size=self.batch_size,
                          lr=self.lr, **self.trainer_options)
        return epochs

    def _predict(self) -> None:
        h, w = self.scan_shape
        win = self.ensemble.window
        tiles = self._tiles.reshape(h * w, win, win)
        members = self.ensemble.predict_members(tiles)
        mean, std = self.ensemble._mean_std(members)
        e = members.shape[-1]
        self._members = members.reshape(len(members), h, w, e)
        self.mean, self.std = mean.reshape(h, w, e), std.reshape(h, w, e)

    def _seed_positions(self, k: int) -> np.ndarray:
        if self.strategy == "raster":
            return self._select(k)
        if self.strategy != "random" and self.seed_design == "grid":
            return grid_positions(self.scan_shape, k)
        h, w = self.scan_shape
        flat = self._rng.choice(h * w, size=k, replace=False)
        return np.stack(np.divmod(flat, w), axis=1).astype(np.int64)

    def _select(self, k: int) -> np.ndarray:
        available = ~self._measured
        if self.strategy == "random":
            flat = np.flatnonzero(available.ravel())
            pick = self._rng.choice(flat, size=k, replace=False)
            return np.stack(np.divmod(pick, self.scan_shape[1]), axis=1).astype(np.int64)
        if self.strategy == "raster":
            order = self._raster
            return order[available[order[:, 0], order[:, 1]]][:k]
        if self.strategy == "uncertainty":
            score = self._uncertainty_score()
            if self.batch_selection == "coverage":
                if self._neighbours is None:
                    self._neighbours = tile_neighbours(self._tiles, self.neighbours)
                return cover_greedy(score, self._neighbours, available, k)
        else:
            score = self._scalar_score()
        return spread_out(score, available, k, self.min_distance)

    def _uncertainty_score(self) -> np.ndarray:
        if self.score == "absolute":
            return self.std.sum(axis=-1, dtype=np.float64)
        std, mean = self.std.astype(np.float64), self.mean.astype(np.float64)
        power = (mean**2).sum(axis=-1)
        # expected per-spectrum NMSE; the floor keeps empty predictions from dividing by 0
        return (std**2).sum(axis=-1) / np.maximum(power, 1e-6 * max(float(power.max()), 1e-30))

    def _scalar_score(self) -> np.ndarray:
        values = _apply_scalarizer(self.scalarizer, self._members, self.scalarizer_vectorized)
        mu = values.mean(axis=0)
        sigma = values.std(axis=0, ddof=1) * self.ensemble.std_scale
        if self.acquisition == "ucb":
            return mu + self.kappa * sigma
        measured = _apply_scalarizer(self.scalarizer, np.concatenate(self._spectra),
                                     self.scalarizer_vectorized)
        best = float(measured.max())
        sigma = np.maximum(sigma, 1e-12)
        z = (mu - best) / sigma
        # expected improvement over the best measured value (maximisation)
        pdf = np.exp(-0.5 * z**2) / np.sqrt(2 * np.pi)
        return (mu - best) * ndtr(z) + sigma * pdf


def run(microscope: Microscope, model_factory: Callable[[int], Any], *, budget: int, batch: int = 10,
        strategy: str = "uncertainty", seed: int = 0, n_seed: int = 10, warm_start: bool = True,
        on_step: Callable[[Loop, StepRecord], Any] | None = None, **options: Any) -> AutonomousResult:
    """Run an autonomous experiment on ``microscope`` until ``budget`` spectra are measured.

    Parameters
    ----------
    microscope : Microscope
        e.g. :class:`~plasmonwidgets.SimulatedMicroscope` or
        :class:`~plasmonwidgets.RecordedMicroscope`.
    model_factory : callable(seed) -> Im2Spec
        Builds one ensemble member; its ``n_energy`` must match the microscope's.
    budget : int
        Total spectra to measure, seed spectra included (never exceeded).
    batch : int
        Spectra acquired per step after the seed step (the last step may take fewer).
    strategy : {"random", "raster", "uncertainty", "scalarizer"}
        How the next positions are chosen (module docstring).
    seed : int
        Seeds the ensemble members and the random choices: same seed, same run.
    n_seed : int
        Spectra of the first step (random positions for "random", the first raster points
        for "raster", an even grid otherwise).
    warm_start : bool
        Continue training from the previous step's weights (True, ``epochs`` per step) or
        retrain fresh members every step (``epochs_first`` per step).
    on_step : callable(loop, record), optional
        Called after every step; returning False stops the run (resume with
        ``Loop.run()``; use :class:`Loop` directly to keep the object).
    **options
        ``n_members`` (3), ``epochs`` (10), ``epochs_first`` (2 x epochs), ``updates``
        (at least this many gradient updates per member per step, 100), ``updates_first``
        (2 x updates), ``batch_size``, ``lr`` (1e-2: chosen on the validation scene, where
        1e-3 left the small members far from converged after 100-300 updates), ``min_distance``
        (3 px), ``score``
        ("relative" or "absolute" uncertainty), ``batch_selection`` ("coverage" or
        "distance"), ``neighbours`` (16, tiles per coverage neighbourhood), ``seed_design``
        ("grid" or "random" seed spectra for the model-driven strategies), ``scalarizer``
        (spectrum (E,) -> float),
        ``scalarizer_vectorized`` (it maps (N, E) -> (N,)), ``acquisition`` ("ei" or
        "ucb"), ``kappa`` (UCB weight, 2), ``trainer_options`` (dict for the Trainer).

    Returns
    -------
    AutonomousResult
        Acquired positions in order, per-step records (wall time, uncertainty summary)
        and the final prediction.

    Examples
    --------
    >>> import numpy as np, plasmonwidgets as pw
    >>> scope = pw.SimulatedMicroscope(seed=0, size=24, n_energy=16)
    >>> factory = lambda s: pw.Im2Spec(window=8, n_energy=16, latent_dim=2, seed=s, device="cpu")
    >>> peak = lambda spectrum: float(scope.energy[np.argmax(spectrum)])   # peak energy, eV
    >>> result = pw.autonomous.run(scope, factory, budget=15, batch=5, n_seed=5,
    ...                            strategy="scalarizer", scalarizer=peak, n_members=2, epochs=2)
    >>> result.positions.shape, len(result.steps), result.mean.shape
    ((15, 2), 3, (24, 24, 16))
    """
    loop = Loop(microscope, model_factory, budget=budget, batch=batch, strategy=strategy, seed=seed,
                n_seed=n_seed, warm_start=warm_start, on_step=on_step, **options)
    return loop.run()
