"""Property tests (hypothesis) for pre-processing and tiles.

Every expected value here is computed independently of the library: channel masks for
``crop``, float64 block sums for ``bin``, tile counts and windows from the convention in
README.md "Conventions" (for SI pixel (r, c) the window of w HAADF pixels starts at HAADF
row ``s*r + s//2 - w//2``), and split leakage from that same geometry (not from
``TilePairs.footprints()``).

The deterministic tests below the properties are the minimal reproducers of the library
bugs these properties found (fixed since).
"""

from __future__ import annotations

import contextlib
import math
import warnings

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import plasmonwidgets as pw
from plasmonwidgets import SpectrumImage
from plasmonwidgets.tiles import SPLIT_METHODS

F32_MAX = float(np.finfo(np.float32).max)
F32_EPS = float(np.finfo(np.float32).eps)
F32_TINY = float(np.finfo(np.float32).smallest_subnormal)
# |values| the ZLP fit is claimed finite for (uniform axis, window from the axis start);
# above ~1e18, on uneven axes or with a later window it can diverge
# (see test_remove_zlp_extrapolated_tail_stays_finite)
ZLP_LIMIT = 1e10
# |values| for bin: the largest 5x5x6 block sum (150 values) stays below float32's max
BIN_LIMIT = 1e36


# ------------------------------------------------------------------------------ strategies
def finite_f32(limit: float) -> st.SearchStrategy[float]:
    """Finite float32 values in [-limit, limit]: zeros, subnormals, tiny and huge ones."""
    lim = float(np.float32(limit))
    return st.one_of(
        st.just(0.0),
        st.sampled_from([F32_TINY, -F32_TINY, float(np.finfo(np.float32).tiny), lim, -lim]),
        st.floats(-lim, lim, width=32),
    )


def spectra(limit: float, min_channels: int = 2, max_channels: int = 24, max_side: int = 4):
    """(h, w, E) float32 arrays; h or w = 1 gives 1-pixel-wide scans."""
    shape = st.tuples(st.integers(1, max_side), st.integers(1, max_side),
                      st.integers(min_channels, max_channels))
    return hnp.arrays(np.float32, shape, elements=finite_f32(limit))


@st.composite
def increasing_axis(draw, n: int, uniform: bool = False, start=None) -> np.ndarray:
    """A strictly increasing float64 energy axis of n channels."""
    e0 = draw(start if start is not None else st.floats(-1e3, 1e3))
    if uniform:  # offset + scale * channel, as instruments write it
        return e0 + draw(st.floats(1e-3, 10)) * np.arange(n)
    steps = draw(hnp.arrays(np.float64, n - 1, elements=st.floats(1e-3, 100)))
    return e0 + np.concatenate([[0.0], np.cumsum(steps)])


def build_si(x: np.ndarray, energy: np.ndarray, scale: int = 1) -> SpectrumImage:
    h, w, _ = x.shape
    haadf = np.arange(scale * h * scale * w, dtype=np.float32).reshape(scale * h, scale * w)
    return SpectrumImage(x, energy, haadf, pixel_size=0.5)


