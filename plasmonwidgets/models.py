"""im2spec and spec2im encoder-decoders (Roccapriore et al., Small 2021; AtomAI's ImSpec).

``Im2Spec``: HAADF tile (w, w) -> latent (d,) -> EEL spectrum (E,).
``Spec2Im``: EEL spectrum (E,) -> latent (d,) -> HAADF tile (w, w).

Sizes. Constructor arguments are keyword-only (an Im2Spec maps window -> n_energy, a
Spec2Im n_energy -> window: positional sizes would be easy to swap). The default layer
sizes are the ``"lean"`` preset (16 filters); ``preset="paper"`` gives the paper's / AtomAI's
64 filters, at ~15x the FLOPs per sample for no gain in accuracy on the built-in data
(docs/benchmarks.md). Explicit ``n_filters_enc`` etc. override the preset.

Encoder: ``n_layers_enc`` kernel-3 conv layers (LeakyReLU 0.1, batch-norm), flatten, dense
to the latent vector (Spec2Im first average-pools the spectrum by ``pool``). Decoder: dense
to ``n_filters_dec`` channels x target length (Spec2Im: a (w/4, w/4) map, then conv +
nearest x2 upsampling twice), a pyramid of dilated convs (dilations 1, 2, 3, 4; all stage
outputs summed), a conv to one channel and a final 1x1 conv with linear output.

Units. The numpy methods ``encode``, ``decode`` and ``predict`` take and return physical
units (HAADF counts, spectral intensity). Each model stores the normalisation it was
trained with as buffers (a per-feature offset, the training-set mean, and one scalar scale,
the residual standard deviation, for inputs and targets; fitted by ``fit_normalization``
before training) and applies it explicitly; ``forward`` works on normalised tensors. A
scalar target scale keeps the training MSE proportional to the physical squared error.

Threads. ``model.lock`` (an RLock) guards the weights. The numpy methods hold it for the
whole call and run in eval mode without gradients; the trainer (``training.py``) trains a
private copy and publishes weights into the model under the same lock, so a widget
decoding concurrently never sees half-updated weights or batch-norm in train mode.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from .checkpoint import CheckpointError, read_checkpoint, write_checkpoint
from .device import select_device
from .nn.decoders import ImageDecoder, SpectrumDecoder
from .nn.encoders import ImageEncoder, SpectrumEncoder
from .nn.symmetry import rotation_average
from .roles import IM2SPEC, SPEC2IM, Role, role_of

__all__ = ["PRESETS", "CheckpointError", "Im2Spec", "ImSpecModel", "Spec2Im", "load_model", "model_class"]

#: samples per forward pass in the numpy methods (bounds memory for whole-scan calls)
INFERENCE_CHUNK = 256

#: Named layer sizes. "lean" (the default; the dashboard's and the packaged models'
#: network): 16 filters, ~15x fewer FLOPs than "paper" and at least as accurate on the
#: built-in data (docs/benchmarks.md). "paper": AtomAI's ImSpec sizes that Roccapriore et
#: al. used, 64 filters.
PRESETS: dict[str, dict[str, Any]] = {
    "lean": {"n_layers_enc": 3, "n_filters_enc": 16, "n_filters_dec": 16, "dilations": (1, 2, 3, 4)},
    "paper": {"n_layers_enc": 3, "n_filters_enc": 64, "n_filters_dec": 64, "dilations": (1, 2, 3, 4)},
}


class _FromRole:
    """A read-only attribute read from the class's :class:`~plasmonwidgets.roles.Role`
    (on the class and on instances): a model cannot be relabelled after it is built."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, owner: type) -> str:
        return getattr(owner.role, self.name)

    def __set__(self, obj: Any, value: Any) -> None:
        raise AttributeError(f"{self.name} is fixed by the model class ({type(obj).__name__}); "
                             "build an Im2Spec or a Spec2Im instead")


