"""make_tiles, TilePairs and spatial splits."""

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