@contextlib.contextmanager
def no_runtime_warnings():
    """A numpy overflow/invalid warning is a failure here, not a message to the user."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        yield


# ------------------------------------------------------------------------------ crop
@st.composite
def si_and_crop_range(draw):
    x = draw(spectra(F32_MAX))
    e = draw(increasing_axis(x.shape[2]))
    bound = st.one_of(
        st.sampled_from(e.tolist()),  # exactly on a channel: the range is inclusive
        st.floats(e[0] - 10, e[-1] + 10),
    )
    lo, hi = draw(bound), draw(bound)
    order = draw(st.sampled_from(["ascending", "ascending", "as drawn", "not finite"]))
    if order == "ascending":
        lo, hi = min(lo, hi), max(lo, hi)
    elif order == "not finite":
        bad = draw(st.sampled_from([math.nan, math.inf, -math.inf]))
        lo, hi = draw(st.sampled_from([(bad, hi), (lo, bad)]))
    return build_si(x, e, draw(st.integers(1, 2))), lo, hi


@settings(max_examples=100, deadline=None)
@given(case=si_and_crop_range())
def test_crop_keeps_exactly_the_channels_inside_the_range(case):
    si, e_min, e_max = case
    x, e = si.spectra.copy(), si.energy.copy()
    if not (math.isfinite(e_min) and math.isfinite(e_max) and e_min < e_max):
        event("crop: bounds refused")
        with pytest.raises(ValueError, match="crop needs finite e_min < e_max"):
            si.crop(e_min, e_max)
        return
    inside = (e >= e_min) & (e <= e_max)
    if inside.sum() < 2:
        event("crop: fewer than 2 channels refused")
        with pytest.raises(ValueError, match=rf"keeps {inside.sum()} channel\(s\).*at least 2"):
            si.crop(e_min, e_max)
        return
    event("crop: cropped")
    with no_runtime_warnings():
        out = si.crop(e_min, e_max)
    np.testing.assert_array_equal(out.energy, e[inside])
    np.testing.assert_array_equal(out.spectra, x[..., inside])
    assert np.isfinite(out.spectra).all()
    np.testing.assert_array_equal(out.haadf, si.haadf)
    assert (out.scale, out.pixel_size, out.scan_shape) == (si.scale, si.pixel_size, si.scan_shape)
    np.testing.assert_array_equal(si.spectra, x)  # the input is not modified


# ------------------------------------------------------------------------------ bin
@st.composite
def si_and_bin_factors(draw):
    x = draw(spectra(BIN_LIMIT, max_side=6))
    e = draw(increasing_axis(x.shape[2]))
    return (build_si(x, e, draw(st.integers(1, 3))), draw(st.integers(1, 5)),
            draw(st.integers(1, 6)))


@settings(max_examples=80, deadline=None)
@given(case=si_and_bin_factors())
def test_bin_conserves_sums_of_whole_bins_and_keeps_axes_consistent(case):
    si, spatial, energy = case
    x, e, s = si.spectra.copy(), si.energy.copy(), si.scale
    h, w, n = x.shape
    hb, wb, eb = h // spatial, w // spatial, n // energy
    if hb == 0 or wb == 0:
        event("bin: spatial factor refused")
        with pytest.raises(ValueError, match=f"spatial bin {spatial} is larger than the scan"):
            si.bin(spatial, energy)
        return
    if eb < 2:
        event("bin: energy factor refused")
        with pytest.raises(ValueError, match=f"energy bin {energy} leaves fewer than 2"):
            si.bin(spatial, energy)
        return
    event("bin: binned")
    with no_runtime_warnings():
        out = si.bin(spatial, energy)
    assert out.spectra.shape == (hb, wb, eb)
    assert np.isfinite(out.spectra).all()
    # every output value is the float64 sum of its whole block; partial blocks are dropped
    x64 = x.astype(np.float64)
    for i in range(hb):
        for j in range(wb):
            for k in range(eb):
                block = x64[i * spatial:(i + 1) * spatial, j * spatial:(j + 1) * spatial,
                            k * energy:(k + 1) * energy]
                tol = 2 * block.size * F32_EPS * np.abs(block).sum() + block.size * F32_TINY
                assert abs(float(out.spectra[i, j, k]) - block.sum()) <= tol, (i, j, k)
                np.testing.assert_allclose(out.energy[k], e[k * energy:(k + 1) * energy].mean(),
                                           rtol=1e-12, atol=1e-12)
    whole = x64[:hb * spatial, :wb * spatial, :eb * energy]
    assert abs(out.spectra.astype(np.float64).sum() - whole.sum()) <= (
        2 * whole.size * F32_EPS * np.abs(whole).sum() + whole.size * F32_TINY)
    assert np.all(np.diff(out.energy) > 0)
    assert out.energy[0] >= e[0] and out.energy[-1] <= e[eb * energy - 1]
    # the HAADF keeps its resolution and covers exactly the binned scan
    assert out.scale == s * spatial
    np.testing.assert_array_equal(out.haadf, si.haadf[:hb * spatial * s, :wb * spatial * s])
    assert out.pixel_size == pytest.approx(si.pixel_size * spatial)
    np.testing.assert_array_equal(si.spectra, x)


@pytest.mark.parametrize("factor", [
    0, -1, 2.5, True, "2", math.inf, math.nan,
])
def test_bin_rejects_bad_factors_with_a_value_error(factor):
    si = build_si(np.ones((4, 4, 6), dtype=np.float32), np.arange(1.0, 7.0))
    for kwargs, name in (({"spatial": factor}, "spatial"), ({"energy": factor}, "energy")):
        with no_runtime_warnings(), pytest.raises(
                ValueError, match=f"{name} bin factor must be a positive integer"):
            si.bin(**kwargs)


def test_bin_refuses_a_normalised_si():
    si = build_si(np.ones((2, 2, 4), dtype=np.float32), np.arange(1.0, 5.0)).normalize()
    with pytest.raises(ValueError, match="bin before normalising"):
        si.bin(2)


# ------------------------------------------------------------------------------ remove_zlp
@st.composite
def si_and_zlp_window(draw, valid: bool):
    """valid: an axis starting above 0 eV and a window that begins at the axis start (the
    documented use), or the automatic window on spectra that fall off from the axis start
    like a ZLP tail (``plasmonwidgets.zlp``: per-pixel amplitudes, dead pixels included,
    times a decaying power law). Else an axis starting at or below 0 eV with a window
    reaching down to its start (below the ZLP), a reversed window, or one holding fewer
    than 3 channels."""
    x = draw(spectra(ZLP_LIMIT, min_channels=3, max_channels=30, max_side=3))
    n = x.shape[2]
    kinds = ["from start", "default"] if valid else ["axis <= 0", "reversed", "too narrow"]
    kind = draw(st.sampled_from(kinds))
    start = {"axis <= 0": st.floats(-10, 0), "default": st.floats(0.01, 9.0)}.get(
        kind, st.floats(0.01, 100))
    e = draw(increasing_axis(n, uniform=True, start=start))  # offset + scale * channel
    if kind == "default":
        window = None
        amplitude = np.abs(x[..., :1]).astype(np.float64)
        x = (amplitude * (e / e[0]) ** -draw(st.floats(0.5, 4.0))).astype(np.float32)
    elif kind in ("from start", "axis <= 0"):
        window = (draw(st.floats(e[0] - 1, e[0])), draw(st.floats(e[2], e[-1] + 1)))
    elif kind == "reversed":
        lo = draw(st.floats(e[0], e[-1]))
        window = (lo, draw(st.floats(e[0] - 1, lo)))
    else:  # at most 2 channels inside
        i = draw(st.integers(0, n - 3))
        window = (e[i], e[i] + draw(st.floats(0.01, 0.99)) * (e[i + 2] - e[i]))
    return build_si(x, e), window, draw(st.sampled_from(["power", "exp2"]))


@settings(max_examples=80, deadline=None)
@given(case=si_and_zlp_window(valid=True))
def test_remove_zlp_is_finite_and_keeps_the_axes(case):
    si, window, model = case
    x, e = si.spectra.copy(), si.energy.copy()
    event(f"remove_zlp: {model}, window {'default' if window is None else 'from start'}")
    with warnings.catch_warnings():
        # the power-law fit may warn about overflow inside its own iterations
        # (test_remove_zlp_does_not_leak_numpy_warnings); the result must be finite anyway
        warnings.simplefilter("ignore", RuntimeWarning)
        out = si.remove_zlp(window=window, model=model)
    assert np.isfinite(out.spectra).all()
    assert out.spectra.shape == x.shape and out.spectra.dtype == np.float32
    np.testing.assert_array_equal(out.energy, e)
    np.testing.assert_array_equal(out.haadf, si.haadf)
    fit = out.metadata["zlp_fit"]
    params = {"power": ("A", "r"), "exp2": ("A1", "t1", "A2", "t2")}[model]
    assert fit["model"] == model and set(params) <= set(fit)
    for name in params:
        assert fit[name].shape == si.scan_shape and np.isfinite(fit[name]).all(), name
    # a dead (all-zero) pixel stays exactly zero, whatever its neighbours hold
    dead = (x == 0).all(axis=-1)
    assert (out.spectra[dead] == 0).all()
    np.testing.assert_array_equal(si.spectra, x)


@settings(max_examples=60, deadline=None)
@given(case=si_and_zlp_window(valid=False))
def test_remove_zlp_refuses_bad_axes_and_windows_with_a_value_error(case):
    si, window, model = case
    e = si.energy
    lo, hi = window
    held = int(((e >= lo) & (e <= hi)).sum())
    if not lo < hi:
        event("remove_zlp: reversed window refused")
        message = "fit window must satisfy start < end"
    elif held < 3:
        event("remove_zlp: narrow window refused")
        message = f"holds {held} channels .* at least 3"
    else:  # a window reaching down to the axis start, at or below 0 eV and the ZLP
        assert e[0] <= 0
        event("remove_zlp: window below the ZLP refused")
        message = "ZLP-tail models need energies > 0 above the peak"
    with no_runtime_warnings(), pytest.raises(ValueError, match=message):
        si.remove_zlp(window=window, model=model)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"model": "gauss"}, "unknown ZLP model 'gauss'"),
    ({"window": (3.0, 1.0)}, "fit window must satisfy start < end"),
    ({"window": (math.nan, 3.0)}, "fit window must satisfy start < end"),
    ({"window": (1.0, 2.0)}, "fit window 1-2 eV holds 2 channels"),
    ({"window": (50.0, 60.0)}, "holds 0 channels"),
    ({"window": (1.0,)}, r"fit window must be a \(start, end\) pair"),
])
def test_remove_zlp_rejects_bad_arguments_with_a_value_error(kwargs, message):
    si = build_si(np.ones((2, 1, 6), dtype=np.float32), np.arange(1.0, 7.0))
    with no_runtime_warnings(), pytest.raises(ValueError, match=message):
        si.remove_zlp(**kwargs)


@pytest.mark.parametrize("n_channels", [1, 2])
def test_remove_zlp_on_too_few_channels_raises_a_value_error(n_channels):
    si = build_si(np.ones((1, 1, n_channels), dtype=np.float32), np.arange(1.0, n_channels + 1))
    with pytest.raises(ValueError, match="at least 3"):
        si.remove_zlp()


@pytest.mark.parametrize(("x", "energy", "kwargs"), [
    # power law, uniform axis, window on the first 3 channels, a 1e19 spike: the fit diverges (r ~ -60)
    pytest.param([0, 1e19, *[0] * 12], 0.25 + 0.25 * np.arange(14), {"window": (0.25, 0.75)},
                 id="power-spike-1e19"),
    # power law on ordinary values, default window, uneven axis: A < 0 and r ~ -184
    pytest.param([1, 0, 0, 0], [0.03125, 0.033203125, 1.033203125, 2.033203125], {},
                 id="power-uneven-axis"),
    # power law, window after the axis start, values 0 and 1
    pytest.param([1, 1, 1, 1, 1, 1, 0, 1], 0.25 + np.arange(8.0), {"window": (5.25, 7.25)},
                 id="power-window-after-start"),
])
def test_remove_zlp_extrapolated_tail_stays_finite(x, energy, kwargs):
    # the exponent is bounded, so the extrapolated power law stays finite
    si = build_si(np.asarray(x, dtype=np.float32)[None, None], np.asarray(energy, dtype=float))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out = si.remove_zlp(**kwargs)
    assert np.isfinite(out.spectra).all()


def test_remove_zlp_does_not_leak_numpy_warnings():
    si = build_si(np.array([[[0, 1, 1]]], dtype=np.float32), np.array([0.25, 0.375, 0.5]))
    with no_runtime_warnings():
        out = si.remove_zlp(window=(0.25, 0.5))
    assert np.isfinite(out.spectra).all()


@pytest.mark.parametrize("operation", ["remove_zlp", "bin"])
def test_values_near_float32_max_fail_with_a_clear_message(operation):
    si = build_si(np.full((2, 2, 3), 3e38, dtype=np.float32), np.array([1.0, 2.0, 3.0]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            out = si.remove_zlp() if operation == "remove_zlp" else si.bin(2)
        except ValueError as exc:
            # a clear refusal is fine, but not one telling the user to clean NaN/Inf out of
            # input that has none
            assert "NaN/Inf" not in str(exc), str(exc)
        else:
            assert np.isfinite(out.spectra).all()
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]


# ------------------------------------------------------------------------------ tiles
def window_start(index: int, s: int, w: int) -> int:
    """README convention: HAADF row (or column) where SI pixel ``index``'s window starts."""
    return s * index + s // 2 - w // 2


