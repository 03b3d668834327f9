"""Hostile and unusual input across the layers: arrays, models, interrupted work, serving.

Each test backs a row of docs/reliability.md that no other test file covers. Real
objects throughout (small synthetic scans, narrow networks); every test runs in well
under two seconds on one CPU core.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import plasmonwidgets as pw
from plasmonwidgets import SpectrumImage, make_tiles
from plasmonwidgets.analysis import error_map
from plasmonwidgets.checkpoint import CheckpointError
from plasmonwidgets.metrics import nmse_percent
from plasmonwidgets.tiles import TilePairs
from plasmonwidgets.training import ProgressEvent, Trainer

WINDOW, N_ENERGY = 8, 16
NET = dict(latent_dim=2, n_filters_enc=8, n_filters_dec=8)


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def blob_si(h: int = 20, w: int = 20, seed: int = 0) -> SpectrumImage:
    """Blobs in the HAADF; each spectrum's peak position follows the local intensity."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    haadf = np.zeros((h, w))
    for _ in range(6):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        haadf += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 8.0)
    frac = haadf / haadf.max()
    e = np.linspace(0.2, 1.2, N_ENERGY)
    peak = 1.0 / (1 + ((e - (0.5 + 0.4 * frac[..., None])) / 0.08) ** 2)
    return SpectrumImage(50 * peak + 1, e, 100 + 900 * frac)


@pytest.fixture(scope="module")
def split():
    return make_tiles(blob_si(), window=WINDOW).split("halves")


def im2spec(**kw) -> pw.Im2Spec:
    return pw.Im2Spec(window=WINDOW, n_energy=N_ENERGY, device="cpu", **{**NET, **kw})


@pytest.fixture(scope="module")
def fitted():
    """An untrained but normalised Im2Spec (predictions in physical units)."""
    rng = np.random.default_rng(0)
    model = im2spec()
    model.fit_normalization(rng.uniform(100, 900, (32, WINDOW, WINDOW)),
                            rng.uniform(0, 50, (32, N_ENERGY)))
    return model


# ================================================================================ arrays
@pytest.mark.parametrize(("where", "index", "expected"), [
    ("spectra", [(0, 1, 2), (3, 3, 3)],
     "spectra contains 2 NaN/Inf values (first at index (0, 1, 2)); replace or mask them "
     "before building a SpectrumImage, e.g. with np.nan_to_num"),
    ("haadf", [(5, 6)],
     "haadf contains 1 NaN/Inf values (first at index (5, 6)); replace or mask them "
     "before building a SpectrumImage, e.g. with np.nan_to_num"),
])
def test_nan_and_inf_pixels_are_rejected_with_the_first_index(where, index, expected):
    arrays = dict(spectra=np.ones((4, 4, 10)), haadf=np.ones((8, 8)))
    bad = arrays[where]
    for i, idx in enumerate(index):
        bad[idx] = (np.inf, -np.inf, np.nan)[i % 3] if where == "spectra" else np.nan
    with pytest.raises(ValueError) as info:
        SpectrumImage(arrays["spectra"], np.arange(1.0, 11.0), arrays["haadf"])
    assert str(info.value) == expected


def test_nan_in_a_lazy_spectrum_image_is_caught_when_the_data_is_read():
    import dask.array as da

    spectra = np.ones((4, 4, 10))
    spectra[1, 2, 3] = np.nan
    si = SpectrumImage(da.from_array(spectra, chunks=2), np.arange(1.0, 11.0),
                       np.ones((8, 8)))
    assert si.is_lazy  # not read yet, so not checked yet
    with pytest.raises(ValueError) as info:
        si.compute()
    assert str(info.value) == (
        "spectra contains 1 NaN/Inf values (first at index (1, 2, 3)); replace or mask them "
        "before building a SpectrumImage, e.g. with np.nan_to_num")
    for step in (si.normalize, si.remove_zlp, lambda: si.bin(2)):
        with pytest.raises(ValueError, match=r"NaN/Inf values \(first at index \(1, 2, 3\)\)"):
            step()
    with pytest.raises(ValueError) as info:
        make_tiles(si, window=2)
    assert str(info.value) == (
        "spectra contains 1 NaN/Inf values in the tiled pixels (first at index (1, 2, 3)); "
        "replace or mask them before building a SpectrumImage, e.g. with np.nan_to_num")


