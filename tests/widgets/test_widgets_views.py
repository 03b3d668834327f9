"""Viewing widgets without a browser: trait state, wire format, simulated clicks, linking.

Messages to the front end are counted by recording each widget's ``comm.send``
(the comm is ipywidgets' real DummyComm when no kernel is attached).
"""

from __future__ import annotations

import numpy as np
import pytest
import traitlets

from plasmonwidgets.models import Im2Spec, Spec2Im
from plasmonwidgets.spectrum_image import SpectrumImage
from plasmonwidgets.tiles import make_tiles
from plasmonwidgets.widgets import colormaps
from plasmonwidgets.widgets.error_map_panel import ErrorMapPanel
from plasmonwidgets.widgets.haadf_viewer import HAADFViewer
from plasmonwidgets.widgets.linking import link, link_probe
from plasmonwidgets.widgets.nmf_panel import NMFPanel
from plasmonwidgets.widgets.serialization import array_to_buffer, buffer_to_array
from plasmonwidgets.widgets.spectrum_view import SpectrumView
from plasmonwidgets.widgets.tile_view import TileView

H_SCAN, W_SCAN, N_E, SCALE, WINDOW = 18, 22, 40, 2, 8


@pytest.fixture(scope="module")
def si():
    """A two-component SI: a 0.5 eV and a 0.9 eV mode whose weights vary along x."""
    rng = np.random.default_rng(0)
    e = np.linspace(0.2, 1.2, N_E)
    _, xx = np.mgrid[0:H_SCAN, 0:W_SCAN]
    a = (np.sin(xx / 3.0) + 1) / 2
    peaks = np.stack([np.exp(-(((e - 0.5) / 0.05) ** 2)), np.exp(-(((e - 0.9) / 0.08) ** 2))])
    spectra = a[..., None] * peaks[0] + (1 - a)[..., None] * peaks[1]
    spectra += 0.01 * rng.random(spectra.shape)
    haadf = np.kron(a, np.ones((SCALE, SCALE))) + 0.05 * rng.random((H_SCAN * SCALE, W_SCAN * SCALE))
    return SpectrumImage(spectra, e, haadf, pixel_size=2.0)


@pytest.fixture(scope="module")
def models():
    return {
        "im2spec 2 latent": Im2Spec(window=WINDOW, n_energy=N_E, latent_dim=2, seed=1),
        "spec2im 2 latent": Spec2Im(n_energy=N_E, window=WINDOW, latent_dim=2, seed=2),
    }


class Outbox:
    """Records the messages widgets send to the front end."""

    def __init__(self, monkeypatch, *widgets):
        self.messages = []
        for widget in widgets:
            def send(data=None, metadata=None, buffers=None, _w=widget):
                self.messages.append((_w, data, buffers or []))

            monkeypatch.setattr(widget.comm, "send", send)

    def count(self, widget=None):
        return sum(1 for w, _, _ in self.messages if widget is None or w is widget)

    def clear(self):
        self.messages.clear()


# --- serialization and colour maps ----------------------------------------------


def test_buffer_round_trip_is_exact_float32():
    a = np.random.default_rng(1).normal(size=(5, 7)) * 1e3
    a[2, 3] = np.nan
    buf, shape = array_to_buffer(a, "a", ndim=2)
    assert isinstance(buf, bytes) and len(buf) == 5 * 7 * 4 and shape == [5, 7]
    back = buffer_to_array(buf, shape)
    assert back.dtype == np.float32 and back.shape == (5, 7)
    np.testing.assert_array_equal(back, a.astype(np.float32))  # NaN == NaN here


def test_buffer_errors_say_what_is_wrong():
    with pytest.raises(ValueError, match="needs 24 float32 bytes"):
        buffer_to_array(b"\0" * 20, (2, 3))
    with pytest.raises(ValueError, match="must be 2-D"):
        array_to_buffer(np.zeros(3), "image", ndim=2)
    with pytest.raises(TypeError, match="real numbers"):
        array_to_buffer(np.array([["a"]]), "image")


def test_colormaps():
    grey = colormaps.lut("gray")
    assert grey.shape == (256, 4) and grey.dtype == np.uint8
    assert (np.diff(grey[:, 0].astype(int)) >= 0).all() and grey[0, 0] == 0 and grey[-1, 0] == 255
    labels = colormaps.lut("labels")
    assert not np.array_equal(labels[0], labels[1]) and np.array_equal(labels[0], labels[10])
    assert len(colormaps.lut_bytes("viridis")) == 1024
    assert colormaps.hex_colors("magma", 3)[0] == "#000004"
    with pytest.raises(ValueError, match="choose one of"):
        colormaps.lut("jet")


