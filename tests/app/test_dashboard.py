"""The Dashboard and its file chooser without a browser: build, click, train, break.

Uses the real pieces: the built-in simulated dataset (cached on disk), the packaged
pre-trained models, real training for one epoch.
"""

from __future__ import annotations

import logging
import os
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from plasmonwidgets import pretrained
from plasmonwidgets.widgets.file_chooser import (
    DataFileChooser,
    UnsafePathError,
    resolve_inside,
    sanitize_filename,
)

# ----------------------------------------------------------------------------- chooser


def tiny_hspy(path: Path, *, shape=(4, 4, 8), seed: int = 0) -> bytes:
    """Write a real HyperSpy EELS SI (no HAADF) and return its bytes."""
    import hyperspy.api as hs

    data = np.random.default_rng(seed).random(shape).astype("float32") + 1
    signal = hs.signals.Signal1D(data)
    axis = signal.axes_manager[-1]
    axis.units, axis.scale, axis.offset = "eV", 0.02, 0.3
    signal.save(path, overwrite=True)
    return path.read_bytes()


@pytest.fixture(scope="module")
def hspy_bytes(tmp_path_factory) -> bytes:
    return tiny_hspy(tmp_path_factory.mktemp("tiny") / "tiny.hspy")


@pytest.fixture
def data_root(tmp_path, hspy_bytes):
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / "scan.hspy").write_bytes(hspy_bytes)
    (root / "sub" / "inner.hspy").write_bytes(hspy_bytes)
    (root / "truncated.hspy").write_bytes(hspy_bytes[:300])  # the loader would refuse it
    (root / "notes.txt").write_text("not data")
    (root / ".hidden.dm3").write_bytes(b"x")
    outside = tmp_path / "secret.dm3"
    outside.write_bytes(b"x")
    (root / "link.dm3").symlink_to(outside)
    (root / "uplink").symlink_to(tmp_path)
    return root


def test_resolve_inside_refuses_escapes(data_root):
    assert resolve_inside(data_root, "sub/inner.dm4") == (data_root / "sub" / "inner.dm4").resolve()
    for bad in ("../secret.dm3", "/etc/passwd", "sub/../../secret.dm3", "link.dm3", "uplink"):
        with pytest.raises(UnsafePathError, match="outside the data folder"):
            resolve_inside(data_root, bad)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("scan.dm3", "scan.dm3"),
        ("../../etc/passwd.dm3", "passwd.dm3"),
        ("C:\\Users\\me\\My Scan (2).emd", "My_Scan_2.emd"),
        ("..hspy", "hspy"),
        ("naïve résumé.hspy", "na_ve_r_sum.hspy"),
        ("a" * 300 + ".dm4", "a" * 96 + ".dm4"),
    ],
)
def test_sanitize_filename(name, expected):
    assert sanitize_filename(name) == expected


def test_sanitize_filename_rejects_empty():
    with pytest.raises(ValueError, match="no usable characters"):
        sanitize_filename("../..")


def test_chooser_lists_only_data_inside_root(data_root):
    chooser = DataFileChooser(data_root)
    values = [v for _, v in chooser.folder.options]
    # no .txt, no hidden file, no links leading out, nothing the loader would refuse
    assert values == ["scan.hspy", "sub/"]
    assert list(chooser.refused) == ["truncated.hspy"]
    assert "1 file(s) here cannot be loaded" in chooser.hidden.value
    assert "truncated.hspy" in chooser.hidden.value and str(data_root) not in chooser.hidden.value
    with pytest.raises(ValueError, match=r"truncated\.hspy"):
        chooser.select("truncated.hspy")
    chooser.folder.value = "sub/"
    assert chooser.cwd == (data_root / "sub").resolve()
    assert [v for _, v in chooser.folder.options] == ["..", "inner.hspy"]
    assert chooser.refused == {} and chooser.hidden.value == ""
    chooser.folder.value = ".."
    assert chooser.cwd == data_root.resolve()
    assert ".." not in [v for _, v in chooser.folder.options]  # the root has no way up
    with pytest.raises(UnsafePathError):
        chooser.change_dir(data_root.parent)
    chooser.close()


def test_chooser_never_lists_a_zarr_store_with_a_link_inside(data_root, tmp_path):
    """Issue 13: a .zspy store whose chunk is a symlink to a server file is not listed
    (the top folder lies inside the data folder; the link inside it does not)."""
    import hyperspy.api as hs

    signal = hs.signals.Signal1D(np.ones((4, 4, 8), "float32"))
    signal.axes_manager[-1].units = "eV"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # zarr's NestedDirectoryStore notice
        signal.save(data_root / "good.zspy")
        signal.save(data_root / "linked.zspy")
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\0" * 512)
    (chunk,) = (data_root / "linked.zspy").rglob("data/0/0/0")
    chunk.unlink()
    chunk.symlink_to(secret)
    chooser = DataFileChooser(data_root)
    try:
        values = [v for _, v in chooser.folder.options]
        assert "good.zspy" in values and "linked.zspy" not in values
        assert "linked.zspy" in chooser.refused
        assert str(tmp_path) not in chooser.hidden.value
        with pytest.raises(ValueError):
            chooser.select("linked.zspy")
    finally:
        chooser.close()


