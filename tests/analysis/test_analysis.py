"""Tests of plasmonwidgets.analysis against small models really trained on synthetic scans.

The synthetic scan: random disc-shaped particles in a HAADF image; the spectrum at
each pixel is a Lorentzian whose energy and amplitude follow the local particle
density, so the tile really determines the spectrum and a briefly trained model
learns part of that mapping.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

import plasmonwidgets as pw
from plasmonwidgets import analysis
from plasmonwidgets.metrics import nmse_percent

WINDOW = 8
SMALL_NET = dict(n_layers_enc=2, n_filters_enc=8, n_filters_dec=8)


def synthetic_si(size: int = 32, n_energy: int = 32, scale: int = 1, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = size * scale
    yy, xx = np.mgrid[:n, :n] / scale
    haadf = np.zeros((n, n))
    for _ in range(10):
        cy, cx = rng.uniform(0, size, 2)
        haadf += 100.0 * ((yy - cy) ** 2 + (xx - cx) ** 2 < rng.uniform(2, 4) ** 2)
    haadf = gaussian_filter(haadf, 0.7 * scale) + 5.0
    grid = haadf.reshape(size, scale, size, scale).mean(axis=(1, 3))
    density = gaussian_filter(grid, 2.5)
    density = (density - density.min()) / (density.max() - density.min())
    energy = np.linspace(0.2, 1.2, n_energy)
    peak = 0.4 + 0.5 * density
    spectra = (1 + 2 * density)[..., None] / (1 + ((energy - peak[..., None]) / 0.08) ** 2)
    spectra += 0.01 * rng.standard_normal(spectra.shape)
    return pw.SpectrumImage(spectra, energy, haadf, scale=scale)


@pytest.fixture(scope="module")
def si():
    return synthetic_si()


@pytest.fixture(scope="module")
def pairs(si):
    return pw.make_tiles(si, window=WINDOW)


@pytest.fixture(scope="module")
def split(pairs):
    return pairs.split("halves")


def _trained(cls, si, split, latent_dim=3, epochs=40, **kwargs):
    train, test = split
    model = cls(window=WINDOW, n_energy=si.n_energy, latent_dim=latent_dim, energy=si.energy,
                device="cpu", **SMALL_NET, **kwargs)
    # a tiny net trained briefly: symmetry augmentation would slow its fit (tested elsewhere)
    pw.train(model, train, test, epochs=epochs, batch_size=32, seed=0, augment=None)
    return model


@pytest.fixture(scope="module")
def im2spec(si, split):
    return _trained(pw.Im2Spec, si, split)


@pytest.fixture(scope="module")
def spec2im(si, split):
    return _trained(pw.Spec2Im, si, split, pool=4)


# ----------------------------------------------------------------------------- error maps
@pytest.mark.parametrize("name", ["im2spec", "spec2im"])
def test_error_map_is_nmse_of_predictions_on_the_scan_grid(name, request, si, split):
    model = request.getfixturevalue(name)
    _, test = split
    err = analysis.error_map(model, test)
    assert err.shape == si.scan_shape
    on_tile = np.zeros(si.scan_shape, dtype=bool)
    on_tile[test.positions[:, 0], test.positions[:, 1]] = True
    assert np.all(np.isnan(err[~on_tile]))
    assert np.all(np.isfinite(err[on_tile])) and np.all(err[on_tile] >= 0)
    # spot-check against a direct computation in physical units
    if name == "im2spec":
        pred, true = model.predict(test.images[:5]), test.spectra[:5]
        expected = 100 * ((pred - true) ** 2).sum(1) / (true**2).sum(1)
    else:
        pred, true = model.predict(test.spectra[:5]), test.images[:5]
        expected = 100 * ((pred - true) ** 2).sum((1, 2)) / (true**2).sum((1, 2))
    got = err[test.positions[:5, 0], test.positions[:5, 1]]
    np.testing.assert_allclose(got, expected, rtol=1e-4)


def test_trained_model_has_lower_error_than_untrained(si, split, im2spec):
    _, test = split
    untrained = pw.Im2Spec(window=WINDOW, n_energy=si.n_energy, latent_dim=3, device="cpu",
                           seed=1, **SMALL_NET)
    untrained.fit_normalization(split[0].images, split[0].spectra)
    assert np.nanmean(analysis.error_map(im2spec, test)) < 0.7 * np.nanmean(
        analysis.error_map(untrained, test)
    )


def test_error_map_rejects_mismatched_tiles(si, im2spec):
    other = pw.make_tiles(si, window=12)
    with pytest.raises(ValueError, match="window=8"):
        analysis.error_map(im2spec, other)
    with pytest.raises(TypeError, match="TilePairs"):
        analysis.error_map(im2spec, np.zeros((3, 8, 8)))


def test_error_haadf_correlation_known_cases(si):
    haadf = si.haadf_on_si_grid()
    err = 3.0 * haadf + 7.0
    err[:4] = np.nan  # ignored
    r, mse = analysis.error_haadf_correlation(err, si)
    assert r == pytest.approx(1.0) and mse == pytest.approx(0.0, abs=1e-9)
    r, mse = analysis.error_haadf_correlation(-haadf, haadf)  # an (h, w) array works too
    assert r == pytest.approx(-1.0) and mse == pytest.approx(4.0)
    noise = np.random.default_rng(0).standard_normal(haadf.shape)
    r, mse = analysis.error_haadf_correlation(noise, si)
    assert abs(r) < 0.1 and mse == pytest.approx(2 * (1 - r))


def test_error_haadf_correlation_bad_input(si):
    with pytest.raises(ValueError, match="differs"):
        analysis.error_haadf_correlation(np.ones((5, 5)), si)
    with pytest.raises(ValueError, match="finite"):
        analysis.error_haadf_correlation(np.full(si.scan_shape, np.nan), si)
    with pytest.raises(ValueError, match="constant"):
        analysis.error_haadf_correlation(np.ones(si.scan_shape), si)


def test_scan_map_places_values(pairs):
    values = np.arange(len(pairs), dtype=float)
    m = analysis.scan_map(values, pairs)
    r, c = pairs.positions[10]
    assert m[r, c] == 10
    with pytest.raises(ValueError, match="one entry per tile"):
        analysis.scan_map(values[:-1], pairs)


# --------------------------------------------------------------------------- latent space
@pytest.mark.parametrize("name", ["im2spec", "spec2im"])
def test_embed_is_batched_encode(name, request, pairs):
    model = request.getfixturevalue(name)
    z = analysis.embed(model, pairs, batch_size=7)
    assert z.shape == (len(pairs), 3) and z.dtype == np.float32
    x = pairs.images if name == "im2spec" else pairs.spectra
    np.testing.assert_allclose(z, model.encode(x), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(analysis.embed(model, x[:4]), z[:4], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="inputs of shape"):
        analysis.embed(model, np.zeros((2, 5)))


@pytest.mark.parametrize("name", ["im2spec", "spec2im"])
def test_latent_grid_spans_observed_range(name, request, pairs):
    model = request.getfixturevalue(name)
    z = analysis.embed(model, pairs)
    grid = analysis.latent_grid(model, n=5, dims=(2, 0), pairs=pairs)
    target = (model.n_energy,) if name == "im2spec" else (WINDOW, WINDOW)
    assert grid.decoded.shape == (5, 5, *target)
    assert grid.z.shape == (5, 5, 3) and grid.coords.shape == (5, 5, 2)
    assert grid.x[0] == pytest.approx(z[:, 2].min()) and grid.x[-1] == pytest.approx(z[:, 2].max())
    assert grid.y[0] == pytest.approx(z[:, 0].min()) and grid.y[-1] == pytest.approx(z[:, 0].max())
    np.testing.assert_allclose(grid.z[..., 1], np.median(z[:, 1]), rtol=1e-6)
    # x runs along columns, y along rows
    np.testing.assert_allclose(grid.coords[1, 3], [grid.x[3], grid.y[1]])
    np.testing.assert_allclose(grid.decoded[1, 3], model.decode(grid.z[1, 3].astype(np.float32)),
                               rtol=1e-4, atol=1e-5)
    same = analysis.latent_grid(model, n=5, dims=(2, 0), z_ref=z)
    np.testing.assert_allclose(same.decoded, grid.decoded, rtol=1e-5, atol=1e-6)


def test_latent_grid_bad_input(im2spec, pairs):
    with pytest.raises(ValueError, match=r"pairs= .* or z="):
        analysis.latent_grid(im2spec)
    with pytest.raises(ValueError, match="two different indices"):
        analysis.latent_grid(im2spec, dims=(1, 1), pairs=pairs)
    with pytest.raises(ValueError, match="two different indices"):
        analysis.latent_grid(im2spec, dims=(0, 3), pairs=pairs)
    with pytest.raises(ValueError, match=r"shape \(N, 3\)"):
        analysis.latent_grid(im2spec, z=np.zeros((10, 4)))


def test_latent_index_query_matches_brute_force(im2spec, pairs):
    index = analysis.LatentIndex(im2spec, pairs)
    rng = np.random.default_rng(1)
    pts = rng.uniform(index.lower, index.upper, size=(6, 3))
    bp = index.query(pts, k=4)
    dist = np.linalg.norm(index.z[None] - pts[:, None], axis=2)
    np.testing.assert_array_equal(bp.indices, np.argsort(dist, axis=1)[:, :4])
    assert bp.images.shape == (6, 4, WINDOW, WINDOW) and bp.spectra.shape == (6, 4, 32)
    np.testing.assert_allclose(bp.mean_image, pairs.images[bp.indices].mean(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(bp.positions, pairs.positions[bp.indices])
    # an observed tile's own encoding back-projects onto that tile
    one = index.query(index.z[17])
    assert one.indices.shape == (1,) and one.indices[0] == 17 and one.distances[0] < 1e-9
    assert one.mean_spectrum.shape == (32,)
    with pytest.raises(ValueError, match="k must be"):
        index.query(pts, k=0)
    with pytest.raises(ValueError, match="NaN"):
        index.query([np.nan, 0, 0])


def test_back_project_reports_neighbourhood_preservation(im2spec, pairs):
    z = analysis.embed(im2spec, pairs)
    bp = analysis.back_project(im2spec, pairs, z[:3], k=2)
    assert bp.indices.shape == (3, 2)
    p = bp.preservation
    assert 0 <= p["knn_overlap"] <= 1 and 0 <= p["trustworthiness"] <= 1
    # the trained encoder keeps neighbourhoods far better than a random embedding
    x = pairs.images.reshape(len(pairs), -1)
    rand = analysis.neighbourhood_preservation(x, np.random.default_rng(0).normal(size=z.shape))
    assert p["trustworthiness"] > rand["trustworthiness"] + 0.1
    assert p["knn_overlap"] > rand["knn_overlap"] + 0.1
    cloud = np.random.default_rng(1).normal(size=(200, 5))  # no ties, unlike flat tiles
    ident = analysis.neighbourhood_preservation(cloud, cloud)
    assert ident["knn_overlap"] == pytest.approx(1.0) and ident["trustworthiness"] == pytest.approx(1.0)


@pytest.mark.parametrize("method", ["gmm", "kmeans"])
def test_cluster_latent_recovers_separated_groups(method, im2spec):
    rng = np.random.default_rng(0)
    centres = np.array([[0, 0, 0], [5, 0, 0], [0, 5, 5]], dtype=float)
    sizes = [60, 40, 20]
    z = np.concatenate([c + 0.3 * rng.standard_normal((n, 3)) for c, n in zip(centres, sizes)])
    truth = np.repeat([0, 1, 2], sizes)
    cl = analysis.cluster_latent(z, 3, method=method, model=im2spec)
    # labels ordered by size, so they equal the generating groups exactly
    np.testing.assert_array_equal(cl.labels, truth)
    np.testing.assert_array_equal(cl.sizes, sizes)
    np.testing.assert_allclose(cl.centroids, centres, atol=0.2)
    assert cl.decoded.shape == (3, 32)
    np.testing.assert_allclose(cl.decoded, im2spec.decode(cl.centroids.astype(np.float32)),
                               rtol=1e-4, atol=1e-5)


def test_cluster_latent_bad_input(im2spec):
    z = np.zeros((10, 2))
    with pytest.raises(ValueError, match="'gmm' or 'kmeans'"):
        analysis.cluster_latent(z, 2, method="dbscan")
    with pytest.raises(ValueError, match="between 1 and"):
        analysis.cluster_latent(z, 11)
    with pytest.raises(ValueError, match="latent space is 3-d"):
        analysis.cluster_latent(np.random.default_rng(0).normal(size=(10, 2)), 2, model=im2spec)


# --------------------------------------------------------------------------------- NMF
def test_nmf_recovers_known_endmembers():
    rng = np.random.default_rng(0)
    energy = np.linspace(0.2, 1.2, 60)
    peaks = [0.9, 0.35, 0.6]  # deliberately not in energy order
    endmembers = np.stack([np.exp(-0.5 * ((energy - p) / 0.05) ** 2) for p in peaks])
    abundance = rng.gamma(1.0, 1.0, size=(20, 20, 3))
    spectra = abundance @ endmembers + 0.002 * rng.standard_normal((20, 20, 60))
    si = pw.SpectrumImage(spectra, energy, np.ones((20, 20)))
    maps, comps = analysis.nmf(si, n_components=3)
    assert maps.shape == (3, 20, 20) and comps.shape == (3, 60)
    assert maps.min() >= 0 and comps.min() >= 0
    np.testing.assert_allclose(comps.max(axis=1), 1.0)
    order = np.argsort(peaks)  # components come sorted by peak energy
    np.testing.assert_allclose(energy[comps.argmax(axis=1)], np.array(peaks)[order], atol=0.02)
    for c, k in enumerate(order):
        assert np.corrcoef(comps[c], endmembers[k])[0, 1] > 0.99
        assert np.corrcoef(maps[c].ravel(), abundance[..., k].ravel())[0, 1] > 0.99
    again = analysis.nmf(si, n_components=3)
    np.testing.assert_array_equal(again.maps, maps)
    with pytest.raises(ValueError, match="n_components"):
        analysis.nmf(si, n_components=0)
    with pytest.raises(TypeError, match="SpectrumImage"):
        analysis.nmf(spectra)


# ------------------------------------------------------------------ prediction from HAADF
def test_predict_spectrum_image_matches_tilewise_prediction(si, pairs, im2spec):
    pred = analysis.predict_spectrum_image(im2spec, si.haadf, scale=1, batch_size=100, progress=False)
    r0, c0 = pred.metadata["prediction"]["origin"]
    assert (r0, c0) == (WINDOW // 2, WINDOW // 2)
    h, w = pred.scan_shape
    assert pred.haadf.shape == (h, w)
    np.testing.assert_array_equal(pred.haadf, si.haadf[r0 : r0 + h, c0 : c0 + w])
    got = pred.spectra[pairs.positions[:, 0] - r0, pairs.positions[:, 1] - c0]
    np.testing.assert_allclose(got, im2spec.predict(pairs.images), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(pred.energy, si.energy)
    # an uncalibrated array: the pixel is `scale` HAADF pixels, not a made-up 1 nm
    assert (pred.pixel_size, pred.pixel_unit) == (1.0, "HAADF px")
    assert pred.metadata["prediction"]["calibrated"] is False
    padded = analysis.predict_spectrum_image(im2spec, si, pad="reflect", progress=False)
    assert padded.scan_shape == si.scan_shape
    assert (padded.pixel_size, padded.pixel_unit) == (si.pixel_size, si.pixel_unit)
    np.testing.assert_allclose(padded.spectra[r0 : r0 + h, c0 : c0 + w], pred.spectra,
                               rtol=1e-5, atol=1e-6)


def test_predict_spectrum_image_with_oversampled_haadf(im2spec):
    si2 = synthetic_si(size=16, scale=2)
    pairs2 = pw.make_tiles(si2, window=WINDOW)
    pred = analysis.predict_spectrum_image(im2spec, si2.haadf, scale=2, progress=False)
    r0, c0 = pred.metadata["prediction"]["origin"]
    assert pred.scale == 2 and pred.haadf.shape == (2 * pred.scan_shape[0], 2 * pred.scan_shape[1])
    got = pred.spectra[pairs2.positions[:, 0] - r0, pairs2.positions[:, 1] - c0]
    np.testing.assert_allclose(got, im2spec.predict(pairs2.images), rtol=1e-5, atol=1e-6)


def test_an_array_without_scale_is_refused_with_the_spectrum_count(si, im2spec):
    with pytest.raises(ValueError, match=r"pass scale= .*1024 spectra here"):
        analysis.predict_spectrum_image(im2spec, si.haadf)


def _signal2d(image, pixel, unit="nm", lazy=False):
    import hyperspy.api as hs

    axes = [dict(name=n, size=size, scale=pixel, units=unit) for n, size in zip("yx", image.shape)]
    sig = hs.signals.Signal2D(np.asarray(image), axes=axes)
    return sig.as_lazy() if lazy else sig


@pytest.mark.parametrize("lazy", [False, True])
def test_a_calibrated_signal2d_gives_scale_and_units(si, im2spec, lazy):
    reference = si.replace(pixel_size=2.0)  # trained at 2 nm per pixel, scale 1
    image = np.kron(si.haadf, np.ones((2, 2)))  # the same field at 1 nm per HAADF pixel
    sig = _signal2d(image, 1.0, lazy=lazy)
    with pytest.raises(ValueError, match=r"1 nm HAADF pixels but the model was trained on 2 nm"):
        analysis.predict_spectrum_image(im2spec, sig, reference=reference, progress=False)
    pred = analysis.predict_spectrum_image(im2spec, _signal2d(si.haadf, 2.0, lazy=lazy),
                                           reference=reference, progress=False)
    assert pred.scale == 1 and (pred.pixel_size, pred.pixel_unit) == (2.0, "nm")
    by_size = analysis.predict_spectrum_image(im2spec, sig, pixel_size=4.0, progress=False)
    assert by_size.scale == 4 and by_size.pixel_size == 4.0 and by_size.scan_shape == (14, 14)
    with pytest.raises(ValueError, match="not a whole number of HAADF pixels"):
        analysis.predict_spectrum_image(im2spec, sig, pixel_size=2.5)
    with pytest.raises(ValueError, match="pass scale="):  # calibrated, but nothing sets the scale
        analysis.predict_spectrum_image(im2spec, sig)


def test_prediction_is_in_counts_when_the_training_normalisation_is_known(si, split):
    normalised = si.normalize()
    factor = float(normalised.normalization.factor)
    train, test = pw.make_tiles(normalised, window=WINDOW).split("halves")
    model = pw.Im2Spec(window=WINDOW, n_energy=si.n_energy, latent_dim=2, energy=si.energy,
                       device="cpu", **SMALL_NET)
    pw.train(model, train, test, epochs=1, batch_size=64, augment=None, progress=False)
    raw = analysis.predict_spectrum_image(model, si.haadf, scale=1, progress=False)
    assert raw.metadata["prediction"]["units"] == "as the training spectra"
    counts = analysis.predict_spectrum_image(model, si.haadf, scale=1, reference=normalised,
                                             progress=False)
    assert counts.metadata["prediction"]["units"] == "counts" and counts.intensity_unit == "counts"
    np.testing.assert_allclose(counts.spectra, raw.spectra * factor, rtol=1e-5)
    same = analysis.predict_spectrum_image(model, normalised, progress=False)  # its own norm
    np.testing.assert_allclose(same.spectra, counts.spectra, rtol=1e-5)


def test_model_compatibility_is_checked(si, im2spec):
    with pytest.raises(ValueError, match="not the axis this model was trained on"):
        analysis.predict_spectrum_image(im2spec, si.haadf, scale=1, energy=si.energy + 0.5)
    with pytest.raises(ValueError, match="reference SI's energy axis"):
        analysis.predict_spectrum_image(im2spec, si.haadf, scale=1, reference=si.crop(0.3, 1.2))
    with pytest.warns(UserWarning, match="predicts spectra on 0.2-1.2 eV, 32 channels"):
        analysis.predict_spectrum_image(im2spec, si.bin(energy=2), progress=False)
    with pytest.warns(UserWarning, match="HAADF intensities .* are unlike the training tiles"):
        analysis.predict_spectrum_image(im2spec, si.haadf * 50, scale=1, progress=False)


def test_progress_bar_counts_the_spectra(si, im2spec, capsys):
    analysis.predict_spectrum_image(im2spec, si.haadf, scale=1, batch_size=200, progress=True)
    assert "predicting spectra" in capsys.readouterr().err


def test_predict_from_a_lazy_si_never_reads_its_spectra(si, im2spec):
    import dask.array as da

    def explode(block):
        raise AssertionError("the spectra were read")

    lazy = si.replace(spectra=da.from_array(si.spectra, chunks=8).map_blocks(explode, dtype=np.float32))
    pred = analysis.predict_spectrum_image(im2spec, lazy, progress=False)
    assert pred.scan_shape == (32 - WINDOW + 1, 32 - WINDOW + 1)


def test_predict_spectrum_image_bad_input(si, im2spec, spec2im):
    with pytest.raises(ValueError, match="smaller than one 8x8"):
        analysis.predict_spectrum_image(im2spec, np.ones((6, 40)), scale=1)
    bad = si.haadf.copy()
    bad[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        analysis.predict_spectrum_image(im2spec, bad, scale=1)
    with pytest.raises(ValueError, match="needs a im2spec model"):
        analysis.predict_spectrum_image(spec2im, si.haadf, scale=1)
    with pytest.raises(ValueError, match="multiple of scale"):
        analysis.predict_spectrum_image(im2spec, si.haadf[:31], scale=2)
    with pytest.raises(ValueError, match="2-D"):
        analysis.predict_spectrum_image(im2spec, np.ones((2, 16, 16)), scale=1)
    with pytest.raises(ValueError, match="positive integer"):
        analysis.predict_spectrum_image(im2spec, si.haadf, scale=1.5)
    no_axis = pw.Im2Spec(window=WINDOW, n_energy=32, latent_dim=3, device="cpu", **SMALL_NET)
    with pytest.raises(ValueError, match="pass energy="):
        analysis.predict_spectrum_image(no_axis, si.haadf, scale=1)
    got = analysis.predict_spectrum_image(no_axis, si.haadf, scale=1, energy=si.energy, progress=False)
    assert got.n_energy == 32


# ------------------------------------------------------------------------ inverse design
def _nmse_to(target, spectra):
    """(M,) NMSE (%) of each spectrum (M, E) against one target (E,)."""
    return nmse_percent(spectra, np.broadcast_to(target, spectra.shape), axis=-1)


def test_inverse_design_im2spec_finds_matching_structures(split, im2spec):
    train, test = split
    index = analysis.LatentIndex(im2spec, train)
    rng = np.random.default_rng(0)
    wins = 0
    targets = rng.choice(len(test), 5, replace=False)
    for t in targets:
        target = test.spectra[t]
        res = analysis.inverse_design(im2spec, target, train, k=5, n_starts=4, index=index)
        assert res.z.shape == (3,) and res.in_range
        assert np.all(res.z >= index.lower - 1e-9) and np.all(res.z <= index.upper + 1e-9)
        n = len(res.indices)  # structures a tile apart: the small scene may hold fewer than 5
        assert 1 <= n <= 5 and res.spectra.shape == (n, 32) and res.images.shape == (n, WINDOW, WINDOW)
        np.testing.assert_allclose(res.spectra, train.spectra[res.indices])
        # the optimum decodes closer to the target than any observed tile's encoding does
        best_observed = _nmse_to(target, im2spec.decode(index.z.astype(np.float32))).min()
        assert res.nmse <= best_observed + 1e-6
        random_err = _nmse_to(target, train.spectra[rng.choice(len(train), 50, replace=False)])
        wins += res.spectra_nmse.mean() < random_err.mean()
    assert wins == len(targets)


def test_inverse_design_spec2im_encodes_target(split, spec2im):
    train, test = split
    target = test.spectra[3]
    res = analysis.inverse_design(spec2im, target, train, k=3)
    np.testing.assert_allclose(res.z, spec2im.encode(target), rtol=1e-5, atol=1e-6)
    assert res.decoded.shape == (WINDOW, WINDOW)
    random_err = _nmse_to(target, train.spectra)
    assert res.spectra_nmse.mean() < random_err.mean()


def test_inverse_design_bad_target(split, im2spec):
    train, _ = split
    with pytest.raises(ValueError, match=r"shape \(32,\)"):
        analysis.inverse_design(im2spec, np.ones(31), train)
    with pytest.raises(ValueError, match="all zeros"):
        analysis.inverse_design(im2spec, np.zeros(32), train)


# -------------------------------------------------------------------------- latent sweep
def test_latent_sweep_table(si, split):
    train, test = split
    rows = analysis.latent_sweep(train, test, "im2spec", dims=(1, 2), epochs=2, si=si,
                                 model_kwargs=SMALL_NET, return_models=True)
    assert [row["latent_dim"] for row in rows] == [1, 2]
    for row in rows:
        assert row["model"].latent_dim == row["latent_dim"]
        assert np.isfinite(row["test_nmse"]) and row["test_nmse"] > 0
        assert -1 <= row["r"] <= 1 and row["mse"] == pytest.approx(2 * (1 - row["r"]))
    with pytest.raises(ValueError, match="direction"):
        analysis.latent_sweep(train, test, "both")


# ------------------------------------------- the simulated dataset and the packaged models
@pytest.fixture(scope="module")
def nanocubes():
    return pw.datasets.nanocube_array(seed=0)


def test_nmf_of_simulated_scan_reconstructs_it(nanocubes):
    maps, comps = analysis.nmf(nanocubes, n_components=4)
    assert maps.shape == (4, *nanocubes.scan_shape) and comps.shape == (4, nanocubes.n_energy)
    assert np.all(np.diff(comps.argmax(axis=1)) >= 0)  # ordered by peak energy
    rec = np.einsum("chw,ce->hwe", maps, comps)
    assert nmse_percent(rec, np.clip(nanocubes.spectra, 0, None), axis=None) < 2.0


def test_packaged_im2spec_predicts_the_simulated_scan_from_its_haadf(nanocubes):
    from plasmonwidgets import pretrained

    if ("im2spec", 10) not in pretrained.available():
        pytest.skip("packaged im2spec_10 model not built (scripts/make_pretrained.py)")
    model = pretrained.load_default("im2spec", 10)
    pred = analysis.predict_spectrum_image(model, nanocubes, progress=False)
    r0, c0 = pred.metadata["prediction"]["origin"]
    h, w = pred.scan_shape
    measured = nanocubes.spectra[r0 : r0 + h, c0 : c0 + w]
    assert nmse_percent(pred.spectra, measured, axis=None) < 5.0
    _, test = pw.make_tiles(nanocubes, window=model.window).split("halves")
    assert np.nanmedian(analysis.error_map(model, test)) < 5.0