# --- HAADFViewer ---------------------------------------------------------------


def test_viewer_state_from_si(si):
    v = HAADFViewer(si)
    assert v.image_shape == [H_SCAN * SCALE, W_SCAN * SCALE] and v.scale == SCALE
    assert v.scan_shape == (H_SCAN, W_SCAN)
    np.testing.assert_array_equal(v.image_data, si.haadf)
    assert v.vmin < v.vmax and v.pixel_size == 2.0 and v.pixel_unit == "nm"
    assert bytes(v.lut) == colormaps.lut_bytes("grey")
    assert v._esm.strip() and "export default" in str(v._esm)


def test_image_travels_as_binary_buffer(monkeypatch, si):
    v = HAADFViewer(si)
    box = Outbox(monkeypatch, v)
    img = np.arange(12 * 16, dtype=np.float32).reshape(12, 16) / 7
    v.set_image(img, scale=4)
    assert box.count() == 1  # image, shape, scale and range in one message
    _, data, buffers = box.messages[0]
    state, paths = data["state"], data["buffer_paths"]
    assert ["image"] in paths and "image" not in state  # no JSON list of pixels
    assert state["image_shape"] == [12, 16] and state["scale"] == 4
    raw = buffers[paths.index(["image"])]
    np.testing.assert_array_equal(np.frombuffer(raw, dtype="<f4").reshape(12, 16), img)


def test_position_validation_and_clamping(si):
    v = HAADFViewer(si)
    v.position = [H_SCAN - 1, W_SCAN - 1]
    with pytest.raises(traitlets.TraitError, match="outside the SI scan"):
        v.position = [H_SCAN, 0]
    v.set_image(np.ones((8, 8)), scale=2)  # smaller scan: the probe is clamped inside
    assert v.position == [3, 3]
    with pytest.raises(ValueError, match="not a multiple of scale"):
        v.set_image(np.ones((9, 8)), scale=2)
    with pytest.raises(traitlets.TraitError, match="window"):
        v.window = -1
    with pytest.raises(traitlets.TraitError, match="choose one of"):
        v.cmap = "rainbow"


def test_cmap_change_sends_new_lut(monkeypatch, si):
    v = HAADFViewer(si)
    box = Outbox(monkeypatch, v)
    v.cmap = "magma"
    assert bytes(v.lut) == colormaps.lut_bytes("magma")
    assert any(["lut"] in data["buffer_paths"] for _, data, _ in box.messages)


def test_nan_image_is_handled():
    img = np.random.default_rng(2).random((10, 10)).astype(np.float32)
    img[:3] = np.nan
    v = HAADFViewer(image=img)
    assert "30 non-finite" in v.message
    assert np.isfinite([v.vmin, v.vmax]).all() and v.vmin < v.vmax
    np.testing.assert_array_equal(v.image_data, img)  # NaN kept; drawn transparent
    v.set_image(np.ones((10, 10)))
    assert v.message == "" and v.vmin < v.vmax  # flat image still has a valid range
    with pytest.raises(ValueError, match="no finite values"):
        HAADFViewer(image=np.full((4, 4), np.nan))


def test_overlay_set_and_clear(monkeypatch, si):
    v = HAADFViewer(si)
    box = Outbox(monkeypatch, v)
    err = np.random.default_rng(3).random((H_SCAN, W_SCAN)) * 5
    err[0, 0] = np.nan
    v.set_overlay(err, cmap="magma", label="NMSE %", opacity=0.8)
    assert box.count() == 1
    data = box.messages[0][1]
    assert ["overlay"] in data["buffer_paths"] and ["overlay_lut"] in data["buffer_paths"]
    np.testing.assert_array_equal(v.overlay_data, err.astype(np.float32))
    assert v.overlay_shape == [H_SCAN, W_SCAN] and v.overlay_label == "NMSE %"
    assert v.overlay_range == pytest.approx([np.nanmin(err), np.nanmax(err)], rel=1e-6)
    assert v.overlay_opacity == 0.8 and bytes(v.overlay_lut) == colormaps.lut_bytes("magma")
    v.set_overlay(np.arange(H_SCAN * W_SCAN).reshape(H_SCAN, W_SCAN) % 3, cmap="labels")
    assert v.overlay_range == [0.0, 255.0]  # label k -> LUT entry k
    v.set_overlay(err > 2)  # boolean masks are accepted
    assert set(np.unique(v.overlay_data)) <= {0.0, 1.0}
    v.clear_overlay()
    assert v.overlay_data is None and v.overlay_shape == [0, 0] and v.overlay == b""


