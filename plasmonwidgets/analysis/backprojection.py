"""Back-projection: from a latent point to the observed inputs encoded nearest it.

Decoding an arbitrary latent point shows what the network *can* generate; the
paper instead shows the observed inputs whose encodings lie nearest (or the
mean of the k nearest), so only physically realised configurations appear.
:class:`LatentIndex` encodes the tiles once and keeps a KD-tree, so a widget can
query it at drag speed (a single query on ~10⁴ tiles takes microseconds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.spatial import cKDTree

from ._inputs import batched, check_compatible, check_model, check_pairs, inputs_of, target_shape
from .latent import LatentGrid, as_latent, embed, latent_grid

__all__ = ["BackProjection", "LatentIndex", "back_project", "neighbourhood_preservation"]


@dataclass(frozen=True)
class BackProjection:
    """The observed tiles nearest some latent points.

    For M query points and k neighbours (the M axis is dropped when a single
    point (d,) was queried):

    Attributes
    ----------
    z : (M, d) the query points
    indices : (M, k) int indices into the TilePairs, nearest first
    distances : (M, k) Euclidean latent-space distances
    positions : (M, k, 2) int SI (row, col) of those tiles
    images : (M, k, w, w) their HAADF tiles
    spectra : (M, k, E) their measured spectra
    mean_image : (M, w, w) mean of the k tiles
    mean_spectrum : (M, E) mean of the k spectra
    preservation : dict or None
        Neighbourhood preservation of the embedding (see
        :func:`neighbourhood_preservation`), when computed.

    Examples
    --------
    The 3 tiles of a 12 x 12 scan whose encodings lie nearest the latent origin:

    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> pairs = pw.make_tiles(si, window=8, pad="reflect")   # 144 tiles (8, 8), spectra (32,)
    >>> model = pw.Im2Spec(window=8, n_energy=32, latent_dim=2, device="cpu")   # untrained
    >>> result = back_project(model, pairs, np.zeros(2), k=3)
    >>> result.indices.shape, result.images.shape, result.spectra.shape
    ((3,), (3, 8, 8), (3, 32))
    """

    z: np.ndarray
    indices: np.ndarray
    distances: np.ndarray
    positions: np.ndarray
    images: np.ndarray
    spectra: np.ndarray
    mean_image: np.ndarray
    mean_spectrum: np.ndarray
    preservation: dict | None = None


def _knn_sets(x: np.ndarray, k: int) -> np.ndarray:
    """(n, k) indices of each row's k nearest other rows (Euclidean, brute force)."""
    sq = np.einsum("ij,ij->i", x, x)
    dist = sq[:, None] + sq[None, :] - 2.0 * x @ x.T
    np.fill_diagonal(dist, np.inf)  # a point is not its own neighbour, even among duplicates
    return np.argpartition(dist, k, axis=1)[:, :k]


def neighbourhood_preservation(
    inputs: np.ndarray,
    z: np.ndarray,
    n_neighbors: int = 10,
    max_samples: int = 1000,
    seed: int = 0,
) -> dict:
    """How well the encoder keeps neighbours in input space neighbours in latent space.

    Parameters
    ----------
    inputs : (N, ...) encoder inputs (flattened per sample, physical units)
    z : (N, d) their encodings
    n_neighbors : neighbourhood size k
    max_samples : a random subset of this many samples is used (both measures
        cost O(n²)), drawn with ``seed``

    Returns
    -------
    dict with
        ``trustworthiness`` (sklearn.manifold.trustworthiness, 1 = no latent
        neighbour that is far in input space; ~0.5 for a random embedding),
        ``knn_overlap`` (mean fraction of each sample's k input-space nearest
        neighbours that are also among its k latent nearest neighbours; k/n for
        a random embedding), ``n_samples``, ``n_neighbors``.

    Examples
    --------
    Encodings that are the inputs themselves keep every neighbourhood:

    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(50, 2))
    >>> scores = neighbourhood_preservation(x, x, n_neighbors=5)
    >>> round(scores["trustworthiness"], 6)
    1.0
    """
    from sklearn.manifold import trustworthiness

    x = np.asarray(inputs, dtype=np.float64).reshape(len(inputs), -1)
    z = np.asarray(z, dtype=np.float64)
    if len(x) != len(z):
        raise ValueError(f"inputs ({len(x)}) and z ({len(z)}) must have the same length")
    rng = np.random.default_rng(seed)
    if len(x) > max_samples:
        keep = np.sort(rng.choice(len(x), size=int(max_samples), replace=False))
        x, z = x[keep], z[keep]
    n = len(x)
    k = int(n_neighbors)
    if not 1 <= k < n / 2:
        raise ValueError(
            f"n_neighbors must be between 1 and half the number of samples ({n}), got {k}"
        )
    a, b = _knn_sets(x, k), _knn_sets(z, k)
    overlap = np.mean([np.intersect1d(ra, rb, assume_unique=True).size for ra, rb in zip(a, b)])
    return {
        "trustworthiness": float(trustworthiness(x, z, n_neighbors=k)),
        "knn_overlap": float(overlap / k),
        "n_samples": n,
        "n_neighbors": k,
    }


