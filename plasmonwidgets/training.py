"""Training engine: ``train`` (blocking) and ``Trainer`` (background thread).

Design
------
* The trainer works on a **private copy** of the model (``model.clone()``). After every
  epoch it publishes the copy's weights into the user's model with
  ``model.load_state_dict`` under ``model.lock``; when training ends (finished, stopped,
  failed) it publishes the **best** weights: those with the lowest validation loss when
  there is a validation set, else the last completed epoch's.
  The user's model is therefore never in train mode and never half-updated, and widgets
  can call ``model.decode`` while training runs without waiting for training steps.
* By default there is no model selection: the cosine schedule ends at a vanishing step
  size, so the last epoch sits in a minimum. Optional model selection and early stopping
  use a **validation** set carved spatially from the training side (a compact block at a
  corner of the training region; training tiles whose window contains a validation
  centre are dropped, as ``TilePairs.split`` does for the test set). On the built-in
  data that block and its guard band cost a fifth of the training tiles and hold no
  vacuum, and the 10-latent im2spec test NMSE rose from 1.1-1.2 % to 1.7-2.1 %
  (docs/benchmarks.md). The test set is only evaluated for monitoring, never selected on.
* Data live on the model's device as contiguous normalised tensors; a batch is an
  ``index_select`` of a seeded permutation, so there is no per-batch numpy round trip.
  A :class:`~plasmonwidgets.TileDataset` (many scans) is instead read band by band of scan
  rows: each group of bands becomes normalised tensors once and is cut into batches, so
  memory holds a few bands, never all scans.
* Losses take normalised targets (per-feature mean removed, divided by one scalar std);
  the default one converts back and weighs each sample's physical squared error by its
  own signal, like the per-sample NMSE the benchmarks report.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .losses import RelativeSquaredError
from .metrics import nmse_percent
from .models import ImSpecModel
from .nn.symmetry import dihedral_about_probe
from .roles import role_of

__all__ = ["EventQueue", "History", "ProgressEvent", "Trainer", "TrainingError", "nmse_percent",
           "train"]

STATES = ("idle", "running", "stopping", "stopped", "finished", "failed")
EVAL_CHUNK = 256  # samples per evaluation forward pass (cache-friendly on CPU)


class TrainingError(RuntimeError):
    """Training failed (e.g. the loss became NaN/Inf). ``.history`` holds the epochs done.

    Examples
    --------
    >>> import numpy as np, plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))       # 12x12 scan, E = 32
    >>> train_set, test_set = pw.make_tiles(si, window=8, pad="reflect").split("halves")
    >>> model = pw.Im2Spec(window=8, n_energy=32, latent_dim=2, device="cpu")
    >>> nan_loss = lambda pred, target: ((pred - target) ** 2).mean() * float("nan")
    >>> try:
    ...     pw.train(model, train_set, epochs=2, loss=nan_loss, progress=False)
    ... except pw.TrainingError as err:
    ...     print(len(err.history), "epochs done;", str(err).split(" in ")[0])
    0 epochs done; the training loss became nan
    """

    def __init__(self, message: str, history: History):
        super().__init__(message)
        self.history = history


@dataclass
class ProgressEvent:
    """One progress report from a training run.

    ``kind``: "batch" (throttled, at most every ``event_interval_s``), "epoch", "finished",
    "stopped" or "failed". ``epoch`` is 1-based (the epoch in progress for "batch", the
    epoch just completed for "epoch"); ``batch`` counts batches done in that epoch.
    Losses are mean losses on normalised targets (``train_loss`` of the epoch so far);
    ``elapsed_s`` is training wall time (paused time excluded), ``eta_s`` an estimate of
    the time left. ``val_loss`` is the validation loss used for model selection.
    ``test_nmse`` is the mean per-sample NMSE (%, physical units, as ``analysis.error_map``
    reports it) on the test set, when it was evaluated.

    Examples
    --------
    >>> event = ProgressEvent(kind="epoch", epoch=3, n_epochs=30, train_loss=0.012)
    >>> f"{event.epoch}/{event.n_epochs}: loss {100 * event.train_loss:.2g} %"  # relative loss
    '3/30: loss 1.2 %'
    """

    kind: str
    epoch: int
    n_epochs: int
    batch: int = 0
    n_batches: int = 0
    train_loss: float | None = None
    test_loss: float | None = None
    elapsed_s: float = 0.0
    eta_s: float | None = None
    samples_per_s: float | None = None
    message: str = ""
    val_loss: float | None = None
    test_nmse: float | None = None


@dataclass
class History:
    """Per-epoch record of a training run (lists have one entry per completed epoch).

    Losses are on normalised targets. ``test_loss``/``val_loss`` entries are None when
    there is no such set (or the test set was not evaluated that epoch, see
    ``test_every``); ``test_nmse`` is the test set's mean per-sample NMSE in % (None
    likewise). ``epoch_time`` is wall time per epoch including evaluation;
    ``samples_per_s`` is the training-pass throughput (evaluation excluded).
    ``best_epoch`` (1-based) is the epoch whose weights the model holds at the end.

    Examples
    --------
    >>> history = History(train_loss=[0.2, 0.1], test_nmse=[None, 9.5])
    >>> len(history), history.as_dict()["test_nmse"]          # epochs done; NMSE in %
    (2, [None, 9.5])
    """

    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float | None] = field(default_factory=list)
    test_loss: list[float | None] = field(default_factory=list)
    test_nmse: list[float | None] = field(default_factory=list)
    epoch_time: list[float] = field(default_factory=list)
    samples_per_s: list[float] = field(default_factory=list)
    best_epoch: int | None = None
    best_val_loss: float | None = None
    n_train: int = 0
    n_val: int = 0
    n_test: int = 0
    n_guard: int = 0
    stop_reason: str = ""

    def __len__(self) -> int:
        return len(self.train_loss)

    def as_dict(self) -> dict[str, Any]:
        """Plain-data copy (lists, numbers, strings), e.g. to store in a checkpoint.

        Examples
        --------
        >>> History(train_loss=[0.5]).as_dict()["train_loss"]
        [0.5]
        """
        return asdict(self)


class EventQueue:
    """A progress subscriber that keeps events for a reader on another thread.

    ``queue(event)`` appends (called by the trainer on its thread); :meth:`poll` drains.
    Holds the newest ``maxlen`` events (older ones are dropped, never blocking training).

    Examples
    --------
    >>> queue = EventQueue()
    >>> queue(ProgressEvent(kind="epoch", epoch=1, n_epochs=3))
    >>> [event.kind for event in queue.poll()], queue.poll()
    (['epoch'], [])
    """

    def __init__(self, maxlen: int = 10_000):
        self._events: collections.deque[ProgressEvent] = collections.deque(maxlen=maxlen)

    def __call__(self, event: ProgressEvent) -> None:
        self._events.append(event)  # deque.append is atomic: no lock needed

    def poll(self) -> list[ProgressEvent]:
        """Drain and return the events queued since the last poll (thread-safe).

        Examples
        --------
        >>> queue = EventQueue()
        >>> queue.poll()                                # nothing delivered yet
        []
        """
        out = []
        while True:
            try:
                out.append(self._events.popleft())
            except IndexError:
                return out


# ---------------------------------------------------------------------------- data
def _pair_arrays(pairs: Any, model: ImSpecModel, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(inputs, targets) float32 arrays of a TilePairs for the model's direction."""
    for attr in ("images", "spectra"):
        if not hasattr(pairs, attr):
            raise TypeError(f"{name} must be a TilePairs (from pw.make_tiles), "
                            f"got {type(pairs).__name__} without .{attr}")
    images = np.asarray(pairs.images, dtype=np.float32)
    spectra = np.asarray(pairs.spectra, dtype=np.float32)
    if images.ndim != 3 or spectra.ndim != 2 or len(images) != len(spectra):
        raise ValueError(f"{name}: expected images (N, w, w) and spectra (N, E), got "
                         f"{images.shape} and {spectra.shape}")
    if images.shape[1:] != (model.window, model.window):
        raise ValueError(f"{name} has {images.shape[1]}x{images.shape[2]} tiles but the model "
                         f"expects window={model.window}; make tiles with "
                         f"window={model.window} or build the model to match")
    if spectra.shape[1] != model.n_energy:
        raise ValueError(f"{name} has spectra with {spectra.shape[1]} energy channels but the "
                         f"model expects n_energy={model.n_energy}")
    for arr, what in ((images, "images"), (spectra, "spectra")):
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}.{what} contains {int((~np.isfinite(arr)).sum())} "
                             f"NaN/Inf values; clean the data before training")
    return model.inputs_of(_Arrays(images, spectra)), model.targets_of(_Arrays(images, spectra))


