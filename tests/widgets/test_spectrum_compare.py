"""Spectrum comparison without a browser: outline overlays, pins, region sums, window maps.

Browser gestures are simulated with the same custom messages the viewer's front end sends
(``{"event": "pin", ...}``, ``{"event": "region", ...}``); messages to the front end are
recorded from each widget's comm (ipywidgets' DummyComm when no kernel is attached).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import traitlets

from plasmonwidgets.spectrum_image import SpectrumImage
from plasmonwidgets.tiles import make_tiles
from plasmonwidgets.widgets.haadf_viewer import HAADFViewer
from plasmonwidgets.widgets.linking import link
from plasmonwidgets.widgets.spectrum_compare import MAX_PINS, PIN_COLORS, SpectrumCompare, window_map
from plasmonwidgets.widgets.spectrum_view import SpectrumView

H, W, N_E, SCALE = 12, 15, 50, 2


@pytest.fixture(scope="module")
def si():
    """Random positive counts: every pixel's spectrum differs, so a wrong index shows."""
    rng = np.random.default_rng(3)
    spectra = rng.gamma(2.0, 50.0, size=(H, W, N_E)).astype(np.float32)
    haadf = rng.random((H * SCALE, W * SCALE)).astype(np.float32)
    return SpectrumImage(spectra, np.linspace(0.2, 1.18, N_E), haadf, pixel_size=2.5, pixel_unit="nm")


@pytest.fixture
def parts(si):
    viewer = HAADFViewer(si)
    view = SpectrumView(energy=si.energy)
    return viewer, view, SpectrumCompare(viewer, view, si)


def click_pin(viewer, row, col):
    viewer._handle_custom_msg({"event": "pin", "position": [row, col]}, [])


def drag_region(viewer, r0, c0, r1, c1):
    viewer._handle_custom_msg({"event": "region", "box": [r0, c0, r1, c1]}, [])


class Outbox:
    def __init__(self, monkeypatch, widget):
        self.messages = []

        def send(data=None, metadata=None, buffers=None):
            self.messages.append((data, buffers or []))

        monkeypatch.setattr(widget.comm, "send", send)


# --- the outline overlay API ------------------------------------------------------


def test_overlay_groups_are_independent_and_validated(si):
    v = HAADFViewer(si)
    v.set_boxes("nearest tiles", [{"x0": 2, "y0": 3, "x1": 18, "y1": 19, "color": "#ff0000", "label": "1"}])
    v.set_boxes("pins", [v.pixel_box(1, 2, style="marker")])
    assert set(v.overlays) == {"nearest tiles", "pins"}
    v.set_boxes("pins", [])  # replacing one group leaves the other
    assert v.overlays["nearest tiles"][0] == {"x0": 2.0, "y0": 3.0, "x1": 18.0, "y1": 19.0,
                                              "color": "#ff0000", "label": "1", "style": "solid"}
    v.remove_boxes("pins")
    v.remove_boxes("not there")  # absent: nothing happens
    assert list(v.overlays) == ["nearest tiles"]
    bad = [
        ({"x0": 1, "y0": 1, "x1": 1, "y1": 4}, "is empty"),
        ({"x0": 1, "y0": 1, "x1": 3}, "lacks y1"),
        ({"x0": "a", "y0": 1, "x1": 3, "y1": 4}, "must be numbers"),
        ({"x0": 0, "y0": 0, "x1": 3, "y1": 4, "style": "wavy"}, "style 'wavy'"),
    ]
    for box, text in bad:
        with pytest.raises(traitlets.TraitError, match=text):
            v.set_boxes("x", [box])
    assert list(v.overlays) == ["nearest tiles"]
    v.remove_boxes()
    assert v.overlays == {}


def test_overlays_travel_as_json_state(monkeypatch, si):
    v = HAADFViewer(si)
    box = Outbox(monkeypatch, v)
    v.set_boxes("g", [v.tile_box(2, 3, color="#00ff00", label="a")])
    assert len(box.messages) == 1
    data, buffers = box.messages[0]
    assert buffers == [] and json.dumps(data)  # plain JSON, no binary buffers needed
    assert data["state"]["overlays"]["g"][0]["label"] == "a"


