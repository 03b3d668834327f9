"""The latent explorer asks the model what it decodes: which view shows the decoded output,
which grid it draws, which models it accepts, and (with the scan at hand) the HAADF's fixed
grey range for its tiles."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import plasmonwidgets as pw
from plasmonwidgets.widgets.haadf_viewer import HAADFViewer
from plasmonwidgets.widgets.latent_explorer import LatentExplorer
from plasmonwidgets.widgets.spectrum_view import SpectrumView
from plasmonwidgets.widgets.tile_view import TileView, haadf_range

WINDOW, N_ENERGY = 8, 24


@pytest.fixture(scope="module")
def data():
    si = pw.datasets.nanocube_array(size=24, n_energy=N_ENERGY, cache=False, physics="toy")
    pairs = pw.make_tiles(si, window=WINDOW)
    torch.manual_seed(0)
    im2spec = pw.Im2Spec(window=WINDOW, n_energy=N_ENERGY, latent_dim=2, n_filters_enc=8,
                         n_filters_dec=8, seed=0, device="cpu")
    spec2im = pw.Spec2Im(n_energy=N_ENERGY, window=WINDOW, latent_dim=2, pool=4, seed=0,
                         device="cpu")
    for model in (im2spec, spec2im):
        model.fit_normalization(model.inputs_of(pairs), model.targets_of(pairs))
    return si, pairs, im2spec, spec2im


def _explorer(model, pairs, **kwargs) -> LatentExplorer:
    return LatentExplorer(model, pairs, k=3, mode="sync", browser_decode=False, **kwargs)


def test_spec2im_explorer_draws_tiles_on_the_haadf_fixed_range(data):
    si, pairs, _, spec2im = data
    ex = _explorer(spec2im, pairs, viewer=HAADFViewer(si, window=WINDOW))
    try:
        assert isinstance(ex.tile_view, TileView) and ex.spectrum_view is None
        assert ex.output_box.children == (ex.tile_view,)
        assert ex.tile_view.fixed_range == haadf_range(si)
        ranges = set()
        for step in (-3.0, 0.0, 3.0):  # far-apart points: a stretched view would change range
            ex.set_latent(ex.index.median + step * (ex.index.upper - ex.index.lower))
            ex.wait()
            ranges.add(ex.tile_view.color_range)
            lo, hi = ex.tile_view.fixed_range
            decoded = ex.tile_view.tile("decoded")
            assert decoded.min() >= lo and decoded.max() <= hi  # clipped to what is stated
        assert ranges == {haadf_range(si)}
    finally:
        ex.close()


def test_spec2im_explorer_without_the_scan_follows_the_tiles(data):
    _, pairs, _, spec2im = data
    ex = _explorer(spec2im, pairs)
    try:
        assert ex.tile_view.fixed_range is None
        ex.wait()
        np.testing.assert_allclose(ex.tile_view.tile("decoded"), ex.last_output)
    finally:
        ex.close()


def test_im2spec_explorer_decodes_spectra_and_draws_a_curve_grid(data):
    si, pairs, im2spec, _ = data
    ex = _explorer(im2spec, pairs, viewer=HAADFViewer(si, window=WINDOW))
    try:
        assert isinstance(ex.spectrum_view, SpectrumView) and ex.tile_view is None
        ex.wait()
        assert ex.last_output.shape == (N_ENERGY,)
        np.testing.assert_allclose(ex.spectrum_view.lines["decoded"].y, ex.last_output, rtol=1e-6)
        assert "im2spec latent explorer" in ex.title.value
        ex.mode_toggle.value = "grid"
        assert type(ex.grid_mark).__name__ == "Lines"
        assert ex.latent_grid.decoded.shape[-1] == N_ENERGY
    finally:
        ex.close()


def test_set_model_refuses_a_model_of_the_other_role(data):
    _, pairs, im2spec, spec2im = data
    ex = _explorer(im2spec, pairs)
    try:
        with pytest.raises(ValueError, match="shows a im2spec model; got 'spec2im'"):
            ex.set_model(spec2im)
        ex.set_model(im2spec)  # the same role is accepted
        assert ex.model is im2spec
    finally:
        ex.close()