def test_chooser_load_calls_back_with_paths(data_root):
    seen = []
    chooser = DataFileChooser(data_root, on_load=lambda si, haadf: seen.append((si, haadf)))
    assert chooser.load_button.disabled
    with pytest.raises(ValueError, match="choose a data file first"):
        chooser.load()
    chooser.select("sub/inner.hspy")
    assert not chooser.load_button.disabled
    chooser.load_button.click()
    assert seen == [((data_root / "sub" / "inner.hspy").resolve(), None)]
    assert chooser.display_name(seen[0][0]) == "sub/inner.hspy"  # as the page names it
    with pytest.raises(FileNotFoundError, match="not a data file"):
        chooser.select("notes.txt")
    chooser.close()


def test_chooser_upload_is_limited_sanitised_and_private(data_root, hspy_bytes):
    chooser = DataFileChooser(data_root, max_upload_mb=0.04)  # 41 kB
    with pytest.raises(ValueError, match="upload limit"):
        chooser.save_upload("big.hspy", b"0" * 50_000)
    with pytest.raises(ValueError, match="not a supported file type"):
        chooser.save_upload("evil.sh", b"#!/bin/sh")
    with pytest.raises(ValueError, match=r"'not hdf5\.hspy'.*the uploaded file was deleted"):
        chooser.save_upload("not hdf5.hspy", b"abc")
    path = chooser.save_upload("../../x/../scan one.hspy", hspy_bytes)
    assert path.name == "scan_one.hspy" and path.read_bytes() == hspy_bytes
    assert chooser.display_name(path) == "scan one.hspy"  # named as uploaded, not by its path
    assert data_root.resolve() not in path.parents  # never written into the data folder
    again = chooser.save_upload("scan one.hspy", hspy_bytes)
    assert again != path and path.exists()  # no overwrite
    # the browser widget path: value holds dicts with name and content
    chooser.upload.value = ({"name": "up.hspy", "content": memoryview(hspy_bytes),
                             "size": len(hspy_bytes), "type": "",
                             "last_modified": datetime.now(timezone.utc)},)
    assert chooser.selected[0] is not None and chooser.selected[0].name == "up.hspy"
    assert chooser.upload.value == ()  # bytes are not kept twice
    folder = path.parent
    chooser.close()
    assert not folder.exists()


def test_chooser_needs_existing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        DataFileChooser(tmp_path / "nope")


# ----------------------------------------------------------------------------- dashboard

needs_models = pytest.mark.skipif(
    len(pretrained.available()) < 4,
    reason="packaged pre-trained models missing; run `python scripts/make_pretrained.py`",
)


@pytest.fixture(scope="module")
def si():
    from plasmonwidgets import datasets

    return datasets.nanocube_array(**pretrained.DATASET)


@pytest.fixture
def dashboard(si, tmp_path):
    from plasmonwidgets.app.dashboard import Dashboard

    d = Dashboard(si, data_dir=tmp_path, decode_mode="sync", epochs=1)
    yield d
    d.close()


def test_pretrained_files_are_small_and_describe_their_data(si):
    for direction, latent in pretrained.available():
        path = pretrained.path(direction, latent)
        assert path.stat().st_size < 1_000_000, f"{path.name} is over 1 MB"
        meta = pretrained.info(direction, latent)
        assert meta["data"]["n_energy"] == si.n_energy
        assert meta["data"]["scan_shape"] == list(si.scan_shape)
        assert meta["dataset"]["name"] == "nanocube_array"
        model = pretrained.load_default(direction, latent)
        assert model.direction == direction and model.latent_dim == latent
        assert pretrained.incompatibility(model, si) is None


@needs_models
def test_incompatibility_refuses_other_energy_axes(si):
    model = pretrained.load_default("im2spec", 2)
    assert "energy channels" in pretrained.incompatibility(model, si.crop(0.3, 1.2))
    shifted = si.replace(energy=si.energy + 0.5)
    assert "trained on 0.2" in pretrained.incompatibility(model, shifted)


@needs_models
def test_opens_with_data_tab_only_and_pretrained_models(dashboard, si):
    from plasmonwidgets.app.dashboard import TABS

    assert dashboard._built == {"Data"}  # heavy tabs wait until selected
    assert all(not dashboard._boxes[n].children for n in TABS[1:])
    assert set(dashboard.models) == {("im2spec", 2), ("im2spec", 10), ("spec2im", 2), ("spec2im", 10)}
    assert all(note.startswith("pre-trained") for note in dashboard.model_notes.values())
    assert "4 of 4 models ready" in dashboard.header.value
    assert dashboard.error_text == ""


@needs_models
def test_click_shows_measured_and_predicted(dashboard, si):
    r, c = 30, 41
    dashboard.viewer.position = [r, c]
    lines = dashboard.spectrum_view.lines
    np.testing.assert_allclose(lines["measured"].y, si.spectra[r, c], rtol=1e-6)
    assert set(dashboard.spectrum_view.prediction_names) == {"im2spec 2 latent", "im2spec 10 latent"}
    expected = dashboard.models[("im2spec", 10)].predict(dashboard.probe_link.pairs.tile(
        dashboard.probe_link.pairs.index_of(r, c)))
    np.testing.assert_allclose(lines["im2spec 10 latent"].y, expected, rtol=1e-5)
    assert {"spec2im 2 latent", "spec2im 10 latent"} <= set(dashboard.tile_view.heatmaps)


