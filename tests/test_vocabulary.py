"""One word per idea in the public API (docs/api.md), old names still accepted.

Each renamed keyword or function must give the same result under its new and its old name,
the old one with a ``DeprecationWarning`` that names the new one and points at the caller's
line; calls with the new names must not warn.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import plasmonwidgets as pw
from plasmonwidgets import analysis, preprocess, pretrained
from plasmonwidgets._compat import renamed_keywords
from plasmonwidgets.app.cli import build_parser

WINDOW = 8
N_ENERGY = 24
ENERGY = np.linspace(0.3, 1.5, N_ENERGY)


@pytest.fixture(scope="module")
def model():
    return pw.Im2Spec(window=WINDOW, n_energy=N_ENERGY, latent_dim=3, energy=ENERGY, device="cpu",
                      n_layers_enc=2, n_filters_enc=8, n_filters_dec=8, seed=0)


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(0).uniform(10, 20, (24, 28)).astype(np.float32)


@pytest.fixture(scope="module")
def si():
    rng = np.random.default_rng(1)
    spectra = rng.uniform(0, 5, (10, 12, N_ENERGY))
    spectra[0, 0] *= 40  # one bright pixel: "max" and "sum" give different factors
    return pw.SpectrumImage(spectra, ENERGY, rng.uniform(50, 100, (10, 12)))


def latent_points() -> np.ndarray:
    rng = np.random.default_rng(0)
    z = np.concatenate([np.zeros((30, 2)), np.ones((20, 2)), [[3.0, 0.0]] * 10])
    return z + 0.05 * rng.normal(size=z.shape)


def deprecated(old: str, new: str):
    """Expect one DeprecationWarning naming both words, attributed to this test file."""
    return pytest.warns(DeprecationWarning, match=rf"`{old}` is deprecated, use `{new}`")


@pytest.fixture
def strict():
    """Any DeprecationWarning (from any module) fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module="traitlets.*")
        yield


# --- counts: n_clusters -------------------------------------------------------------------

def test_cluster_latent_n_clusters_matches_positional_and_old_n():
    z = latent_points()
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        new = analysis.cluster_latent(z, n_clusters=3, method="kmeans")
        positional = analysis.cluster_latent(z, 3, method="kmeans")
    with deprecated("n", "n_clusters") as caught:
        old = analysis.cluster_latent(z, n=3, method="kmeans")
    assert caught[0].filename == __file__
    assert new.sizes.tolist() == [30, 20, 10]
    for other in (positional, old):
        np.testing.assert_array_equal(other.labels, new.labels)
        np.testing.assert_array_equal(other.centroids, new.centroids)


def test_cluster_latent_refuses_old_and_new_together():
    with pytest.raises(TypeError, match="pass only `n_clusters`"):
        analysis.cluster_latent(latent_points(), n=2, n_clusters=2)


def test_cluster_latent_error_names_n_clusters():
    with pytest.raises(ValueError, match="n_clusters must be between 1 and"):
        analysis.cluster_latent(latent_points(), n_clusters=0)


# --- batching: batch_size -----------------------------------------------------------------

def test_predict_spectrum_image_batch_size_equals_old_chunk(model, image, strict):
    new = analysis.predict_spectrum_image(model, image, scale=2, batch_size=7, progress=False)
    whole = analysis.predict_spectrum_image(model, image, scale=2, progress=False)
    with deprecated("chunk", "batch_size") as caught:
        old = analysis.predict_spectrum_image(model, image, scale=2, chunk=7, progress=False)
    assert caught[0].filename == __file__
    assert new.spectra.shape == (8, 10, N_ENERGY)
    np.testing.assert_array_equal(old.spectra, new.spectra)
    np.testing.assert_allclose(whole.spectra, new.spectra, rtol=1e-5, atol=1e-6)


def test_predict_spectrum_image_lazy_batch_size_equals_in_memory(model, image, strict):
    pytest.importorskip("dask.array")
    lazy = analysis.predict_spectrum_image(model, image, scale=2, batch_size=5, lazy=True, chunks=6)
    eager = analysis.predict_spectrum_image(model, image, scale=2, batch_size=5, progress=False)
    np.testing.assert_allclose(np.asarray(lazy.spectra), eager.spectra, rtol=1e-5, atol=1e-6)


