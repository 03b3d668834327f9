"""NMFPanel and ErrorMapPanel as displayed: one NMF palette, colour bars, probe marker,
shared error scale, training half, near-zero-signal pixels, the error-vs-HAADF scatter."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib
import nbformat
import numpy as np
import pytest

import plasmonwidgets as pw
from plasmonwidgets import analysis
from plasmonwidgets.widgets import colormaps
from plasmonwidgets.widgets.error_map_panel import (
    ErrorMapPanel,
    log_ticks,
    shared_error_range,
    training_box,
)
from plasmonwidgets.widgets.haadf_viewer import HAADFViewer
from plasmonwidgets.widgets.nmf_panel import NMFPanel

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
WINDOW, N_E = 8, 60


@pytest.fixture(scope="module")
def si():
    return pw.datasets.nanocube_array(seed=0, size=32, n_energy=N_E, cache=False, physics="toy")


@pytest.fixture(scope="module")
def split(si):
    return pw.make_tiles(si, window=WINDOW).split("halves")


@pytest.fixture(scope="module")
def nmf_panel(si):
    viewer = HAADFViewer(si)
    return NMFPanel(si, viewer=viewer, n_components=4, run=True)


# --- NMF ----------------------------------------------------------------------------


def test_nmf_components_take_the_one_palette(nmf_panel):
    expected = list(colormaps.NMF_COLORS[:4])
    assert nmf_panel.colors == expected and list(nmf_panel.spectra_lines.colors) == expected
    for k, title in enumerate(nmf_panel.titles[:4]):
        assert f"color:{expected[k]}" in title.value and f"C{k + 1}" in title.value
    assert len(set(colormaps.NMF_COLORS)) == len(colormaps.NMF_COLORS)


def test_nmf_maps_have_a_colour_bar_scale_bar_and_a_small_probe_marker(si, nmf_panel):
    viewer = nmf_panel.viewer
    viewer.position = [5, 7]
    for k, thumb in enumerate(nmf_panel.thumbnails[:4]):
        assert not thumb.show_probe  # no crosshair across the small map
        assert thumb.highlight == [[5, 7]]  # a small ring at the probe instead
        assert (thumb.pixel_size, thumb.pixel_unit) == (si.pixel_size, si.pixel_unit)
        lo, hi = NMFPanel.map_range(nmf_panel.result.maps[k])
        assert (thumb.vmin, thumb.vmax) == pytest.approx((lo, hi)) and lo == 0.0
        bar = nmf_panel.colorbars[k].value
        assert "abundance (a.u.)" in bar and "linear-gradient" in bar
        ticks = [float(t) for t in re.findall(r"</span>([-\d.]+)</span>", bar)]
        assert ticks and ticks[0] == 0.0 and max(ticks) <= hi
    nmf_panel.thumbnails[2].position = [1, 2]  # a click on a thumbnail
    assert viewer.position == [1, 2] and nmf_panel.thumbnails[0].highlight == [[1, 2]]


def _run_notebook_figure(path: Path, si, nmf_cell: int) -> list:
    """Run the notebook's display helpers and its NMF cell on ``si``; the figure's lines' colours."""
    import matplotlib.pyplot as plt

    matplotlib.use("Agg")
    nb = nbformat.read(path, as_version=4)
    helpers = next(c.source for c in nb.cells if c.source.startswith("# one display convention"))
    pairs = pw.make_tiles(si, window=WINDOW)
    train, test = pairs.split("halves")
    scope = {"np": np, "plt": plt, "pw": pw, "analysis": analysis, "si": si, "pairs": pairs,
             "train": train, "test": test}
    exec(compile(helpers, f"{path.name}:helpers", "exec"), scope)
    plt.close("all")
    exec(compile(nb.cells[nmf_cell].source, f"{path.name}:nmf", "exec"), scope)
    figures = [plt.figure(n) for n in plt.get_fignums()]
    colours = {
        "lines": [matplotlib.colors.to_hex(line.get_color()) for fig in figures for ax in fig.axes
                  for line in ax.get_lines() if line.get_label().startswith("C")],
        "titles": [matplotlib.colors.to_hex(ax.title.get_color()) for fig in figures for ax in fig.axes
                   if re.fullmatch(r"C\d", ax.get_title())],
    }
    plt.close("all")
    return colours


@pytest.mark.parametrize("name", ["02_im2spec.ipynb", "03_spec2im.ipynb"])
def test_notebook_nmf_figures_use_the_dashboard_palette(si, nmf_panel, name):
    path = NOTEBOOKS / name
    nb = nbformat.read(path, as_version=4)
    cell = next(i for i, c in enumerate(nb.cells) if c.source.startswith("maps, endmembers"))
    colours = _run_notebook_figure(path, si, cell)
    assert colours["lines"] == nmf_panel.colors
    assert colours["titles"] == nmf_panel.colors


# --- error maps -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def error_panel(si, split):
    train, test = split
    models = {"2 latent": pw.Spec2Im(n_energy=N_E, window=WINDOW, latent_dim=2, seed=0),
              "10 latent": pw.Spec2Im(n_energy=N_E, window=WINDOW, latent_dim=10, seed=1)}
    return ErrorMapPanel(models, test, viewer=HAADFViewer(si), train_pairs=train, map_size=200)