def test_overlay_wrong_shape_is_a_clear_error(si):
    v = HAADFViewer(si)
    with pytest.raises(ValueError, match=r"SI grid is \(18, 22\)"):
        v.set_overlay(np.zeros(si.haadf.shape))  # HAADF grid, not SI grid
    with pytest.raises(ValueError, match="must be 2-D"):
        v.set_overlay(np.zeros(5))
    assert v.overlay_data is None


def test_highlight_validation(si):
    v = HAADFViewer(si)
    v.highlight = [[1, 2], (3, 4)]
    assert v.highlight == [[1, 2], [3, 4]]
    with pytest.raises(traitlets.TraitError, match="outside the SI scan"):
        v.highlight = [[H_SCAN, 0]]


# --- SpectrumView and TileView --------------------------------------------------


def test_spectrum_view_lines_legend_and_band():
    e = np.linspace(0.2, 1.2, 30)
    sv = SpectrumView(energy=e)
    sv.set_measured(np.sin(e))
    sv.set_prediction("10 latent", np.cos(e))
    sv.set_prediction("2 latent", np.cos(e) * 0.5)
    assert list(sv.lines) == ["measured", "10 latent", "2 latent"]
    assert all(m.display_legend for m in sv.lines.values())
    assert sv.lines["2 latent"].labels == ["2 latent"]
    assert len({m.colors[0] for m in sv.lines.values()}) == 3
    sv.set_band("10 latent", np.cos(e) - 0.1, np.cos(e) + 0.1)
    band = sv.bands["10 latent"]
    assert band.fill == "between" and np.shape(band.y) == (2, 30)
    assert band.colors[0] == sv.lines["10 latent"].colors[0]
    assert sv.figure.marks[0] is band  # bands under the lines
    sv.remove_prediction("10 latent")
    assert "10 latent" not in sv.lines and not sv.bands and len(sv.figure.marks) == 2
    with pytest.raises(KeyError, match="no prediction named"):
        sv.remove_prediction("nope")
    with pytest.raises(ValueError, match="has 29 values but the energy axis has 30"):
        sv.set_prediction("bad", np.zeros(29))
    with pytest.raises(ValueError, match="set_energy"):
        SpectrumView().set_measured(np.zeros(3))


def test_spectrum_view_y_range_follows_the_data_unless_fixed():
    e = np.linspace(0, 1, 10)
    sv = SpectrumView(energy=e)
    sv.set_measured(np.full(10, 2.0) + e)
    lo, hi = sv.y_range
    assert lo < 2.0 and hi > 3.0 and (sv.y_scale.min, sv.y_scale.max) == (lo, hi)
    sv.set_measured(np.full(10, 10.0) + e)  # grows
    assert sv.y_range[1] > 10.0
    sv.set_measured(np.full(10, 1.0))  # and shrinks
    assert sv.y_range[0] < 1.0 < sv.y_range[1] < 1.2
    sv.children_by_name["fix_y"].value = True  # the toggle holds the range shown
    held = sv.y_range
    sv.set_measured(np.full(10, 7.0))
    assert sv.fix_y and sv.y_range == held and sv.y_scale.max == held[1]
    sv.children_by_name["fit_y"].click()  # fits the current curve and keeps holding it
    assert sv.fix_y and sv.y_range[0] < 7.0 < sv.y_range[1] < 8.0
    sv.children_by_name["fix_y"].value = False
    sv.set_y_range(-1, 1)
    sv.set_measured(np.full(10, 50.0))
    assert sv.y_range == (-1.0, 1.0) and sv.y_scale.max == 1.0
    sv.set_y_range(None)
    assert sv.y_range[1] > 50
    with pytest.raises(ValueError, match="hi > lo"):
        sv.set_y_range(1, 1)


def test_spectrum_view_update_is_one_message_per_mark(monkeypatch):
    e = np.linspace(0, 1, 16)
    sv = SpectrumView(energy=e, y_range=(-5, 5))
    sv.update(measured=e, predictions={"a": e, "b": e})
    marks = list(sv.lines.values())
    box = Outbox(monkeypatch, sv.figure, sv.y_scale, *marks)
    sv.update(measured=e * 2, predictions={"a": e * 3, "b": e * 4})
    assert [box.count(m) for m in marks] == [1, 1, 1]
    assert box.count(sv.figure) == 0 and box.count(sv.y_scale) == 0  # fixed range
    np.testing.assert_allclose(sv.lines["b"].y, e * 4)


