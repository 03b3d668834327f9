"""Live widgets without a browser: LatentExplorer, TrainingProgress and the decode coalescer.

The widgets are driven through their named children (sliders, buttons, bqplot
marks) and the bqplot message handlers the browser would call; results are
checked on the mark arrays the browser would draw. Data: a small synthetic
24×24 scan (8×8 tiles, 32 energy channels) and narrow models, so the whole file
runs in seconds on one CPU core.
"""

from __future__ import annotations

import gc
import threading
import time
import tracemalloc

import numpy as np
import pytest
import torch

import plasmonwidgets as pw
from plasmonwidgets.spectrum_image import SpectrumImage
from plasmonwidgets.tiles import TilePairs
from plasmonwidgets.widgets.coalesce import Coalescer
from plasmonwidgets.widgets.haadf_viewer import HAADFViewer
from plasmonwidgets.widgets.latent_explorer import LatentExplorer
from plasmonwidgets.widgets.spectrum_view import SpectrumView
from plasmonwidgets.widgets.tile_view import TileView
from plasmonwidgets.widgets.training_progress import TrainingProgress, link_training

WINDOW, N_ENERGY = 8, 32


def synthetic_si(h: int = 24, w: int = 24, seed: int = 0) -> SpectrumImage:
    """Bright blobs on a dark support; each spectrum mixes two plasmon peaks by the
    local HAADF intensity, so tiles carry information about their spectra."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(float)
    haadf = np.zeros((h, w))
    for _ in range(6):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        haadf += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 8.0)
    frac = haadf / haadf.max()
    e = np.linspace(0.2, 1.2, N_ENERGY)
    peak_a = 1.0 / (1 + ((e - 0.5) / 0.05) ** 2)
    peak_b = 1.0 / (1 + ((e - 0.9) / 0.08) ** 2)
    spectra = frac[..., None] * peak_a + (1 - frac)[..., None] * peak_b + 0.05
    haadf = 100 + 900 * frac + rng.normal(0, 5, (h, w))
    regions = (frac > 0.4).astype(int)
    return SpectrumImage(
        spectra.astype(np.float32), e, haadf.astype(np.float32),
        metadata={"regions": regions, "region_names": ["support", "particle"]},
    )


def small_model(direction: str = "im2spec", latent_dim: int = 3, seed: int = 0):
    kwargs = dict(latent_dim=latent_dim, n_filters_enc=8, n_filters_dec=8, seed=seed)
    if direction == "im2spec":
        return pw.Im2Spec(window=WINDOW, n_energy=N_ENERGY, **kwargs)
    return pw.Spec2Im(n_energy=N_ENERGY, window=WINDOW, pool=4, **kwargs)


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data():
    si = synthetic_si()
    pairs = pw.make_tiles(si, window=WINDOW, pad="reflect")
    train, test = pairs.split("halves")
    return si, pairs, train, test


@pytest.fixture(scope="module")
def im2spec(data):
    _, _, train, test = data
    model = small_model("im2spec")
    pw.train(model, train, test, epochs=3, batch_size=32)
    return model


def explorer_for(model, pairs, **kwargs) -> LatentExplorer:
    kwargs.setdefault("mode", "sync")
    return LatentExplorer(model, pairs, **kwargs)


# -- Coalescer -----------------------------------------------------------------------
def test_coalescer_sync_mode_computes_every_request_in_order():
    shown = []
    box = Coalescer(lambda v: v * 2, shown.append, mode="sync")
    for v in range(5):
        box.submit(v)
    assert shown == [0, 2, 4, 6, 8]
    assert box.count == 5 and box.idle


def test_coalescer_thread_mode_skips_stale_requests_and_ends_on_the_last():
    shown = []

    def slow(v):
        time.sleep(0.002)
        return v

    box = Coalescer(slow, shown.append, mode="thread")
    for v in range(1000):
        box.submit(v)
    assert box.wait_idle(5)
    assert shown[-1] == 999
    assert box.count == len(shown) < 100  # ~2 ms each: most requests were overwritten
    assert shown == sorted(shown)  # never goes back to an older value
    box.close()


def test_coalescer_reports_errors_and_keeps_working():
    errors, shown = [], []

    def compute(v):
        if v == 1:
            raise ValueError("bad latent point")
        return v

    box = Coalescer(compute, shown.append, mode="thread", on_error=lambda e, tb: errors.append(e))
    box.submit(1)
    assert box.wait_idle(2)
    box.submit(2)
    assert box.wait_idle(2)
    assert shown == [2]
    assert [str(e) for e in errors] == ["bad latent point"]
    assert "ValueError" in repr(type(box.last_error))
    box.close()
    with pytest.raises(RuntimeError, match="closed"):
        box.submit(3)


def test_coalescer_rejects_unknown_mode():
    with pytest.raises(ValueError, match="thread"):
        Coalescer(lambda v: v, print, mode="async")


# -- LatentExplorer: decoding ----------------------------------------------------------
def test_slider_change_decodes_into_spectrum_view_and_highlights_neighbours(data, im2spec):
    si, pairs, _, _ = data
    viewer = HAADFViewer(si)
    view = SpectrumView()
    ex = explorer_for(im2spec, pairs, viewer=viewer, spectrum_view=view, k=4)
    assert len(ex.sliders) == 3 and all(s.continuous_update for s in ex.sliders)
    before = ex.decode_count

    slider = ex.sliders[1]
    slider.value = slider.min + 0.7 * (slider.max - slider.min)
    assert ex.decode_count == before + 1
    z = ex.z
    assert z[1] == pytest.approx(slider.value)
    expected = im2spec.decode(z.astype(np.float32))
    np.testing.assert_allclose(view.lines["decoded"].y, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(view.lines["decoded"].x, pairs.energy)

    # back-projection: the 4 observed tiles encoded nearest z, on the viewer and the pad
    dist = np.linalg.norm(ex.index.z - z, axis=1)
    nearest = np.argsort(dist)[:4]
    assert ex.nearest_positions == pairs.positions[nearest].tolist()
    assert [b["label"] for b in viewer.overlays["nearest"]] == ["1", "2", "3", "4"]
    np.testing.assert_allclose(view.lines["measured"].y, pairs.spectra[nearest[0]])
    np.testing.assert_allclose(ex.neighbour_marks.x, ex.index.z[nearest, 0])
    np.testing.assert_allclose(ex.neighbour_marks.y, ex.index.z[nearest, 1])
    assert ex.neighbour_strip.value.count("<img") == 4
    # the pad's current point follows the slider of its y dimension
    assert ex.point.y[0] == pytest.approx(z[1])
    assert ex.status.value == ""


def test_burst_of_slider_changes_is_coalesced_and_ends_on_last_value(data, im2spec):
    _, pairs, _, _ = data
    ex = explorer_for(im2spec, pairs, mode="thread")
    assert ex.wait(5)
    before = ex.decode_count
    slider = ex.sliders[0]
    values = np.linspace(slider.min, slider.max, 1000)
    for v in values:
        slider.value = float(v)
    assert ex.wait(5)
    n_decodes = ex.decode_count - before
    assert 1 <= n_decodes < 500, n_decodes
    assert ex.z[0] == pytest.approx(values[-1])
    expected = im2spec.decode(ex.z.astype(np.float32))
    np.testing.assert_allclose(ex.spectrum_view.lines["decoded"].y, expected, rtol=1e-5,
                               atol=1e-6)
    ex.close()


def test_ten_thousand_changes_do_not_grow_memory(data, im2spec):
    """10,000 slider changes as fast as Python can make them, decoded on the worker thread:
    (a) coalesced: far fewer decodes than changes, (b) the linked SpectrumView ends on
    ``model.decode`` of the last point, (c) neither Python allocations nor RSS grow."""
    import psutil

    _, pairs, _, _ = data
    view = SpectrumView()
    ex = explorer_for(im2spec, pairs, mode="thread", spectrum_view=view)
    assert ex.spectrum_view is view
    slider = ex.sliders[2]
    values = np.linspace(slider.min, slider.max, 10_000).tolist()
    for v in values[:500]:  # warm up caches (bqplot serialisers, torch allocator)
        slider.value = v
    assert ex.wait(5)
    # a traced warm-up burst: what is allocated once (caches filled while tracing) is not growth
    tracemalloc.start()
    for v in values[500:2500]:
        slider.value = v
    assert ex.wait(30)
    # the point the burst ends on, built from the values set, not read back from the explorer
    z_last = ex.z.astype(np.float32)
    z_last[2] = values[-1]
    coalescer = ex._coalescer  # the explorer's decode scheduler: it counts what it was sent
    submitted_before, decodes_before = coalescer.submitted, ex.decode_count
    process = psutil.Process()
    gc.collect()
    rss_start = process.memory_info().rss
    start, _ = tracemalloc.get_traced_memory()
    for v in values:
        slider.value = v
    assert ex.wait(30)
    gc.collect()
    end, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_end = process.memory_info().rss

    # (a) every change reached the coalescer, and it decoded only a small fraction of them.
    # Each decode needs the worker to win the GIL back from the slider loop (~5 ms switch
    # interval) plus a forward pass, so a few hundred at most are computed even on a loaded
    # machine; without coalescing every one of the 10,000 would be.
    submitted = coalescer.submitted - submitted_before
    decodes = ex.decode_count - decodes_before
    assert submitted == len(values), submitted
    assert 1 <= decodes < submitted / 10, f"{decodes} decodes for {submitted} changes"
    # (b) what the view shows is the decoder's output for the last value set
    assert ex.z[2] == values[-1]
    np.testing.assert_allclose(view.lines["decoded"].y, im2spec.decode(z_last), rtol=1e-5,
                               atol=1e-6)
    # (c) memory: Python allocations (tight) and the whole process, native code included
    assert end - start < 256 * 1024, f"memory grew by {(end - start) / 1024:.0f} KiB"
    rss_growth = rss_end - rss_start
    assert rss_growth < 16 * 2**20, f"RSS grew by {rss_growth / 2**20:.1f} MiB"
    ex.close()


def test_spec2im_explorer_decodes_tiles_into_tile_view(data):
    _, pairs, train, test = data
    model = small_model("spec2im")
    pw.train(model, train, test, epochs=2, batch_size=32)
    view = SpectrumView()
    ex = explorer_for(model, pairs, spectrum_view=view, k=3)
    z = ex.z
    z[0] += 0.5
    ex.set_latent(z)
    expected = model.decode(z.astype(np.float32))
    np.testing.assert_allclose(ex.tile_view.tile("decoded"), expected, rtol=1e-5, atol=1e-4)
    dist = np.linalg.norm(ex.index.z - z, axis=1)
    # a briefly trained encoder may map several spectra to the same code: any of them is nearest
    tied = np.flatnonzero(dist == dist.min())
    nearest = next(int(i) for i in tied
                   if np.array_equal(ex.tile_view.tile("measured"), pairs.images[i]))
    np.testing.assert_allclose(view.lines["measured"].y, pairs.spectra[nearest])
    three = np.argsort(np.linalg.norm(ex.index.z - z, axis=1))[:3]
    np.testing.assert_allclose(view.lines["mean of nearest"].y,
                               pairs.spectra[three].mean(axis=0), rtol=1e-5)
    assert ex.output_box.children == (ex.tile_view, view)

    ex.mode_toggle.value = "grid"  # tiles on an n x n mosaic with one-pixel gaps
    n = ex.grid_size.value
    assert ex.output_box.children == (ex.grid_figure,)
    assert ex.grid_mark.color.shape == (n * (WINDOW + 1), n * (WINDOW + 1))
    decoded = ex.latent_grid.decoded
    np.testing.assert_allclose(ex.grid_mark.color[:WINDOW, :WINDOW], decoded[0, 0][::-1],
                               rtol=1e-5)


def test_set_latent_validates_shape(data, im2spec):
    _, pairs, _, _ = data
    ex = explorer_for(im2spec, pairs)
    with pytest.raises(ValueError, match="3 finite latent coordinates"):
        ex.set_latent([0.0, 1.0])
    with pytest.raises(ValueError, match="latent_dim >= 2"):
        explorer_for(small_model(latent_dim=1), pairs)


# -- LatentExplorer: the pad -------------------------------------------------------------
def test_pad_drag_click_and_tile_click_set_the_latent_point(data, im2spec):
    _, pairs, _, _ = data
    ex = explorer_for(im2spec, pairs)
    z0 = ex.z
    # drag the current point: the browser sends drag_start, drag..., drag_end messages
    ex.point._handle_custom_msgs(None, {"event": "drag_start", "point": {"x": z0[0], "y": z0[1]},
                                        "index": 0})
    for x, y in [(0.1, 0.2), (0.2, 0.3), (0.25, -0.1)]:
        ex.point._handle_custom_msgs(None, {"event": "drag", "point": {"x": x, "y": y},
                                            "origin": {"x": 0, "y": 0}, "index": 0})
    ex.point._handle_custom_msgs(None, {"event": "drag_end", "point": {"x": 0.25, "y": -0.1},
                                        "index": 0})
    assert ex.z[:2] == pytest.approx([0.25, -0.1])
    assert ex.z[2] == pytest.approx(z0[2])
    assert ex.sliders[0].value == pytest.approx(0.25)
    np.testing.assert_allclose(ex.spectrum_view.lines["decoded"].y,
                               im2spec.decode(ex.z.astype(np.float32)), rtol=1e-5, atol=1e-6)

    # a click on the pad background appends a point (interaction "add"); x and y arrive
    # together in one message
    with ex.point.hold_trait_notifications():
        ex.point.x = np.array([0.25, -0.3])
        ex.point.y = np.array([-0.1, 0.4])
    assert ex.z[:2] == pytest.approx([-0.3, 0.4])
    assert len(ex.point.x) == 1  # back to a single current point

    # dragging past the pad's edge stops at the edge
    ex.point._handle_custom_msgs(None, {"event": "drag", "point": {"x": 1e6, "y": -1e6},
                                        "index": 0})
    assert ex.z[:2] == pytest.approx([ex.pad.marks[0].scales["x"].max,
                                      ex.pad.marks[0].scales["y"].min])

    # clicking an observed tile jumps to its encoding
    ex.cloud._handle_custom_msgs(None, {"event": "element_click", "data": {"index": 7}})
    np.testing.assert_allclose(ex.z, ex.index.z[ex._shown[7]])


def test_follows_viewer_clicks_and_takes_regions_from_the_viewer_si(data, im2spec):
    si, pairs, _, _ = data
    plain = TilePairs(pairs.images, pairs.spectra, pairs.positions, pairs.energy,
                      pairs.scan_shape)  # no region labels of its own
    viewer = HAADFViewer(si)
    ex = explorer_for(im2spec, plain, viewer=viewer, follow_viewer=True, k=3)
    assert ex.color_by.value == "region" and "particle" in ex.legend.value
    np.testing.assert_array_equal(ex.cloud.color, si.metadata["regions"][
        tuple(plain.positions[ex._shown].T)])
    viewer.position = [5, 7]  # a click on the HAADF moves the latent point to that tile
    np.testing.assert_allclose(ex.z, ex.index.z[plain.index_of(5, 7)])
    assert ex.nearest_positions[0] == [5, 7]  # its own tile is the nearest observed one
    ex.k_slider.value = 9
    assert len(viewer.overlays["nearest"]) == 9 and len(ex.neighbour_marks.x) == 9


def test_pad_axes_and_colouring(data, im2spec):
    _, pairs, _, _ = data
    ex = explorer_for(im2spec, pairs)
    assert ex.color_by.options == ("region", "cluster", "error")
    assert "support" in ex.legend.value and "particle" in ex.legend.value
    np.testing.assert_array_equal(ex.cloud.color, pairs.regions[ex._shown])

    ex.dim_x.value = 2
    np.testing.assert_allclose(ex.cloud.x, ex.index.z[ex._shown, 2])
    ex.dim_x.value = 1  # equal to dim_y: the axes swap
    assert (ex.dim_x.value, ex.dim_y.value) == (1, 2)
    np.testing.assert_allclose(ex.cloud.y, ex.index.z[ex._shown, 2])
    assert ex.point.x[0] == pytest.approx(ex.z[1])

    ex.color_by.value = "cluster"
    labels = np.asarray(ex.cloud.color)
    assert set(np.unique(labels)) <= set(range(6)) and len(np.unique(labels)) > 1
    ex.color_by.value = "error"
    err = pw.analysis.tile_errors(im2spec, pairs)
    np.testing.assert_allclose(ex.cloud.color, np.log10(err[ex._shown]), rtol=1e-5)
    assert "NMSE" in ex.legend.value


def test_latent_grid_mode_draws_n_by_n_spectra(data, im2spec):
    _, pairs, _, _ = data
    ex = explorer_for(im2spec, pairs, grid_size=5)
    ex.mode_toggle.value = "grid"
    assert ex.grid_mark.y.shape == (25, N_ENERGY)
    grid = ex.latent_grid
    assert grid.dims == (0, 1)
    # each small spectrum sits inside its own cell around its latent grid node
    step = grid.x[1] - grid.x[0]
    cx = np.asarray(ex.grid_mark.x).mean(axis=1).reshape(5, 5)
    np.testing.assert_allclose(cx, np.broadcast_to(grid.x, (5, 5)), atol=0.5 * step)
    ex.grid_size.value = 4
    assert ex.grid_mark.y.shape == (16, N_ENERGY)
    ex.mode_toggle.value = "decode"
    assert ex.output_box.children == (ex.spectrum_view,)


def test_im2spec_with_tile_view_shows_the_observed_tiles(data, im2spec):
    _, pairs, _, _ = data
    tiles = TileView()
    ex = explorer_for(im2spec, pairs, tile_view=tiles, k=4)
    assert ex.output_box.children == (ex.spectrum_view, tiles)
    nearest = ex.last_neighbours.indices
    np.testing.assert_allclose(tiles.tile("measured"), pairs.images[nearest[0]])
    np.testing.assert_allclose(tiles.tile("mean of nearest"),
                               pairs.images[nearest].mean(axis=0), rtol=1e-5)


def test_set_model_keeps_point_or_rebuilds_dimensions(data, im2spec):
    _, pairs, train, test = data
    ex = explorer_for(im2spec, pairs)
    ex.sliders[0].value = ex.sliders[0].min + 0.3 * (ex.sliders[0].max - ex.sliders[0].min)
    z = ex.z
    other = small_model(seed=1)
    pw.train(other, train, test, epochs=1, batch_size=32)
    ex.set_model(other)
    np.testing.assert_allclose(ex.z, z)
    np.testing.assert_allclose(ex.spectrum_view.lines["decoded"].y,
                               other.decode(z.astype(np.float32)), rtol=1e-5, atol=1e-6)

    wide = small_model(latent_dim=5)
    pw.train(wide, train, test, epochs=1, batch_size=32)
    ex.set_model(wide)
    assert len(ex.sliders) == 5 and len(ex.sliders_box.children) == 5
    assert len(ex.dim_x.options) == 5
    np.testing.assert_allclose(ex.z, ex.index.median)
    with pytest.raises(ValueError, match="spec2im"):
        ex.set_model(small_model("spec2im"))


# -- TrainingProgress ------------------------------------------------------------------------
def wait_for(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_training_runs_in_background_with_stop_and_resume(data):
    _, _, train, test = data
    progress = TrainingProgress(model=small_model(), train=train, test=test, epochs=5000,
                                batch_size=32, poll_interval=0.05, event_interval_s=0.01,
                                validation=0.1)
    assert progress.state == "idle"
    assert not progress.start_button.disabled and progress.stop_button.disabled
    progress.start_button.click()
    assert progress.trainer.state == "running"
    assert not progress.stop_button.disabled and progress.start_button.disabled

    # the test thread stays free: it does its own work while the bar advances
    seen, work = [], 0.0
    deadline = time.monotonic() + 20
    while len(set(seen)) < 3 and time.monotonic() < deadline:
        work += float(np.linalg.norm(np.random.default_rng(len(seen)).normal(size=2000)))
        seen.append(progress.progress.value)
        time.sleep(0.05)
    assert len(set(seen)) >= 3 and seen == sorted(seen), seen
    assert work > 0

    progress.stop_button.click()
    assert progress.wait(10)
    assert progress.state == "stopped"
    assert not progress.resume_button.disabled and progress.stop_button.disabled
    stopped_at = progress.progress.value
    assert "stopped after" in progress.status.value
    assert progress.model_version == 1  # a stopped run publishes its best weights
    assert "best validation loss" in progress.summary.value

    progress.resume_button.click()
    assert progress.trainer.state == "running"
    assert wait_for(lambda: progress.progress.value > stopped_at)
    assert len(progress.train_line.y) >= 1 and np.all(np.asarray(progress.train_line.y) > 0)
    progress.stop()
    assert progress.wait(10)
    assert progress.state == "stopped" and progress.message.value == ""
    progress.close()


def test_finished_run_updates_linked_explorer(data):
    _, pairs, train, test = data
    model = small_model()
    ex = explorer_for(model, pairs)
    progress = TrainingProgress(model=model, train=train, test=test, epochs=3, batch_size=32,
                                poll_interval=0.05)
    link_training(progress, ex)
    old_index, decodes = ex.index, ex.decode_count
    progress.start()
    assert progress.wait(30)
    assert progress.state == "finished" and progress.progress.value == progress.progress.max
    assert progress.model_version == 1
    assert ex.index is not old_index and ex.decode_count > decodes
    np.testing.assert_allclose(ex.index.z[:5], model.encode(pairs.images[:5]), rtol=1e-5,
                               atol=1e-5)
    assert len(progress.train_line.x) == 3 and len(progress.test_line.y) == 3
    assert progress.progress.bar_style == "success"
    # Start after a finished run trains anew with a fresh trainer
    first = progress.trainer
    assert not progress.start_button.disabled
    progress.start_button.click()
    assert progress.trainer is not first
    assert progress.wait(30) and progress.model_version == 2


def test_nan_loss_is_shown_in_the_widget(data):
    _, _, train, test = data

    def exploding_loss(pred, target):
        return ((pred - target) ** 2).mean() * float("nan")

    progress = TrainingProgress(model=small_model(), train=train, test=test, epochs=3,
                                batch_size=32, loss=exploding_loss, poll_interval=0.05)
    progress.start_button.click()
    assert progress.wait(30)
    assert progress.state == "failed"
    assert "Training error" in progress.message.value and "nan" in progress.message.value
    assert "error" in progress.message.value  # styled as an error (red)
    assert progress.progress.bar_style == "danger"
    assert progress.model_version == 0  # no new weights to pick up


def test_bad_training_data_is_shown_in_the_widget(data):
    _, _, train, test = data
    spectra = train.spectra.copy()
    spectra[3, 5] = np.nan
    bad = TilePairs(train.images, spectra, train.positions, train.energy, train.scan_shape)
    progress = TrainingProgress(model=small_model(), train=bad, test=test, epochs=2)
    assert progress.trainer is None
    assert "NaN" in progress.message.value
    progress.start_button.click()  # still explains, never raises into the event loop
    assert "NaN" in progress.message.value and progress.state == "idle"
    with pytest.raises(ValueError, match="model= and train="):
        TrainingProgress()


def test_dragging_while_training_keeps_both_working(data):
    _, pairs, train, test = data
    model = small_model()
    ex = LatentExplorer(model, pairs, mode="thread")
    progress = TrainingProgress(model=model, train=train, test=test, epochs=15, batch_size=16,
                                poll_interval=0.05, event_interval_s=0.01)
    link_training(progress, ex)
    progress.start()
    slider = ex.sliders[0]
    moves = 0
    while progress.trainer.state == "running" and moves < 20_000:
        slider.value = slider.min + (moves % 97) / 96 * (slider.max - slider.min)
        moves += 1
        if moves % 50 == 0:
            time.sleep(0.005)  # a hand, not a busy loop: give both threads the GIL
    assert progress.wait(60)
    assert ex.wait(10)
    assert progress.state == "finished" and progress.message.value == ""
    assert ex.status.value == "" and ex._coalescer.last_error is None
    assert moves > 50 and ex.decode_count > 10
    np.testing.assert_allclose(ex.spectrum_view.lines["decoded"].y,
                               model.decode(ex.z.astype(np.float32)), rtol=1e-5, atol=1e-6)
    ex.close()
    progress.close()


def test_poller_thread_does_not_block_the_caller(data):
    """start() returns at once; the widget thread count stays bounded."""
    _, _, train, test = data
    progress = TrainingProgress(model=small_model(), train=train, test=test, epochs=2,
                                batch_size=32, poll_interval=0.05)
    t0 = time.perf_counter()
    progress.start()
    assert time.perf_counter() - t0 < 0.5
    assert progress.wait(30)
    names = [t.name for t in threading.enumerate()]
    assert names.count("plasmonwidgets-trainer") <= 1
    progress.close()


class ScriptedTrainer:
    """A trainer stand-in whose progress events the test writes (no thread, no model)."""

    def __init__(self):
        from plasmonwidgets.training import History

        self.state = "running"
        self.subscribers = []
        self.history = History()
        self.model = None
        self.error = None

    def subscribe(self, callback):
        self.subscribers = [callback]
        return self.subscribers.clear

    def stop(self):
        self.state = "stopped"


def scripted_progress():
    from plasmonwidgets.training import ProgressEvent

    trainer = ScriptedTrainer()
    progress = TrainingProgress(trainer, poll_interval=60)  # the test calls refresh() itself

    def emit(kind, epoch, batch=0, **fields):
        event = ProgressEvent(kind=kind, epoch=epoch, n_epochs=10, batch=batch, n_batches=20,
                              **fields)
        for callback in list(trainer.subscribers):  # as Trainer delivers: to its subscribers
            callback(event)

    return progress, trainer, emit


def test_stop_inside_the_first_epoch_keeps_the_progress_shown():
    progress, trainer, emit = scripted_progress()
    emit("batch", 1, 7, train_loss=0.5)
    progress.refresh()
    assert progress.progress.value == 7 and progress.progress.max == 200
    trainer.state = "stopped"
    emit("stopped", 0)  # a run's end reports completed epochs: none yet
    progress.refresh()
    assert progress.progress.value == 7, "the bar dropped back when training stopped"
    assert progress.progress.description == "epoch 1/10"
    assert "stopped after 0/10 epochs" in progress.status.value
    assert "batch 7/20" in progress.status.value
    # stopped inside a later epoch: the partial epoch still counts
    progress._reset_run_state()
    for event in (("epoch", 1, 20), ("epoch", 2, 20), ("batch", 3, 5), ("stopped", 2, 0)):
        emit(*event, train_loss=0.4)
    progress.refresh()
    assert progress.progress.value == 45 and progress.progress.description == "epoch 3/10"
    progress.close()


@pytest.mark.parametrize("losses", [
    [0.3105, 0.3102, 0.3101, 0.3099],  # far less than a decade: d3 would repeat 0.31
    [0.61, 0.45, 0.38, 0.33, 0.31, 0.30],
    [2.0, 0.5, 0.05, 0.004, 0.0009],  # several decades
])
def test_loss_axis_tick_labels_are_distinct_and_inside_the_range(losses):
    progress, _trainer, emit = scripted_progress()
    for epoch, loss in enumerate(losses, start=1):
        emit("epoch", epoch, 20, train_loss=loss, test_loss=loss * 1.01)
    progress.refresh()
    axis, scale = progress._loss_axis, progress._loss_scale
    ticks = np.asarray(axis.tick_values)
    digits = int(axis.tick_format.strip(".~g"))
    labels = [f"{v:.{digits}g}" for v in ticks]
    assert len(ticks) >= 2 and len(set(labels)) == len(labels), labels
    assert scale.min <= min(losses) and scale.max >= max(losses) * 1.01
    assert np.all((ticks >= scale.min) & (ticks <= scale.max))
    progress.close()