@pytest.mark.parametrize(("energy", "expected"), [
    (np.arange(10.0, 0.0, -1.0), "energy axis is descending; reverse it and the spectra "
                                 "(spectra[..., ::-1]) so energy increases"),
    (np.r_[1, 3, 2, 4, 5, 6, 7, 8, 9, 10.0], "energy axis must be strictly increasing"),
    (np.r_[1, 2, 2, 3, 4, 5, 6, 7, 8, 9.0], "energy axis must be strictly increasing"),
    (np.zeros(0), "energy axis is empty"),
    (np.r_[np.nan, np.arange(2.0, 11.0)], "energy axis contains NaN/Inf"),
    (np.arange(5.0), "energy has 5 values but spectra have 10 channels"),
    (np.ones((2, 5)), "energy must be 1-D, got shape (2, 5)"),
])
def test_bad_energy_axes_are_rejected_with_the_reason(energy, expected):
    with pytest.raises(ValueError) as info:
        SpectrumImage(np.ones((4, 4, 10)), energy, np.ones((4, 4)))
    assert str(info.value) == expected


@pytest.mark.parametrize(("kwargs", "error", "expected"), [
    (dict(window=1), ValueError, "window must be at least 2 HAADF pixels, got 1"),
    (dict(window=0), ValueError, "window must be at least 2 HAADF pixels, got 0"),
    (dict(window=-3), ValueError, "window must be at least 2 HAADF pixels, got -3"),
    (dict(window=True), TypeError, "window must be an integer, got True"),
    (dict(window=21), ValueError,
     "window 21 is larger than the HAADF image 20x20; use a window <= 20"),
    (dict(window=21, pad="reflect"), ValueError,
     "window 21 is larger than the HAADF image 20x20; use a window <= 20"),
])
def test_windows_too_small_or_too_large(kwargs, error, expected):
    with pytest.raises(error) as info:
        make_tiles(blob_si(), **kwargs)
    assert str(info.value) == expected


def test_window_as_large_as_the_image():
    si = blob_si()
    assert len(make_tiles(si, window=20)) == 1  # only the pixel whose window fits
    padded = make_tiles(si, window=20, pad="reflect")
    assert len(padded) == 400 and padded.images.shape == (400, 20, 20)


