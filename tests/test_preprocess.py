"""ZLP-tail removal, cropping, normalisation and binning."""

import numpy as np
import pytest

import plasmonwidgets as pw
from plasmonwidgets import SpectrumImage
from plasmonwidgets.preprocess import fit_zlp_tail
from plasmonwidgets.zlp import find_zlp


def tail_si(model="power", noise=False, seed=0, h=24, w=20):
    rng = np.random.default_rng(seed)
    e = np.linspace(0.05, 1.2, 116)
    peak = np.exp(-(((e - 0.5) / 0.08) ** 2)) + 0.4 * np.exp(-(((e - 0.9) / 0.05) ** 2))
    clean = peak[None, None, :] * rng.uniform(400, 900, (h, w, 1))
    if model == "power":
        a, r = rng.uniform(0.5, 2.0, (h, w, 1)), rng.uniform(2.0, 3.5, (h, w, 1))
        tail = a * e**-r
    else:
        a1, a2 = rng.uniform(2e3, 5e3, (h, w, 1)), rng.uniform(200, 400, (h, w, 1))
        tail = a1 * np.exp(-e / 0.04) + a2 * np.exp(-e / 0.12)
    raw = clean + tail
    if noise:
        raw = rng.poisson(raw).astype(float)
    si = SpectrumImage(raw, e, np.ones((h, w)))
    si.metadata["true_tail"] = tail
    return si, clean, e


def rel_error(out, clean, e, e_min=0.25):
    keep = e >= e_min
    c = clean[..., keep]
    return np.sqrt(((out.crop(e_min, e[-1]).spectra - c) ** 2).sum() / (c**2).sum())


def test_power_law_tail_is_recovered_exactly_without_noise():
    si, clean, e = tail_si("power")
    out = si.remove_zlp(window=(0.05, 0.2), model="power")
    assert rel_error(out, clean, e) < 1e-4
    assert out.metadata["zlp_fit"]["r"].shape == si.scan_shape


def test_power_law_tail_removal_with_poisson_noise_is_close():
    si, clean, e = tail_si("power", noise=True)
    out = si.remove_zlp(window=(0.05, 0.2), model="power")
    # the Poisson noise itself sets the floor: the subtraction adds little on top of it
    keep = e >= 0.25
    noise = (si.spectra - clean - si.metadata["true_tail"])[..., keep]
    tail_free_noise = np.sqrt((noise**2).sum() / (clean[..., keep] ** 2).sum())
    assert rel_error(out, clean, e) <= 1.05 * tail_free_noise
    assert rel_error(out, clean, e) < 0.6 * rel_error(si, clean, e)


def test_two_exponential_tail_removal_beats_doing_nothing():
    si, clean, e = tail_si("exp2")
    out = si.remove_zlp(window=(0.05, 0.2), model="exp2")
    assert rel_error(out, clean, e) < 0.2 * rel_error(si, clean, e)


def test_fit_is_vectorised_and_returns_maps():
    si, _, _ = tail_si("power", h=3, w=4)
    tail, params = fit_zlp_tail(si, (0.05, 0.2))
    assert tail.shape == si.spectra.shape and set(params) == {"A", "r"}


def test_remove_zlp_bad_arguments():
    si, _, _ = tail_si(h=2, w=2)
    with pytest.raises(ValueError, match="unknown ZLP model"):
        si.remove_zlp(model="gauss")
    with pytest.raises(ValueError, match="at least 3"):
        si.remove_zlp(window=(0.05, 0.06))
    with pytest.raises(ValueError, match="start < end"):
        si.remove_zlp(window=(0.2, 0.1))
    zero_start = SpectrumImage(np.ones((2, 2, 10)), np.linspace(0, 1, 10), np.ones((2, 2)))
    with pytest.raises(ValueError, match="no zero-loss peak stands out"):
        zero_start.remove_zlp()
    with pytest.raises(ValueError, match="energies > 0 above the peak"):
        zero_start.remove_zlp(window=(0.0, 0.5))


def test_crop_keeps_the_range_and_rejects_empty_ranges():
    si, _, _ = tail_si(h=2, w=2)
    out = si.crop(0.2, 1.0)
    assert out.energy[0] >= 0.2 and out.energy[-1] <= 1.0
    assert out.spectra.shape[-1] == out.energy.size
    with pytest.raises(ValueError, match="at least 2"):
        si.crop(5.0, 6.0)
    with pytest.raises(ValueError, match="e_min < e_max"):
        si.crop(1.0, 0.2)
    with pytest.raises(ValueError, match="finite"):
        si.crop(np.nan, 1.0)