class _Arrays:
    """Checked float32 tiles and spectra, read by ``model.inputs_of`` / ``targets_of``."""

    def __init__(self, images: np.ndarray, spectra: np.ndarray):
        self.images, self.spectra = images, spectra


def _is_dataset(data: Any) -> bool:
    """A TileDataset (read band by band) rather than in-memory TilePairs."""
    return hasattr(data, "batches") and hasattr(data, "chunks")


def _check_dataset(data: Any, model: ImSpecModel, name: str) -> None:
    """Window and energy channels of a TileDataset against the model (nothing is read)."""
    if data.window != model.window:
        raise ValueError(f"{name} has {data.window}x{data.window} tiles but the model expects "
                         f"window={model.window}; build the TileDataset with "
                         f"window={model.window} or build the model to match")
    if data.n_energy != model.n_energy:
        raise ValueError(f"{name} has spectra with {data.n_energy} energy channels but the "
                         f"model expects n_energy={model.n_energy}")


def streaming_moments(data: Any, role: Any) -> tuple[tuple, tuple, float]:
    """Normalisation statistics of a TileDataset from one pass over its bands.

    ``role``: the model (or its :class:`~plasmonwidgets.roles.Role`, or a direction label),
    which says which side of each pair is the input and which the target.

    Returns ``(x_stats, y_stats, mean_target_energy)``: for inputs and targets the count
    n, the per-feature mean (float64, flattened) and the summed squared deviation from it,
    merged band by band (Chan et al.), so the result equals ``fit_normalization`` on all
    tiles at once; and the mean per-sample sum of squared targets (what the relative loss
    divides by).

    Examples
    --------
    >>> import numpy as np, plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))       # 12x12 scan, E = 32
    >>> dataset = pw.TileDataset([si], window=8, pad="reflect")   # read band by band
    >>> x_stats, y_stats, energy = streaming_moments(dataset, "im2spec")
    >>> x_stats[1].shape, y_stats[1].shape     # per-feature means: 8x8 tile pixels, E channels
    ((64,), (32,))
    """
    if isinstance(role, str):
        role = role_of(role)
    stats: dict[str, tuple] = {}
    energy = 0.0
    for pairs in data.chunks():
        for key, arr in (("inputs", role.inputs_of(pairs)), ("targets", role.targets_of(pairs))):
            a = arr.reshape(len(arr), -1).astype(np.float64)
            nb, mb = len(a), a.mean(axis=0)
            m2b = float(np.square(a - mb).sum())
            if key not in stats:
                stats[key] = (nb, mb, m2b)
                continue
            n, m, m2 = stats[key]
            total, d = n + nb, mb - m
            stats[key] = (total, m + d * (nb / total), m2 + m2b + float(np.square(d).sum()) * n * nb / total)
        target = role.targets_of(pairs)
        energy += float(np.square(target.reshape(len(target), -1).astype(np.float64)).sum())
    n = stats["targets"][0]
    return stats["inputs"], stats["targets"], energy / n


