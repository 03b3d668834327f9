"""Inverse design returns structures a tile apart, not neighbouring pixels of one spot."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import plasmonwidgets as pw
from plasmonwidgets import analysis
from plasmonwidgets.analysis.design import separated

WINDOW = 8


@pytest.fixture(scope="module")
def pairs():
    si = pw.datasets.nanocube_array(size=48, n_energy=32, cache=False, physics="toy")
    return pw.make_tiles(si, window=WINDOW)


def _fitted(cls, pairs, **kwargs):
    torch.manual_seed(0)
    model = cls(window=WINDOW, n_energy=pairs.n_energy, latent_dim=2, n_filters_enc=8,
                n_filters_dec=8, seed=0, **kwargs)
    # untrained weights: the encodings still cluster by tile
    model.fit_normalization(model.inputs_of(pairs), model.targets_of(pairs))
    return model


def _chebyshev(positions: np.ndarray) -> np.ndarray:
    """Pairwise max(|drow|, |dcol|) of (k, 2) positions, the diagonal left out."""
    d = np.max(np.abs(positions[:, None, :] - positions[None, :, :]), axis=-1)
    return d[~np.eye(len(positions), dtype=bool)]


def test_separated_keeps_order_and_distance():
    pos = [[0, 0], [0, 1], [0, 5], [3, 3], [9, 9]]
    assert separated(pos, k=3, min_separation=4).tolist() == [0, 2, 4]
    assert separated(pos, k=2, min_separation=0).tolist() == [0, 1]
    assert separated(pos, k=5, min_separation=20).tolist() == [0]


@pytest.mark.parametrize("cls", [pw.Im2Spec, pw.Spec2Im])
def test_structures_are_at_least_a_window_apart(pairs, cls):
    model = _fitted(cls, pairs) if cls is pw.Im2Spec else _fitted(cls, pairs, pool=4)
    index = analysis.LatentIndex(model, pairs)
    target = pairs.spectra[len(pairs) // 3].astype(np.float64)
    res = analysis.inverse_design(model, target, pairs, k=4, n_starts=2, max_iter=5, index=index)
    assert res.min_separation == WINDOW  # the default: the tile window
    assert len(res.positions) == 4
    assert _chebyshev(res.positions).min() >= WINDOW
    # the nearest encodings are typically neighbouring pixels: without the rule they are close
    plain = index.query(res.z, 4)
    assert _chebyshev(plain.positions).min() < WINDOW
    # each structure returned is the nearest (in latent space) allowed by the rule
    np.testing.assert_allclose(res.spectra, pairs.spectra[res.indices])
    assert np.all(np.diff(res.distances) >= 0)
    np.testing.assert_allclose(res.distances, np.linalg.norm(index.z[res.indices] - res.z, axis=1))


def test_zero_separation_is_the_plain_k_nearest(pairs):
    model = _fitted(pw.Im2Spec, pairs)
    index = analysis.LatentIndex(model, pairs)
    target = pairs.spectra[5].astype(np.float64)
    res = analysis.inverse_design(model, target, pairs, k=3, n_starts=2, max_iter=5, index=index,
                                  min_separation=0)
    np.testing.assert_array_equal(res.indices, index.query(res.z, 3).indices)


def test_fewer_structures_when_the_scan_cannot_hold_k_apart(pairs):
    model = _fitted(pw.Im2Spec, pairs)
    target = pairs.spectra[5].astype(np.float64)
    res = analysis.inverse_design(model, target, pairs, k=5, n_starts=1, max_iter=3,
                                  min_separation=1000)
    assert len(res.indices) == 1 and res.spectra_nmse.shape == (1,)
    with pytest.raises(ValueError, match="min_separation must be >= 0"):
        analysis.inverse_design(model, target, pairs, k=2, min_separation=-1)
