"""make_tiles, TilePairs and spatial splits."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plasmonwidgets import SpectrumImage, make_tiles
from plasmonwidgets.tiles import TilePairs


def make_si(h=20, w=24, e=8, s=1, seed=0):
    rng = np.random.default_rng(seed)
    haadf = rng.random((s * h, s * w)).astype(np.float32)
    return SpectrumImage(rng.random((h, w, e)), np.linspace(0.2, 1.2, e), haadf)


@pytest.mark.parametrize("s", [1, 2, 3])
@pytest.mark.parametrize("window", [4, 5, 16])
def test_tile_centre_convention(s, window):
    si = make_si(s=s)
    if window > min(si.haadf.shape):
        pytest.skip("window larger than image")
    pairs = make_tiles(si, window=window)
    for i in (0, len(pairs) // 2, len(pairs) - 1):
        r, c = pairs.positions[i]
        # index w//2 of the tile is the HAADF pixel at the SI pixel's centre
        assert pairs.images[i][window // 2, window // 2] == si.haadf[s * r + s // 2, s * c + s // 2]
        np.testing.assert_array_equal(pairs.spectra[i], si.spectra[r, c])


def test_border_pixels_are_dropped_or_reflected():
    si = make_si()
    dropped = make_tiles(si, window=16)
    assert len(dropped) == (20 - 15) * (24 - 15)
    padded = make_tiles(si, window=16, pad="reflect")
    assert len(padded) == 20 * 24
    i = padded.index_of(0, 0)
    assert padded.images[i][8, 8] == si.haadf[0, 0]


def test_tiles_come_from_a_zero_copy_view_until_materialised():
    pairs = make_tiles(make_si(), window=8)
    assert pairs._images is None
    first = pairs.tile(0)
    assert not first.flags.owndata
    stack = pairs.images
    assert stack.shape == (len(pairs), 8, 8) and stack.dtype == np.float32
    np.testing.assert_array_equal(stack[0], first)


def test_step_and_subset():
    pairs = make_tiles(make_si(), window=4, step=3)
    assert (pairs.positions % 3 == 0).all()
    sub = pairs.subset(np.arange(len(pairs)) % 2 == 0)
    assert len(sub) == (len(pairs) + 1) // 2
    np.testing.assert_array_equal(sub.images, pairs.images[::2])


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(window=1), ValueError, "at least 2"),
        (dict(window=100), ValueError, "larger than the HAADF"),
        (dict(window=4.5), TypeError, "integer"),
        (dict(step=0), ValueError, "step"),
        (dict(pad="zeros"), ValueError, "pad"),
    ],
)
def test_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        make_tiles(make_si(), **kwargs)


def test_non_spectrum_image_is_rejected():
    with pytest.raises(TypeError, match="SpectrumImage"):
        make_tiles(np.ones((4, 4, 4)))


def test_region_labels_follow_positions():
    si = make_si()
    regions = np.arange(20 * 24).reshape(20, 24)
    si.metadata["regions"] = regions
    si.metadata["region_names"] = ["a"]
    pairs = make_tiles(si, window=6)
    np.testing.assert_array_equal(pairs.regions, regions[pairs.positions[:, 0], pairs.positions[:, 1]])


def no_test_centre_inside_a_train_tile(train, test, s=1):
    w = train.window
    tl = train.footprints()
    centres = test.positions * s + s // 2
    inside = (
        (centres[None, :, 0] >= tl[:, None, 0])
        & (centres[None, :, 0] < tl[:, None, 0] + w)
        & (centres[None, :, 1] >= tl[:, None, 1])
        & (centres[None, :, 1] < tl[:, None, 1] + w)
    )
    return not inside.any()


@pytest.mark.parametrize("method", ["halves", "stripes", "blocks"])
def test_spatial_splits_do_not_leak(method):
    si = make_si(h=64, w=64)
    pairs = make_tiles(si, window=8)
    train, test = pairs.split(method, n_stripes=2)
    assert len(train) > 0 and len(test) > 0
    assert no_test_centre_inside_a_train_tile(train, test)
    assert not set(map(tuple, train.positions)) & set(map(tuple, test.positions))
    assert train.split_info["method"] == method and test.split_info["part"] == "test"


def test_halves_split_sides():
    pairs = make_tiles(make_si(h=32, w=40), window=6)
    train, test = pairs.split("halves")
    assert test.positions[:, 1].min() >= 20 and train.positions[:, 1].max() < 20 - 2


def test_random_split_is_seeded_and_leaks_by_design():
    pairs = make_tiles(make_si(), window=6)
    a_train, a_test = pairs.split("random", seed=3)
    _, b_test = pairs.split("random", seed=3)
    np.testing.assert_array_equal(a_test.positions, b_test.positions)
    assert len(a_train) + len(a_test) == len(pairs)
    assert not no_test_centre_inside_a_train_tile(a_train, a_test)


def test_split_errors():
    pairs = make_tiles(make_si(), window=6)
    with pytest.raises(ValueError, match="unknown split"):
        pairs.split("diagonal")
    with pytest.raises(ValueError, match="strictly between"):
        pairs.split("halves", test_fraction=1.0)
    with pytest.raises(ValueError, match="clear of the test region"):
        make_tiles(make_si(h=20, w=24), window=16).split("stripes", n_stripes=4)


def test_explicit_constructor_validates_shapes():
    with pytest.raises(ValueError, match="images must be"):
        TilePairs(np.ones((3, 4, 5)), np.ones((3, 6)), np.zeros((3, 2)), np.arange(6.0), (4, 4))
    with pytest.raises(ValueError, match="positions"):
        TilePairs(np.ones((3, 4, 4)), np.ones((3, 6)), np.zeros((2, 2)), np.arange(6.0), (4, 4))


@settings(max_examples=40, deadline=None)
@given(
    h=st.integers(8, 40),
    w=st.integers(8, 40),
    s=st.integers(1, 3),
    window=st.integers(2, 12),
    step=st.integers(1, 3),
    method=st.sampled_from(["halves", "stripes", "blocks", "random"]),
    fraction=st.floats(0.1, 0.9),
    seed=st.integers(0, 5),
)
def test_tiles_and_splits_properties(h, w, s, window, step, method, fraction, seed):
    si = make_si(h=h, w=w, e=3, s=s, seed=seed)
    if window > min(si.haadf.shape):
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # windows under one SI pixel warn
            pairs = make_tiles(si, window=window, step=step)
    except ValueError as exc:  # every sampled centre too close to the border
        assert "no SI pixel has a full" in str(exc)
        return
    n = len(pairs)
    assert pairs.images.shape == (n, window, window)
    assert pairs.spectra.shape == (n, 3) and pairs.positions.shape == (n, 2)
    assert (pairs.positions >= 0).all() and (pairs.positions < [h, w]).all()
    try:
        train, test = pairs.split(method, test_fraction=fraction, seed=seed)
    except ValueError as exc:  # a split that cannot leave both sets non-empty says so
        assert "test" in str(exc) or "empty" in str(exc)
        return
    assert len(train) + len(test) <= n and len(test) > 0 and len(train) > 0
    if method != "random":
        assert no_test_centre_inside_a_train_tile(train, test, s)


# ------------------------------------------------------------------ oversampled HAADF
def test_window_in_si_pixels_is_scale_haadf_pixels():
    si = make_si(h=12, w=10, s=4)
    by_si = make_tiles(si, window=3, window_unit="si")
    by_haadf = make_tiles(si, window=12)
    assert by_si.window == 12
    np.testing.assert_array_equal(by_si.positions, by_haadf.positions)
    np.testing.assert_array_equal(by_si.images, by_haadf.images)
    with pytest.raises(ValueError, match="window_unit must be 'haadf' or 'si'"):
        make_tiles(si, window=3, window_unit="nm")


def test_a_window_smaller_than_an_si_pixel_warns_at_the_callers_line():
    si = make_si(h=6, w=6, s=8)
    with pytest.warns(UserWarning, match=r"covers less than one SI pixel.*bin_haadf\(2\)") as record:
        make_tiles(si, window=4)
    assert record[0].filename == __file__
    with pytest.warns(UserWarning, match=r"bin_haadf\(4\)"):
        make_tiles(make_si(h=6, w=6, s=12), window=3)  # needs a factor dividing 12, >= 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_tiles(si, window=8)  # one SI pixel exactly: no warning
        binned = si.bin_haadf(2)  # a 4-pixel window now covers one SI pixel
        assert binned.scale == 4 and len(make_tiles(binned, window=4)) > 0


def test_halves_split_the_longer_axis_by_default_and_axis_chooses():
    tall = make_tiles(make_si(h=49, w=6, s=2), window=2, window_unit="si")
    train, test = tall.split("halves")
    assert train.split_info["axis"] == "rows"
    assert train.positions[:, 0].max() < test.positions[:, 0].min()
    assert set(test.positions[:, 1]) == set(tall.positions[:, 1])  # whole rows, every column
    assert no_test_centre_inside_a_train_tile(train, test, 2)
    train_c, test_c = tall.split("halves", axis="columns")
    assert train_c.positions[:, 1].max() < test_c.positions[:, 1].min()
    train_1, _ = tall.split("halves", axis=1)
    np.testing.assert_array_equal(train_1.positions, train_c.positions)
    for method in ("stripes", "blocks", "random"):  # the other splits keep working
        assert all(len(part) for part in tall.split(method, n_stripes=2))
    with pytest.raises(ValueError, match="axis must be 'rows'"):
        tall.split("halves", axis=2)


def test_rows_range_tiles_one_band_of_the_scan():
    si = make_si(h=20, w=24)
    whole = make_tiles(si, window=4, step=2)
    bands = [make_tiles(si, window=4, step=2, rows=(lo, lo + 5)) for lo in range(0, 20, 5)]
    np.testing.assert_array_equal(np.concatenate([b.positions for b in bands]), whole.positions)
    np.testing.assert_array_equal(np.concatenate([b.spectra for b in bands]), whole.spectra)
    np.testing.assert_array_equal(np.concatenate([b.images for b in bands]), whole.images)
    assert bands[0].scan_shape == (20, 24)
    with pytest.raises(ValueError, match="0 <= start < stop <= 20"):
        make_tiles(si, window=4, rows=(5, 30))


# ------------------------------------------------------------------ lazy SIs are streamed
def lazy_si(si, chunks):
    import dask.array as da

    return si.replace(spectra=da.from_array(si.spectra, chunks=chunks))


@pytest.mark.parametrize("step", [1, 3])
@pytest.mark.parametrize("pad", [None, "reflect"])
def test_lazy_si_is_read_band_by_band_and_matches_the_eager_tiles(monkeypatch, step, pad):
    import plasmonwidgets.tiles as tiles

    si = make_si(h=23, w=17, e=5, s=2)
    eager = make_tiles(si, window=6, step=step, pad=pad)
    # a band of 3 rows at most (one dask chunk is 2 rows): the SI is read in several bands
    monkeypatch.setattr(tiles, "STREAM_BLOCK_BYTES", 3 * 17 * 5 * 4)
    reads = []
    original = SpectrumImage.reading
    monkeypatch.setattr(SpectrumImage, "reading", lambda self: reads.append(1) or original(self))
    lazy = make_tiles(lazy_si(si, (2, 17, 5)), window=6, step=step, pad=pad)
    assert len(reads) > 3
    np.testing.assert_array_equal(lazy.positions, eager.positions)
    np.testing.assert_array_equal(lazy.spectra, eager.spectra)
    np.testing.assert_array_equal(lazy.images, eager.images)


def test_lazy_nan_in_a_later_band_names_its_pixel(monkeypatch):
    import plasmonwidgets.tiles as tiles

    si = make_si(h=10, w=6, e=4)
    x = si.spectra.copy()
    x[7, 2, 1] = np.nan
    monkeypatch.setattr(tiles, "STREAM_BLOCK_BYTES", 1)
    import dask.array as da

    bad = SpectrumImage(da.from_array(x, chunks=(2, 6, 4)), si.energy, si.haadf)
    message = r"NaN/Inf values in the tiled pixels \(first at index \(7, 2, 1\)\)"
    with pytest.raises(ValueError, match=message):
        make_tiles(bad, window=2)


def test_lazily_loaded_hspy_file_tiles_like_the_file_in_memory(tmp_path):
    import warnings

    import plasmonwidgets as pw

    si = make_si(h=16, w=12, e=6, s=2)
    path = si.save(tmp_path / "scan.hspy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lazy = pw.load(path, lazy=True)
    assert lazy.is_lazy
    got = make_tiles(lazy, window=4)
    ref = make_tiles(si, window=4)
    np.testing.assert_array_equal(got.spectra, ref.spectra)
    np.testing.assert_array_equal(got.images, ref.images)


def test_a_lazy_read_error_names_the_file_as_the_user_knows_it():
    import dask.array as da

    from plasmonwidgets.io import DataFileError

    si = make_si(h=8, w=8, e=4)
    si.metadata["source"] = {"name": "upload.hspy"}

    def broken(block):
        raise OSError("Can't synchronously read data (wrong B-tree signature)")

    bad = si.replace(spectra=da.from_array(si.spectra, chunks=(4, 8, 4)).map_blocks(
        broken, dtype=np.float32))
    for read in (lambda: make_tiles(bad, window=2), bad.compute):
        with pytest.raises(DataFileError, match=r"upload\.hspy") as info:
            read()
        assert "B-tree signature" in str(info.value)