def _set_normalization(net: ImSpecModel, x_stats: tuple, y_stats: tuple) -> None:
    """Offsets and scales from :func:`streaming_moments`, as ``fit_normalization`` sets them."""
    with net.lock:
        for (n, mean, m2), off, scale in ((x_stats, net.x_offset, net.x_scale),
                                          (y_stats, net.y_offset, net.y_scale)):
            std = math.sqrt(m2 / (n * mean.size))
            off.copy_(torch.from_numpy(mean.astype(np.float32).reshape(tuple(off.shape))))
            scale.fill_(std if std > 1e-12 * max(1.0, float(np.abs(mean).max())) else 1.0)
        net.normalization_fitted.fill_(True)


def carve_validation(train: Any, fraction: float) -> tuple[Any, Any]:
    """Split a training TilePairs spatially into (fit, validation).

    The validation set is the ``fraction`` of training tiles nearest (Chebyshev distance)
    to one corner of the training region's bounding box: a compact block, so few tiles are
    lost to the guard band. Training tiles whose window contains a validation centre are
    dropped (``TilePairs.split_by_mask``). Of the four corners, the one that drops the
    fewest training tiles is used.

    Examples
    --------
    >>> import numpy as np, plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))       # 12x12 scan, E = 32
    >>> train_set, test_set = pw.make_tiles(si, window=8, pad="reflect").split("halves")
    >>> fit, val = carve_validation(train_set, 0.2)
    >>> len(val) > 0 and len(fit) + len(val) <= len(train_set)   # guard band dropped
    True
    """
    if not hasattr(train, "split_by_mask"):
        raise TypeError("validation carving needs a TilePairs (pw.make_tiles); pass "
                        "validation=<TilePairs> or validation=None")
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must lie in (0, 1), got {fraction}")
    pos = np.asarray(train.positions)
    k = max(1, round(fraction * len(pos)))
    lo, hi = pos.min(axis=0), pos.max(axis=0)
    best = None
    for corner in ((lo[0], lo[1]), (lo[0], hi[1]), (hi[0], lo[1]), (hi[0], hi[1])):
        d = pos - np.asarray(corner)
        # Chebyshev distance, Euclidean tie-break -> a square block grown from the corner
        order = np.lexsort((np.hypot(d[:, 0], d[:, 1]), np.abs(d).max(axis=1)))
        mask = np.zeros(train.scan_shape, dtype=bool)
        chosen = pos[order[:k]]
        mask[chosen[:, 0], chosen[:, 1]] = True
        try:
            fit, val = train.split_by_mask(mask, method="validation")
        except ValueError:
            continue
        if best is None or len(fit) > len(best[0]):
            best = (fit, val)
    if best is None or len(best[0]) < 2:
        raise ValueError(f"cannot carve a spatial validation set from {len(pos)} training "
                         f"tiles: the guard band leaves too few; use more data, a smaller "
                         f"window, validation=None or pass a validation TilePairs")
    return best


# ------------------------------------------------------------------------- trainer
LOSSES = ("relative", "mse")