def test_tile_view_shares_one_colour_scale():
    tv = TileView()
    measured = np.arange(64, dtype=float).reshape(8, 8)
    tv.set_tiles(measured=measured, predictions={"spec2im 10": measured + 100, "spec2im 2": -measured})
    assert list(tv.heatmaps) == ["measured", "spec2im 10", "spec2im 2"]
    assert all(m.scales["color"] is tv.color_scale for m in tv.heatmaps.values())
    assert tv.color_range == (-63.0, 163.0)
    np.testing.assert_array_equal(tv.tile("spec2im 2"), -measured)
    assert tv.tiles_box.children[-1].children[-1] is tv.colorbar and len(tv.tiles_box.children) == 4
    bar = tv.colorbar.marks[0]
    assert bar.scales["color"] is tv.color_scale and (bar.y.min(), bar.y.max()) == (-63.0, 163.0)
    tv.set_tiles(measured=measured)
    assert list(tv.heatmaps) == ["measured"] and len(tv.tiles_box.children) == 2
    assert tv.color_range == (0.0, 63.0)
    with pytest.raises(ValueError, match="same shape"):
        tv.set_tiles(measured=measured, predictions={"x": np.zeros((4, 4))})


# --- linking ----------------------------------------------------------------------


def test_link_updates_views_on_probe_move(monkeypatch, si, models):
    v = HAADFViewer(si)
    sv, tv = SpectrumView(), TileView()
    lk = link(v, sv, tv, models=models)
    assert v.window == WINDOW
    pairs = make_tiles(si, window=WINDOW, pad="reflect")
    box = Outbox(monkeypatch, sv.lines["measured"], sv.lines["im2spec 2 latent"])
    v.position = [6, 9]  # what a click in the browser does
    i = pairs.index_of(6, 9)
    np.testing.assert_allclose(sv.lines["measured"].y, si.spectra[6, 9])
    np.testing.assert_allclose(
        sv.lines["im2spec 2 latent"].y, models["im2spec 2 latent"].predict(np.array(pairs.tile(i))), rtol=1e-6
    )
    np.testing.assert_allclose(tv.tile("measured"), pairs.tile(i))
    np.testing.assert_allclose(
        tv.tile("spec2im 2 latent"), models["spec2im 2 latent"].predict(si.spectra[6, 9]), rtol=1e-6
    )
    assert box.count() == 2  # one message per line for one probe move
    assert v.message == ""
    lk.unlink()
    v.position = [0, 0]
    np.testing.assert_allclose(sv.lines["measured"].y, si.spectra[6, 9])


def test_link_errors_show_in_viewer(si):
    v = HAADFViewer(si)
    sv = SpectrumView(energy=si.energy[:-1])  # link puts the SI's axis on the view ...
    # ... so a model trained on another axis fails, visibly, at the first probe
    lk = link(v, sv, models=[Im2Spec(window=WINDOW, n_energy=N_E - 1, latent_dim=2)])
    assert sv.energy.size == N_E
    assert "has 39 values but the energy axis has 40" in v.message and lk.last_error
    with pytest.raises(ValueError, match="disagree on the tile window"):
        link(v, models={"a": Im2Spec(window=8, n_energy=N_E), "b": Im2Spec(window=6, n_energy=N_E)})
    with pytest.raises(ValueError, match="would both be called 'im2spec 10 latent'"):
        link(v, models=[Im2Spec(window=8, n_energy=N_E), Im2Spec(window=8, n_energy=N_E)])
    with pytest.raises(TypeError, match="not an Im2Spec/Spec2Im"):
        link(v, models={"x": object()})
    with pytest.raises(ValueError, match="pass si="):
        link(HAADFViewer(image=np.ones((4, 4))))


def test_link_probe_both_ways(si):
    a, b = HAADFViewer(si), HAADFViewer(si, size=100)
    lk = link_probe(a, b)
    a.position = [2, 3]
    assert b.position == [2, 3]
    b.position = [4, 5]
    assert a.position == [4, 5]
    lk.unlink()
    with pytest.raises(ValueError, match="different SI scan shapes"):
        link_probe(a, HAADFViewer(image=np.ones((4, 4))))


# --- panels ---------------------------------------------------------------------