@pytest.mark.parametrize("pad", [None, "reflect"])
def test_one_pixel_wide_scan_needs_an_oversampled_haadf(pad):
    e = np.arange(1.0, 11.0)
    line = SpectrumImage(np.ones((1, 7, 10)), e, np.ones((1, 7)))
    with pytest.raises(ValueError) as info:
        make_tiles(line, window=2, pad=pad)
    assert str(info.value) == (
        "the HAADF image is 1x7: tiles need at least 2x2 HAADF pixels, so a scan 1 pixel "
        "wide can only be tiled with an oversampled HAADF (scale >= 2)")

    s, window = 4, 4
    rng = np.random.default_rng(0)
    for shape in ((1, 7), (7, 1)):
        spectra = rng.random((*shape, 10))
        haadf = rng.random((s * shape[0], s * shape[1]))
        pairs = make_tiles(SpectrumImage(spectra, e, haadf), window=window, pad=pad)
        assert len(pairs) == 7 and pairs.images.shape == (7, window, window)
        padded = np.pad(haadf.astype(np.float32), window, mode="reflect")
        for i, (r, c) in enumerate(pairs.positions):
            r0, c0 = s * r + s // 2 - window // 2, s * c + s // 2 - window // 2
            np.testing.assert_array_equal(
                pairs.images[i], padded[window + r0:window + r0 + window,
                                        window + c0:window + c0 + window])
            assert pairs.images[i][window // 2, window // 2] == np.float32(
                haadf[s * r + s // 2, s * c + s // 2])
            np.testing.assert_array_equal(pairs.spectra[i], spectra[r, c].astype(np.float32))


def test_all_zero_spectra_stay_finite_through_normalize_and_zlp_removal():
    e = np.arange(1.0, 11.0)
    zeros = SpectrumImage(np.zeros((3, 3, 10)), e, np.ones((3, 3)))
    expected = {"global": "all spectra are zero; normalisation factor set to 1",
                "spectrum": "9 all-zero spectra keep a normalisation factor of 1"}
    for mode in ("global", "spectrum"):
        for by in ("max", "sum"):
            with pytest.warns(UserWarning) as record:
                out = pw.preprocess.normalize(zeros, mode, by=by)
            assert [str(r.message) for r in record] == [expected[mode]]
            np.testing.assert_array_equal(out.spectra, 0.0)
            np.testing.assert_array_equal(out.denormalize().spectra, 0.0)

    # one dead pixel among power-law tails, on an axis starting at 1 eV
    spectra = np.ones((3, 3, 10)) * e**-2.0
    spectra[1, 1] = 0
    mixed = SpectrumImage(spectra, e, np.ones((3, 3)))
    for si in (zeros, mixed):
        for model in ("power", "exp2"):
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # no RuntimeWarning from the fit either
                out = si.remove_zlp(model=model)
            assert np.isfinite(out.spectra).all()
            np.testing.assert_array_equal(out.spectra[1, 1], 0.0)
            assert all(np.isfinite(v).all() for v in out.metadata["zlp_fit"].values()
                       if isinstance(v, np.ndarray))


def test_negative_counts_after_zlp_removal_survive_normalize_and_tiles():
    rng = np.random.default_rng(0)
    e = np.linspace(0.05, 1.2, 60)
    tail = rng.uniform(0.5, 2.0, (8, 8, 1)) * e**-2.5
    peak = 300 * np.exp(-(((e - 0.7) / 0.1) ** 2))
    si = SpectrumImage(rng.poisson(tail + peak).astype(float), e, rng.random((8, 8)))
    out = si.remove_zlp(window=(0.05, 0.2))
    assert (out.spectra < 0).any()  # kept, not clipped (unbiased, as documented)
    for mode in ("global", "spectrum"):
        norm = out.normalize(mode)
        assert np.isfinite(norm.spectra).all() and np.abs(norm.spectra).max() <= 1.0
        assert (norm.spectra < 0).sum() == (out.spectra < 0).sum()
        np.testing.assert_allclose(norm.denormalize().spectra, out.spectra, rtol=1e-5,
                                   atol=1e-4)
    pairs = make_tiles(out, window=4, pad="reflect")
    np.testing.assert_array_equal(pairs.spectra, out.spectra.reshape(-1, 60))


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.int32, np.uint16, ">f4"])
def test_other_dtypes_give_the_same_tiles(dtype):
    rng = np.random.default_rng(0)
    spectra = rng.uniform(0, 1000, (12, 10, N_ENERGY)).astype(dtype)
    haadf = rng.uniform(0, 1000, (24, 20)).astype(dtype)
    e = np.linspace(0.2, 1.2, N_ENERGY)
    got = make_tiles(SpectrumImage(spectra, e, haadf), window=6)
    ref = make_tiles(SpectrumImage(spectra.astype(np.float32), e, haadf.astype(np.float32)),
                     window=6)
    assert got.images.dtype == np.float32 and got.spectra.dtype == np.float32
    np.testing.assert_array_equal(got.images, ref.images)
    np.testing.assert_array_equal(got.spectra, ref.spectra)
    np.testing.assert_array_equal(got.positions, ref.positions)


