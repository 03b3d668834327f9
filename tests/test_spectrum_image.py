"""SpectrumImage construction, validation and copies."""

import numpy as np
import pytest

from plasmonwidgets import SpectrumImage


def make(h=6, w=5, e=12, s=2, **kw):
    rng = np.random.default_rng(1)
    return SpectrumImage(
        rng.random((h, w, e)), np.linspace(0.2, 1.2, e), rng.random((s * h, s * w)), **kw
    )


def test_arrays_are_float32_and_scale_is_inferred():
    si = make()
    assert si.spectra.dtype == np.float32 and si.haadf.dtype == np.float32
    assert si.scale == 2 and si.scan_shape == (6, 5) and si.n_energy == 12
    assert si.haadf_on_si_grid().shape == (6, 5)
    assert "6x5" in repr(si)


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.int32, np.uint16])
def test_other_dtypes_and_non_contiguous_input_are_converted(dtype):
    spectra = np.ones((4, 8, 10), dtype=dtype)[:, ::2]  # non-contiguous view
    si = SpectrumImage(spectra, np.arange(1, 11), np.ones((4, 4), dtype=dtype))
    assert si.spectra.flags.c_contiguous and si.spectra.dtype == np.float32
    np.testing.assert_array_equal(si.spectra, 1.0)


def test_haadf_average_matches_blocks():
    si = make(s=3)
    expected = si.haadf[:3, :3].mean()
    assert si.haadf_on_si_grid()[0, 0] == pytest.approx(expected)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(spectra=np.ones((4, 4))), "3 dimensions"),
        (dict(haadf=np.ones((4,))), "2 dimensions"),
        (dict(energy=np.arange(5.0)), "energy has 5 values"),
        (dict(energy=np.arange(10.0)[::-1]), "descending"),
        (dict(energy=np.r_[0, 1, 1, 2, 3, 4, 5, 6, 7, 8.0]), "strictly increasing"),
        (dict(energy=np.r_[np.nan, np.arange(9.0)]), "NaN/Inf"),
        (dict(energy=np.zeros((0,))), "empty"),
        (dict(haadf=np.ones((9, 8))), "not an integer multiple"),
        (dict(haadf=np.ones((8, 12))), "not an integer multiple"),
        (dict(scale=3), "does not match"),
        (dict(scale=0), "scale must be"),
        (dict(pixel_size=-1.0), "pixel_size"),
        (dict(spectra=np.full((4, 4, 10), np.inf)), "NaN/Inf"),
        (dict(spectra=np.zeros((0, 4, 10))), "empty"),
        (dict(spectra=np.array([["a"]], dtype=object)), "real numbers"),
    ],
)
def test_bad_input_raises_a_clear_error(kwargs, message):
    args = dict(spectra=np.ones((4, 4, 10)), energy=np.arange(10.0), haadf=np.ones((8, 8)))
    args.update(kwargs)
    with pytest.raises((ValueError, TypeError), match=message):
        SpectrumImage(**args)


def test_nan_pixel_error_names_the_index():
    spectra = np.ones((4, 4, 10))
    spectra[2, 3, 7] = np.nan
    with pytest.raises(ValueError, match=r"\(2, 3, 7\)"):
        SpectrumImage(spectra, np.arange(10.0), np.ones((4, 4)))


def test_replace_returns_a_new_object_and_leaves_the_original():
    si = make()
    si.metadata["title"] = "a"
    other = si.replace(pixel_size=2.0)
    other.metadata["title"] = "b"
    assert si.pixel_size == 1.0 and si.metadata["title"] == "a"
    assert other.pixel_size == 2.0


def test_energy_is_read_only():
    si = make()
    with pytest.raises(ValueError):
        si.energy[0] = 5.0


def test_one_pixel_wide_scan_is_accepted():
    si = SpectrumImage(np.ones((1, 7, 10)), np.arange(10.0) + 1, np.ones((1, 7)))
    assert si.scan_shape == (1, 7)


def test_repr_shows_what_a_user_needs_to_know():
    si = make(metadata={"haadf_source": "'HAADF' (#0) in scan.emd",
                        "acquisition": {"TEM": {"beam_energy": 200.0}}})
    text = repr(si)
    for part in ("scan 6x5", "12 channels 0.2 to 1.2 eV", "HAADF 12x10 (scale 2, source 'HAADF' (#0) "
                 "in scan.emd)", "SI pixel 1 nm", "intensity: counts", "beam energy 200 keV",
                 "history: none (as loaded)"):
        assert part in text, part
    assert "beam energy" not in repr(make())  # unknown: not shown
    done = si.crop(0.3, 1.1).normalize("spectrum")
    assert "intensity: normalised (spectrum/max)" in repr(done)
    assert "history: crop(0.3-1.1 eV) -> normalize(mode=spectrum, by=max)" in repr(done)
    assert (si.intensity_unit, done.intensity_unit) == ("counts", "normalised")


def test_history_survives_a_save_and_load(tmp_path):
    import plasmonwidgets as pw

    si = make().crop(0.3, 1.1).normalize()
    for ext in ("hspy", "npz"):
        back = pw.load(si.save(tmp_path / f"scan.{ext}"))
        assert back.history == si.history, ext