class ImSpecModel(nn.Module):
    """Base class: normalisation buffers, numpy inference, locking, save/load.

    Subclasses set ``role`` (what the model reads and predicts), ``input_shape``,
    ``target_shape`` and build ``self.encoder`` (normalised (N, *input_shape) -> (N, d))
    and ``self.decoder`` ((N, d) -> normalised (N, *target_shape)). Callers ask the model
    for its inputs and targets (:meth:`inputs_of`, :meth:`targets_of`, ``input_kind``,
    ``target_kind``) instead of testing ``direction``, which stays as a read-only label
    (checkpoints, file names, tables).

    Examples
    --------
    >>> model = Im2Spec(window=16, n_energy=64, latent_dim=2, device="cpu")
    >>> model.input_kind, model.target_kind, model.direction
    ('image', 'spectrum', 'im2spec')
    """

    role: ClassVar[Role]
    direction = _FromRole()
    input_kind = _FromRole()
    target_kind = _FromRole()
    input_name: ClassVar[str]
    target_name: ClassVar[str]

    def __init__(self, input_shape: tuple[int, ...], target_shape: tuple[int, ...],
                 latent_dim: int, config: dict[str, Any]):
        super().__init__()
        self.input_shape = tuple(input_shape)
        self.target_shape = tuple(target_shape)
        self.latent_dim = int(latent_dim)
        self._config = dict(config)
        self.lock = threading.RLock()
        self._energy: np.ndarray | None = None
        self.register_buffer("x_offset", torch.zeros(self.input_shape))
        self.register_buffer("x_scale", torch.ones(()))
        self.register_buffer("y_offset", torch.zeros(self.target_shape))
        self.register_buffer("y_scale", torch.ones(()))
        self.register_buffer("normalization_fitted", torch.zeros((), dtype=torch.bool))

    # ----------------------------------------------------------------- description
    def inputs_of(self, pairs: Any) -> Any:
        """What this model reads from ``pairs`` (TilePairs): tiles (N, w, w) for Im2Spec,
        spectra (N, E) for Spec2Im.

        Examples
        --------
        >>> import numpy as np
        >>> from types import SimpleNamespace
        >>> pairs = SimpleNamespace(images=np.zeros((5, 16, 16)), spectra=np.zeros((5, 64)))
        >>> Spec2Im(n_energy=64, window=16, device="cpu").inputs_of(pairs).shape
        (5, 64)
        """
        return self.role.inputs_of(pairs)

    def targets_of(self, pairs: Any) -> Any:
        """What this model predicts for ``pairs``: spectra (N, E) for Im2Spec, tiles
        (N, w, w) for Spec2Im.

        Examples
        --------
        >>> import numpy as np
        >>> from types import SimpleNamespace
        >>> pairs = SimpleNamespace(images=np.zeros((5, 16, 16)), spectra=np.zeros((5, 64)))
        >>> Spec2Im(n_energy=64, window=16, device="cpu").targets_of(pairs).shape
        (5, 16, 16)
        """
        return self.role.targets_of(pairs)

    @property
    def config(self) -> dict[str, Any]:
        """Constructor arguments (architecture) that rebuild this model; a copy."""
        return dict(self._config)

    @property
    def window(self) -> int:
        """Tile side in HAADF pixels."""
        return int(self._config["window"])

    @property
    def n_energy(self) -> int:
        """Number of energy channels E of the spectra."""
        return int(self._config["n_energy"])

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def is_fitted(self) -> bool:
        """True once ``fit_normalization`` ran (i.e. the model has been or is being trained)."""
        return bool(self.normalization_fitted)

    @property
    def energy(self) -> np.ndarray | None:
        """Energy axis (E,) in eV of the spectra, or None if unknown."""
        return self._energy

    @energy.setter
    def energy(self, value: Any) -> None:
        if value is None:
            self._energy = None
            return
        e = np.asarray(value, dtype=np.float64)
        if e.shape != (self.n_energy,):
            raise ValueError(f"energy axis must have shape ({self.n_energy},) to match "
                             f"n_energy, got shape {e.shape}")
        if not np.all(np.isfinite(e)) or np.any(np.diff(e) <= 0):
            raise ValueError("energy axis must be finite and strictly increasing (eV)")
        e = e.copy()
        e.flags.writeable = False
        self._energy = e

    def extra_repr(self) -> str:
        return (f"direction={self.direction!r}, latent_dim={self.latent_dim}, "
                f"window={self.window}, n_energy={self.n_energy}, fitted={self.is_fitted}")

    # --------------------------------------------------------------- normalisation
    def fit_normalization(self, inputs: np.ndarray, targets: np.ndarray) -> None:
        """Fit input/target offset (per-feature mean) and scale (scalar residual std).

        ``inputs`` (N, *input_shape) and ``targets`` (N, *target_shape) in physical units,
        normally the training set. Statistics are accumulated in float64.

        Examples
        --------
        >>> import numpy as np
        >>> model = Im2Spec(window=8, n_energy=32, device="cpu")
        >>> rng = np.random.default_rng(0)
        >>> model.fit_normalization(rng.uniform(50, 100, (20, 8, 8)), rng.uniform(size=(20, 32)))
        >>> model.is_fitted, tuple(model.y_offset.shape)   # per-channel target mean (E,)
        (True, (32,))
        """
        x = self._check_batch(inputs, self.input_shape, self.input_name, allow_single=False)
        y = self._check_batch(targets, self.target_shape, self.target_name, allow_single=False)
        if len(x) != len(y):
            raise ValueError(f"inputs and targets differ in length: {len(x)} vs {len(y)}")
        with self.lock:
            for arr, off, scale in ((x, self.x_offset, self.x_scale),
                                    (y, self.y_offset, self.y_scale)):
                a = arr.astype(np.float64)
                mean = a.mean(axis=0)
                std = float(np.sqrt(np.mean((a - mean) ** 2)))
                # constant data: keep unit scale rather than divide by ~0
                off.copy_(torch.from_numpy(mean.astype(np.float32)))
                scale.fill_(std if std > 1e-12 * max(1.0, float(np.abs(mean).max())) else 1.0)
            self.normalization_fitted.fill_(True)

    def normalize_inputs(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.x_offset) / self.x_scale

    def normalize_targets(self, y: torch.Tensor) -> torch.Tensor:
        return (y - self.y_offset) / self.y_scale

    def denormalize_targets(self, y: torch.Tensor) -> torch.Tensor:
        return y * self.y_scale + self.y_offset

    # --------------------------------------------------------------------- torch API
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised inputs (N, *input_shape) -> normalised targets (N, *target_shape)."""
        return self.decoder(self.encoder(x))

    # --------------------------------------------------------------------- numpy API
    def encode(self, x: Any) -> np.ndarray:
        """Physical inputs (N, *input_shape) or one sample -> latent (N, d) or (d,), float32.

        Examples
        --------
        >>> import numpy as np
        >>> model = Im2Spec(window=8, n_energy=32, latent_dim=2, device="cpu")
        >>> model.encode(np.ones((3, 8, 8))).shape, model.encode(np.ones((8, 8))).shape
        ((3, 2), (2,))
        """
        return self._run(lambda t: self.encoder(self.normalize_inputs(t)),
                         x, self.input_shape, self.input_name, (self.latent_dim,))

    def decode(self, z: Any) -> np.ndarray:
        """Latent (N, d) or (d,) -> physical targets (N, *target_shape) or one target.

        Examples
        --------
        >>> model = Spec2Im(n_energy=32, window=8, latent_dim=2, pool=4, device="cpu")
        >>> model.decode([0.0, 1.0]).shape                 # one latent point -> one tile
        (8, 8)
        """
        return self._run(lambda t: self.denormalize_targets(self.decoder(t)),
                         z, (self.latent_dim,), "latent vector",
                         self.target_shape)

    def predict(self, x: Any) -> np.ndarray:
        """Physical inputs -> physical targets; ``decode(encode(x))`` in one pass.

        Examples
        --------
        >>> import numpy as np
        >>> model = Im2Spec(window=8, n_energy=32, device="cpu")
        >>> x = np.ones((4, 8, 8))
        >>> np.allclose(model.predict(x), model.decode(model.encode(x)), atol=1e-5)
        True
        """
        return self._run(lambda t: self.denormalize_targets(self(self.normalize_inputs(t))),
                         x, self.input_shape, self.input_name, self.target_shape)

    def _check_batch(self, value: Any, shape: tuple[int, ...], name: str, *,
                     allow_single: bool = True) -> np.ndarray:
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().numpy()
        arr = np.asarray(value)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating)
                                       or np.issubdtype(arr.dtype, np.integer)
                                       or arr.dtype == np.bool_):
            raise ValueError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
        if allow_single and arr.shape == shape:
            arr = arr[None]
        if arr.ndim != len(shape) + 1 or arr.shape[1:] != shape:
            single = f"{shape} for one sample or " if allow_single else ""
            raise ValueError(
                f"{type(self).__name__} expects {name} of shape {single}(N, {', '.join(map(str, shape))}), "
                f"got shape {arr.shape}" + self._shape_hint(arr.shape, shape, name))
        # torch.from_numpy refuses negative strides and warns on read-only memory (zero-copy
        # tile views): copy those, pass contiguous writeable float32 through untouched
        if arr.dtype != np.float32 or not arr.flags.writeable or not arr.flags.c_contiguous:
            arr = np.array(arr, dtype=np.float32, order="C")
        if not np.all(np.isfinite(arr)):
            bad = int(np.count_nonzero(~np.isfinite(arr)))
            raise ValueError(f"{name} contains {bad} NaN/Inf value(s); clean or mask them first")
        return arr

    def _shape_hint(self, got: tuple[int, ...], shape: tuple[int, ...], name: str) -> str:
        return ""

    def _run(self, fn: Callable[[torch.Tensor], torch.Tensor], value: Any,
             shape: tuple[int, ...], name: str, out_shape: tuple[int, ...]) -> np.ndarray:
        single = np.shape(value) == shape
        arr = self._check_batch(value, shape, name)
        with self.lock, torch.inference_mode():
            was_training = self.training
            if was_training:  # toggling modes walks every submodule: skip it on the hot path
                self.eval()
            try:
                device = self.device
                outs = [fn(torch.from_numpy(arr[i:i + INFERENCE_CHUNK]).to(device)).float().cpu()
                        for i in range(0, len(arr), INFERENCE_CHUNK)]
            finally:
                if was_training:
                    self.train()
        if not outs:  # an empty batch gives an empty result of the right trailing shape
            return np.zeros((0, *out_shape), dtype=np.float32)
        out = torch.cat(outs).numpy()
        return out[0] if single else out

    # ------------------------------------------------------------------ copy / io
    def clone(self, device: str | torch.device | None = None) -> ImSpecModel:
        """An independent copy (weights, normalisation, energy) with its own lock.

        Examples
        --------
        >>> model = Im2Spec(window=8, n_energy=32, device="cpu")
        >>> twin = model.clone()
        >>> twin is not model and twin.lock is not model.lock and twin.config == model.config
        True
        """
        with self.lock:
            other = type(self)(**self.config, device=device or self.device)
            other.load_state_dict(self.state_dict())
            other.energy = self.energy
        return other

    def __deepcopy__(self, memo: dict) -> ImSpecModel:
        return self.clone()

    def save(self, path: str | Path, extra: dict | None = None) -> Path:
        """Write architecture, weights, normalisation and energy axis to one file (atomic).

        ``extra``: optional plain-data dict (numbers, strings, lists) stored alongside,
        e.g. the training history. Returns the path written.

        Examples
        --------
        >>> import tempfile, pathlib
        >>> model = Spec2Im(n_energy=32, window=8, latent_dim=2, pool=4, device="cpu")
        >>> path = model.save(pathlib.Path(tempfile.mkdtemp()) / "spec2im.pt", extra={"note": "demo"})
        >>> type(load_model(path, device="cpu")).__name__
        'Spec2Im'
        """
        with self.lock:
            state = {k: v.detach().cpu().clone() for k, v in self.state_dict().items()}
        energy = None if self.energy is None else torch.from_numpy(self.energy.copy())
        return write_checkpoint(path, model_class=type(self).__name__, config=self.config,
                                state_dict=state, energy=energy, extra=extra)


def _layer_sizes(preset: str, **given: Any) -> dict[str, Any]:
    """The preset's layer sizes with every explicitly given (non-None) size on top, validated."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)} or give "
                         f"n_layers_enc / n_filters_enc / n_filters_dec / dilations yourself")
    sizes = {**PRESETS[preset], **{k: v for k, v in given.items() if v is not None}}
    return {
        "n_layers_enc": _positive_int("n_layers_enc", sizes["n_layers_enc"]),
        "n_filters_enc": _positive_int("n_filters_enc", sizes["n_filters_enc"]),
        "n_filters_dec": _positive_int("n_filters_dec", sizes["n_filters_dec"]),
        "dilations": _dilations(sizes["dilations"]),
    }