@pytest.mark.parametrize("layout", ["strided", "fortran", "negative strides"])
def test_non_contiguous_arrays_give_the_same_tiles(layout):
    rng = np.random.default_rng(1)
    spectra = rng.random((12, 10, N_ENERGY)).astype(np.float32)
    haadf = rng.random((12, 10)).astype(np.float32)
    e = np.linspace(0.2, 1.2, N_ENERGY)
    if layout == "strided":
        big = np.zeros((12, 20, N_ENERGY + 3), np.float32)
        big[:, ::2, :N_ENERGY] = spectra
        big_h = np.zeros((24, 10), np.float32)
        big_h[::2] = haadf
        views = big[:, ::2, :N_ENERGY], big_h[::2]
    elif layout == "fortran":
        views = np.asfortranarray(spectra), np.asfortranarray(haadf)
    else:  # stored upside down, read through a reversing view: same values
        views = (np.ascontiguousarray(spectra[::-1, :, ::-1])[::-1, :, ::-1],
                 np.ascontiguousarray(haadf[::-1])[::-1])
    assert not views[0].flags.c_contiguous and not views[1].flags.c_contiguous
    got = make_tiles(SpectrumImage(views[0], e, views[1]), window=4)
    ref = make_tiles(SpectrumImage(spectra, e, haadf), window=4)
    np.testing.assert_array_equal(got.images, ref.images)
    np.testing.assert_array_equal(got.spectra, ref.spectra)


@pytest.mark.parametrize("variant", ["float64", "float16", "int32", "uint16", "big-endian",
                                     "fortran", "strided", "transposed", "list"])
def test_model_predict_gives_the_float32_result_for_other_dtypes_and_layouts(fitted, variant):
    rng = np.random.default_rng(2)
    x = rng.uniform(100, 900, (5, WINDOW, WINDOW)).astype(np.float32)
    if variant in ("float16", "int32", "uint16"):
        x = x.astype(variant).astype(np.float32)  # the reference holds the same values
    ref = fitted.predict(np.ascontiguousarray(x))
    if variant in ("float64", "float16", "int32", "uint16"):
        arg = x.astype(variant)
    elif variant == "big-endian":
        arg = x.astype(">f4")
    elif variant == "fortran":
        arg = np.asfortranarray(x)
    elif variant == "strided":
        arg = np.zeros((5, 2 * WINDOW, 2 * WINDOW), np.float32)
        arg[:, ::2, ::2] = x
        arg = arg[:, ::2, ::2]
    elif variant == "transposed":
        arg = np.ascontiguousarray(x.transpose(0, 2, 1)).transpose(0, 2, 1)
    else:
        arg = x.tolist()
    np.testing.assert_array_equal(fitted.predict(arg), ref)
    np.testing.assert_array_equal(fitted.encode(arg), fitted.encode(x))


def test_model_predict_accepts_flipped_views(fitted):
    x = np.random.default_rng(3).uniform(100, 900, (4, WINDOW, WINDOW)).astype(np.float32)
    flipped = x[:, ::-1]  # e.g. np.flip for augmentation
    np.testing.assert_array_equal(fitted.predict(flipped),
                                  fitted.predict(np.ascontiguousarray(flipped)))


def test_tile_pairs_built_from_flipped_arrays_train_and_evaluate(split, fitted):
    train, test = split
    flipped = TilePairs(train.images[::-1, ::-1], train.spectra[::-1], train.positions[::-1],
                        train.energy, train.scan_shape)
    assert flipped.images.flags.c_contiguous and flipped.spectra.flags.c_contiguous
    history = pw.train(im2spec(), flipped, None, epochs=1, validation=None)
    assert np.isfinite(history.train_loss).all()
    test_flipped = TilePairs(test.images[:, ::-1], test.spectra, test.positions, test.energy,
                             test.scan_shape)
    ref = TilePairs(np.ascontiguousarray(test.images[:, ::-1]), test.spectra, test.positions,
                    test.energy, test.scan_shape)
    np.testing.assert_array_equal(error_map(fitted, test_flipped), error_map(fitted, ref))