def mirror(i: np.ndarray, n: int) -> np.ndarray:
    """Index into an axis of n pixels mirrored at both ends without repeating the edge
    (``np.pad(mode="reflect")``): ... 2 1 | 0 1 ... n-1 | n-2 ..."""
    period = 2 * (n - 1)
    i = np.abs(i) % period
    return np.where(i > n - 1, period - i, i)


def expected_window(haadf: np.ndarray, r: int, c: int, s: int, w: int, pad) -> np.ndarray:
    rows = window_start(r, s, w) + np.arange(w)
    cols = window_start(c, s, w) + np.arange(w)
    if pad is None:
        assert rows[0] >= 0 and cols[0] >= 0  # only kept when it fits: plain slicing
        return haadf[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    return haadf[np.ix_(mirror(rows, haadf.shape[0]), mirror(cols, haadf.shape[1]))]


def fits(index: int, s: int, w: int, size: int) -> bool:
    start = window_start(index, s, w)
    return start >= 0 and start + w <= size


def centres_inside_windows(train_pos, test_pos, s: int, w: int, pad=None, shape=None) -> np.ndarray:
    """(n_train, n_test) bool: test centre j's HAADF pixel lies in train tile i's window
    (with ``pad="reflect"``: in the pixels its window mirrors in, for a HAADF of ``shape``)."""
    top = window_start(np.asarray(train_pos), s, w)  # (n_train, 2) window starts
    centre = np.asarray(test_pos) * s + s // 2  # (n_test, 2) HAADF pixel of each centre
    if pad is None:
        inside = (centre[None] >= top[:, None]) & (centre[None] < top[:, None] + w)
        return inside.all(axis=-1)
    out = np.ones((len(top), len(centre)), dtype=bool)
    for axis in (0, 1):
        held = mirror(top[:, axis, None] + np.arange(w), shape[axis])  # (n_train, w)
        out &= (held[:, None, :] == centre[None, :, axis, None]).any(axis=-1)
    return out


@st.composite
def tiling_case(draw):
    h, w, s = draw(st.integers(1, 10)), draw(st.integers(1, 10)), draw(st.integers(1, 4))
    H, W = s * h, s * w
    window = draw(st.one_of(st.integers(2, max(2, min(H, W))), st.integers(2, max(H, W) + 2)))
    return h, w, s, window, draw(st.integers(1, 3)), draw(st.sampled_from([None, "reflect"]))


SPLIT_REFUSALS = ("in the test set; choose a test_fraction", "clear of the test region",
                  "leaves an empty set")


@settings(max_examples=80, deadline=None)
@given(case=tiling_case(), fraction=st.floats(0.05, 0.95), seed=st.integers(0, 20),
       n_stripes=st.integers(1, 4), n_blocks=st.integers(2, 4))
def test_make_tiles_counts_windows_and_splits_follow_the_convention(
        case, fraction, seed, n_stripes, n_blocks):
    h, w, s, window, step, pad = case
    H, W = s * h, s * w
    e = np.array([1.0, 2.0])
    x = np.arange(h * w * 2, dtype=np.float32).reshape(h, w, 2)  # every spectrum distinct
    si = build_si(x, e, s)  # every HAADF pixel distinct
    haadf = si.haadf
    if window > min(H, W):
        event("tiles: window larger than the image refused")
        message = "at least 2x2 HAADF pixels" if min(H, W) < 2 else "larger than the HAADF image"
        with pytest.raises(ValueError, match=message):
            pw.make_tiles(si, window=window, step=step, pad=pad)
        return
    rows = [r for r in range(0, h, step) if pad == "reflect" or fits(r, s, window, H)]
    cols = [c for c in range(0, w, step) if pad == "reflect" or fits(c, s, window, W)]
    expected = {(r, c) for r in rows for c in cols}
    if not expected:
        event("tiles: no full window refused")
        with pytest.raises(ValueError, match="no SI pixel has a full"):
            pw.make_tiles(si, window=window, step=step, pad=pad)
        return
    event(f"tiles: tiled (pad={pad})")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pairs = pw.make_tiles(si, window=window, step=step, pad=pad)
    # a warning exactly when the window covers less than one SI pixel
    assert [str(m.message) for m in caught if "less than one SI pixel" in str(m.message)] == (
        [str(caught[0].message)] if window < s else [])
    positions = [tuple(int(v) for v in p) for p in pairs.positions]
    assert len(pairs) == len(expected) == len(set(positions))
    assert set(positions) == expected
    if pad == "reflect" and step == 1:
        assert len(pairs) == h * w  # every SI pixel gets a tile
    for i, (r, c) in enumerate(positions):
        want = expected_window(haadf, r, c, s, window, pad)
        np.testing.assert_array_equal(pairs.tile(i), want)  # the lazy view
        np.testing.assert_array_equal(pairs.spectra[i], x[r, c])
    images = pairs.images
    assert images.shape == (len(pairs), window, window)
    for i, (r, c) in enumerate(positions):
        np.testing.assert_array_equal(images[i], expected_window(haadf, r, c, s, window, pad))

    index = {p: i for i, p in enumerate(positions)}
    # halves and stripes run along rows, columns or (None) the longer scan axis
    cases = [(m, a) for m in SPLIT_METHODS
             for a in ((None, "rows", "columns") if m in ("halves", "stripes") else (None,))]
    for method, axis in cases:
        name = f"{method}/{axis}"
        try:
            train, test = pairs.split(method, test_fraction=fraction, seed=seed,
                                      n_stripes=n_stripes, n_blocks=n_blocks, axis=axis)
        except ValueError as exc:  # a split that cannot leave both sets non-empty says so
            assert any(m in str(exc) for m in SPLIT_REFUSALS), str(exc)
            event(f"split {name}: refused")
            continue
        event(f"split {name}: split")
        train_pos = [tuple(int(v) for v in p) for p in train.positions]
        test_pos = [tuple(int(v) for v in p) for p in test.positions]
        assert train_pos and test_pos
        assert not set(train_pos) & set(test_pos), name  # disjoint
        assert set(train_pos) | set(test_pos) <= expected
        for part, pos in ((train, train_pos), (test, test_pos)):  # subsets carry their tiles
            ref = [index[p] for p in pos]
            np.testing.assert_array_equal(part.images, images[ref])
            np.testing.assert_array_equal(part.spectra, pairs.spectra[ref])
        if method == "random":
            assert len(train) + len(test) == len(pairs)
            assert len(test) == round(fraction * len(pairs))
            continue
        # no test centre inside any training tile's window ...
        assert not centres_inside_windows(train_pos, test_pos, s, window, pad, (H, W)).any(), name
        # ... and only the tiles that hold one were dropped from training
        others = sorted(expected - set(test_pos))
        clear = ~centres_inside_windows(others, test_pos, s, window, pad, (H, W)).any(axis=1)
        assert set(train_pos) == {p for p, ok in zip(others, clear) if ok}, name
        if method == "halves":
            along = {"rows": 0, "columns": 1, None: 0 if h > w else 1}[axis]
            assert max(p[along] for p in train_pos) < min(p[along] for p in test_pos), name
            assert train.split_info["axis"] == ("rows", "columns")[along]


def test_remove_zlp_diverging_back_extrapolation_is_a_clear_error():
    # two exponentials fitted to [1, 0] on 2-4 eV: at 1 eV the tail is e^(+1/t), t -> 0
    si = build_si(np.array([[[0, 1, 0, 0]]], dtype=np.float32), np.array([1.0, 2.0, 3.0, 4.0]))
    with pytest.raises(ValueError, match=r"fitted ZLP tail \(exp2 model, fit window 2-4 eV\) "
                                         r"exceeds float32's range .* first at \(0, 0\)"):
        si.remove_zlp(window=(2, 4), model="exp2")


def test_reflect_padded_training_tiles_hold_no_test_centre_pixels():
    haadf = np.arange(256, dtype=np.float32).reshape(16, 16)  # a value names its pixel
    si = SpectrumImage(np.zeros((16, 16, 2)), [1.0, 2.0], haadf)
    pairs = pw.make_tiles(si, window=8, pad="reflect")
    # with 3/4 of the columns in test, every border tile mirrors a test column: refused
    with pytest.raises(ValueError, match="leaves no training tile that is clear"):
        pairs.split("halves", test_fraction=0.75)
    train, test = pairs.split("halves", test_fraction=0.5)  # test columns 8..15
    test_pixels = set(haadf[test.positions[:, 0], test.positions[:, 1]].tolist())
    leaked = [tuple(p) for p, tile in zip(train.positions.tolist(), train.images)
              if test_pixels & set(tile.ravel().tolist())]
    assert not leaked, f"{len(leaked)} training tiles hold test-centre pixels, e.g. {leaked[:3]}"