@needs_models
def test_every_tab_builds_and_latent_slider_decodes(dashboard):
    from plasmonwidgets.app.dashboard import TABS

    for name in TABS:
        box = dashboard.select_tab(name)
        assert box.children, f"{name} tab is empty"
        assert dashboard.error_text == "", dashboard.error_text
    assert dashboard.nmf_panel.result is not None and len(dashboard.nmf_panel.result.spectra) == 4
    panel = dashboard.error_panels["im2spec"]
    assert set(panel.stats) == {"2 latent", "10 latent"}
    assert all(np.isfinite(s["r"]) for s in panel.stats.values())
    explorer = dashboard.explorers[("im2spec", 2)]
    before = np.array(explorer.last_output)
    slider = explorer.sliders[0]
    slider.value = slider.min + 0.9 * (slider.max - slider.min)
    assert not np.allclose(explorer.last_output, before)
    decoded = dashboard.explorers[("im2spec", 2)].spectrum_view.lines["decoded"].y
    np.testing.assert_allclose(decoded, explorer.last_output, rtol=1e-6)


@needs_models
def test_inverse_design_button(dashboard):
    dashboard.select_tab("Inverse design")
    dashboard.design_energy.value = 0.6
    dashboard.design_k.value = 3
    dashboard.design_button.click()
    assert dashboard.error_text == ""
    result = dashboard.last_design
    assert result is not None and result.positions.shape == (3, 2)
    boxes = dashboard.design_viewer.overlays["structures"]
    assert [b["label"] for b in boxes] == ["1", "2", "3"]
    assert "design NMSE" in dashboard.design_result.value
    dashboard.design_source.value = "spectrum at the probe"
    dashboard.design_model.value = ("spec2im", 10)
    dashboard.design_button.click()
    assert dashboard.error_text == "" and dashboard.last_design.direction == "spec2im"


@needs_models
def test_inverse_design_says_how_the_target_is_built_and_flags_the_gap(dashboard):
    import dataclasses

    dashboard.select_tab("Inverse design")
    dashboard.design_energy.value = 0.6
    assert "mean spectrum" in dashboard.design_target_note.value  # "Gaussian peak": mean + peak
    dashboard.design_source.value = "pure Gaussian"
    assert "Gaussian peak alone" in dashboard.design_target_note.value
    si = dashboard.si
    top = np.asarray(si.spectra, dtype=np.float64).reshape(-1, si.n_energy).mean(0).max()
    np.testing.assert_allclose(dashboard.target_spectrum(), top * np.exp(
        -0.5 * ((si.energy - 0.6) / dashboard.design_width.value) ** 2))
    dashboard.design_source.value = "Gaussian peak"
    dashboard.design_k.value = 3
    dashboard.design_button.click()
    result = dashboard.last_design
    # one curve per structure's measured spectrum, and each one's NMSE in the table
    assert {"target", "design (decoded)", "#1 measured", "#3 measured"} <= set(
        dashboard.design_spectra.lines)
    for err in result.spectra_nmse:
        assert f"{err:.2f} %" in dashboard.design_table.value
    # measured spectra far worse than the design: a visible warning
    key = dashboard.design_model.value
    far = dataclasses.replace(result, nmse=1.85, spectra_nmse=np.array([14.0, 15.5, 17.0]))
    dashboard._show_design(key, result.target, far)
    assert "not borne out by the measured spectra" in dashboard.design_flag.value
    assert dashboard.design_table.value.count("⚠") == 3
    near = dataclasses.replace(result, nmse=1.85, spectra_nmse=np.array([2.0, 2.5, 3.0]))
    dashboard._show_design(key, result.target, near)
    assert dashboard.design_flag.value == "" and "⚠" not in dashboard.design_table.value


def _wait_for_epochs(progress, n: int, timeout: float = 120.0) -> None:
    """Block until the running trainer has finished ``n`` epochs (or the run ended)."""
    import time

    deadline = time.monotonic() + timeout
    while len(progress.trainer.history.train_loss) < n and progress.trainer.state == "running":
        assert time.monotonic() < deadline, f"no {n} epochs within {timeout} s"
        time.sleep(0.05)


def _page_text(widget) -> str:
    import html
    import re

    values = [getattr(w, "value", "") for w in _walk(widget)]
    text = html.unescape(re.sub(r"<[^>]+>", " ", " ".join(v for v in values if isinstance(v, str))))
    return re.sub(r"\s+", " ", text)


@needs_models
def test_a_stopped_run_trains_beside_the_model_in_use(dashboard):
    key = ("im2spec", 2)
    old = dashboard.models[key]
    dashboard.select_tab("Train")
    dashboard.epochs.value = 50
    progress = dashboard.trainers[key]
    assert dashboard.use_button.disabled and dashboard.revert_button.disabled  # nothing to choose
    progress.start_button.click()
    _wait_for_epochs(progress, 1)
    progress.stop_button.click()
    assert progress.wait(120) and progress.trainer.state == "stopped"
    epochs = len(progress.trainer.history.train_loss)
    assert epochs >= 1
    # the model in use and every caption are unchanged
    assert dashboard.models[key] is old and dashboard.model_notes[key] == "pre-trained"
    assert dashboard.probe_link.models["im2spec 2 latent"] is old
    assert "all pre-trained" in dashboard.header.value
    assert f"Last run here (trained here, {epochs} epochs) is not in use" in dashboard.train_note.value
    assert not dashboard.use_button.disabled and dashboard.revert_button.disabled
    assert dashboard.error_text == ""


