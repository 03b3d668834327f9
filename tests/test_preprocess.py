"""ZLP-tail removal, cropping, normalisation and binning."""

import numpy as np
import pytest

from plasmonwidgets import SpectrumImage
from plasmonwidgets.preprocess import fit_zlp_tail


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
    with pytest.raises(ValueError, match="energies > 0"):
        zero_start.remove_zlp()


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