class LatentIndex:
    """Encodings of a set of tiles plus a KD-tree over them, built once.

    The index is a snapshot of the model's encoder: build a new one after the
    model's weights change (e.g. when a training run publishes new weights).
    Queries only read, so several threads may query one index.

    Parameters
    ----------
    model : Im2Spec or Spec2Im
    pairs : TilePairs the model's inputs are taken from
    batch_size : encoding batch size (bounds memory)

    Attributes
    ----------
    z : (N, d) float64 encodings of ``pairs``
    lower, upper : (d,) observed latent range per dimension
    median : (d,) median encoding

    Examples
    --------
    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> pairs = pw.make_tiles(si, window=8, pad="reflect")   # 144 tiles (8, 8), spectra (32,)
    >>> model = pw.Im2Spec(window=8, n_energy=32, latent_dim=2, device="cpu")   # untrained
    >>> index = LatentIndex(model, pairs)            # encodes the 144 tiles once
    >>> index.query(np.zeros((4, 2)), k=2).positions.shape   # 4 points, 2 tiles each, (row, col)
    (4, 2, 2)
    """

    def __init__(self, model: Any, pairs: Any, batch_size: int = 1024):
        check_model(model)
        check_pairs(pairs)
        check_compatible(model, pairs)
        self.model = model
        self.pairs = pairs
        self.z = embed(model, pairs, batch_size).astype(np.float64)
        self.lower = self.z.min(axis=0)
        self.upper = self.z.max(axis=0)
        self.median = np.median(self.z, axis=0)
        self._tree = cKDTree(self.z)
        self._preservation: dict[tuple, dict] = {}
        self._decoded: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.z)

    @property
    def latent_dim(self) -> int:
        return self.z.shape[1]

    def query(self, z: Any, k: int = 1) -> BackProjection:
        """The k observed tiles whose encodings are nearest each point of ``z``.

        ``z`` is (M, d) or a single point (d,). See :class:`BackProjection`.
        """
        pts = as_latent(z, self.latent_dim)
        single = pts.ndim == 1
        pts = pts.reshape(-1, self.latent_dim)
        k = int(k)
        if not 1 <= k <= len(self):
            raise ValueError(f"k must be between 1 and the number of tiles ({len(self)}), got {k}")
        dist, idx = self._tree.query(pts, k=k)
        dist = np.asarray(dist).reshape(len(pts), k)
        idx = np.asarray(idx, dtype=np.int64).reshape(len(pts), k)
        images = np.asarray(self.pairs.images)[idx]
        spectra = np.asarray(self.pairs.spectra)[idx]
        result = dict(
            z=pts,
            indices=idx,
            distances=dist,
            positions=np.asarray(self.pairs.positions)[idx],
            images=images,
            spectra=spectra,
            mean_image=images.mean(axis=1),
            mean_spectrum=spectra.mean(axis=1),
        )
        if single:
            result = {key: value[0] for key, value in result.items()}
        return BackProjection(**result)

    def decoded(self) -> np.ndarray:
        """(N, E) or (N, w, w) the model's decoding of every observed encoding (cached)."""
        if self._decoded is None:
            self._decoded = batched(self.model.decode, self.z.astype(np.float32),
                                    target_shape(self.model))
        return self._decoded

    def preservation(self, n_neighbors: int = 10, max_samples: int = 1000, seed: int = 0) -> dict:
        """Neighbourhood preservation of this embedding (cached); see
        :func:`neighbourhood_preservation`."""
        key = (int(n_neighbors), int(max_samples), int(seed))
        if key not in self._preservation:
            self._preservation[key] = neighbourhood_preservation(
                inputs_of(self.model, self.pairs), self.z, *key
            )
        return self._preservation[key]

    def grid(self, n: int = 8, dims: tuple[int, int] = (0, 1), **kwargs: Any) -> LatentGrid:
        """:func:`latent_grid` over this index's encodings (no re-encoding)."""
        return latent_grid(self.model, n=n, dims=dims, z=self.z, **kwargs)

    def clamp(self, z: Any) -> np.ndarray:
        """Clip latent points into the observed range [lower, upper] per dimension."""
        return np.clip(as_latent(z, self.latent_dim), self.lower, self.upper)


def back_project(
    model: Any,
    pairs: Any,
    z: Any,
    k: int = 1,
    *,
    index: LatentIndex | None = None,
    n_neighbors: int = 10,
) -> BackProjection:
    """The observed tiles whose encodings are nearest each latent point.

    One-shot form of :meth:`LatentIndex.query` that also reports how well the
    embedding preserves neighbourhoods (``result.preservation``). Pass an
    existing ``index`` (built from the same model and pairs) to skip encoding;
    widgets should keep a :class:`LatentIndex` and call ``index.query`` directly.

    Examples
    --------
    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> pairs = pw.make_tiles(si, window=8, pad="reflect")   # 144 tiles (8, 8), spectra (32,)
    >>> model = pw.Im2Spec(window=8, n_energy=32, latent_dim=2, device="cpu")   # untrained
    >>> result = back_project(model, pairs, np.zeros((4, 2)), k=2)
    >>> result.indices.shape, sorted(result.preservation)
    ((4, 2), ['knn_overlap', 'n_neighbors', 'n_samples', 'trustworthiness'])
    """
    if index is None:
        index = LatentIndex(model, pairs)
    elif index.model is not model or index.pairs is not pairs:
        raise ValueError("index was built from a different model or pairs; build a new LatentIndex")
    result = index.query(z, k)
    if len(index) < 4:  # too few tiles for any neighbourhood statistic
        return result
    n_nb = min(int(n_neighbors), (min(len(index), 1000) - 1) // 2)
    return BackProjection(**{**result.__dict__, "preservation": index.preservation(n_nb)})