def _make_loss(loss: Any, net: ImSpecModel, targets: np.ndarray | None,
               mean_energy: float | None = None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss callable for a ``Trainer(loss=...)`` value; ``targets`` (N, ...) physical,
    or their mean per-sample energy when the targets are streamed."""
    if loss == "relative":
        if mean_energy is None:
            flat = targets.reshape(len(targets), -1).astype(np.float64)
            mean_energy = float(np.mean(np.sum(flat ** 2, axis=1)))
        return RelativeSquaredError(net.y_offset, float(net.y_scale), mean_energy).to(net.device)
    if loss == "mse":
        return nn.MSELoss()
    if isinstance(loss, str) or not callable(loss):
        raise TypeError(f"loss must be one of {LOSSES} or a callable(pred, target) -> scalar "
                        f"tensor, got {loss!r}")
    return loss


def _make_optimizer(optimizer: Any, params, lr: float) -> torch.optim.Optimizer:
    if optimizer is None:
        return torch.optim.Adam(params, lr=lr)
    if isinstance(optimizer, type) and issubclass(optimizer, torch.optim.Optimizer):
        return optimizer(params, lr=lr)
    if callable(optimizer):
        opt = optimizer(params)
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError("optimizer factory must return a torch.optim.Optimizer, "
                            f"got {type(opt).__name__}")
        return opt
    raise TypeError("optimizer must be None, a torch.optim.Optimizer subclass, or a "
                    "callable params -> Optimizer (the trainer optimises a private copy, so "
                    "an optimizer built on the model's own parameters cannot be used)")


def _resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for training passes, or None for float32."""
    if precision not in ("auto", "float32", "bfloat16"):
        raise ValueError(f"precision must be 'auto', 'float32' or 'bfloat16', got {precision!r}")
    if precision == "float32":
        return None
    if device.type == "cpu":
        ok = bool(torch.backends.mkldnn.is_available()
                  and torch.ops.mkldnn._is_mkldnn_bf16_supported())
        if precision == "bfloat16" and not ok:
            raise ValueError("this CPU has no native bfloat16 support; use precision='float32'")
        return torch.bfloat16 if ok else None
    if device.type == "cuda":
        return torch.bfloat16 if precision == "bfloat16" else None
    if precision == "bfloat16":
        raise ValueError(f"bfloat16 training is not supported on {device.type}")
    return None


class Trainer:
    """Train a model in a background thread (or blocking via :meth:`run`).

    Parameters
    ----------
    model : Im2Spec or Spec2Im. Its normalisation is fitted on the training data unless it
        is already fitted (``fit_normalization=None``; force with True/False).
    train, test : TilePairs, or a :class:`~plasmonwidgets.TileDataset` (many scans read band
        by band: normalisation statistics come from one streaming pass, batches from
        ``TileDataset.batches``, the test set is evaluated band by band). ``test``
        (optional, may be smaller than a batch) is only monitored, never used for model
        selection. A validation fraction needs TilePairs; with a TileDataset pass
        ``validation=`` a TilePairs or TileDataset (e.g. of a held-out scan).
    epochs, batch_size, lr, seed : schedule; ``seed`` fixes the batch order (the weight
        initialisation is fixed by the model's own ``seed``).
    validation : None (default: the final epoch's weights are kept), a float fraction of
        the training tiles carved spatially as validation set (e.g. 0.1, see
        :func:`carve_validation`; the lowest-validation-loss epoch is kept), or a TilePairs.
    patience : stop early after this many epochs without validation improvement (None: off).
    loss : "relative" (default: :class:`~plasmonwidgets.losses.RelativeSquaredError`, each
        sample's squared error in physical units relative to its own signal, the quantity
        the per-sample NMSE reports), "mse" (mean squared error of the normalised targets,
        as in AtomAI's ImSpec), or a callable(pred, target) -> scalar on normalised tensors.
    optimizer : None (Adam), an Optimizer subclass (built with ``lr``) or a factory
        ``params -> Optimizer``.
    lr_schedule : "cosine" (default: per-batch cosine decay from ``lr`` to 0 over
        ``epochs``) or "constant" (``lr`` throughout, as in AtomAI's ImSpec). Only applies
        to optimizers built here, not to a factory's own schedule.
    augment : "auto" (default: "dihedral" for Im2Spec, None for Spec2Im), "dihedral" (each
        batch of input tiles mirrored/rotated about the probe pixel by one of the 8 exact
        symmetries of the loss: the spectrum at the probe does not change) or None.
    precision : "auto" (bfloat16 autocast on CPUs with native bf16, else float32),
        "float32" or "bfloat16". Weights and optimizer state stay float32.
    callbacks : callables receiving every :class:`ProgressEvent` (on the training thread).
    checkpoint_dir : if given, ``last.pt`` is written every epoch and ``best.pt`` whenever
        the validation loss improves (loadable with ``pw.load_model``).
    test_every : evaluate the test set every this many epochs (and at the last epoch).
    event_interval_s : minimum time between "batch" events.

    Progress. Each :class:`ProgressEvent` goes to the subscribers (``callbacks`` and
    :meth:`subscribe`), on the training thread; :meth:`poll` drains a queue that is one of
    them. ``loss_is_nmse`` is True for the default relative loss, whose values read as
    NMSE in % once multiplied by 100.

    Examples
    --------
    >>> import numpy as np, plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))       # 12x12 scan, E = 32
    >>> train_set, test_set = pw.make_tiles(si, window=8, pad="reflect").split("halves")
    >>> model = pw.Im2Spec(window=8, n_energy=32, latent_dim=2, device="cpu")
    >>> trainer = pw.Trainer(model, train_set, test_set, epochs=2, batch_size=16)
    >>> kinds = []
    >>> unsubscribe = trainer.subscribe(lambda event: kinds.append(event.kind))
    >>> trainer.start().join(60)                        # trains in a background thread
    True
    >>> trainer.state, len(trainer.history), kinds[-1]
    ('finished', 2, 'finished')
    >>> trainer.resume(epochs=3).join(60), len(trainer.history)   # one epoch more
    (True, 3)
    """

    def __init__(self, model: ImSpecModel, train: Any, test: Any = None, *, epochs: int = 60,
                 batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
                 validation: float | Any | None = None, patience: int | None = None,
                 loss: Any = "relative", optimizer: Any = None, precision: str = "auto",
                 lr_schedule: str = "cosine", augment: str | None = "auto",
                 callbacks: Iterable[Callable[[ProgressEvent], Any]] = (),
                 checkpoint_dir: str | Path | None = None, test_every: int = 1,
                 fit_normalization: bool | None = None, event_interval_s: float = 0.1):
        if not isinstance(model, ImSpecModel):
            raise TypeError(f"model must be an Im2Spec or Spec2Im, got {type(model).__name__}")
        for name, value in (("epochs", epochs), ("batch_size", batch_size),
                            ("test_every", test_every)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr must be a positive number, got {lr!r}")
        if patience is not None and (not isinstance(patience, int) or patience < 1):
            raise ValueError(f"patience must be None or a positive integer, got {patience!r}")
        if patience is not None and validation is None:
            raise ValueError("patience (early stopping) needs a validation set to watch: pass "
                             "validation=0.1 (a spatial block of the training side) or a "
                             "TilePairs")
        if train is None or len(train) == 0:
            raise ValueError("the training set is empty; make tiles from a larger scan or "
                             "use a split that leaves training tiles")
        self.model = model
        self.n_epochs = epochs
        self.batch_size = batch_size
        self.lr = float(lr)
        self.seed = int(seed)
        self.patience = patience
        if lr_schedule not in ("cosine", "constant"):
            raise ValueError(f"lr_schedule must be 'cosine' or 'constant', got {lr_schedule!r}")
        self.lr_schedule = lr_schedule
        if augment not in ("auto", "dihedral", None):
            raise ValueError(f"augment must be 'auto', 'dihedral' or None, got {augment!r}")
        # the symmetries act on input tiles; a model reading spectra (spec2im) has none to
        # use, and its predicted tiles are rotation-averaged by the model already
        if augment == "auto":
            augment = "dihedral" if model.input_kind == "image" else None
        if augment == "dihedral" and model.input_kind != "image":
            raise ValueError("augment='dihedral' transforms input tiles, so it needs an "
                             "Im2Spec model")
        self.augment = augment
        self.test_every = test_every
        self.event_interval_s = float(event_interval_s)
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        if self.checkpoint_dir is not None:
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)

        # ---- data: validation carved from the training side, never from test
        if validation is None or validation == 0:
            fit_pairs, val_pairs, n_guard = train, None, 0
        elif isinstance(validation, (int, float)) and not isinstance(validation, bool):
            fit_pairs, val_pairs = carve_validation(train, float(validation))
            n_guard = len(train) - len(fit_pairs) - len(val_pairs)
        else:
            fit_pairs, val_pairs, n_guard = train, validation, 0
        # a TileDataset stays on disk and is read band by band; TilePairs become arrays
        self._stream = fit_pairs if _is_dataset(fit_pairs) else None

        def arrays(pairs, what):
            if pairs is None or len(pairs) == 0:
                return None
            if _is_dataset(pairs):
                _check_dataset(pairs, model, what)
                return pairs
            return _pair_arrays(pairs, model, what)

        fitted = arrays(fit_pairs, "train")
        x_fit, y_fit = (None, None) if self._stream is not None else fitted
        n = len(fit_pairs) if self._stream is not None else len(x_fit)
        if n < 2:
            raise ValueError(f"need at least 2 training samples (batch-norm), got {n}")
        val = arrays(val_pairs, "validation")
        tst = arrays(test, "test")

        # ---- the private copy that is trained
        with model.lock:
            net = model.clone()
        energy = getattr(train, "energy", None)
        if net.energy is None and energy is not None:
            net.energy = energy
            with model.lock:
                model.energy = energy
        refit = fit_normalization or (fit_normalization is None and not net.is_fitted)
        mean_energy = None
        if self._stream is None:
            if refit:
                net.fit_normalization(x_fit, y_fit)
        elif refit or loss == "relative":  # one streaming pass over the training bands
            x_stats, y_stats, mean_energy = streaming_moments(self._stream, net)
            if refit:
                _set_normalization(net, x_stats, y_stats)
        self._net = net
        self._device = net.device
        self._autocast = _resolve_precision(precision, self._device)
        self.precision = "float32" if self._autocast is None else "bfloat16"

        def tensors(arrays):
            if arrays is None or _is_dataset(arrays):
                return arrays  # a TileDataset is converted band by band (_band_tensors)
            x, y = (torch.from_numpy(a).to(self._device) for a in arrays)
            with torch.no_grad():
                return (net.normalize_inputs(x).contiguous(),
                        net.normalize_targets(y).contiguous())

        self._train_t = tensors(fitted)
        self._val_t = tensors(val)
        self._test_t = tensors(tst)
        self._loss = _make_loss(loss, net, y_fit, mean_energy)
        self.loss_name = {"relative": "relative squared error", "mse": "MSE"}.get(
            loss if isinstance(loss, str) else "", "loss")
        # the relative loss is each sample's NMSE as a fraction (floored, losses.py): shown
        # x100 it reads in % like every other error on the page
        self.loss_is_nmse = loss == "relative"
        self._opt = _make_optimizer(optimizer, net.parameters(), self.lr)
        # a factory's optimizer keeps its own learning rates
        self._scheduled = lr_schedule == "cosine" and (optimizer is None
                                                       or isinstance(optimizer, type))
        self._gen = torch.Generator().manual_seed(self.seed)

        self._n_train = n
        # a final batch of one sample would break batch-norm; it is skipped that epoch
        self.n_batches = n // batch_size + (1 if n % batch_size >= 2 else 0)
        self.history = History(n_train=n, n_val=_count(val), n_test=_count(tst), n_guard=n_guard)

        # ---- run state (resumable)
        self._epoch = 0  # completed epochs
        self._perm: torch.Tensor | None = None
        self._batch = 0
        self._epoch_loss = torch.zeros((), device=self._device)
        self._epoch_seen = 0
        self._epoch_train_time = 0.0
        self._epoch_wall = 0.0
        self._best_state: dict[str, torch.Tensor] | None = None
        self._since_best = 0
        self._state = "idle"
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state_lock = threading.Lock()
        # one delivery path: every event goes to the subscribers, on the training thread;
        # poll() reads a queue that is itself the first subscriber
        self._queue = EventQueue()
        self._subscribers: list[Callable[[ProgressEvent], Any]] = [self._queue, *callbacks]

    # ------------------------------------------------------------------ public API
    @property
    def state(self) -> str:
        """One of "idle", "running", "stopping", "stopped", "finished", "failed"."""
        return self._state

    @property
    def epoch(self) -> int:
        """Number of completed epochs."""
        return self._epoch

    def subscribe(self, callback: Callable[[ProgressEvent], Any]) -> Callable[[], None]:
        """Call ``callback(event)`` for every event (from the training thread).

        Returns a function that unsubscribes. A callback that raises fails the run.

        Examples
        --------
        >>> unsubscribe = trainer.subscribe(lambda event: print(event.kind))   # doctest: +SKIP
        >>> unsubscribe()                                                       # doctest: +SKIP
        """
        if not callable(callback):
            raise TypeError("callback must be callable(event)")
        with self._state_lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._state_lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)

        return unsubscribe

    def poll(self) -> list[ProgressEvent]:
        """Drain and return the events delivered since the last poll (thread-safe).

        The queue is a subscriber like any other (:class:`EventQueue`), for scripts that
        prefer to read events from their own thread.

        Examples
        --------
        >>> trainer.start().join()                                   # doctest: +SKIP
        >>> [event.kind for event in trainer.poll()][-1]             # doctest: +SKIP
        'finished'
        """
        return self._queue.poll()

    def start(self) -> Trainer:
        """Start training in a daemon thread; returns immediately."""
        with self._state_lock:
            if self._state != "idle":
                raise RuntimeError(f"cannot start a trainer in state {self._state!r}; "
                                   "use resume() after stop()")
            self._launch()
        return self

    def stop(self) -> None:
        """Ask training to stop after the current batch (non-blocking; see :meth:`join`).

        The model then holds the best weights; :meth:`resume` continues where it stopped.

        Examples
        --------
        >>> trainer.start(); trainer.stop(); trainer.join()          # doctest: +SKIP
        >>> trainer.state                                            # doctest: +SKIP
        'stopped'
        """
        with self._state_lock:
            if self._state == "running":
                self._state = "stopping"
                self._stop.set()

    def resume(self, epochs: int | None = None) -> Trainer:
        """Continue a stopped run (same optimizer state, batch order and epoch counter).

        ``epochs``: optionally a new total number of epochs, which also lets a finished
        run train further.
        """
        old = self._thread
        if old is not None and old is not threading.current_thread():
            old.join()  # the previous run may still be emitting its final event
        with self._state_lock:
            if epochs is not None and (isinstance(epochs, bool) or not isinstance(epochs, int)
                                       or epochs < self._epoch):
                raise ValueError(f"epochs must be an int >= the {self._epoch} epochs done, "
                                 f"got {epochs!r}")
            total = self.n_epochs if epochs is None else epochs
            resumable = self._state == "stopped" or (
                self._state == "finished" and self._epoch < total)
            if not resumable:
                hint = ("; create a new Trainer" if self._state == "failed" else
                        "; pass a larger epochs= to train further" if self._state == "finished"
                        else "")
                raise RuntimeError(f"cannot resume a trainer in state {self._state!r}{hint}")
            self.n_epochs = total
            self._launch()
        return self

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the training thread; True if it is no longer running."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def run(self) -> History:
        """Train in the calling thread until finished, stopped or failed; returns history.

        A KeyboardInterrupt stops training cleanly (best weights published) and is
        re-raised.

        Examples
        --------
        >>> history = Trainer(model, train_set, epochs=5).run()      # doctest: +SKIP
        >>> len(history)                                             # doctest: +SKIP
        5
        """
        with self._state_lock:
            if self._state not in ("idle", "stopped"):
                raise RuntimeError(f"cannot run a trainer in state {self._state!r}")
            self._state = "running"
            self._stop.clear()
        try:
            self._loop()
        except KeyboardInterrupt:
            self._halt("stopped", "interrupted")
            raise
        return self.history

    # ------------------------------------------------------------------ internals
    def _launch(self) -> None:
        self._state = "running"
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="plasmonwidgets-trainer",
                                        daemon=True)
        self._thread.start()

    def _emit(self, kind: str, message: str = "", *, safe: bool = False, **fields: Any) -> None:
        fields.setdefault("epoch", self._epoch)
        fields.setdefault("elapsed_s", float(sum(self.history.epoch_time)) + self._epoch_wall)
        event = ProgressEvent(kind=kind, n_epochs=self.n_epochs, n_batches=self.n_batches,
                              message=message, **fields)
        with self._state_lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(event)
            except Exception:
                if not safe:
                    raise  # fails the run with the callback's error as message

    def _eta(self, fraction: float, wall: float) -> float | None:
        """Seconds left: mean of recent epoch times, or extrapolated from this epoch."""
        times = self.history.epoch_time
        if times:
            per_epoch = float(np.mean(times[-5:]))
        elif fraction > 0:
            per_epoch = wall / fraction
        else:
            return None
        return max(0.0, (self.n_epochs - self._epoch - fraction) * per_epoch)

    def _set_lr(self) -> None:
        """Cosine decay from ``lr`` to 0 over all batches of ``n_epochs`` (per batch).

        The run ends at a small step size, so the final weights sit in a minimum instead of
        rattling around it at ``lr``; a resumed run with more epochs re-stretches the curve.
        """
        total = self.n_epochs * self.n_batches
        step = self._epoch * self.n_batches + self._batch
        lr = 0.5 * self.lr * (1.0 + math.cos(math.pi * min(step / total, 1.0)))
        for group in self._opt.param_groups:
            group["lr"] = lr

    def _autocast_ctx(self):
        return torch.autocast(self._device.type, dtype=self._autocast,
                              enabled=self._autocast is not None)

    def _band_tensors(self, pairs: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Normalised (inputs, targets) on the device for one band of a TileDataset."""
        x, y = self._net.inputs_of(pairs), self._net.targets_of(pairs)
        x = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(self._device)
        y = torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)).to(self._device)
        with torch.no_grad():
            return self._net.normalize_inputs(x).contiguous(), self._net.normalize_targets(y).contiguous()

    def _evaluate(self, data: Any) -> tuple[float | None, float | None]:
        """(mean loss, mean per-sample NMSE in %) of the current weights on ``data``: a
        (inputs, targets) tensor pair, or a TileDataset evaluated band by band."""
        if data is None:
            return None, None
        parts = [data] if isinstance(data, tuple) else map(self._band_tensors, data.chunks())
        net = self._net
        net.eval()
        scale, offset = net.y_scale.double(), net.y_offset.double()
        total = torch.zeros((), device=self._device, dtype=torch.float64)
        nmse_sum = torch.zeros((), device=self._device, dtype=torch.float64)
        n_finite = torch.zeros((), device=self._device, dtype=torch.int64)
        batches = ((x[i:i + EVAL_CHUNK], y[i:i + EVAL_CHUNK])
                   for x, y in parts for i in range(0, len(x), EVAL_CHUNK))
        count = 0
        with torch.inference_mode(), self._autocast_ctx():
            for xb, yb in batches:
                count += len(xb)
                pred = net(xb).float()
                total += self._loss(pred, yb).double() * len(xb)
                # physical units: the offset cancels in the error, not in the signal
                err = ((pred.double() - yb) * scale).square().flatten(1).sum(1)
                signal = (yb * scale + offset).square().flatten(1).sum(1)
                ratio = err / signal
                finite = torch.isfinite(ratio)  # an all-zero target has no NMSE
                nmse_sum += ratio[finite].sum()
                n_finite += finite.sum()
        nmse = 100.0 * float(nmse_sum) / int(n_finite) if int(n_finite) else None
        return float(total) / count, nmse

    def _snapshot(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self._net.state_dict().items()}

    def _publish(self, state: dict[str, torch.Tensor]) -> None:
        with self.model.lock:
            self.model.load_state_dict(state)

    def _save(self, name: str, state: dict[str, torch.Tensor]) -> None:
        if self.checkpoint_dir is None:
            return
        from .checkpoint import write_checkpoint

        energy = self._net.energy
        write_checkpoint(self.checkpoint_dir / name, model_class=type(self._net).__name__,
                         config=self._net.config, state_dict=state,
                         energy=None if energy is None else torch.from_numpy(energy.copy()),
                         extra={"history": self.history.as_dict()})

    def _halt(self, state: str, message: str = "") -> None:
        """End the run: publish the best weights, record the state, emit the event."""
        if state != "failed" and self._best_state is None and self._epoch_seen > 0:
            # stopped inside the first epoch: the partly trained weights are all there is
            self._best_state = self._snapshot()
        if self._best_state is not None:
            self._publish(self._best_state)
        self.history.stop_reason = message or state
        with self._state_lock:
            self._state = state
            self.error = message if state == "failed" else None
        self._emit(state, message or state, safe=state == "failed",
                   train_loss=self._last(self.history.train_loss),
                   val_loss=self._last(self.history.val_loss),
                   test_loss=self._last(self.history.test_loss),
                   test_nmse=self._last(self.history.test_nmse))

    @staticmethod
    def _last(values: list) -> float | None:
        return values[-1] if values else None

    def _fail(self, message: str) -> None:
        if self._best_state is not None:
            message += f"; the model keeps the best weights (epoch {self.history.best_epoch})"
        else:
            message += "; the model keeps its previous weights"
        self._halt("failed", message)

    def _loop(self) -> None:
        try:
            self._train_epochs()
        except Exception as exc:  # any failure ends the run with a clear message
            self._fail(f"training failed: {type(exc).__name__}: {exc}")

    def _train_epochs(self) -> None:
        net, opt, loss_fn = self._net, self._opt, self._loss
        stream = self._stream
        x, y = self._train_t if stream is None else (None, None)
        n, bs = self._n_train, self.batch_size
        while self._epoch < self.n_epochs:
            if self._perm is None:  # a fresh epoch (a stopped one resumes mid-way)
                if stream is None:
                    self._perm = torch.randperm(n, generator=self._gen).to(self._device)
                else:  # bands in a seeded random order, tiles shuffled within each band
                    self._perm = stream.batches(bs, seed=(self.seed, self._epoch),
                                                convert=self._band_tensors)
                self._batch, self._epoch_seen = 0, 0
                self._epoch_loss.zero_()
                self._epoch_train_time = self._epoch_wall = 0.0
            net.train()
            last_event = t0 = time.perf_counter()
            while self._batch < self.n_batches:
                if self._stop.is_set():
                    dt = time.perf_counter() - t0
                    self._epoch_train_time += dt
                    self._epoch_wall += dt
                    self._halt("stopped", f"stopped during epoch {self._epoch + 1}")
                    return
                if self._scheduled:
                    self._set_lr()
                if stream is None:
                    idx = self._perm[self._batch * bs:(self._batch + 1) * bs]
                    xb, yb = x.index_select(0, idx), y.index_select(0, idx)
                else:
                    xb, yb = next(self._perm)
                if self.augment == "dihedral":  # one of the 8 exact symmetries per batch
                    r = int(torch.randint(0, 8, (1,), generator=self._gen))
                    xb = dihedral_about_probe(xb, r % 4, r >= 4)
                opt.zero_grad(set_to_none=True)
                with self._autocast_ctx():
                    pred = net(xb)
                loss = loss_fn(pred.float(), yb)
                loss.backward()
                opt.step()
                self._epoch_loss += loss.detach() * len(xb)
                self._epoch_seen += len(xb)
                self._batch += 1
                now = time.perf_counter()
                if now - last_event >= self.event_interval_s and self._batch < self.n_batches:
                    last_event = now
                    running = float(self._epoch_loss) / self._epoch_seen
                    if not math.isfinite(running):
                        self._fail(f"the training loss became {running} in epoch "
                                   f"{self._epoch + 1}, batch {self._batch}; lower the "
                                   f"learning rate (lr={self.lr:g}) or check the data")
                        return
                    wall = self._epoch_wall + now - t0
                    self._emit("batch", epoch=self._epoch + 1, batch=self._batch,
                               train_loss=running,
                               elapsed_s=float(sum(self.history.epoch_time)) + wall,
                               samples_per_s=self._epoch_seen / max(
                                   self._epoch_train_time + now - t0, 1e-9),
                               eta_s=self._eta(self._batch / self.n_batches, wall))
            train_time = self._epoch_train_time + time.perf_counter() - t0
            self._end_epoch(train_time, t0)
            if self._state == "stopping":  # stop() arrived during the epoch's last batch
                self._halt("stopped", f"stopped after epoch {self._epoch}")
                return
            if self._state != "running":
                return
            if self.patience is not None and self._since_best >= self.patience:
                self._halt("finished", f"early stopping: no validation improvement in "
                                       f"{self.patience} epochs")
                return
        self._halt("finished", "finished")

    def _end_epoch(self, train_time: float, t0: float) -> None:
        train_loss = float(self._epoch_loss) / max(self._epoch_seen, 1)
        epoch = self._epoch + 1
        if not math.isfinite(train_loss):
            self._fail(f"the training loss became {train_loss} in epoch {epoch}; lower the "
                       f"learning rate (lr={self.lr:g}) or check the data")
            return
        val_loss, _ = self._evaluate(self._val_t)
        if val_loss is not None and not math.isfinite(val_loss):
            self._fail(f"the validation loss became {val_loss} in epoch {epoch}; lower the "
                       f"learning rate (lr={self.lr:g})")
            return
        last = epoch == self.n_epochs
        test_loss, test_nmse = self._evaluate(self._test_t) if (
            epoch % self.test_every == 0 or last) else (None, None)
        h = self.history
        h.train_loss.append(train_loss)
        h.val_loss.append(val_loss)
        h.test_loss.append(test_loss)
        h.test_nmse.append(test_nmse)
        h.samples_per_s.append(self._epoch_seen / max(train_time, 1e-9))
        h.epoch_time.append(self._epoch_wall + time.perf_counter() - t0)
        self._epoch_wall = 0.0
        self._epoch = epoch
        self._perm = None
        state = self._snapshot()
        score = train_loss if val_loss is None else val_loss
        improved = h.best_val_loss is None or score < h.best_val_loss or val_loss is None
        if improved:
            h.best_epoch, h.best_val_loss = epoch, score
            self._best_state = state
            self._since_best = 0
            self._save("best.pt", state)
        else:
            self._since_best += 1
        self._publish(state)  # live view of the latest epoch; best is published at the end
        self._save("last.pt", state)
        self._emit("epoch", epoch=epoch, batch=self.n_batches, train_loss=train_loss,
                   val_loss=val_loss, test_loss=test_loss, test_nmse=test_nmse,
                   samples_per_s=h.samples_per_s[-1],
                   eta_s=self._eta(0.0, 0.0),
                   message=f"epoch {epoch}/{self.n_epochs}")


def _count(data: Any) -> int:
    """Samples in an (inputs, targets) pair, a TileDataset, or None."""
    if data is None:
        return 0
    return len(data[0]) if isinstance(data, tuple) else len(data)


class _ProgressBar:
    """A tqdm bar over epochs fed by :class:`ProgressEvent`: epoch, loss and test NMSE.

    ``tqdm.auto`` draws a widget in Jupyter and text in a terminal; it is imported only
    when a bar is asked for, so headless scripts with ``progress=False`` never load it.
    """

    def __init__(self, n_epochs: int, description: str):
        from tqdm.auto import tqdm

        self.bar = tqdm(total=n_epochs, desc=description, unit="epoch", leave=True)

    def __call__(self, event: ProgressEvent) -> None:
        if event.kind != "epoch":
            return
        postfix = {"loss": f"{event.train_loss:.3g}"}
        if event.test_nmse is not None:
            postfix["test NMSE"] = f"{event.test_nmse:.3g} %"
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(event.epoch - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def train(model: ImSpecModel, train: Any, test: Any = None, epochs: int = 60,
          batch_size: int = 64, lr: float = 1e-3, seed: int = 0,
          callbacks: Iterable[Callable[[ProgressEvent], Any]] = (), loss: Any = "relative",
          optimizer: Any = None, validation: float | Any | None = None,
          progress: bool = True, **options: Any) -> History:
    """Train ``model`` on ``train`` (blocking) and return its :class:`History`.

    See :class:`Trainer` for all parameters (``patience``, ``precision``,
    ``checkpoint_dir``, ``test_every``, ``fit_normalization`` are accepted as keywords).
    ``progress``: show a progress bar (``tqdm.auto``: a widget in notebooks, text in a
    terminal) with the epoch, the training loss and the test NMSE (%); False for none.
    Afterwards the model holds the weights of the best validation epoch. Raises
    :class:`TrainingError` if the loss diverges (the model keeps its best weights).

    Examples
    --------
    >>> import numpy as np, plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))       # 12x12 scan, E = 32
    >>> train_set, test_set = pw.make_tiles(si, window=8, pad="reflect").split("halves")
    >>> model = pw.Im2Spec(window=8, n_energy=si.n_energy, latent_dim=2, device="cpu")
    >>> history = pw.train(model, train_set, test_set, epochs=2, progress=False)
    >>> len(history), history.test_nmse[-1] > 0   # epochs; mean per-tile test NMSE in %
    (2, True)
    """
    trainer = Trainer(model, train, test, epochs=epochs, batch_size=batch_size, lr=lr,
                      seed=seed, callbacks=callbacks, loss=loss, optimizer=optimizer,
                      validation=validation, **options)
    bar = _ProgressBar(epochs, f"{model.direction} {model.latent_dim} latent") if progress else None
    if bar is not None:
        trainer.subscribe(bar)
    try:
        history = trainer.run()
    finally:
        if bar is not None:
            bar.close()
    if trainer.state == "failed":
        raise TrainingError(trainer.error or "training failed", history)
    return history