@needs_models
def test_use_this_model_and_revert_to_pretrained(dashboard):
    key = ("im2spec", 2)
    dashboard.select_tab("Latent")
    old = dashboard.models[key]
    dashboard.select_tab("Train")
    progress = dashboard.trainers[key]
    progress.start_button.click()
    assert progress.wait(120) and progress.trainer.state == "finished"
    assert dashboard.models[key] is old  # a finished run is not used until asked
    dashboard.use_button.click()
    new = dashboard.models[key]
    assert new is not old and dashboard.model_notes[key] == "trained here, 1 epochs"
    assert dashboard.probe_link.models["im2spec 2 latent"] is new
    assert "im2spec 2 latent trained here, 1 epochs" in dashboard.header.value
    assert "3 pre-trained" in dashboard.header.value
    assert "In use: im2spec 2 latent, trained here, 1 epochs." in dashboard.train_note.value
    assert dashboard.use_button.disabled and not dashboard.revert_button.disabled
    summary = _page_text(dashboard.summary)
    assert "im2spec 2 latent trained here, 1 epochs" in summary
    errors = dashboard.select_tab("Errors")
    assert "im2spec 2 latent: trained here, 1 epochs" in _page_text(errors)
    assert "Latent" not in dashboard._built  # rebuilt with the new model when next opened
    dashboard.select_tab("Latent")
    assert dashboard.explorers[key].model is new

    dashboard.select_tab("Train")
    dashboard.revert_button.click()
    back = dashboard.models[key]
    assert back is not new and dashboard.model_notes[key] == "pre-trained"
    np.testing.assert_array_equal(  # the packaged weights again
        next(iter(back.state_dict().values())).cpu().numpy(),
        next(iter(old.state_dict().values())).cpu().numpy())
    assert dashboard.probe_link.models["im2spec 2 latent"] is back
    assert "all pre-trained" in dashboard.header.value
    assert "im2spec 2 latent pre-trained" in _page_text(dashboard.summary)
    assert "im2spec 2 latent: pre-trained" in _page_text(dashboard.select_tab("Errors"))
    dashboard.select_tab("Train")
    assert not dashboard.use_button.disabled and dashboard.revert_button.disabled  # run kept
    assert dashboard.error_text == ""


@needs_models
def test_data_and_errors_tabs_show_the_same_metric_table(dashboard):
    import re

    from plasmonwidgets.analysis import evaluate
    from plasmonwidgets.app.dashboard.metrics import NMSE_HELP, format_percent
    from plasmonwidgets.app.dashboard.settings import KEYS, model_label

    assert dashboard.wait_metrics(300), "the metric tables were not computed"
    summary = _page_text(dashboard.summary)
    assert NMSE_HELP in summary and "computing" not in summary
    assert NMSE_HELP in dashboard.summary.value.replace("&#x27;", "'")  # the tooltip too
    dashboard.select_tab("Errors")
    for direction in ("im2spec", "spec2im"):
        dashboard.error_direction.value = direction
        errors = _page_text(dashboard.error_models)
        assert NMSE_HELP in errors
        for key in (k for k in KEYS if k[0] == direction):
            pattern = (rf"{model_label(key)} pre-trained — test NMSE mean ([\d.]+) %, "
                       rf"median ([\d.]+) %, p95 ([\d.]+) %, max ([\d.]+) %")
            in_errors = rf"{model_label(key)}: pre-trained ([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+) "
            in_data, in_errors = re.search(pattern, summary), re.search(in_errors, errors)
            assert in_data and in_errors, (pattern, summary, errors)
            assert in_data.groups() == in_errors.groups()
            s = dashboard.model_table(key).overall
            assert in_data.groups() == tuple(format_percent(v)
                                             for v in (s.mean, s.median, s.p95, s.max))
    # the table is evaluate's, on the test half
    key = ("im2spec", 2)
    s = evaluate(dashboard.models[key], dashboard.test_set).overall
    np.testing.assert_allclose([s.mean, s.median, s.max], [
        getattr(dashboard.model_table(key).overall, c) for c in ("mean", "median", "max")])
    assert dashboard.error_text == ""


@needs_models
def test_probe_spectrum_y_range_follows_each_probe_unless_fixed(dashboard, si):
    view = dashboard.spectrum_view
    peak = si.spectra.max(axis=-1)
    bright = np.unravel_index(np.argmax(peak), peak.shape)
    dim = np.unravel_index(np.argmin(peak), peak.shape)

    def curves_top() -> float:
        return max(float(np.max(line.y)) for line in view.lines.values() if len(line.y))

    dashboard.viewer.position = [int(bright[0]), int(bright[1])]
    high = view.y_scale.max
    assert high >= curves_top()
    dashboard.viewer.position = [int(dim[0]), int(dim[1])]  # shrinks to the new curves
    assert curves_top() <= view.y_scale.max < high
    low = view.y_range
    view.fix_button.value = True  # "fix y": the next probe keeps this range
    assert view.fix_y
    dashboard.viewer.position = [int(bright[0]), int(bright[1])]
    assert view.y_range == low and view.y_scale.max == low[1]
    view.fix_button.value = False  # follows again at once
    assert view.y_scale.max == pytest.approx(high)
    assert dashboard.error_text == ""


