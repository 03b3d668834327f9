"""Clustering of latent vectors (the paper's latent-space segmentation)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .._compat import renamed_keywords
from ._inputs import batched, check_model, target_shape
from .latent import as_latent

__all__ = ["Clusters", "cluster_latent"]


@dataclass(frozen=True)
class Clusters:
    """Result of :func:`cluster_latent`.

    Labels are ordered by cluster size: label 0 is the most populated cluster,
    so colours stay stable when the same data are clustered again.

    Attributes
    ----------
    labels : (N,) int cluster of each latent vector
    centroids : (n_clusters, d) cluster centres (GMM means or k-means centres)
    sizes : (n_clusters,) number of members
    decoded : (n_clusters, E) or (n_clusters, w, w) centroids decoded by the model, or None
    method : "gmm" or "kmeans"

    Examples
    --------
    >>> import numpy as np
    >>> z = np.concatenate([np.zeros((20, 2)), np.ones((10, 2))])   # 30 latent points, d = 2
    >>> clusters = cluster_latent(z + 0.01 * np.random.default_rng(0).normal(size=z.shape), 2)
    >>> clusters.sizes.tolist(), clusters.centroids.shape
    ([20, 10], (2, 2))
    """

    labels: np.ndarray
    centroids: np.ndarray
    sizes: np.ndarray
    decoded: np.ndarray | None
    method: str


@renamed_keywords(n="n_clusters")
def cluster_latent(
    z: Any, n_clusters: int, method: str = "gmm", model: Any = None, seed: int = 0
) -> Clusters:
    """Cluster latent vectors z (N, d) into ``n_clusters`` groups.

    ``method="gmm"`` fits a full-covariance Gaussian mixture (clusters of any
    orientation, as latent manifolds often are); ``"kmeans"`` uses k-means with
    10 restarts. Both are seeded by ``seed``. When ``model`` is given, the
    centroids are decoded into spectra/tiles in physical units.

    ``n_clusters`` was called ``n`` before; ``n=`` still works, with a
    ``DeprecationWarning``.

    Examples
    --------
    Two well separated groups of latent vectors (N = 30, d = 2); label 0 is the larger:

    >>> import numpy as np
    >>> z = np.concatenate([np.zeros((20, 2)), np.ones((10, 2))])
    >>> z += 0.01 * np.random.default_rng(0).normal(size=z.shape)
    >>> cluster_latent(z, n_clusters=2, method="kmeans").labels[[0, -1]].tolist()
    [0, 1]
    """
    from sklearn.cluster import KMeans
    from sklearn.mixture import GaussianMixture

    z = np.asarray(z, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"z must be (N, d) latent vectors, got shape {z.shape}")
    z = as_latent(z, z.shape[1])
    n = int(n_clusters)
    if not 1 <= n <= len(z):
        raise ValueError(f"n_clusters must be between 1 and the number of vectors ({len(z)}), got {n}")
    if method == "gmm":
        fit = GaussianMixture(n, covariance_type="full", random_state=seed, reg_covar=1e-6).fit(z)
        labels, centroids = fit.predict(z), fit.means_
    elif method == "kmeans":
        fit = KMeans(n, n_init=10, random_state=seed).fit(z)
        labels, centroids = fit.labels_, fit.cluster_centers_
    else:
        raise ValueError(f"method must be 'gmm' or 'kmeans', got {method!r}")
    sizes = np.bincount(labels, minlength=n)
    order = np.argsort(-sizes, kind="stable")
    relabel = np.empty(n, dtype=np.int64)
    relabel[order] = np.arange(n)
    centroids = np.asarray(centroids)[order]
    decoded = None
    if model is not None:
        check_model(model)
        if int(model.latent_dim) != z.shape[1]:
            raise ValueError(
                f"z is {z.shape[1]}-d but the model's latent space is {model.latent_dim}-d"
            )
        decoded = batched(model.decode, centroids.astype(np.float32), target_shape(model))
    return Clusters(
        labels=relabel[labels],
        centroids=centroids,
        sizes=sizes[order],
        decoded=decoded,
        method=method,
    )