def test_error_maps_share_one_stated_round_scale(error_panel):
    ranges = {tuple(view.overlay_range) for view in error_panel.maps.values()}
    assert ranges == {error_panel.color_range}
    lo, hi = error_panel.color_range
    assert (lo, hi) == shared_error_range(list(error_panel.shown.values()))
    assert hi >= np.nanpercentile(np.concatenate([m.ravel() for m in error_panel.shown.values()]), 99)
    assert f"{lo:g}–{hi:g} %" in error_panel.scale_note.value
    assert "same scale on every map" in error_panel.scale_note.value
    assert shared_error_range([np.array([[1.0, 3.0]]), np.array([[np.nan, 37.0]])]) == (0.0, 40.0)


def test_near_zero_signal_pixels_are_grey_and_out_of_the_scale(si, split, error_panel):
    _, test = split
    for name, model in error_panel.models.items():
        low = analysis.low_signal_map(model, test, min_signal=0.05)
        assert low.any(), "the simulated scan has dark tiles at the void"
        np.testing.assert_array_equal(error_panel.low_signal[name], low)
        shown = error_panel.maps[name].overlay_data
        scored = ~low & np.isfinite(error_panel.errors[name])
        assert np.isnan(shown[low]).all() and np.isfinite(shown[scored]).all()
        # the base image under them is the flat MASKED_COLOR level of the grey ramp
        view = error_panel.maps[name]
        level = (view.image_data[low] - view.vmin) / (view.vmax - view.vmin)
        np.testing.assert_allclose(level, int(colormaps.MASKED_COLOR[1:3], 16) / 255, atol=1e-4)
        assert error_panel.stats[name]["n_low"] == int(low.sum())
    assert f"({int(low.sum())} pixels)" in error_panel.scale_note.value


def test_low_signal_keyword_of_error_map(split):
    _, test = split
    model = pw.Spec2Im(n_energy=N_E, window=WINDOW, latent_dim=2, seed=0)
    energy = np.sum(np.asarray(test.images, dtype=np.float64).reshape(len(test), -1) ** 2, axis=1)
    expect_low = energy < 0.05 * np.median(energy)
    full = analysis.tile_errors(model, test)
    masked = analysis.tile_errors(model, test, min_signal=0.05)
    assert expect_low.any() and np.isnan(masked[expect_low]).all()
    np.testing.assert_allclose(masked[~expect_low], full[~expect_low])
    np.testing.assert_array_equal(analysis.low_signal_map(model, test, min_signal=0.05),
                                  analysis.scan_map(expect_low.astype(float), test) == 1.0)
    assert not analysis.low_signal_map(model, test, min_signal=0.0).any()
    with pytest.raises(ValueError, match="fraction of the median"):
        analysis.error_map(model, test, min_signal=1.5)


def test_training_half_is_hatched_and_outlined(si, split, error_panel):
    train, test = split
    r0, c0, r1, c1 = error_panel.train_box
    rows, cols = np.asarray(train.positions).T
    assert (r0, c0, r1, c1) == (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1)
    # without the training tiles: the side of the scan beside the test half
    assert training_box(test.positions, test.scan_shape) == (0, 0, 32, int(test.positions[:, 1].min()))
    view = next(iter(error_panel.maps.values()))
    img = view.image_data
    hatch = [(r, c) for r in range(r0, r1) for c in range(c0, c1) if (r + c) % 4 == 0]
    assert all(img[r, c] == pytest.approx(view.vmax) for r, c in hatch)  # white lines
    if view.has_trait("overlays"):
        (box,) = view.overlays["training half"]
        assert box["label"] == "training half" and (box["x0"], box["x1"]) == (c0 * si.scale, c1 * si.scale)
    assert "hatched: training half" in error_panel.scale_note.value


def test_captions_say_r_in_words_not_mse(error_panel):
    for caption in error_panel.captions.values():
        text = caption.value
        assert "MSE =" not in text and "correlation of error with HAADF r =" in text
        assert "mean NMSE" in text and "median" in text and "every test pixel" in text


def test_error_against_haadf_scatter(si, error_panel):
    marks = error_panel.scatter_figure.marks
    assert [m.labels[0].split(",")[0] for m in marks] == list(error_panel.errors)
    haadf = si.haadf_on_si_grid()
    for mark, shown in zip(marks, error_panel.shown.values()):
        x, y = analysis.error_haadf_pairs(shown, si)
        keep = y > 0
        np.testing.assert_allclose(mark.x, x[keep])
        np.testing.assert_allclose(mark.y, y[keep], rtol=1e-6)
        assert np.isin(mark.x, haadf).all()
    axes = error_panel.scatter_figure.axes
    assert axes[0].label.startswith("HAADF") and axes[1].label == "NMSE (%)"
    lo, hi = min(np.min(m.y) for m in marks), max(np.max(m.y) for m in marks)
    assert list(error_panel._scatter_y_axis.tick_values) == log_ticks(lo, hi)


def test_log_ticks_are_round():
    assert log_ticks(0.3, 150.0) == [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]
    assert log_ticks(45.0, 98.0) == [50.0, 60.0, 70.0, 80.0, 90.0]
    assert log_ticks(96.5, 99.8) == []  # nothing round inside: the plot's own ticks
    assert log_ticks(0.0, 1.0) == []