def test_tile_box_matches_make_tiles(si):
    v = HAADFViewer(si, window=8)
    pairs = make_tiles(si, window=8, pad="reflect")
    row, col = 5, 7
    b = v.tile_box(row, col)
    tile = pairs.tile(pairs.index_of(row, col))
    expected = si.haadf[int(b["y0"]):int(b["y1"]), int(b["x0"]):int(b["x1"])]
    assert b["x1"] - b["x0"] == 8 and b["y1"] - b["y0"] == 8
    np.testing.assert_array_equal(np.asarray(tile), expected)


# --- pins -------------------------------------------------------------------------


def test_pin_click_keeps_the_si_spectrum_with_a_matching_marker(parts, si):
    viewer, view, cmp = parts
    probe_before = list(viewer.position)
    click_pin(viewer, 4, 9)
    click_pin(viewer, 10, 1)
    assert [k.name for k in cmp.kept] == ["P1", "P2"] and viewer.position == probe_before
    for k, (r, c) in zip(cmp.kept, [(4, 9), (10, 1)]):
        np.testing.assert_array_equal(np.asarray(view.pinned[k.name].y), si.spectra[r, c])
        assert view.pinned[k.name].colors == [k.color]
    markers = viewer.overlays["pins"]
    assert [(m["x0"], m["y0"], m["color"], m["style"]) for m in markers] == [
        (9 * SCALE, 4 * SCALE, PIN_COLORS[0], "marker"), (1 * SCALE, 10 * SCALE, PIN_COLORS[1], "marker")]
    assert len({k.color for k in cmp.kept}) == 2
    legend = [row.children[1].value for row in cmp.legend.children]
    assert "P1: x 9, y 4 px = 22.5, 10 nm" in legend[0] and PIN_COLORS[0] in legend[0]
    click_pin(viewer, 4, 9)  # the same pixel again: not a second curve
    assert len(cmp.kept) == 2 and "already pinned" in cmp.message.value


def test_pin_button_pins_the_probe(parts, si):
    viewer, view, cmp = parts
    viewer.position = [7, 3]
    cmp.pin_button.click()
    np.testing.assert_array_equal(np.asarray(view.pinned["P1"].y), si.spectra[7, 3])


def test_unpin_and_clear(parts):
    viewer, view, cmp = parts
    for rc in [(0, 0), (1, 1), (2, 2)]:
        cmp.pin(*rc)
    cmp.legend.children[1].children[0].click()  # "unpin" on P2
    assert [k.name for k in cmp.kept] == ["P1", "P3"] and set(view.pinned) == {"P1", "P3"}
    assert len(viewer.overlays["pins"]) == 2
    assert cmp.pin(3, 3).color == PIN_COLORS[1]  # the freed colour is reused
    with pytest.raises(KeyError, match="nothing kept as 'P9'"):
        cmp.unpin("P9")
    cmp.clear_button.click()
    assert cmp.kept == [] and view.pinned == {} and viewer.overlays["pins"] == []
    assert cmp.legend.children == () and cmp.clear_button.disabled


def test_cap_is_enforced_with_a_clear_message(parts):
    viewer, view, cmp = parts
    for i in range(MAX_PINS):
        cmp.pin(i, i)
    with pytest.raises(ValueError, match="8 spectra are kept already"):
        cmp.pin(11, 0)
    click_pin(viewer, 11, 0)  # from the browser: shown, not raised
    assert len(cmp.kept) == MAX_PINS == len(view.pinned)
    assert "unpin one or clear all" in cmp.message.value
    drag_region(viewer, 0, 0, 2, 2)
    assert len(cmp.kept) == MAX_PINS


# --- regions ----------------------------------------------------------------------


def test_region_mean_and_sum_equal_numpy(parts, si):
    viewer, view, cmp = parts
    cmp.box_toggle.value = True
    assert viewer.drag_mode == "region"
    drag_region(viewer, 2, 3, 6, 8)  # rows 2..5, cols 3..7
    mean = cmp.kept[-1]
    block = si.spectra[2:6, 3:8].astype(np.float64)
    np.testing.assert_allclose(mean.spectrum, block.mean(axis=(0, 1)), rtol=1e-12)
    cmp.reduce_toggle.value = "sum"
    drag_region(viewer, 2, 3, 6, 8)
    total = cmp.kept[-1]
    np.testing.assert_allclose(total.spectrum, block.sum(axis=(0, 1)), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(view.pinned[total.name].y), block.sum(axis=(0, 1)), rtol=1e-6)
    assert total.describe(2.5, "nm") == "R2: x 3–7, y 2–5 px (12.5 × 10 nm), sum of 20 px"
    boxes = viewer.overlays["regions"]
    assert [(b["x0"], b["y0"], b["x1"], b["y1"]) for b in boxes] == [(6, 4, 16, 12)] * 2
    assert [b["color"] for b in boxes] == [mean.color, total.color] and mean.color != total.color
    assert view.pinned[mean.name].line_style == "dashed"
    viewer.drag_mode = "probe"
    assert cmp.box_toggle.value is False