def test_predict_spectrum_image_batch_size_is_checked(model, image):
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        analysis.predict_spectrum_image(model, image, scale=2, batch_size=0)


def test_predict_to_file_batch_size_equals_old_batch(model, image, tmp_path, strict):
    pytest.importorskip("hyperspy.api")
    options = dict(scale=2, chunks=5, precision="float32", scheduler="synchronous", progress=False)
    new = analysis.predict_to_file(model, image, tmp_path / "new.zspy", batch_size=9, **options)
    with deprecated("batch", "batch_size") as caught:
        old = analysis.predict_to_file(model, image, tmp_path / "old.zspy", batch=9, **options)
    assert any(w.filename == __file__ for w in caught)
    a, b = pw.load(new), pw.load(old)
    assert a.spectra.shape == (8, 10, N_ENERGY)
    np.testing.assert_array_equal(np.asarray(a.spectra), np.asarray(b.spectra))


def test_cli_predict_takes_batch_size_and_the_old_batch():
    base = ["predict", "image.hspy", "--model", "m.pt", "--out", "o.zspy"]
    parser = build_parser()
    assert parser.parse_args(base).batch_size == 4096
    assert parser.parse_args([*base, "--batch-size", "128"]).batch_size == 128
    assert parser.parse_args([*base, "--batch", "64"]).batch_size == 64


# --- errors: check_* raises, incompatibility returns the reason ----------------------------

def test_incompatibility_returns_the_reason_and_check_compatible_is_its_old_name(si, strict):
    fits = pw.Im2Spec(window=WINDOW, n_energy=N_ENERGY, energy=ENERGY, device="cpu")
    other = pw.Im2Spec(window=WINDOW, n_energy=N_ENERGY + 1, device="cpu")
    assert pretrained.incompatibility(fits, si) is None
    reason = pretrained.incompatibility(other, si)
    assert f"expects spectra with {N_ENERGY + 1} energy channels" in reason
    assert f"this data has {N_ENERGY}" in reason
    shifted = pretrained.incompatibility(fits, si.replace(energy=ENERGY + 0.5))
    assert "was trained on 0.3" in shifted
    with deprecated("check_compatible", "incompatibility") as caught:
        assert pretrained.check_compatible(other, si) == reason
    assert caught[0].filename == __file__
    with pytest.warns(DeprecationWarning):
        assert pretrained.check_compatible(fits, si) is None


def test_analysis_check_compatible_still_raises(si):
    from plasmonwidgets.analysis._inputs import check_compatible

    pairs = pw.make_tiles(si, WINDOW)
    with pytest.raises(ValueError):
        check_compatible(pw.Im2Spec(window=WINDOW, n_energy=N_ENERGY + 1, device="cpu"), pairs)


# --- signatures: si.normalize(mode, by=) ----------------------------------------------------

@pytest.mark.parametrize("mode", ["global", "spectrum"])
@pytest.mark.parametrize("by", ["max", "sum"])
def test_si_normalize_passes_by_through(si, mode, by):
    method = si.normalize(mode, by=by)
    function = preprocess.normalize(si, mode, by=by)
    np.testing.assert_array_equal(method.spectra, function.spectra)
    np.testing.assert_array_equal(method.denormalize().spectra, function.denormalize().spectra)
    np.testing.assert_allclose(method.denormalize().spectra, si.spectra, rtol=1e-6)


def test_si_normalize_defaults_and_by_matter(si):
    np.testing.assert_array_equal(si.normalize().spectra, preprocess.normalize(si).spectra)
    assert not np.allclose(si.normalize(by="max").spectra, si.normalize(by="sum").spectra)
    with pytest.raises(ValueError, match="by must be 'max' or 'sum'"):
        si.normalize("global", by="mean")


# --- the shared helper ----------------------------------------------------------------------

def test_renamed_keywords_keeps_the_signature_and_positional_calls():
    import inspect

    @renamed_keywords(old="new")
    def f(x, new=1):
        """Doc."""
        return x, new

    assert list(inspect.signature(f).parameters) == ["x", "new"]
    assert f.__doc__ == "Doc."
    assert f(1, 2) == (1, 2)
    with deprecated("old", "new"):
        assert f(1, old=3) == (1, 3)