def test_nmf_panel_run_and_component_click(si):
    v = HAADFViewer(si)
    panel = NMFPanel(si, viewer=v, n_components=2)
    named = panel.children_by_name
    named["run"].click()
    assert panel.result.maps.shape == (2, H_SCAN, W_SCAN) and "2 components" in named["message"].value
    assert len(named["maps"].children) == 2 and np.shape(panel.spectra_lines.y) == (2, N_E)
    # the two endmembers recover the two modes (sorted by peak energy)
    peaks = si.energy[np.argmax(panel.result.spectra, axis=1)]
    np.testing.assert_allclose(peaks, [0.5, 0.9], atol=0.05)
    named["component"].value = 1
    np.testing.assert_array_equal(v.overlay_data, panel.result.maps[1])
    assert "C2" in v.overlay_label and panel.spectra_lines.opacities == [0.25, 1.0]
    panel.thumbnails[0].position = [3, 4]  # clicking a thumbnail moves the main probe
    assert v.position == [3, 4]
    named["component"].value = -1
    assert v.overlay_data is None
    named["n_components"].value = 3
    named["run"].click()
    assert len(named["maps"].children) == 3 and len(named["component"].options) == 4


def test_nmf_panel_shows_failure(si):
    panel = NMFPanel(si)
    panel.n_components.max = 10_000
    panel.n_components.value = 5_000  # more components than channels
    panel.children_by_name["run"].click()
    assert "NMF failed" in panel.message.value and "n_components" in panel.message.value
    assert panel.result is None


def test_error_map_panel(si, models):
    from plasmonwidgets import analysis

    pairs = make_tiles(si, window=WINDOW)
    v = HAADFViewer(si)
    broken = Im2Spec(window=6, n_energy=N_E, latent_dim=2)  # wrong window for these tiles
    panel = ErrorMapPanel({**models, "broken": broken}, pairs, viewer=v)
    assert list(panel.errors) == list(models)
    assert "broken" in panel.message.value
    for name, model in models.items():
        expected = analysis.error_map(model, pairs)
        np.testing.assert_allclose(panel.errors[name], expected, rtol=1e-5)
        r, mse = analysis.error_haadf_correlation(expected, si)
        assert panel.stats[name]["r"] == pytest.approx(r) and panel.stats[name]["mse"] == pytest.approx(mse)
        shown = np.where(panel.low_signal[name], np.nan, expected)  # near-zero signal: greyed
        np.testing.assert_allclose(panel.maps[name].overlay_data, shown, rtol=1e-5)
    lo_hi = {tuple(m.overlay_range) for m in panel.maps.values()}
    assert len(lo_hi) == 1  # one colour range for every model
    assert "mean NMSE" in panel.captions["im2spec 2 latent"].value
    panel.maps["spec2im 2 latent"].position = [5, 6]  # click on a map
    assert v.position == [5, 6] and panel.maps["im2spec 2 latent"].position == [5, 6]
    panel.children_by_name["opacity"].value = 0.3
    assert all(m.overlay_opacity == 0.3 for m in panel.maps.values())
    panel.children_by_name["refresh"].click()
    assert len(panel.children_by_name["maps"].children) == 2


def test_on_simulated_nanocubes():
    """The simulator's SI end to end: regions overlay, NMF, probe link with a model."""
    from plasmonwidgets import datasets

    sim = datasets.nanocube_array(seed=0, size=32, n_energy=60, cache=False, physics="toy")
    v = HAADFViewer(sim)
    regions = sim.metadata["regions"]
    v.set_overlay(regions, cmap="labels", label="region")
    np.testing.assert_array_equal(v.overlay_data, regions)
    panel = NMFPanel(sim, viewer=v, n_components=4, run=True)
    assert panel.result.maps.shape == (4, 32, 32) and "NMF failed" not in panel.message.value
    panel.select(0)
    assert v.overlay_label == "NMF C1 abundance"
    sv = SpectrumView()
    link(v, sv, models={"im2spec": Im2Spec(window=16, n_energy=60, latent_dim=2, seed=0)})
    v.position = [16, 16]
    np.testing.assert_allclose(sv.lines["measured"].y, sim.spectra[16, 16])
    assert np.shape(sv.lines["im2spec"].y) == (60,) and v.message == ""


# --- regressions seen in the dashboard -------------------------------------------


def test_spectrum_view_keeps_the_legend_corner_free_of_data():
    e = np.linspace(0.2, 1.2, 50)
    sv = SpectrumView(energy=e, height="300px")
    peak = 1000 * np.exp(-0.5 * ((e - 1.1) / 0.05) ** 2)  # the maximum under the legend
    sv.update(measured=peak, predictions={"2 latent": peak * 0.9, "10 latent": peak * 1.1})
    lo, hi = sv.y_range
    plot_px = 300 - sv.figure.fig_margin["top"] - sv.figure.fig_margin["bottom"]
    legend_px = 16 * (len(sv.lines) + 1)  # bqplot: one 16 px row per series plus padding
    top_of_data = (float(np.max(peak * 1.1)) - lo) / (hi - lo)
    assert top_of_data <= 1 - legend_px / plot_px
    assert sv.figure.legend_location == "top-right"