def _positive_int(name: str, value: Any, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _dilations(value: Sequence[int]) -> tuple[int, ...]:
    dil = tuple(int(d) for d in value)
    if not dil or any(d < 1 for d in dil):
        raise ValueError(f"dilations must be a non-empty sequence of positive ints, got {value!r}")
    return dil


@contextmanager
def _seeded_init(seed: int | None):
    """Make layer initialisation reproducible without disturbing torch's global RNG."""
    if seed is None:
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


class Im2Spec(ImSpecModel):
    """HAADF tile (w, w) -> EEL spectrum (E,) at the tile centre.

    All arguments are keyword-only.

    Parameters
    ----------
    window : tile side in HAADF pixels (default 16).
    n_energy : number of energy channels E of the predicted spectrum (required).
    latent_dim : size d of the bottleneck (paper: 2 or 10).
    preset : layer sizes, ``"lean"`` (default, 16 filters) or ``"paper"`` (AtomAI's 64
        filters); see :data:`PRESETS`.
    n_layers_enc, n_filters_enc : encoder conv layers and filters (None: from the preset).
    n_filters_dec, dilations : decoder filters and pyramid dilations (None: from the preset).
    energy : optional energy axis (E,) in eV, stored with the model.
    device : torch device; None picks CUDA, then MPS, then CPU.
    seed : seed of the weight initialisation (reproducible by default); None uses
        torch's global RNG.

    Examples
    --------
    >>> import numpy as np
    >>> model = Im2Spec(window=16, n_energy=100, latent_dim=10, device="cpu")
    >>> paper = Im2Spec(window=16, n_energy=100, latent_dim=10, preset="paper", device="cpu")
    >>> tiles = np.full((5, 16, 16), 300.0)             # 5 HAADF tiles, counts
    >>> model.predict(tiles).shape                      # -> 5 spectra (N, E)
    (5, 100)
    """

    role = IM2SPEC
    input_name = "HAADF tile(s)"
    target_name = "spectra"

    def __init__(self, *, window: int = 16, n_energy: int, latent_dim: int = 10,
                 preset: str = "lean", n_layers_enc: int | None = None,
                 n_filters_enc: int | None = None, n_filters_dec: int | None = None,
                 dilations: Sequence[int] | None = None, energy: Any = None,
                 device: str | torch.device | None = None, seed: int | None = 0):
        window = _positive_int("window", window, 3)
        n_energy = _positive_int("n_energy", n_energy)
        latent_dim = _positive_int("latent_dim", latent_dim)
        sizes = _layer_sizes(preset, n_layers_enc=n_layers_enc, n_filters_enc=n_filters_enc,
                             n_filters_dec=n_filters_dec, dilations=dilations)
        config = dict(window=window, n_energy=n_energy, latent_dim=latent_dim, **sizes, seed=seed)
        super().__init__((window, window), (n_energy,), latent_dim, config)
        with _seeded_init(seed):
            self.encoder = ImageEncoder(window, latent_dim, config["n_layers_enc"],
                                         config["n_filters_enc"])
            self.decoder = SpectrumDecoder(n_energy, latent_dim, config["n_filters_dec"],
                                            config["dilations"])
        self.energy = energy
        self.to(select_device(device))
        self.eval()  # user-facing models are always in eval mode; trainers use a copy

    def _shape_hint(self, got, shape, name):
        if name == self.input_name and len(got) == 2 and got[0] != got[1]:
            return (" (that looks like a batch of spectra (N, E); Im2Spec maps HAADF tiles to "
                    "spectra, use a Spec2Im model for spectra)")
        if name == self.input_name and len(got) >= 2 and got[-2:] != shape:
            return (f" (this model was built for {self.window}x{self.window} tiles; make tiles "
                    f"with window={self.window} or build a model with window={got[-1]})")
        return ""


class Spec2Im(ImSpecModel):
    """EEL spectrum (E,) -> HAADF tile (w, w) around the probe position.

    All arguments are keyword-only.

    Parameters
    ----------
    n_energy : number of energy channels E of the input spectrum (required).
    window : tile side in HAADF pixels (default 16, must be divisible by 4).
    latent_dim : size d of the bottleneck (paper: 2 or 10).
    preset, n_layers_enc, n_filters_enc, n_filters_dec, dilations : layer sizes, as for
        :class:`Im2Spec` (default ``preset="lean"``; ``"paper"``: AtomAI's 64 filters).
    pool : average-pooling factor applied to the spectrum before the encoder (paper: 16).
    symmetric : average the predicted tile (in HAADF counts) over the four 90-degree
        rotations about the probe pixel (w//2, w//2) (the paper: False). An EEL spectrum
        cannot tell these orientations apart (the loss probability is a scalar of an
        in-plane isotropic response) and a square lattice is statistically invariant under
        them, so the best squared-error prediction is rotation-symmetric; for an even
        window the first row and column have no rotated partner and are left as predicted.
    energy, device, seed : as for :class:`Im2Spec`.

    Examples
    --------
    >>> import numpy as np
    >>> model = Spec2Im(n_energy=100, window=16, latent_dim=2, device="cpu")
    >>> model.predict(np.ones((5, 100))).shape          # 5 spectra (N, E) -> tiles (N, w, w)
    (5, 16, 16)
    """

    role = SPEC2IM
    input_name = "spectra"
    target_name = "HAADF tile(s)"

    def __init__(self, *, n_energy: int, window: int = 16, latent_dim: int = 10,
                 preset: str = "lean", n_layers_enc: int | None = None,
                 n_filters_enc: int | None = None, n_filters_dec: int | None = None,
                 dilations: Sequence[int] | None = None, pool: int = 16,
                 symmetric: bool = True, energy: Any = None, device: str | torch.device | None = None,
                 seed: int | None = 0):
        window = _positive_int("window", window, 4)
        if window % 4:
            raise ValueError(f"Spec2Im upsamples x2 twice, so window must be divisible by 4; "
                             f"got window={window}")
        n_energy = _positive_int("n_energy", n_energy)
        latent_dim = _positive_int("latent_dim", latent_dim)
        pool = _positive_int("pool", pool)
        if pool > n_energy:
            raise ValueError(f"pool={pool} exceeds n_energy={n_energy}; use a smaller pool")
        sizes = _layer_sizes(preset, n_layers_enc=n_layers_enc, n_filters_enc=n_filters_enc,
                             n_filters_dec=n_filters_dec, dilations=dilations)
        config = dict(n_energy=n_energy, window=window, latent_dim=latent_dim, **sizes,
                      pool=pool, symmetric=bool(symmetric), seed=seed)
        super().__init__((n_energy,), (window, window), latent_dim, config)
        with _seeded_init(seed):
            self.encoder = SpectrumEncoder(n_energy, latent_dim, config["n_layers_enc"],
                                            config["n_filters_enc"], pool)
            self.decoder = ImageDecoder(window, latent_dim, config["n_filters_dec"],
                                         config["dilations"])
        self.energy = energy
        self.to(select_device(device))
        self.eval()  # user-facing models are always in eval mode; trainers use a copy

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised spectra (N, E) -> normalised tiles (N, w, w), symmetrised if configured."""
        y = self.decoder(self.encoder(x))
        if self._config["symmetric"]:
            # the symmetry holds for physical counts, not for the per-pixel normalisation
            y = self.normalize_targets(self.denormalize_targets(y))
        return y

    def denormalize_targets(self, y: torch.Tensor) -> torch.Tensor:
        y = super().denormalize_targets(y)
        return rotation_average(y) if self._config["symmetric"] else y

    def _shape_hint(self, got, shape, name):
        if name == self.input_name and len(got) == 3 and got[-1] == got[-2]:
            return (" (that looks like a batch of HAADF tiles (N, w, w); Spec2Im maps spectra "
                    "to tiles, use an Im2Spec model for tiles)")
        if name == self.input_name and len(got) >= 1 and got[-1] != self.n_energy:
            return (f" (this model was built for spectra with {self.n_energy} energy channels;"
                    f" crop/bin the data to match or build a model with n_energy={got[-1]})")
        return ""


MODEL_CLASSES: dict[str, type[ImSpecModel]] = {"Im2Spec": Im2Spec, "Spec2Im": Spec2Im}


def model_class(direction: str) -> type[ImSpecModel]:
    """The model class of a direction: Im2Spec for "im2spec", Spec2Im for "spec2im".

    Examples
    --------
    >>> model_class("spec2im").__name__
    'Spec2Im'
    """
    role = role_of(direction)  # raises on an unknown label
    return next(cls for cls in MODEL_CLASSES.values() if cls.role is role)


def load_model(path: str | Path, device: str | torch.device | None = None) -> ImSpecModel:
    """Load a model saved with ``model.save(path)``.

    Only tensors and plain data are unpickled (``torch.load(weights_only=True)``); a
    foreign, truncated or incompatible file raises :class:`CheckpointError`.
    ``device``: where to put the model (None: CUDA, then MPS, then CPU).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> path = Im2Spec(window=8, n_energy=32, device="cpu").save(
    ...     pathlib.Path(tempfile.mkdtemp()) / "im2spec.pt")
    >>> model = load_model(path, device="cpu")
    >>> model.direction, model.window, model.n_energy
    ('im2spec', 8, 32)
    """
    payload = read_checkpoint(path)
    name = payload["model_class"]
    if name not in MODEL_CLASSES:
        raise CheckpointError(f"{path}: unknown model class {name!r}; "
                              f"expected one of {sorted(MODEL_CLASSES)}")
    config = dict(payload["config"])
    config.pop("device", None)
    if name == "Spec2Im":
        # files written before the option existed hold weights of an unsymmetrised model
        config.setdefault("symmetric", False)
    try:
        model = MODEL_CLASSES[name](**config, device=device)
        model.load_state_dict(payload["state_dict"], strict=True)
        model.energy = None if payload.get("energy") is None else payload["energy"].numpy()
    except (TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: checkpoint does not match the {name} architecture "
                              f"of this plasmonwidgets version: {exc}") from exc
    model.eval()
    return model