@pytest.mark.parametrize("mode", ["global", "spectrum"])
@pytest.mark.parametrize("by", ["max", "sum"])
def test_normalize_is_invertible(mode, by):
    si, _, _ = tail_si(h=3, w=3)
    norm = si.normalize(mode) if by == "max" else si.replace().normalize(mode)
    back = norm.denormalize()
    np.testing.assert_allclose(back.spectra, si.spectra, rtol=1e-5)
    assert norm.normalization is not None and back.normalization is None
    with pytest.raises(ValueError, match="already normalised"):
        norm.normalize()


def test_normalize_all_zero_spectra_warns_and_stays_finite():
    spectra = np.ones((2, 2, 5))
    spectra[0, 0] = 0
    si = SpectrumImage(spectra, np.arange(1.0, 6.0), np.ones((2, 2)))
    with pytest.warns(UserWarning, match="all-zero"):
        out = si.normalize("spectrum")
    assert np.isfinite(out.spectra).all()


def test_bin_sums_counts_and_keeps_the_fine_haadf():
    si = SpectrumImage(np.ones((5, 6, 9)), np.arange(1.0, 10.0), np.arange(120.0).reshape(10, 12))
    out = si.bin(spatial=2, energy=3)
    assert out.scan_shape == (2, 3) and out.n_energy == 3
    np.testing.assert_array_equal(out.spectra, 2 * 2 * 3)
    assert out.scale == 4 and out.haadf.shape == (8, 12) and out.pixel_size == 2.0
    np.testing.assert_allclose(out.energy, [2, 5, 8])
    with pytest.raises(ValueError, match="larger than the scan"):
        si.bin(spatial=6)
    with pytest.raises(ValueError, match="positive integer"):
        si.bin(spatial=0)


def test_negative_counts_after_zlp_removal_are_kept_not_clipped():
    si, _, _ = tail_si("power", noise=True, h=4, w=4)
    out = si.remove_zlp(window=(0.05, 0.2))
    assert (out.spectra < 0).any() and np.isfinite(out.spectra).all()


# ------------------------------------------------------------ ZLP on the axis (low loss)
def zlp_si(shape="lorentz", h=5, w=4, seed=0):
    """Low-loss SI from -1 eV: a ZLP at 0 eV (FWHM 0.1 eV), a plasmon at 1.5 eV."""
    rng = np.random.default_rng(seed)
    e = np.linspace(-1.0, 3.0, 801)
    gamma = 0.05  # half width at half maximum, eV
    if shape == "lorentz":  # tail ~ E^-2 far from the peak
        zlp = gamma**2 / (e**2 + gamma**2)
    else:  # a Gaussian core on a power-law tail joined where the core has died out
        zlp = np.exp(-0.5 * (e / (gamma / 1.1774)) ** 2) + 2e-3 * np.clip(np.abs(e), 0.25, None) ** -3
    plasmon = 3e-3 * np.exp(-0.5 * ((e - 1.5) / 0.15) ** 2)
    amp = rng.uniform(0.5, 2.0, (h, w, 1)) * 1e6
    si = SpectrumImage((zlp + plasmon) * amp, e, np.ones((h, w)))
    return si, plasmon * amp, e


@pytest.mark.parametrize("shape", ["lorentz", "gauss+tail"])
def test_zlp_on_the_axis_is_found_and_its_tail_removed(shape):
    si, plasmon, e = zlp_si(shape)
    info = find_zlp(e, si.spectra.sum(axis=(0, 1)))
    assert info.kind == "zlp" and abs(info.centre) < 0.005 and info.fwhm == pytest.approx(0.1, rel=0.1)
    out = si.remove_zlp()
    step = out.history[-1]
    assert step["step"] == "remove_zlp" and step["window_rule"] == "auto"
    lo, hi = step["window"]
    # the documented rule: centre + 3 FWHM to centre + 6 FWHM
    assert lo == pytest.approx(info.centre + 3 * info.fwhm, abs=0.006)
    assert hi == pytest.approx(info.centre + 6 * info.fwhm, abs=0.006)
    assert out.metadata["zlp_fit"]["window"] == step["window"]
    # the channels of the peak itself are left as measured
    below = e < lo
    np.testing.assert_array_equal(out.spectra[..., below], si.spectra[..., below])
    cropped = out.crop(1.0, 2.5)
    keep = (e >= 1.0) & (e <= 2.5)
    err = np.sqrt(((cropped.spectra - plasmon[..., keep]) ** 2).sum() / (plasmon[..., keep] ** 2).sum())
    before = np.sqrt(((si.spectra[..., keep] - plasmon[..., keep]) ** 2).sum()
                     / (plasmon[..., keep] ** 2).sum())
    assert err < 0.1 * before and err < 0.1


