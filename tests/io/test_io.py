"""Loading real instrument files, and exact round trips through our own formats."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest

import plasmonwidgets as pw
from plasmonwidgets.io import STAND_IN, DataFileError, from_hyperspy
from plasmonwidgets.spectrum_image import Normalization, SpectrumImage

hs = pytest.importorskip("hyperspy.api")
exspy = pytest.importorskip("exspy")


def _zarr_missing() -> bool:
    try:
        import numcodecs  # noqa: F401
        import zarr  # noqa: F401
    except ImportError:
        return True
    return False


needs_zarr = pytest.mark.skipif(_zarr_missing(), reason=".zspy needs zarr<3 and numcodecs "
                                "(pip install 'rosettasciio[zspy]')")
FORMATS = ["hspy", pytest.param("zspy", marks=needs_zarr), "npz"]


@pytest.fixture(scope="session")
def velox_signals(velox):
    return hs.load(str(velox))


@pytest.fixture(scope="session")
def velox_si(velox) -> SpectrumImage:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return pw.load(velox)


def _low_loss_index(signals) -> int:
    eels = [i for i, s in enumerate(signals) if type(s).__name__ == "EELSSpectrum"]
    return min(eels, key=lambda i: signals[i].axes_manager.signal_axes[0].offset)


def _index(signals, title) -> int:
    return next(i for i, s in enumerate(signals) if s.metadata.General.title == title)


# --------------------------------------------------------------------------- real files
def test_velox_default_picks_low_loss_si_and_df_image(velox, velox_signals):
    with pytest.warns(UserWarning, match=r"other EELS SIs: .*480.*signal=") as rec:
        si = pw.load(velox)
    assert "lowest start energy" in str(rec[0].message)
    i = _low_loss_index(velox_signals)
    raw = velox_signals[i]
    df = velox_signals[_index(velox_signals, "DF-S")]
    assert si.scan_shape == (16, 20) and si.n_energy == 2048 and si.scale == 1
    assert si.energy[0] == pytest.approx(-21.5026) and si.energy[1] - si.energy[0] == (
        pytest.approx(0.1692))
    np.testing.assert_array_equal(si.spectra, raw.data.astype(np.float32))
    np.testing.assert_array_equal(si.haadf, df.data.astype(np.float32))
    assert si.pixel_unit == "nm" and si.pixel_size == pytest.approx(158.658, rel=1e-5)
    src = si.metadata["source"]
    assert src["signal_index"] == i and src["haadf_signal"] == "DF-S"
    assert Path(src["file"]) == velox and len(src["alternatives"]) == 2
    assert "DF-S" in si.metadata["haadf_source"]


def test_velox_choose_si_by_index_and_haadf_by_title(velox, velox_signals):
    i480 = next(i for i, s in enumerate(velox_signals)
                if type(s).__name__ == "EELSSpectrum"
                and s.axes_manager.signal_axes[0].offset == pytest.approx(480))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an explicit choice leaves nothing to warn about
        si = pw.load(velox, signal=i480, haadf_signal="Fe")
    assert si.energy[0] == pytest.approx(480)
    np.testing.assert_array_equal(si.spectra, velox_signals[i480].data.astype(np.float32))
    fe = velox_signals[_index(velox_signals, "Fe")]
    np.testing.assert_array_equal(si.haadf, fe.data.astype(np.float32))
    assert si.metadata["source"]["haadf_signal"] == "Fe"


def test_velox_title_shared_by_three_sis_picks_low_loss(velox):
    with pytest.warns(UserWarning, match="other EELS SIs"):
        si = pw.load(velox, signal="EELS")
    assert si.energy[0] == pytest.approx(-21.5026)


def test_dm4_without_haadf_gets_summed_intensity_stand_in(dm4):
    with pytest.warns(UserWarning, match="stand-in"):
        si = pw.load(dm4)
    assert si.scan_shape == (2, 2) and si.n_energy == 2048 and si.scale == 1
    assert si.energy[0] == 300 and si.energy[1] == 301
    assert si.metadata["haadf_source"] == STAND_IN
    np.testing.assert_allclose(si.haadf, si.spectra.astype(np.float64).sum(-1), rtol=1e-6)
    assert si.pixel_unit == "µm" and si.pixel_size == pytest.approx(0.0019921, rel=1e-4)
    assert si.metadata["acquisition"]["TEM"]["beam_energy"] == 200.0


@pytest.mark.parametrize("source", ["velox", "dm4"])
def test_lazy_real_file_stays_dask_until_compute(source, velox, dm4):
    path = velox if source == "velox" else dm4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        lazy = pw.load(path, lazy=True)
        eager = pw.load(path)
    assert lazy.is_lazy and not eager.is_lazy
    assert type(lazy.spectra).__module__.startswith("dask")
    done = lazy.compute()
    assert not done.is_lazy
    np.testing.assert_array_equal(done.spectra, eager.spectra)
    np.testing.assert_array_equal(lazy.haadf, eager.haadf)
    np.testing.assert_array_equal(lazy.energy, eager.energy)


# --------------------------------------------------------------------------- round trips
def _rich_si(uniform: bool = True, scale: int = 2, norm: str | None = "spectrum") -> SpectrumImage:
    rng = np.random.default_rng(1)
    h, w, n = 6, 5, 40
    if uniform:
        energy = np.linspace(0.2, 1.2, n)
    else:
        energy = 0.2 + np.cumsum(rng.uniform(0.005, 0.05, n))
    metadata = {
        "title": "synthetic µ-cubes",
        "regions": rng.integers(0, 6, (h, w)),
        "region_names": ["interior", "gap", "vacancy", "hole", "edge", "vacuum"],
        "labels": {0: "interior", 1: "gap", (2, 3): "pair"},
        "particles": [{"centre_nm": (12.5, 30.0), "edge_nm": 40.0,
                       "corners": rng.random((4, 2))}],
        "misc": {
            "tuple": (1, "a", None, 2.5), "nan": float("nan"), "inf": -float("inf"),
            "f32": np.float32(1.25), "i64": np.int64(-7), "b": np.bool_(True), "flag": False,
            "none": None, "strings": np.array(["a", "bcd"]), "empty": np.zeros((0, 3)),
            "when": np.datetime64("2024-01-02T03:04:05"), "big": 2**70,
            "table": np.array([(1, 2.0)], dtype=[("a", "<i4"), ("b", "<f8")]),
            "scalar_array": np.array(3.5), "path": Path("/data/scan.dm4"),
            "__tuple__": "a key that looks like a tag", "f16": np.arange(3, dtype=np.float16),
        },
    }
    normalization = None
    if norm == "spectrum":
        normalization = Normalization("spectrum", rng.random((h, w, 1)), rng.random((h, w, 1)) + 1)
    elif norm == "global":
        normalization = Normalization("global", 0.5, 3.0)
    return SpectrumImage(
        rng.random((h, w, n), dtype=np.float32) * 1e3, energy,
        rng.random((scale * h, scale * w), dtype=np.float32), scale=scale,
        pixel_size=0.37, pixel_unit="nm", metadata=metadata, normalization=normalization)


def assert_same(a, b, where="metadata"):
    """Exact equality: same types, dtypes, shapes and values (NaN equals NaN)."""
    assert type(a) is type(b), f"{where}: {type(a)} != {type(b)}"
    if isinstance(a, dict):
        assert list(a) == list(b), f"{where}: keys {list(a)} != {list(b)}"
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, (np.ndarray, np.generic)):
        assert a.dtype == b.dtype and np.shape(a) == np.shape(b), where
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), where
    elif isinstance(a, float) and np.isnan(a):
        assert np.isnan(b), where
    else:
        assert a == b, where


def assert_si_equal(a: SpectrumImage, b: SpectrumImage) -> None:
    assert np.asarray(a.spectra).tobytes() == np.asarray(b.spectra).tobytes()
    assert a.haadf.tobytes() == b.haadf.tobytes()
    assert a.energy.tobytes() == b.energy.tobytes()
    assert (a.scale, a.pixel_size, a.pixel_unit) == (b.scale, b.pixel_size, b.pixel_unit)
    # metadata["source"] describes the file last read, so it differs after a round trip
    assert_same({k: v for k, v in a.metadata.items() if k != "source"},
                 {k: v for k, v in b.metadata.items() if k != "source"})
    if a.normalization is None:
        assert b.normalization is None
    else:
        assert a.normalization.mode == b.normalization.mode
        assert_same(a.normalization.offset, b.normalization.offset, "offset")
        assert_same(a.normalization.factor, b.normalization.factor, "factor")


@pytest.mark.parametrize("uniform", [True, False], ids=["uniform", "nonuniform"])
@pytest.mark.parametrize("ext", FORMATS)
def test_save_load_round_trip_is_exact(tmp_path, ext, uniform):
    si = _rich_si(uniform=uniform, norm="spectrum" if uniform else "global")
    out = si.save(tmp_path / f"scan.{ext}")
    assert out == tmp_path / f"scan.{ext}" and out.exists()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # our own files load silently
        back = pw.load(out)
    assert_si_equal(si, back)
    assert back.metadata["source"]["name"] == f"scan.{ext}"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"scan.{ext}"]  # no temp leftovers


@pytest.mark.parametrize("ext", FORMATS)
def test_real_file_round_trip_is_exact(tmp_path, velox_si, ext):
    back = pw.load(velox_si.save(tmp_path / f"velox.{ext}"))
    assert_si_equal(velox_si, back)


@pytest.mark.parametrize("ext", ["hspy", pytest.param("zspy", marks=needs_zarr)])
def test_lazy_load_and_lazy_save_of_own_files(tmp_path, ext):
    si = _rich_si()
    path = si.save(tmp_path / f"a.{ext}")
    lazy = pw.load(path, lazy=True)
    assert lazy.is_lazy
    assert_si_equal(si, lazy.compute())
    again = pw.load(lazy.save(tmp_path / f"b.{ext}"))  # streamed from the lazy SI
    assert_si_equal(si, again)


def test_npz_is_read_whole_even_when_lazy_requested(tmp_path):
    path = _rich_si().save(tmp_path / "a.npz")
    with pytest.warns(UserWarning, match="always read into memory"):
        si = pw.load(path, lazy=True)
    assert not si.is_lazy


def test_npz_holds_plain_arrays_readable_without_pickle(tmp_path):
    si = _rich_si()
    with np.load(si.save(tmp_path / "a.npz"), allow_pickle=False) as z:
        np.testing.assert_array_equal(z["spectra"], si.spectra)
        np.testing.assert_array_equal(z["haadf"], si.haadf)
        assert '"format": "plasmonwidgets"' in str(z["header"])


# --------------------------------------------------------------------------- HyperSpy objects
def test_to_hyperspy_is_calibrated_uniform():
    si = _rich_si(uniform=True, scale=2)
    eels, haadf = si.to_hyperspy()
    assert isinstance(eels, exspy.signals.EELSSpectrum)
    assert isinstance(haadf, hs.signals.Signal2D)
    assert eels.data.shape == (6, 5, 40) and haadf.data.shape == (12, 10)
    for ax in eels.axes_manager.navigation_axes:
        assert ax.scale == 0.37 and ax.units == "nm"
    e_ax = eels.axes_manager.signal_axes[0]
    assert e_ax.is_uniform and e_ax.units == "eV"
    assert e_ax.offset == 0.2 and e_ax.scale == pytest.approx(1.0 / 39, rel=1e-12)
    for ax in haadf.axes_manager.signal_axes:
        assert ax.scale == pytest.approx(0.185) and ax.units == "nm"
    assert eels.metadata.General.title == "synthetic µ-cubes"
    assert eels.metadata.Signal.signal_type == "EELS"


def test_to_hyperspy_nonuniform_energy_uses_data_axis():
    si = _rich_si(uniform=False)
    eels, _ = si.to_hyperspy()
    ax = eels.axes_manager.signal_axes[0]
    assert not ax.is_uniform
    assert ax.axis.tobytes() == si.energy.tobytes()


@pytest.mark.parametrize("uniform", [True, False])
def test_from_hyperspy_round_trip_is_exact(uniform):
    si = _rich_si(uniform=uniform)
    eels, haadf = si.to_hyperspy()
    assert_si_equal(si, SpectrumImage.from_hyperspy(eels))
    assert_si_equal(si, from_hyperspy(eels, haadf))


def test_to_hyperspy_hands_out_copies():
    si = _rich_si()
    before = si.spectra.copy()
    eels, haadf = si.to_hyperspy()
    eels.data[:] = 0
    haadf.data[:] = 0
    np.testing.assert_array_equal(si.spectra, before)
    assert si.haadf.any()


def test_from_hyperspy_plain_signals_use_axis_calibration():
    rng = np.random.default_rng(0)
    axes = [dict(name="y", size=4, scale=2.0, units="nm"),
            dict(name="x", size=3, scale=2.0, units="nm"),
            dict(name="Energy loss", size=10, offset=0.5, scale=0.1, units="eV")]
    eels = exspy.signals.EELSSpectrum(rng.random((4, 3, 10)), axes=axes)
    eels.metadata.General.title = "plain"
    img = hs.signals.Signal2D(rng.random((12, 9)), axes=[
        dict(name="y", size=12, scale=2 / 3, units="nm"),
        dict(name="x", size=9, scale=0.6667e-3, units="µm")])
    si = from_hyperspy(eels, img)
    assert si.scale == 3 and si.pixel_size == 2.0 and si.pixel_unit == "nm"
    np.testing.assert_allclose(si.energy, 0.5 + 0.1 * np.arange(10))
    assert si.metadata["title"] == "plain"


def test_from_hyperspy_without_haadf_warns_and_stands_in():
    eels = exspy.signals.EELSSpectrum(np.ones((3, 4, 5)))
    eels.axes_manager.signal_axes[0].units = "eV"
    with pytest.warns(UserWarning, match="stand-in"):
        si = from_hyperspy(eels)
    assert si.metadata["haadf_source"] == STAND_IN
    np.testing.assert_array_equal(si.haadf, np.full((3, 4), 5.0, np.float32))


def test_from_hyperspy_after_cropping_in_hyperspy_ignores_stale_group():
    si = _rich_si()
    eels, haadf = si.to_hyperspy()
    cropped = eels.isig[5:25]
    with pytest.warns(UserWarning, match="cropped or binned"):
        back = from_hyperspy(cropped, haadf)
    np.testing.assert_allclose(back.energy, si.energy[5:25], rtol=1e-12)
    assert back.normalization is None
    assert back.metadata["region_names"] == si.metadata["region_names"]


def test_from_hyperspy_rejects_non_si():
    with pytest.raises(ValueError, match="2 navigation"):
        from_hyperspy(exspy.signals.EELSSpectrum(np.ones((3, 5))))
    with pytest.raises(TypeError, match="HyperSpy signal"):
        from_hyperspy(np.ones((3, 4, 5)))


# --------------------------------------------------------------------------- atomic save
def test_overwrite_false_refuses_and_keeps_file(tmp_path):
    path = _rich_si().save(tmp_path / "a.hspy")
    stamp = path.stat().st_mtime_ns
    with pytest.raises(FileExistsError, match="overwrite=True"):
        _rich_si(uniform=False).save(path, overwrite=False)
    assert path.stat().st_mtime_ns == stamp


def _failing_lazy_si(si: SpectrumImage) -> SpectrumImage:
    """The SI as a dask array whose second row-chunk fails to compute, mid-write."""
    import dask.array as da

    def boom(block, block_info=None):
        if block_info[0]["chunk-location"][0] == 1:
            raise OSError("disk vanished (simulated mid-write failure)")
        return block

    spectra = da.from_array(si.spectra, chunks=(2, -1, -1)).map_blocks(boom, dtype=np.float32)
    return si.replace(spectra=spectra)


@pytest.mark.parametrize("ext", FORMATS)
def test_failed_save_leaves_previous_file_intact(tmp_path, ext):
    old = _rich_si()
    path = old.save(tmp_path / f"a.{ext}")
    new = _failing_lazy_si(_rich_si(uniform=False))
    with pytest.raises(OSError, match="simulated mid-write"):
        new.save(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"a.{ext}"]
    assert_si_equal(old, pw.load(path))


@pytest.mark.parametrize("ext", FORMATS)
def test_overwrite_replaces_previous_file(tmp_path, ext):
    path = _rich_si().save(tmp_path / f"a.{ext}")
    new = _rich_si(uniform=False, norm=None)
    new.save(path)
    assert_si_equal(new, pw.load(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"a.{ext}"]


# --------------------------------------------------------------------------- separate files
@pytest.fixture(scope="session")
def separate_files(tmp_path_factory, velox_signals):
    """The velox low-loss SI and its DF image upsampled 4x, as two HyperSpy files."""
    out = tmp_path_factory.mktemp("separate")
    eels = velox_signals[_low_loss_index(velox_signals)]
    df = velox_signals[_index(velox_signals, "DF-S")]
    fine = np.kron(df.data, np.ones((4, 4), dtype=df.data.dtype))
    axes = [dict(name=ax.name, size=4 * ax.size, scale=ax.scale / 4, units=ax.units)
            for ax in reversed(df.axes_manager.signal_axes)]
    haadf = hs.signals.Signal2D(fine, axes=axes)
    haadf.metadata.General.title = "HAADF"
    eels.save(out / "si.hspy", overwrite=True)
    haadf.save(out / "haadf.hspy", overwrite=True)
    return out / "si.hspy", out / "haadf.hspy", fine


@pytest.mark.parametrize("lazy", [False, True])
def test_separate_haadf_file_finer_by_integer_factor(separate_files, lazy):
    si_path, haadf_path, fine = separate_files
    si = pw.load(si_path, haadf=haadf_path, lazy=lazy)
    assert si.is_lazy == lazy
    assert si.scale == 4 and si.haadf.shape == (64, 80) and si.scan_shape == (16, 20)
    np.testing.assert_array_equal(si.haadf, fine.astype(np.float32))
    assert si.metadata["source"]["haadf_file"] == str(haadf_path)
    assert "haadf.hspy" in si.metadata["haadf_source"]


def test_separate_haadf_file_with_other_shape_is_refused(separate_files, tmp_path):
    si_path, _, fine = separate_files
    bad = hs.signals.Signal2D(fine[:, :78])
    bad.save(tmp_path / "cropped.hspy")
    with pytest.raises(DataFileError, match=r"\(64, 78\).*\(16, 20\)") as exc:
        pw.load(si_path, haadf=tmp_path / "cropped.hspy")
    assert "cropped.hspy" in str(exc.value) and "si.hspy" in str(exc.value)


def test_own_file_with_separate_haadf_replaces_stored_image(tmp_path, separate_files):
    si_path, haadf_path, fine = separate_files
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        plain = pw.load(si_path)
    own = plain.save(tmp_path / "own.npz")
    si = pw.load(own, haadf=haadf_path)
    assert si.scale == 4
    np.testing.assert_array_equal(si.haadf, fine.astype(np.float32))
    assert "haadf.hspy" in si.metadata["haadf_source"]


def test_save_returns_path_and_accepts_str(tmp_path):
    out = save_target = str(tmp_path / "x.npz")
    assert _rich_si().save(save_target) == Path(out)
    assert os.path.isfile(out)


def test_to_hyperspy_with_unstorable_metadata_warns_but_converts():
    si = _rich_si()
    si.metadata["fit"] = object()
    with pytest.warns(UserWarning, match=r"metadata\['fit'\].*left out"):
        eels, _ = si.to_hyperspy()
    back = from_hyperspy(eels)
    assert back.metadata == {} and back.spectra.tobytes() == si.spectra.tobytes()


@pytest.mark.parametrize("ext", FORMATS)
def test_simulated_dataset_round_trip_with_normalisation(tmp_path, ext):
    si = pw.datasets.nanocube_array(seed=3, size=24, scale=2, cache=False, physics="toy")
    si = si.normalize("spectrum")
    back = pw.load(si.save(tmp_path / f"sim.{ext}"))
    assert_si_equal(si, back)
    np.testing.assert_array_equal(back.metadata["regions"], si.metadata["regions"])
    np.testing.assert_array_equal(back.denormalize().spectra, si.denormalize().spectra)


# --------------------------------------------------------------------------- HyperSpy interop
def _plain_load(path: Path):
    """What a HyperSpy user gets from our file, without plasmonwidgets."""
    sig = hs.load(str(path))
    return sig


def test_velox_scan_origin_units_and_beam_energy_survive_hspy(tmp_path, velox_si):
    assert velox_si.metadata["scan_origin"] == [pytest.approx(-3966.451), pytest.approx(-5553.031)]
    # Velox keeps the beam energy with the images, not the EELS SI: taken from there
    assert velox_si.metadata["acquisition"]["TEM"]["beam_energy"] == 300.0
    path = velox_si.save(tmp_path / "velox.hspy")
    eels = _plain_load(path)
    y, x = eels.axes_manager.navigation_axes[::-1]
    assert (y.offset, x.offset) == (pytest.approx(-3966.451), pytest.approx(-5553.031))
    assert y.units == x.units == "nm" and y.scale == pytest.approx(158.658, rel=1e-5)
    assert eels.metadata.Acquisition_instrument.TEM.beam_energy == 300.0
    back = pw.load(path)
    assert back.metadata["scan_origin"] == velox_si.metadata["scan_origin"]


def test_dm4_beam_energy_and_angles_in_hyperspy_metadata_tree(tmp_path, dm4):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        si = pw.load(dm4)
    eels, haadf = si.to_hyperspy()
    for sig in (eels, _plain_load(si.save(tmp_path / "dm4.hspy"))):
        tem = sig.metadata.Acquisition_instrument.TEM
        assert tem.beam_energy == 200.0 and tem.convergence_angle == 21.0
        assert tem.Detector.EELS.collection_angle == 62.0
        assert [ax.units for ax in sig.axes_manager.navigation_axes] == ["µm", "µm"]
    assert haadf.metadata.Acquisition_instrument.TEM.beam_energy == 200.0


def test_uncalibrated_scan_is_not_labelled_px_in_hyperspy():
    si = SpectrumImage(np.ones((2, 3, 4), np.float32), np.linspace(1, 2, 4),
                       np.ones((2, 3), np.float32), pixel_size=1.0, pixel_unit="px")
    eels, haadf = si.to_hyperspy()
    units = [ax.units for ax in (*eels.axes_manager.navigation_axes,
                                 *haadf.axes_manager.signal_axes)]
    assert "px" not in units, units


def test_si_without_length_unit_takes_the_haadf_calibration():
    eels = exspy.signals.EELSSpectrum(np.ones((4, 5, 8), np.float32))
    eels.axes_manager.signal_axes[0].units = "eV"
    image = hs.signals.Signal2D(np.ones((8, 10), np.float32))
    for ax in image.axes_manager.signal_axes:
        ax.scale, ax.units = 0.25, "nm"
    si = from_hyperspy(eels, image)
    assert si.scale == 2 and si.pixel_unit == "nm" and si.pixel_size == pytest.approx(0.5)


def test_haadf_offsets_follow_the_scan_origin():
    si = SpectrumImage(np.ones((2, 3, 4), np.float32), np.linspace(1, 2, 4),
                       np.ones((4, 6), np.float32), scale=2, pixel_size=2.0,
                       metadata={"scan_origin": [-10.0, 5.0]})
    eels, haadf = si.to_hyperspy()
    ey, ex = eels.axes_manager.navigation_axes[::-1]
    hy, hx = haadf.axes_manager.signal_axes[::-1]
    assert (ey.offset, ex.offset) == (-10.0, 5.0)
    # HAADF pixel centres: half a HAADF pixel before the SI pixel centre
    assert (hy.offset, hx.offset) == (-10.5, 4.5) and hy.scale == 1.0


def test_load_warnings_point_at_the_caller(velox):
    with pytest.warns(UserWarning, match="used EELS SI") as rec:
        pw.load(velox)
    assert {Path(w.filename).resolve() for w in rec} == {Path(__file__).resolve()}