def test_region_out_of_range_is_clamped_or_reported(parts, si):
    viewer, _, cmp = parts
    drag_region(viewer, -3, 10, 2, 99)  # from the browser: clipped to the scan
    assert cmp.kept[-1].box == (0, 10, 2, W)
    with pytest.raises(ValueError, match="empty or outside"):
        cmp.add_region(3, 3, 3, 5)


# --- energy-window maps -------------------------------------------------------------


def test_window_map_equals_numpy_and_is_shown_with_its_window(parts, si):
    viewer, _, cmp = parts
    e = si.energy
    lo, hi = float(e[10]), float(e[20])
    data = cmp.set_window(lo, hi)
    np.testing.assert_allclose(data, si.spectra[:, :, 10:21].astype(np.float64).sum(axis=2), rtol=1e-12)
    assert cmp.show_map.value and viewer.overlay_shape == [H, W]
    np.testing.assert_allclose(viewer.overlay_data, data, rtol=1e-6)
    assert viewer.overlay_label == f"counts summed {lo:.3g}–{hi:.3g} eV (11 ch)"
    assert tuple(cmp.window_slider.value) == pytest.approx((lo, hi))
    assert list(cmp.brush.selected) == pytest.approx([lo, hi])
    cmp.show_map.value = False
    assert viewer.overlay_data is None
    cmp.brush.brushing = True  # a drag on the plot: no map until the release
    cmp.brush.selected = np.array([float(e[30]), float(e[35])])
    assert not cmp.show_map.value
    cmp.brush.selected = np.array([float(e[30]) - 0.004, float(e[40]) + 0.01])
    cmp.brush.brushing = False  # the release: the window snaps to the channels inside it
    assert cmp.show_map.value and cmp.window == pytest.approx((e[30], e[40]))
    np.testing.assert_allclose(viewer.overlay_data, si.spectra[:, :, 30:41].sum(axis=2), rtol=1e-5)


def test_window_map_errors():
    e = np.linspace(0.0, 1.0, 11)
    with pytest.raises(ValueError, match="no channel lies in"):
        window_map(np.ones((2, 2, 11)), e, 0.01, 0.05)
    with pytest.raises(ValueError, match="hi > lo"):
        window_map(np.ones((2, 2, 11)), e, 0.5, 0.5)


# --- y range and linking ------------------------------------------------------------


def test_y_range_follows_pinned_curves_unless_fixed(parts, si):
    _, view, cmp = parts
    view.set_measured(np.full(N_E, 10.0))
    low = view.y_range
    cmp.reduce_toggle.value = "sum"
    cmp.add_region(0, 0, H, W)  # a sum over the whole scan: far above one pixel
    assert view.y_range[1] > 1000 * low[1]
    cmp.clear()
    assert view.y_range == pytest.approx(low)  # shrinks back
    view.fix_y = True
    cmp.add_region(0, 0, H, W)
    assert view.y_range == pytest.approx(low)


def test_link_gives_notebook_users_the_comparison(si):
    viewer, view = HAADFViewer(si), SpectrumView()
    lk = link(viewer, view, si=si, window=4)
    assert lk.compare is not None and lk.compare.controls in view.children
    click_pin(viewer, 1, 2)
    np.testing.assert_array_equal(np.asarray(view.pinned["P1"].y), si.spectra[1, 2])
    assert viewer.region_tool  # the "draw box" button shows only where a region is listened to
    lk.unlink()
    assert "pins" not in viewer.overlays and not viewer.region_tool
    click_pin(viewer, 3, 3)  # no longer listened to
    assert len(lk.compare.kept) == 1
    assert link(HAADFViewer(si), SpectrumView(), si=si, window=4, compare=False).compare is None


def test_scale_bar_and_intensity_scale_state(si):
    v = HAADFViewer(si)
    assert v.show_scalebar and v.show_colorbar and v.image_label == "HAADF (counts)"
    assert (v.pixel_size, v.pixel_unit) == (2.5, "nm")