def test_small_scan_trains_without_a_validation_block():
    """A 24x24 scan leaves no room for a validation block: train on, do not fail the tab."""
    import plasmonwidgets as pw
    from plasmonwidgets.widgets import Dashboard

    small = Dashboard(pw.datasets.nanocube_array(seed=0, size=24, physics="toy"), use_pretrained=False,
                      decode_mode="sync")
    small.select_tab("Train")
    small.epochs.value = 1  # the Train tab's epochs control
    progress = small.trainers[("im2spec", 2)]
    assert progress.trainer is not None and small.error_text == ""
    progress.start_button.click()
    assert progress.wait(120), "training did not finish"
    assert progress.trainer.state == "finished" and progress.trainer.history.n_val == 0
    # no model was in use: the run is used at once
    assert small.model_notes[("im2spec", 2)] == "trained here, 1 epochs"


def test_mismatched_file_offers_training(si, tmp_path):
    """A user's file on another energy axis: no pre-trained model is used; training works."""
    from plasmonwidgets import datasets
    from plasmonwidgets.app.dashboard import Dashboard

    other = datasets.nanocube_array(seed=3, size=32, n_energy=60, physics="toy")
    other.save(tmp_path / "mine.npz")
    d = Dashboard(si, data_dir=tmp_path, decode_mode="sync", epochs=1)
    try:
        d.select_tab("Data")
        d.chooser.select("mine.npz")
        d.chooser.load_button.click()
        assert d.error_text == "", d.error_text
        assert d.si.n_energy == 60 and d.models == {}
        assert "expects spectra with 100 energy channels" in d.header.value
        latent = d.select_tab("Latent")
        text = str([getattr(w, "value", "") for w in _walk(latent)])
        assert "No trained im2spec model" in text and "Train tab" in text
        d.select_tab("Train")
        progress = d.trainers[("im2spec", 2)]
        progress.start()
        assert progress.wait(120) and progress.trainer.state == "finished"
        assert ("im2spec", 2) in d.models
        d.select_tab("Latent")
        assert ("im2spec", 2) in d.explorers and d.error_text == ""
    finally:
        d.close()


def test_errors_show_in_the_page_without_paths(si, tmp_path):
    import hyperspy.api as hs

    from plasmonwidgets.app.dashboard import Dashboard

    (tmp_path / "sub").mkdir()
    # a valid file the header check lists, but no spectrum image: loading fails
    hs.signals.Signal2D(np.zeros((16, 16), "float32")).save(tmp_path / "sub" / "image only.hspy")
    d = Dashboard(si, data_dir=tmp_path, decode_mode="sync", use_pretrained=False,
                  catch_widget_errors=True)
    try:
        d.select_tab("Data")
        d.chooser.select("sub/image only.hspy")
        d.chooser.load_button.click()  # raises inside the guarded callback
        text = d.error_text
        assert text.startswith("Error while loading the file:"), text
        assert "no EELS spectrum image" in text, text
        # named relative to the data folder, no server path
        assert "'sub/image only.hspy'" in text and str(tmp_path) not in text, text
        assert "Traceback" not in text
        assert 'role="alert"' in d.error_box.value
        d.dismiss_button.click()
        assert d.error_text == ""
        # a real exception in another comm's message handler (a third-party widget),
        # delivered the way the kernel delivers a browser message: the comm manager logs
        # it to "Comm", and the page shows it
        import comm

        def third_party_handler(_msg):
            raise RuntimeError(f"boom in {os.path.expanduser('~')}/secret/file.py")

        other = comm.create_comm(target_name="third-party-widget")
        try:
            other.on_msg(third_party_handler)
            _deliver_from_browser(other, {"method": "custom", "content": {}})
        finally:
            other.close()
        # no server path on the page: only the file's own name is left
        assert d.error_text == ("Error while handling a widget event: "
                                "RuntimeError: boom in file.py"), d.error_text
        assert d.si is si  # the app still holds the previous data and keeps working
        d.viewer.position = [5, 5]
        np.testing.assert_allclose(d.spectrum_view.lines["measured"].y, si.spectra[5, 5])
    finally:
        d.close()
    assert not logging.getLogger("Comm").handlers  # hooks removed on close


def _deliver_from_browser(target, data):
    """Hand ``data`` to the kernel's comm manager as a comm message from the browser, for a
    widget or a raw comm: the route a click or a state change takes in a live page."""
    import comm

    channel = getattr(target, "comm", target)
    manager = comm.get_comm_manager()
    assert manager.get_comm(channel.comm_id) is channel  # registered: the real route
    manager.comm_msg(None, None, {"content": {"comm_id": channel.comm_id, "data": data},
                                  "buffers": []})


