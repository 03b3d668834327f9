"""Built-in datasets: a physics-simulated STEM-EELS scan of a nanocube array.

Simulations are cached twice: in memory for this process and on disk as ``.npz``
under ``$PLASMONWIDGETS_CACHE`` (default ``~/.cache/plasmonwidgets``), keyed by every
argument and the simulator version, so a repeated call (even from a new process) is
near instant. Every call returns fresh arrays, so editing a result never alters
the cache. A damaged cache file is regenerated with a warning.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import tempfile
import threading
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np

from .simulate.scene import DEFAULT_DOSE, SIMULATOR_VERSION, simulate_scene, validate_arguments
from .spectrum_image import SpectrumImage

__all__ = ["PHYSICS", "cache_dir", "clear_cache", "is_cached", "nanocube_array"]

#: accepted ``physics`` of :func:`nanocube_array`: the quasi-static default, the fast
#: point-dipole toy, and the toy's earlier name
PHYSICS = ("quasistatic", "toy", "dipole")

_MEMORY: OrderedDict[str, SpectrumImage] = OrderedDict()
_MEMORY_SLOTS = 8
_LOCK = threading.Lock()


def cache_dir() -> Path:
    """Directory of the on-disk cache: $PLASMONWIDGETS_CACHE or ~/.cache/plasmonwidgets.

    Examples
    --------
    >>> cache_dir().name                             # unless $PLASMONWIDGETS_CACHE is set  # doctest: +SKIP
    'plasmonwidgets'
    """
    env = os.environ.get("PLASMONWIDGETS_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "plasmonwidgets"


def clear_cache(disk: bool = False) -> None:
    """Forget in-memory simulations; with ``disk=True`` also delete the cached .npz files.

    Examples
    --------
    >>> clear_cache()                                # in-memory simulations only
    >>> clear_cache(disk=True)                       # also the cached .npz files  # doctest: +SKIP
    """
    with _LOCK:
        _MEMORY.clear()
    if disk:
        for path in cache_dir().glob("nanocube_array-*.npz"):
            path.unlink(missing_ok=True)


def nanocube_array(
    seed: int = 0,
    size: int = 96,
    n_energy: int = 100,
    e_min: float | None = None,
    e_max: float = 1.2,
    scale: int = 1,
    dose: float = DEFAULT_DOSE,
    noise: bool = True,
    zlp_tail: bool = False,
    pixel_size: float = 2.0,
    cache: bool = True,
    physics: str = "quasistatic",
) -> SpectrumImage:
    """A simulated STEM-EELS spectrum image of a disordered In₂O₃ nanocube monolayer.

    Quasi-static EELS of doped-oxide nanocubes driven by a 60 keV beam: each cube's
    boundary-element surface modes (corner, edge, face) near the beam, its own doping (ωp)
    and damping, a carrier-depleted surface shell, and the film's collective response
    from near-field-corrected coupled dipoles continued far beyond the scan; plus a weak
    bulk loss on the particles and the support, 40 meV resolution and shot noise. The
    HAADF is rendered from the projected thickness (docs/physics.md,
    :mod:`plasmonwidgets.simulate.quasistatic`). The scene holds a jittered cube lattice with
    vacancies, a hole in the array in every quadrant and a film edge with bare support
    beyond it crossing every quadrant, so spatial train/test splits see every kind of region.

    The first 96 × 96 scan takes about a minute on a 2-core laptop (the cube's modes are
    cached on disk, so later scenes take less); every repeated call is read from the cache.

    Parameters
    ----------
    seed : int >= 0
        Reproducible: the same arguments give identical arrays.
    size : int >= 16
        Scan of size×size pixels (each region type lies in every quadrant for size >= 64
        at the default pixel size).
    n_energy : int >= 2
        Energy channels from e_min to e_max (eV).
    e_min : float, optional
        First channel (eV); default 0.2 eV, or 0.05 eV with ``zlp_tail`` so that a
        fit window below the plasmon peaks exists.
    e_max : float
        Last channel (eV).
    scale : int >= 1
        HAADF oversampling: the HAADF is (scale·size)×(scale·size).
    dose : float > 0
        Incident electrons per SI pixel; expected counts per channel are
        dose·ΔE·Γ(E) with Γ the loss probability in eV⁻¹.
    noise : bool
        Poisson noise on the spectra, Poisson + read noise on the HAADF.
    zlp_tail : bool
        The raw instrument: a residual zero-loss tail A·E^(−r) with per-pixel A, r, and (the
        quasi-static scene) an energy axis that drifts by 10 meV over the scan and jitters by
        3 meV per pixel (ground truth in ``metadata["zlp_tail"]``: "a", "r", "energy_offset").
    pixel_size : float
        SI pixel in nm (default 2 nm: a 16-pixel tile shows a cube and its neighbours).
    cache : bool
        Use (and fill) the memory and disk caches.
    physics : {"quasistatic", "toy"}
        ``"quasistatic"`` (default): the simulator described above. ``"toy"``: the first,
        fast point-dipole simulator (identical homogeneous dipoles on a finite patch; spectra
        nearly one shape times an intensity, a film tear with vacuum beyond it, region
        "vacuum" instead of "support"), kept for quick unit tests and examples; not a model
        of real films (docs/physics.md). ``"dipole"`` is its earlier name.

    Returns
    -------
    SpectrumImage
        spectra (size, size, n_energy) float32 counts, HAADF (scale·size)² counts, and
        metadata: ``particles`` (dict: centers (N, 2) (y, x) nm from the top-left
        corner of the scan, sides (N,) nm, rotations (N,) rad, and for the quasi-static
        scene omega_p (N,) and damping (N,) eV; it includes the cubes within one lattice
        pitch outside the field, which appear cut at the image border), ``regions``
        ((size, size) int8 labels), ``region_names`` (["interior", "gap", "vacancy",
        "hole", "edge", "support"], "vacuum" last for the toy; defined in
        :func:`plasmonwidgets.simulate.region_map`), ``simulation`` (JSON-serialisable
        parameters), ``title``.

    Examples
    --------
    A 24 x 24 scan (2 nm pixels) with 100 channels up to 1.2 eV, counts:

    >>> si = nanocube_array(size=24)
    >>> si.spectra.shape, si.haadf.shape, si.metadata["region_names"][-1]
    ((24, 24, 100), (24, 24), 'support')

    The fast toy for a quick test:

    >>> nanocube_array(size=24, physics="toy", cache=False).metadata["region_names"][-1]
    'vacuum'
    """
    params = _parameters(seed, size, n_energy, e_min, e_max, scale, dose, noise, zlp_tail, pixel_size,
                         physics)
    if not cache:
        return _to_spectrum_image(_simulate(params))
    key = _cache_key(params)
    with _LOCK:
        cached = _MEMORY.get(key)
        if cached is not None:
            _MEMORY.move_to_end(key)
    if cached is None:
        path = cache_dir() / f"nanocube_array-{key}.npz"
        cached = _read(path, key)
        if cached is None:
            cached = _simulate(params)
            _write(path, key, cached)
        with _LOCK:
            _MEMORY[key] = cached
            while len(_MEMORY) > _MEMORY_SLOTS:
                _MEMORY.popitem(last=False)
    return _to_spectrum_image(cached)


def is_cached(**arguments) -> bool:
    """Whether :func:`nanocube_array` with these keyword arguments would be read from a cache.

    Examples
    --------
    >>> is_cached(seed=12345, size=16, n_energy=3, physics="toy")   # never simulated here
    False
    """
    # nanocube_array's own signature, less ``cache``: the two cannot drift apart
    try:
        given = inspect.signature(nanocube_array).bind(**arguments, cache=True)
    except TypeError as exc:
        raise TypeError(f"is_cached() takes nanocube_array's keyword arguments: {exc}") from None
    given.apply_defaults()
    given.arguments.pop("cache")
    params = _parameters(**given.arguments)
    key = _cache_key(params)
    with _LOCK:
        if key in _MEMORY:
            return True
    return (cache_dir() / f"nanocube_array-{key}.npz").is_file()


def _parameters(seed, size, n_energy, e_min, e_max, scale, dose, noise, zlp_tail, pixel_size,
                physics) -> dict:
    """The checked, JSON-ready arguments of one simulation (its cache identity)."""
    if e_min is None:
        e_min = 0.05 if zlp_tail else 0.2
    seed, size, n_energy, e_min, e_max, scale, dose, pixel_size = validate_arguments(
        seed, size, n_energy, e_min, e_max, scale, dose, pixel_size
    )
    params = {
        "seed": seed, "size": size, "n_energy": n_energy, "e_min": e_min, "e_max": e_max,
        "scale": scale, "dose": dose, "noise": bool(noise), "zlp_tail": bool(zlp_tail),
        "pixel_size": pixel_size,
    }
    if physics not in PHYSICS:
        raise ValueError(f"physics must be one of {', '.join(map(repr, PHYSICS))}, got {physics!r}")
    if physics == "quasistatic":  # the toy's cache keys stay as they were
        from .simulate.quasistatic.scene import QS_SIMULATOR_VERSION

        params["physics"] = f"{physics}-{QS_SIMULATOR_VERSION}"
    return params


def _cache_key(params: dict) -> str:
    text = json.dumps({"version": SIMULATOR_VERSION, **params}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _simulate(params: dict) -> SpectrumImage:
    """Run the simulator; the cached SpectrumImage has read-only arrays."""
    if params.get("physics", "dipole").startswith("quasistatic"):
        from .simulate.quasistatic.scene import simulate_quasistatic_scene

        args = {k: v for k, v in params.items() if k != "physics"}
        si = simulate_quasistatic_scene(**args).to_spectrum_image()
    else:
        si = simulate_scene(**params).to_spectrum_image()
    _freeze(si)
    return si


def _freeze(si: SpectrumImage) -> None:
    for a in (si.spectra, si.haadf, *_metadata_arrays(si.metadata).values()):
        a.setflags(write=False)


def _metadata_arrays(metadata: dict) -> dict[str, np.ndarray]:
    """Flatten array-valued metadata (top level, or one dict level down) to npz names."""
    out = {}
    for k, v in metadata.items():
        if isinstance(v, np.ndarray):
            out[f"md/{k}"] = v
        elif isinstance(v, dict) and v and all(isinstance(x, np.ndarray) for x in v.values()):
            out.update({f"md/{k}/{sub}": x for sub, x in v.items()})
    return out


def _to_spectrum_image(cached: SpectrumImage) -> SpectrumImage:
    """A new SpectrumImage with its own copies of the cached arrays and metadata."""
    si = cached.replace(spectra=cached.spectra.copy(), haadf=cached.haadf.copy())
    # like a loaded file's: where the data came from, named for messages and displays
    sim = si.metadata.get("simulation", {})
    si.metadata.setdefault("source", {
        "name": f"simulated nanocube array (seed {sim.get('seed', '?')})",
        "dataset": "nanocube_array"})
    return si


def _read(path: Path, key: str) -> SpectrumImage | None:
    """Load a cache file; None when absent, or (with a warning) when unreadable or stale."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta_json"]))
            if meta.pop("key", None) != key:
                raise ValueError("cache key mismatch")
            metadata = meta.pop("metadata")
            for name in data.files:
                if not name.startswith("md/"):
                    continue
                parts = name.split("/")
                if len(parts) == 2:
                    metadata[parts[1]] = np.array(data[name])
                else:
                    metadata.setdefault(parts[1], {})[parts[2]] = np.array(data[name])
            si = SpectrumImage(np.array(data["spectra"]), np.array(data["energy"]),
                               np.array(data["haadf"]), metadata=metadata, **meta)
        sim = si.metadata["simulation"]
        if si.spectra.shape != (sim["size"], sim["size"], sim["n_energy"]):
            raise ValueError("spectra shape does not match the parameters")
        if si.scale != sim["scale"] or si.metadata["regions"].shape != si.scan_shape:
            raise ValueError("HAADF or region map does not match the parameters")
    except Exception as exc:
        warnings.warn(
            f"ignoring damaged simulation cache file {path} ({type(exc).__name__}: {exc}); "
            "regenerating it", RuntimeWarning, stacklevel=3,
        )
        return None
    _freeze(si)
    return si


def _write(path: Path, key: str, si: SpectrumImage) -> None:
    """Atomically write a cache file; a read-only cache directory only costs a warning."""
    arrays = _metadata_arrays(si.metadata)
    plain = {k: v for k, v in si.metadata.items() if f"md/{k}" not in arrays
             and not any(name.startswith(f"md/{k}/") for name in arrays)}
    meta = {"key": key, "metadata": plain, "scale": si.scale, "pixel_size": si.pixel_size,
            "pixel_unit": si.pixel_unit}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".npz")
        try:
            with os.fdopen(fd, "wb") as fh:
                np.savez(fh, meta_json=np.array(json.dumps(meta)), spectra=si.spectra,
                         energy=si.energy, haadf=si.haadf, **arrays)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as exc:
        warnings.warn(f"could not write the simulation cache in {path.parent}: {exc}",
                      RuntimeWarning, stacklevel=3)