@settings(max_examples=30, deadline=None)
@given(
    spectra=hnp.arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 4),
                                             st.integers(2, 12)),
                       elements=st.one_of(st.just(0.0),
                                          st.floats(-1e6, 1e6, allow_subnormal=False))),
    mode=st.sampled_from(["global", "spectrum"]),
    by=st.sampled_from(["max", "sum"]),
)
def test_normalize_is_finite_and_invertible_for_any_finite_spectra(spectra, mode, by):
    h, w, n = spectra.shape
    si = SpectrumImage(spectra, np.arange(1.0, n + 1.0), np.ones((h, w)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # all-zero spectra keep factor 1
        norm = pw.preprocess.normalize(si, mode, by=by)
    assert np.isfinite(norm.spectra).all()
    if by == "max":
        assert np.abs(norm.spectra).max() <= 1.0 + 1e-6
    x = si.spectra
    tol = 1e-5 * np.abs(x).max(axis=-1, keepdims=True) + 1e-30
    assert (np.abs(norm.denormalize().spectra - x) <= tol).all()
    # Signs never flip; a value below float32's range relative to the factor may become 0.
    assert (np.sign(norm.spectra) * np.sign(x) >= 0).all()
    lost = (norm.spectra == 0) & (x != 0)
    assert (np.abs(x[lost]) <= 1e-30 * np.abs(x).max()).all()


# ================================================================================ models
@pytest.mark.parametrize(("model", "z", "expected"), [
    ("im2spec", 0.5, "Im2Spec expects latent vector of shape (2,) for one sample or (N, 2), "
                     "got shape ()"),
    ("im2spec", [0.1, 0.2, 0.3], "Im2Spec expects latent vector of shape (2,) for one sample "
                                 "or (N, 2), got shape (3,)"),
    ("spec2im", [[0.1], [0.2]], "Spec2Im expects latent vector of shape (2,) for one sample "
                                "or (N, 2), got shape (2, 1)"),
    ("im2spec", [np.nan, 0.0], "latent vector contains 1 NaN/Inf value(s); clean or mask "
                               "them first"),
])
def test_latent_vector_of_the_wrong_length(model, z, expected):
    m = im2spec() if model == "im2spec" else pw.Spec2Im(n_energy=N_ENERGY, window=WINDOW,
                                                       pool=4, **NET)
    with pytest.raises(ValueError) as info:
        m.decode(z)
    assert str(info.value) == expected


def test_truncated_and_empty_checkpoints_say_what_is_wrong(tmp_path, fitted):
    data = fitted.save(tmp_path / "m.pt").read_bytes()
    for fraction in (0.1, 0.5, 0.9):
        cut = tmp_path / f"cut{fraction}.pt"
        cut.write_bytes(data[: int(len(data) * fraction)])
        with pytest.raises(CheckpointError) as info:
            pw.load_model(cut)
        assert str(info.value).startswith(
            f"{cut} is not a readable checkpoint (truncated or not a torch file): ")
    empty = tmp_path / "empty.pt"
    empty.write_bytes(b"")
    with pytest.raises(CheckpointError) as info:
        pw.load_model(empty)
    assert str(info.value) == (
        f"{empty} is empty (0 bytes): the save or copy that made it did not finish; "
        "save the model again or copy the file again")


@pytest.mark.parametrize("batch_size", [1024, 2, 1])
def test_error_map_with_a_test_set_smaller_than_a_batch(split, fitted, batch_size):
    _, test = split
    tiny = test.subset([0, 5, 9])
    err = error_map(fitted, tiny, batch_size=batch_size)
    assert err.shape == tiny.scan_shape and np.isfinite(err).sum() == 3
    expected = nmse_percent(fitted.predict(tiny.images), tiny.spectra, axis=-1)
    rows, cols = tiny.positions.T
    np.testing.assert_allclose(err[rows, cols], expected, rtol=1e-5)
    single = error_map(fitted, test.subset([4]), batch_size=batch_size)
    assert np.isfinite(single).sum() == 1
    with pytest.raises(ValueError) as info:
        error_map(fitted, test.subset([]))
    assert str(info.value) == "pairs is empty; make tiles from a larger scan or a smaller window"


# ====================================================================== interrupted work
def _weights(model) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_ctrl_c_during_blocking_training_keeps_best_weights_and_resumes(split, tmp_path):
    train, test = split
    reference = pw.train(im2spec(), train, test, epochs=3, batch_size=16).train_loss
    model = im2spec()
    trainer = Trainer(model, train, test, epochs=3, batch_size=16, event_interval_s=0.0,
                      checkpoint_dir=tmp_path)

    def ctrl_c(event: ProgressEvent) -> None:
        if event.kind == "batch" and event.epoch == 2 and event.batch == 1:
            raise KeyboardInterrupt

    unsubscribe = trainer.subscribe(ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        trainer.run()
    assert trainer.state == "stopped" and trainer.epoch == 1
    assert trainer.history.stop_reason == "interrupted" and trainer.history.best_epoch == 1
    best = pw.load_model(tmp_path / "best.pt", device="cpu")
    for key, value in best.state_dict().items():  # the model holds the best epoch's weights
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)
    assert np.isfinite(model.predict(test.images[:4])).all()
    unsubscribe()
    trainer.resume()
    assert trainer.join(60) and trainer.state == "finished"
    assert trainer.history.train_loss == reference  # no batch lost or repeated


def test_stop_inside_the_first_epoch_keeps_the_partly_trained_model(split):
    train, test = split
    model = im2spec()
    before = _weights(model)
    trainer = Trainer(model, train, test, epochs=2, batch_size=8, event_interval_s=0.0)
    trainer.subscribe(lambda ev: trainer.stop() if ev.kind == "batch" and ev.batch == 2 else None)
    trainer.start()
    assert trainer.join(60) and trainer.state == "stopped" and trainer.epoch == 0
    assert trainer.history.stop_reason == "stopped during epoch 1"
    after = _weights(model)
    assert any(not torch.equal(before[k], after[k]) for k in before if "weight" in k)
    assert model.is_fitted and not model.training
    assert np.isfinite(model.predict(test.images[:4])).all()


# ============================================================================= dashboard
def test_failed_training_run_in_the_dashboard_keeps_the_model_and_the_page(tmp_path):
    from plasmonwidgets import pretrained
    from plasmonwidgets.app.dashboard import Dashboard

    si = pw.datasets.nanocube_array(seed=0, size=32, physics="toy").bin(energy=4)
    d = Dashboard(si, data_dir=tmp_path, use_pretrained=False, decode_mode="sync", epochs=1)
    try:
        key = ("im2spec", 2)
        current = pw.Im2Spec(**pretrained.architecture("im2spec", 2, si.n_energy),
                             energy=si.energy, device="cpu")
        d.set_model(key, current, note="loaded")
        weights = _weights(current)
        d.select_tab("Train")
        progress = d.trainers[key]

        def diverging(pred, target):
            return torch.nn.functional.mse_loss(pred, target) * float("nan")

        # the failing run trains the model in use: its weights must survive the failure
        progress.trainer = Trainer(current, d.train_set, d.test_set, epochs=1, loss=diverging)
        progress.start_button.click()
        assert progress.wait(30) and progress.trainer.state == "failed"
        message = re.sub(r"<[^>]+>", "", progress.message.value)
        assert message == (
            "Training error: the training loss became nan in epoch 1; lower the learning "
            "rate (lr=0.001) or check the data; the model keeps its previous weights")
        assert progress.progress.bar_style == "danger"
        assert d.models[key] is current and d.model_notes[key] == "loaded"
        for k, v in current.state_dict().items():
            assert torch.equal(v, weights[k])
        assert d.error_text == ""  # shown in the Train tab; the page-level box stays free
        # the rest keeps working: the probe updates, and Start trains anew
        d.select_tab("Data")
        d.viewer.position = [5, 6]
        np.testing.assert_allclose(d.spectrum_view.lines["measured"].y, si.spectra[5, 6])
        d.select_tab("Train")
        progress.start_button.click()
        assert progress.wait(30) and progress.trainer.state == "finished"
        assert d.models[key] is current  # a run trains beside the model in use
        d.use_button.click()
        assert d.models[key] is not current and d.error_text == ""
    finally:
        d.close()


def test_demo_serves_on_localhost_with_sources_stripped_and_idle_kernels_culled(
        tmp_path, monkeypatch):
    from plasmonwidgets.app.cli import build_parser, demo_command
    from plasmonwidgets.widgets.file_chooser import DataFileChooser

    args = build_parser().parse_args(["demo", "--data-dir", str(tmp_path)])
    assert args.host == "127.0.0.1"
    cmd, env = demo_command(args.host, 8866, args.data_dir)
    assert cmd[1:3] == ["-m", "plasmonwidgets.app.serve"]  # Voila with TCP_NODELAY
    for flag in ("--Voila.ip=127.0.0.1", "--strip_sources=True", "--show_tracebacks=False",
                 "--MappingKernelManager.cull_idle_timeout=60",
                 "--MappingKernelManager.cull_interval=15"):
        assert flag in cmd, flag
    assert env["PLASMONWIDGETS_DATA_DIR"] == str(tmp_path.resolve())
    # the dashboard's file chooser then reads that folder and nothing above it
    monkeypatch.setenv("PLASMONWIDGETS_DATA_DIR", env["PLASMONWIDGETS_DATA_DIR"])
    chooser = DataFileChooser(max_upload_mb=2)
    try:
        assert chooser.cwd == tmp_path.resolve()
        with pytest.raises(ValueError) as info:
            chooser.change_dir(tmp_path.parent)
        assert str(info.value) == (f"{str(tmp_path.parent)!r} is outside the data folder; "
                                   "choose a file inside it")
        with pytest.raises(ValueError) as info:
            chooser.save_upload("big.hspy", b"0" * (3 * 2**20))
        assert str(info.value) == ("'big.hspy' is 3.0 MB, over the 2 MB upload limit; "
                                   "put the file in the data folder instead")
    finally:
        chooser.close()


def test_demo_caps_kernels_and_shuts_down_those_of_closed_tabs(tmp_path):
    """Issue 13: ``--max-kernels`` (default 8) and ``--cull-after`` (default 60 s) reach the
    server's kernel manager; the real server's behaviour is tested in
    ``e2e/test_voila_kernels.py``."""
    from plasmonwidgets.app.cli import build_parser, demo_command
    from plasmonwidgets.app.serve import DashboardKernelManager, capacity_page

    args = build_parser().parse_args(["demo", "--data-dir", str(tmp_path)])
    assert (args.max_kernels, args.cull_after) == (8, 60.0)
    cmd, _ = demo_command(args.host, 8866, args.data_dir)
    for flag in ("--DashboardKernelManager.max_kernels=8",
                 "--DashboardKernelManager.orphan_timeout=60"):
        assert flag in cmd, flag
    args = build_parser().parse_args(["demo", "--max-kernels", "3", "--cull-after", "20"])
    cmd, _ = demo_command(args.host, 8866, ".", max_kernels=args.max_kernels,
                          cull_after=args.cull_after)
    for flag in ("--DashboardKernelManager.max_kernels=3", "--DashboardKernelManager.orphan_timeout=20",
                 "--MappingKernelManager.cull_idle_timeout=20", "--MappingKernelManager.cull_interval=5"):
        assert flag in cmd, flag
    with pytest.raises(ValueError, match="--max-kernels must be >= 0"):
        demo_command("127.0.0.1", 8866, ".", max_kernels=-1)
    with pytest.raises(ValueError, match="--cull-after must be > 0 seconds"):
        demo_command("127.0.0.1", 8866, ".", cull_after=0)

    manager = DashboardKernelManager(max_kernels=1)
    assert not manager.at_capacity  # no kernel yet
    manager._starting = 1  # one being started counts against the cap
    assert manager.at_capacity
    assert "3 dashboard sessions are open" in capacity_page(3)