def test_failing_actions_show_a_clear_message_and_the_dashboard_keeps_working(si, tmp_path):
    """Real failures inside guarded callbacks: the dashboard's own pre-processing button on
    a crop range that holds no channel, and a callback registered through ``guard`` whose
    numpy call fails on a server path."""
    import ipywidgets as ipw

    import plasmonwidgets
    from plasmonwidgets.app.dashboard import Dashboard

    d = Dashboard(si, data_dir=tmp_path, decode_mode="sync", use_pretrained=False)
    try:
        d.select_tab("Data")
        e = np.asarray(si.energy)
        # between two channels: the crop keeps none of them
        d.crop_range.value = (float(e[3] + 0.25 * (e[4] - e[3])), float(e[3] + 0.75 * (e[4] - e[3])))
        d.preprocess_button.click()
        text = d.error_text
        assert text.startswith("Error while pre-processing: ValueError: crop "), text
        assert "keeps 0 channel(s)" in text and "at least 2 are needed" in text, text
        assert "Traceback" not in text and 'File "' not in text
        assert 'role="alert"' in d.error_box.value and d.dismiss_button.layout.display == ""
        assert d.si is si  # nothing was replaced

        missing = Path(plasmonwidgets.__file__).resolve().parent / "no_such_file.npz"
        extra = ipw.Button(description="load extra")
        extra.on_click(d.guard(lambda _button: np.load(missing), "loading the extra file"))
        extra.click()
        text = d.error_text
        assert text == ("Error while loading the extra file: FileNotFoundError: [Errno 2] No "
                        "such file or directory: 'plasmonwidgets/no_such_file.npz'"), text
        assert str(missing.parent) not in text

        # the rest keeps working: the probe updates the spectrum ...
        r, c = 7, 9
        d.viewer.position = [r, c]
        np.testing.assert_allclose(d.spectrum_view.lines["measured"].y, si.spectra[r, c])
        # ... and a valid pre-processing replaces the data and clears the error
        d.crop_range.value = (float(e[2]), float(e[-3]))
        d.preprocess_button.click()
        assert d.error_text == "" and d.dismiss_button.layout.display == "none"
        np.testing.assert_array_equal(d.si.energy, e[2:-2])
        np.testing.assert_array_equal(d.si.spectra, si.spectra[..., 2:-2])
    finally:
        d.close()


@pytest.fixture
def ipython_shell(tmp_path, monkeypatch):
    """A real IPython shell, the kind the kernel behind a notebook or Voila page runs; the
    process-wide state it sets up is put back afterwards."""
    import atexit
    import builtins
    import sys

    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    if InteractiveShell.initialized():
        pytest.skip("an IPython shell is already running in this process")
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    monkeypatch.setitem(sys.modules, "__main__", sys.modules["__main__"])  # the shell swaps it
    names = set(vars(builtins))
    config = Config()
    config.HistoryManager.enabled = False
    shell = InteractiveShell.instance(config=config)
    try:
        yield shell
    finally:
        atexit.unregister(shell.atexit_operations)
        InteractiveShell.clear_instance()
        for name in set(vars(builtins)) - names:  # __IPYTHON__, display
            delattr(builtins, name)


def test_unguarded_widget_errors_reach_the_page_through_the_shell_hook(si, tmp_path,
                                                                       ipython_shell, capsys):
    """In a kernel, ipywidgets hands exceptions from button and message handlers to the
    shell's ``showtraceback`` (which would print the traceback into the page's output);
    ``catch_widget_errors=True`` replaces it while the dashboard is open."""
    import ipywidgets as ipw
    from IPython import get_ipython

    from plasmonwidgets.app.dashboard import Dashboard

    assert get_ipython() is ipython_shell
    original = ipython_shell.showtraceback
    d = Dashboard(si, data_dir=tmp_path, decode_mode="sync", use_pretrained=False,
                  catch_widget_errors=True)
    try:
        assert ipython_shell.showtraceback != original  # installed on construction
        # a widget the dashboard does not own, whose unguarded click handler really fails
        missing = d.chooser.root / "missing.dm4"
        button = ipw.Button(description="third-party")
        button.on_click(lambda _button: missing.read_bytes())
        _deliver_from_browser(button, {"method": "custom", "content": {"event": "click"}})
        assert d.error_text == ("Error while handling a widget event: FileNotFoundError: "
                                "[Errno 2] No such file or directory: '<data folder>/missing.dm4'"
                                ), d.error_text
        printed = capsys.readouterr().out  # the cell output a Voila page would show
        assert "Traceback" not in printed and "FileNotFoundError" not in printed, printed
        d.dismiss_button.click()
        assert d.error_text == ""

        # a state update the dashboard's own viewer refuses (a probe outside the scan)
        before = list(d.viewer.position)
        outside = [si.scan_shape[0] + 5, 0]
        _deliver_from_browser(d.viewer, {"method": "update", "state": {"position": outside},
                                         "buffer_paths": []})
        text = d.error_text
        assert text.startswith("Error while handling a widget event: TraitError: position "), text
        assert "is outside the SI scan" in text and "Traceback" not in text
        assert d.viewer.position == before
        # the page keeps working: a valid probe from the browser updates the spectrum
        _deliver_from_browser(d.viewer, {"method": "update", "state": {"position": [3, 4]},
                                         "buffer_paths": []})
        assert d.viewer.position == [3, 4]
        np.testing.assert_allclose(d.spectrum_view.lines["measured"].y, si.spectra[3, 4])
    finally:
        d.close()
    assert ipython_shell.showtraceback == original  # removed on close
    # with the dashboard gone the shell reports such errors itself again
    button.click()
    assert "FileNotFoundError" in capsys.readouterr().out