def test_zlp_centre_is_the_origin_of_an_explicit_window_fit():
    si, plasmon, e = zlp_si("lorentz")
    shifted = si.replace(energy=e + 0.2)  # a ZLP at +0.2 eV (uncalibrated axis)
    out = shifted.remove_zlp(window=(0.6, 0.9))
    assert out.history[-1]["zlp"]["centre"] == pytest.approx(0.2, abs=0.005)
    keep = (e + 0.2 >= 1.2) & (e + 0.2 <= 2.7)
    err = np.abs(out.spectra[..., keep] - plasmon[..., keep]).max() / plasmon.max()
    assert err < 0.1
    with pytest.raises(ValueError, match="at or below the zero-loss peak's centre"):
        shifted.remove_zlp(window=(0.1, 0.6))


def test_core_loss_data_are_refused_with_a_pointer_to_a_background_fit():
    e = np.arange(300.0, 400.0)
    si = SpectrumImage(np.ones((2, 2, 1)) * 1e4 * (e / 300) ** -3, e, np.ones((2, 2)))
    with pytest.raises(ValueError, match=r"core-loss data.*remove_background"):
        si.remove_zlp()
    # an explicit window still fits (a user who knows where a tail is)
    assert si.remove_zlp(window=(300, 320)).history[-1]["window"] == [300.0, 320.0]


def test_flat_noise_spanning_zero_is_refused_not_fitted():
    rng = np.random.default_rng(0)
    e = np.linspace(-5, 20, 200)
    si = SpectrumImage(rng.poisson(100, (3, 3, 200)).astype(float), e, np.ones((3, 3)))
    with pytest.raises(ValueError, match="no zero-loss peak stands out"):
        si.remove_zlp()


def test_simulated_raw_scan_tail_gets_the_documented_automatic_window():
    raw = pw.datasets.nanocube_array(seed=0, size=16, zlp_tail=True)  # tail and a drifting axis
    out = raw.remove_zlp()
    step = out.history[-1]
    e0 = raw.energy[0]
    assert step["zlp"] == {"kind": "tail", "centre": 0.0}
    assert step["window"][0] == pytest.approx(e0) and step["window"][1] >= 3 * e0
    # the tail dominates the first channels before, not after
    head = raw.energy < 0.2
    assert np.abs(out.spectra[..., head]).mean() < 0.2 * raw.spectra[..., head].mean()
    ready = out.crop(0.2, 1.2)
    assert ready.energy[0] >= 0.2 and [s["step"] for s in ready.history] == ["remove_zlp", "crop"]


def test_history_and_repr_follow_the_processing_steps():
    si, _, _ = tail_si(h=3, w=3)
    assert si.history == () and "history: none" in repr(si) and si.intensity_unit == "counts"
    out = si.remove_zlp(window=(0.05, 0.2)).crop(0.2, 1.2).normalize()
    assert [s["step"] for s in out.history] == ["remove_zlp", "crop", "normalize"]
    text = repr(out)
    assert "given window 0.05-0.2 eV" in text and "crop(0.2-1.2 eV)" in text
    assert "normalised (global/max)" in text and out.intensity_unit == "normalised"
    assert repr(out) != repr(si) and si.history == ()  # the input keeps its own history
    assert out.denormalize().intensity_unit == "counts"


def test_bin_haadf_averages_blocks_and_divides_the_scale():
    haadf = np.arange(16 * 24, dtype=float).reshape(16, 24)
    si = SpectrumImage(np.ones((2, 3, 4)), np.arange(1.0, 5.0), haadf, pixel_size=2.0)
    assert si.scale == 8
    out = si.bin_haadf(4)
    assert out.scale == 2 and out.haadf.shape == (4, 6) and out.pixel_size == 2.0
    np.testing.assert_allclose(out.haadf[1, 2], haadf[4:8, 8:12].mean())
    assert out.history[-1] == {"step": "bin_haadf", "factor": 4}
    with pytest.raises(ValueError, match=r"does not divide the HAADF oversampling 8.*\[1, 2, 4, 8\]"):
        si.bin_haadf(3)
    with pytest.raises(ValueError, match="positive integer"):
        si.bin_haadf(0)


def _real_si(path):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pw.load(path)


def test_real_velox_low_loss_si_without_a_peak_is_refused_but_a_window_works(velox):
    si = _real_si(velox)
    assert si.energy[0] < 0 < si.energy[-1]
    with pytest.raises(ValueError, match="no zero-loss peak stands out"):
        si.remove_zlp()
    out = si.remove_zlp(window=(1.0, 5.0)).crop(0.2, 20.0)
    assert np.isfinite(out.spectra).all() and out.history[-1]["step"] == "crop"
    assert out.history[0]["window"] == [1.0, 5.0]


def test_real_dm4_core_loss_si_points_to_exspy_remove_background(dm4):
    si = _real_si(dm4)
    with pytest.raises(ValueError, match=r"core-loss.*remove_background"):
        si.remove_zlp()
