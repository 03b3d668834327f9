"""Deep ensemble (plasmonwidgets.ensemble) and interval calibration (analysis.calibration)."""

import numpy as np
import pytest

import plasmonwidgets as pw
from plasmonwidgets.analysis import calibration as cal
from plasmonwidgets.ensemble import member_seeds

WINDOW, N_ENERGY = 8, 8


def tiny(seed):
    return pw.Im2Spec(window=WINDOW, n_energy=N_ENERGY, latent_dim=2, n_filters_enc=4, n_filters_dec=4,
                      dilations=(1,), seed=seed, device="cpu")


def synthetic_pairs(n, *, seed, sigma=0.0):
    """Tiles whose mean brightness x sets a smooth spectrum f(x); targets f(x) + N(0, sigma)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0.0, 1.0, n)
    tiles = 100.0 + 50.0 * x[:, None, None] + rng.normal(0, 1.0, (n, WINDOW, WINDOW))
    energy = np.linspace(0.5, 2.0, N_ENERGY)
    clean = 5.0 + 3.0 * np.exp(-((energy[None, :] - 0.8 - x[:, None]) ** 2) / 0.1)
    noisy = clean + rng.normal(0.0, sigma, clean.shape)
    pos = np.stack(np.divmod(np.arange(n), 64), axis=1)
    return pw.TilePairs(tiles, noisy, pos, energy, (n // 64 + 1, 64)), clean


@pytest.fixture(scope="module")
def fitted():
    pairs, _ = synthetic_pairs(128, seed=0, sigma=0.1)
    ens = pw.Ensemble(tiny, n_members=3, seed=1)
    ens.fit(pairs, epochs=3, batch_size=32, precision="float32")
    return ens, pairs


def test_shapes_interval_and_inputs(fitted):
    ens, pairs = fitted
    mean, std = ens.predict(pairs)
    assert mean.shape == std.shape == (len(pairs), N_ENERGY)
    assert mean.dtype == std.dtype == np.float32
    assert (std > 0).all()
    assert ens.predict_members(pairs).shape == (3, len(pairs), N_ENERGY)
    # an array of tiles gives the same as the TilePairs
    mean2, std2 = ens.predict(pairs.images)
    np.testing.assert_array_equal(mean, mean2)
    np.testing.assert_array_equal(std, std2)
    lo90, hi90 = ens.interval(pairs, level=0.9)
    lo50, hi50 = ens.interval(pairs, level=0.5)
    assert (lo90 <= lo50).all() and (lo50 <= mean).all() and (mean <= hi50).all() and (hi50 <= hi90).all()
    np.testing.assert_allclose(hi90 - mean, cal.z_value(0.9) * std, rtol=1e-4, atol=1e-6)
    assert "3 x Im2Spec" in repr(ens)


def test_same_seed_same_predictions_other_seed_other():
    pairs, _ = synthetic_pairs(64, seed=2)
    runs = []
    for seed in (5, 5, 6):
        ens = pw.Ensemble(tiny, n_members=2, seed=seed)
        ens.fit(pairs, epochs=2, batch_size=32, precision="float32")
        runs.append(ens.predict(pairs))
    np.testing.assert_array_equal(runs[0][0], runs[1][0])
    np.testing.assert_array_equal(runs[0][1], runs[1][1])
    assert not np.array_equal(runs[0][0], runs[2][0])


def test_member_seeds_distinct_and_members_differ():
    seeds = member_seeds(0, 5)
    assert len(set(seeds)) == 5 and seeds == member_seeds(0, 5) and seeds != member_seeds(1, 5)
    ens = pw.Ensemble(tiny, n_members=2, seed=0)
    assert [m.config["seed"] for m in ens.members] == ens.seeds


def test_warm_start_and_reset():
    pairs, _ = synthetic_pairs(64, seed=3)
    ens = pw.Ensemble(tiny, n_members=2, seed=0)
    untrained = ens.predict(pairs)[0]
    ens.fit(pairs, epochs=1, batch_size=32, precision="float32")
    once = ens.predict(pairs)[0]
    ens.fit(pairs, epochs=1, batch_size=32, precision="float32")  # continues from `once`
    assert ens.n_fits == 2 and not np.array_equal(once, ens.predict(pairs)[0])
    ens.reset()
    assert ens.n_fits == 0 and ens.std_scale == 1.0
    np.testing.assert_array_equal(untrained, ens.predict(pairs)[0])


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_members must be an integer >= 2"):
        pw.Ensemble(tiny, n_members=1)
    with pytest.raises(TypeError, match="must return an Im2Spec"):
        pw.Ensemble(lambda s: object(), n_members=2)
    with pytest.raises(TypeError, match="model_factory must be a callable"):
        pw.Ensemble("im2spec", n_members=2)
    ens = pw.Ensemble(tiny, n_members=2)
    with pytest.raises(ValueError, match="give the true spectra"):
        ens.calibrate(np.zeros((3, WINDOW, WINDOW)))
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        ens.interval(np.zeros((3, WINDOW, WINDOW)), level=90)


def test_calibration_with_known_gaussian_noise():
    """Targets f(x) + N(0, sigma): after the post-hoc scale fitted on a validation set, the
    90 % interval holds ~90 % of held-out noisy targets (the raw spread misses the noise)."""
    sigma = 0.3
    train, _ = synthetic_pairs(128, seed=10, sigma=sigma)
    val, _ = synthetic_pairs(256, seed=11, sigma=sigma)
    test, _ = synthetic_pairs(256, seed=12, sigma=sigma)
    ens = pw.Ensemble(tiny, n_members=3, seed=0)
    ens.fit(train, epochs=4, batch_size=64, precision="float32")
    mean, raw_std = ens.predict(test)
    raw = cal.coverage(mean, raw_std, test.spectra, level=0.9)
    scale = ens.calibrate(val, level=0.9)
    assert scale > 1.0  # the members' spread alone is narrower than the noise
    mean, std = ens.predict(test)
    np.testing.assert_allclose(std, raw_std * np.float32(scale), rtol=1e-5)
    after = cal.coverage(mean, std, test.spectra, level=0.9)
    assert raw < 0.85 and 0.85 <= after <= 0.95, (raw, after)
    curve = cal.calibration_curve(mean, std, test.spectra)
    assert curve.levels.shape == curve.observed.shape == (9,)
    assert np.all(np.diff(curve.observed) >= 0)
    assert abs(curve.observed[-1] - 0.9) <= 0.05


# ---------------------------------------------------------------- calibration helpers
def test_coverage_curve_and_scale_on_exact_gaussians():
    rng = np.random.default_rng(0)
    true = rng.normal(1.0, 2.0, size=(200, 500))
    mean, std = np.ones_like(true), np.full_like(true, 2.0)
    curve = cal.calibration_curve(mean, std, true)
    np.testing.assert_allclose(curve.observed, curve.levels, atol=0.01)
    assert curve.max_gap < 0.01
    assert cal.fit_std_scale(mean, std / 4, true) == pytest.approx(4.0, rel=0.02)
    assert cal.coverage(mean, std * 100, true, level=0.5) == 1.0


def test_uncertainty_map_and_correlation():
    std = np.random.default_rng(1).uniform(size=(6, 5, 4))
    umap = cal.uncertainty_map(std)
    np.testing.assert_allclose(umap, std.sum(-1))
    np.testing.assert_allclose(cal.uncertainty_map(std.reshape(30, 4), (6, 5)), umap)
    corr = cal.uncertainty_error_correlation(umap, np.exp(umap))
    assert corr["spearman"] == pytest.approx(1.0) and 0.9 < corr["pearson"] <= 1.0
    anti = cal.uncertainty_error_correlation(umap, -umap)
    assert anti["spearman"] == pytest.approx(-1.0)
    assert np.isnan(cal.uncertainty_error_correlation(np.ones((3, 3)), umap[:3, :3])["spearman"])
    true = np.ones((2, 3, 4))
    err = cal.prediction_error_map(true * 1.1, true)
    np.testing.assert_allclose(err, 1.0)


def test_calibration_bad_inputs():
    with pytest.raises(ValueError, match="same shape"):
        cal.coverage(np.zeros(3), np.ones(4), np.zeros(3))
    with pytest.raises(ValueError, match="non-negative"):
        cal.coverage(np.zeros(3), -np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="every std is 0"):
        cal.fit_std_scale(np.zeros(3), np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match=r"\(h, w, E\)"):
        cal.uncertainty_map(np.ones((3, 4)))
    with pytest.raises(ValueError, match="strictly between"):
        cal.calibration_curve(np.zeros(3), np.ones(3), np.zeros(3), levels=[0.5, 1.0])