def test_bad_constructor_data_shows_error_not_exception():
    from plasmonwidgets.app.dashboard import Dashboard

    d = Dashboard(si=object(), use_pretrained=False)
    assert "TypeError" in d.error_text and "SpectrumImage" in d.error_text
    d.close()


def _walk(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _walk(child)


def test_small_switch(monkeypatch):
    from plasmonwidgets.app.dashboard import small_settings

    monkeypatch.setenv("PLASMONWIDGETS_SMALL", "1")
    assert small_settings()
    monkeypatch.setenv("PLASMONWIDGETS_SMALL", "0")
    assert not small_settings()


def test_dashboard_notebook_is_tiny():
    import nbformat

    nb = nbformat.read(Path(__file__).resolve().parents[2] / "notebooks" / "dashboard.ipynb", 4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert len(code) == 1 and "Dashboard(" in code[0] and len(code[0].splitlines()) <= 6


# ------------------------------------------------------------------ issue 13 / 12 (dashboard)


def _all_widget_state() -> str:
    """Every live widget's synced state as JSON text (what the page can be sent)."""
    import json

    from ipywidgets.widgets.widget import _instances

    parts = []
    for widget in list(_instances.values()):
        try:
            state = widget.get_state()
        except Exception:  # a widget half closed by a test
            continue
        parts.append(json.dumps(state, default=lambda o: f"<{type(o).__name__}>"))
    return "\n".join(parts)


def test_uploads_are_named_as_uploaded_and_warnings_shown_without_paths(si, tmp_path, capsys):
    """Issue 13: an upload that fails to load and one that loads with a warning. The page
    names each by its uploaded name; the warning is a visible notice, not stderr output;
    no temporary-folder or data-folder path is in any widget's state."""
    import hyperspy.api as hs

    from plasmonwidgets.app.dashboard import Dashboard

    image = tmp_path / "image.hspy"
    hs.signals.Signal2D(np.zeros((16, 16), "float32")).save(image)
    no_haadf = tiny_hspy(tmp_path / "no_haadf.hspy", shape=(24, 24, 40))
    data = tmp_path / "data"
    data.mkdir()
    d = Dashboard(si, data_dir=data, decode_mode="sync", use_pretrained=False,
                  catch_widget_errors=True)
    try:
        d.select_tab("Data")
        chooser = d.chooser
        chooser.upload.value = ({"name": "My image.hspy", "content": image.read_bytes()},)
        chooser.load_button.click()
        assert "Error while loading the file:" in d.error_text
        assert "'My image.hspy'" in d.error_text and "no EELS spectrum image" in d.error_text
        upload_dir = str(chooser._upload_dir)
        assert upload_dir not in d.error_box.value and "plasmonwidgets-upload-" not in d.error_text

        d.clear_error()
        chooser.upload.value = ({"name": "SI without HAADF.hspy", "content": no_haadf},)
        chooser.load_button.click()
        assert d.error_text == "", d.error_text
        assert d.si.scan_shape == (24, 24) and d.source == "SI without HAADF.hspy"
        notice = d.notice_text
        assert notice.startswith("Note while loading SI without HAADF.hspy:"), notice
        assert "'SI without HAADF.hspy'" in notice and "no HAADF/ADF/DF image" in notice
        assert 'role="status"' in d.notice_box.value

        state = _all_widget_state()
        for server_path in (upload_dir, str(data), str(tmp_path), "plasmonwidgets-upload-"):
            assert server_path not in state
        err = capsys.readouterr().err
        assert "no HAADF/ADF/DF image" not in err and upload_dir not in err
    finally:
        d.close()


def test_tile_window_and_split_direction_are_the_users_choice(tmp_path):
    """Issue 12: a 10x24 scan refuses the default 16-pixel window with advice, then tiles
    with the window the user chooses; halves are cut across the longer axis unless the
    user picks the direction; a window in SI pixels is ``scale`` HAADF pixels each."""
    import plasmonwidgets as pw
    from plasmonwidgets.app.dashboard import Dashboard

    big = pw.datasets.nanocube_array(seed=0, size=32, physics="toy")
    d = Dashboard(big, data_dir=tmp_path, decode_mode="sync", use_pretrained=False)
    try:
        d.select_tab("Data")
        (tmp_path / "wide.hspy").write_bytes(tiny_hspy(tmp_path / "w.hspy", shape=(10, 24, 40)))
        d.guard(d.load_file, "loading the file")(tmp_path / "wide.hspy")
        assert "too small for 16x16 HAADF-pixel tiles" in d.error_text
        assert "at most 10 HAADF pixels in the Data tab" in d.error_text
        assert d.si is big  # still shows the previous data

        d.tile_window.value = 4  # the Data tab's controls
        d.tiles_button.click()
        assert d.error_text == "" and d.si.scan_shape == (10, 24) and d.pairs.window == 4
        assert d.source == "wide.hspy"
        train, test = d.train_set.positions, d.test_set.positions
        assert d.split_used == "left | right"  # 24 columns > 10 rows: columns are cut
        assert train[:, 1].max() < test[:, 1].min()
        summary = d.summary.value
        assert "4×4 HAADF px" in summary and "split left | right" in summary

        d.select_tab("Data")
        assert d.split_choice.value == "longer"  # the default is shown, not an empty choice
        d.split_choice.value = "rows"
        d.tiles_button.click()
        train, test = d.train_set.positions, d.test_set.positions
        assert d.split_used == "top / bottom" and train[:, 0].max() < test[:, 0].min()

        # SI pixels on an oversampled HAADF: 3 SI px = 6 HAADF px at scale 2
        d.set_si(pw.datasets.nanocube_array(seed=0, size=24, scale=2, physics="toy"))
        d.set_tiling(window=3, window_unit="si", split_axis=None)
        assert d.pairs.window == 6 and d.tile_pixels() == 6
        d.select_tab("Train")
        model = d.trainers[("im2spec", 2)].trainer.model
        assert model.window == 6  # new models are built for the chosen window
        with pytest.raises(ValueError, match="window_unit must be one of"):
            d.set_tiling(window=3, window_unit="nm")
        assert d.window_unit == "si" and d.pairs.window == 6  # a refused choice changes nothing
    finally:
        d.close()


@needs_models
def test_pretrained_models_are_used_only_with_their_window(si, tmp_path):
    from plasmonwidgets.app.dashboard import Dashboard

    d = Dashboard(si, data_dir=tmp_path, decode_mode="sync", window=12)
    try:
        assert d.pairs.window == 12 and d.models == {}
        assert "uses 16x16 HAADF-pixel tiles, these tiles are 12x12" in d.header.value
        d.set_tiling(window=pretrained.WINDOW)
        assert len(d.models) == 4
    finally:
        d.close()


def test_intensity_axis_says_counts_only_for_unnormalised_data(si, tmp_path):
    from plasmonwidgets.app.dashboard import Dashboard
    from plasmonwidgets.widgets.spectrum_view import intensity_label

    assert intensity_label(si) == "Intensity (counts)"
    normalised = si.normalize()
    assert intensity_label(normalised) == "Intensity (normalised)"
    d = Dashboard(normalised, data_dir=tmp_path, decode_mode="sync", use_pretrained=False)
    try:
        d.select_tab("Data")
        assert d.spectrum_view.y_axis.label == "Intensity (normalised)"
        d.set_si(si)
        d.select_tab("Data")
        assert d.spectrum_view.y_axis.label == "Intensity (counts)"
    finally:
        d.close()


def test_warnings_from_any_thread_reach_the_notice_line_not_stderr(si, tmp_path, capsys):
    """On the Voila page (catch_widget_errors=True) a warning raised in a background
    thread (training, decoding) is shown in the page without server paths; developers'
    deprecation notices go to the server's terminal only."""
    import threading

    from plasmonwidgets.app.dashboard import Dashboard

    original = warnings.showwarning
    (tmp_path / "data").mkdir()
    d = Dashboard(si, data_dir=tmp_path / "data", decode_mode="sync", use_pretrained=False,
                  catch_widget_errors=True)
    try:
        def work():
            warnings.warn(f"cannot cache {tmp_path}/cache/x.npy; continuing", UserWarning,
                          stacklevel=1)
            warnings.warn("old API", DeprecationWarning, stacklevel=1)

        assert warnings.showwarning is not original  # the dashboard's hook is installed
        with warnings.catch_warnings():  # keeps the hook, restores the filters afterwards
            warnings.simplefilter("always")
            thread = threading.Thread(target=work)
            thread.start()
            thread.join()
        assert d.notice_text == "Note: UserWarning: cannot cache x.npy; continuing", d.notice_text
        assert "old API" not in d.notice_text
        assert "cannot cache" not in capsys.readouterr().err
    finally:
        d.close()
    assert warnings.showwarning is original  # the hook is removed on close


def test_uploads_get_the_lower_memory_budget(si, tmp_path, monkeypatch):
    """Issue 13: an upload is loaded with the upload budget (here lowered to 100 kB), so a
    file declaring more data is read lazily, with a notice; the same file in the data
    folder loads into memory under the normal budget."""
    from plasmonwidgets.app.dashboard import Dashboard
    from plasmonwidgets.widgets import loading

    monkeypatch.setattr(loading, "UPLOAD_MEMORY_BUDGET", 100_000)
    data = tmp_path / "data"
    data.mkdir()
    content = tiny_hspy(data / "scan.hspy", shape=(24, 24, 100))  # 225 kB of float32
    d = Dashboard(si, data_dir=data, decode_mode="sync", use_pretrained=False)
    try:
        d.select_tab("Data")
        d.chooser.upload.value = ({"name": "big upload.hspy", "content": content},)
        d.chooser.load_button.click()
        assert d.error_text == "", d.error_text
        assert d.si.is_lazy and d.source == "big upload.hspy"
        assert "'big upload.hspy'" in d.notice_text or "big upload.hspy:" in d.notice_text
        assert "more than the memory budget of 97.7 KiB" in d.notice_text, d.notice_text

        d.select_tab("Data")
        d.chooser.select("scan.hspy")
        d.chooser.load_button.click()
        assert d.error_text == "" and not d.si.is_lazy and d.source == "scan.hspy"
    finally:
        d.close()
