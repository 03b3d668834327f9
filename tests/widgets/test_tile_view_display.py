"""TileView's physical display: a fixed HAADF intensity range, clipping, beam marker, scale bar.

Checked on the widget state the browser receives (no browser): the colour scale's range,
the (clipped) arrays, the serialised bytes, the marks' coordinates.
"""

from __future__ import annotations

import numpy as np
import pytest

import plasmonwidgets as pw
from plasmonwidgets.widgets import colormaps
from plasmonwidgets.widgets.scale_bar import add_scale_bar, format_length, nice_length, to_nm
from plasmonwidgets.widgets.tile_view import BEAM_COLOR, TileView, haadf_range

WINDOW = 8


@pytest.fixture(scope="module")
def si():
    return pw.datasets.nanocube_array(seed=0, size=32, n_energy=60, cache=False, physics="toy")


@pytest.fixture(scope="module")
def pairs(si):
    return pw.make_tiles(si, window=WINDOW, pad="reflect")


def test_range_is_the_whole_haadf_and_does_not_follow_clicks(si, pairs):
    lo, hi = np.percentile(si.haadf, [0.5, 99.5])
    tv = TileView(si=si)
    assert tv.color_range == pytest.approx((lo, hi)) == tv.fixed_range
    seen = set()
    for row, col in [(3, 3), (16, 16), (28, 5)]:  # three probe clicks
        tile = np.array(pairs.tile(pairs.index_of(row, col)))
        tv.set_tiles(measured=tile, predictions={"model": tile * 0.5 - 20})
        seen.add(tv.color_range)
        assert (tv.color_scale.min, tv.color_scale.max) == tv.fixed_range
    assert seen == {tv.fixed_range}
    bar = tv.colorbar.marks[0]
    assert (bar.y.min(), bar.y.max()) == pytest.approx((lo, hi))


def test_vacuum_is_black_and_negative_predictions_clip_to_the_bottom(si):
    tv = TileView(si=si)
    lo, hi = tv.fixed_range
    regions = si.metadata["regions"]
    vacuum = si.haadf[regions == si.metadata["region_names"].index("vacuum")]
    tile = np.full((WINDOW, WINDOW), float(np.median(vacuum)))
    pred = np.full((WINDOW, WINDOW), -50.0)
    tv.set_tiles(measured=tile, predictions={"spec2im": pred})
    # level on the grey ramp, 0 = black: the vacuum within the bottom 5 %
    level = (tv.tile("measured") - lo) / (hi - lo)
    assert level.max() < 0.05
    assert colormaps.hex_colors("grey")[0] == tv.color_scale.colors[0] == "#000000"
    np.testing.assert_array_equal(tv.tile("spec2im"), np.full((WINDOW, WINDOW), lo))
    # what travels to the browser is the clipped array, as binary float data
    state = tv.heatmaps["spec2im"].get_state()["color"]
    sent = np.frombuffer(bytes(state["value"]), dtype=state["dtype"]).reshape(state["shape"])
    np.testing.assert_array_equal(sent, np.full((WINDOW, WINDOW), lo))


def test_vrange_overrides_and_is_checked():
    tv = TileView(vrange=(0.0, 10.0))
    tv.set_tiles(measured=np.arange(16.0).reshape(4, 4) - 3)
    assert tv.color_range == (0.0, 10.0)
    assert tv.tile("measured").min() == 0.0 and tv.tile("measured").max() == 10.0
    with pytest.raises(ValueError, match="hi > lo"):
        TileView(vrange=(1.0, 1.0))


def test_colour_bar_has_round_ticks_and_a_unit(si):
    tv = TileView(si=si)
    ticks = np.asarray(tv._bar_axis.tick_values, dtype=float)
    lo, hi = tv.fixed_range
    step = np.diff(ticks)[0]
    assert len(ticks) >= 2 and np.allclose(np.diff(ticks), step)
    assert step / 10 ** np.floor(np.log10(step)) in (1.0, 2.0, 5.0)
    assert np.allclose(ticks / step, np.round(ticks / step)) and lo <= ticks[0] and ticks[-1] <= hi
    assert "HAADF (counts)" in tv._bar_cell.children[0].value
    assert "0.5–99.5th percentile" in tv.range_note.value


def test_beam_marked_at_the_tile_centre_in_every_tile(si, pairs):
    tv = TileView(si=si)
    tile = np.array(pairs.tile(0))
    tv.set_tiles(measured=tile, predictions={"a": tile, "b": tile})
    assert set(tv.beams) == {"measured", "a", "b"}
    for name, beam in tv.beams.items():
        assert list(beam.x) == [WINDOW // 2] and list(beam.y) == [WINDOW // 2]
        assert beam.colors == [BEAM_COLOR] and beam in tv.figures[name].marks
    tv.set_tiles(measured=np.zeros((12, 12)))  # another window moves the marker
    assert list(tv.beams["measured"].x) == [6] and set(tv.beams) == {"measured"}


def test_scale_bar_on_tiles_from_the_pixel_size(si, pairs):
    tv = TileView(si=si)
    tv.set_tiles(measured=np.array(pairs.tile(0)))
    bar = tv.scale_bars["measured"]
    # 8 px of 2 nm: the longest round bar within 30 % of 16 nm is 2 nm (1 px)
    assert si.pixel_size / si.scale == 2.0
    assert (bar.length, bar.unit, bar.label, bar.pixels) == (2.0, "nm", "2 nm", 1.0)
    _edge, line, text = bar.marks
    assert line.x[1] - line.x[0] == pytest.approx(bar.pixels) and list(text.text) == ["2 nm"]
    assert all(m in tv.figures["measured"].marks for m in bar.marks)
    assert not TileView().scale_bars  # no pixel size, no bar


@pytest.mark.parametrize(
    ("pixel_size", "unit", "cols", "label", "pixels"),
    [(2.0, "nm", 16, "5 nm", 2.5), (2.0, "nm", 96, "50 nm", 25.0), (0.5, "Å", 64, "0.5 nm", 10.0),
     (0.05, "µm", 100, "1 µm", 20.0), (1.0, "px", 40, "10 px", 10.0)],
)
def test_scale_bar_length_is_round(pixel_size, unit, cols, label, pixels):
    import bqplot as bq

    img = bq.HeatMap(x=np.arange(cols), y=np.arange(cols), color=np.zeros((cols, cols)),
                     scales={"x": bq.LinearScale(), "y": bq.LinearScale(reverse=True),
                             "color": bq.ColorScale()})
    fig = bq.Figure(marks=[img])
    bar = add_scale_bar(fig, pixel_size=pixel_size, unit=unit, shape=(cols, cols))
    assert bar.label == label and bar.pixels == pytest.approx(pixels)
    assert bar.pixels <= 0.3 * cols + 1e-9 and len(fig.marks) == 4


def test_nice_length_and_units():
    assert [nice_length(v) for v in (0.7, 1.0, 1.9, 4.99, 8.0, 23.0, 999.0)] == [
        0.5, 1.0, 1.0, 2.0, 5.0, 20.0, 500.0]
    assert to_nm(3.0, "Å") == pytest.approx(0.3) and to_nm(1.0, "um") == 1000.0
    assert to_nm(1.0, "px") is None
    assert format_length(2000.0) == "2 µm" and format_length(20.0) == "20 nm"
    with pytest.raises(ValueError, match="positive"):
        nice_length(0.0)


def test_haadf_range_of_an_array():
    assert haadf_range(np.arange(1001.0)) == (5.0, 995.0)
    with pytest.raises(ValueError, match="no finite values"):
        haadf_range(np.full((3, 3), np.nan))
