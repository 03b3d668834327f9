"""The Dashboard and its file chooser without a browser: build, click, train, break.

Uses the real pieces: the built-in simulated dataset (cached on disk), the packaged
pre-trained models, real training for one epoch.
"""

from __future__ import annotations

import logging
import os
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


@pytest.fixture
def data_root(tmp_path):
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / "scan.hspy").write_bytes(b"x")
    (root / "sub" / "inner.dm4").write_bytes(b"x")
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
    assert values == ["scan.hspy", "sub/"]  # no .txt, no hidden file, no links leading out
    chooser.folder.value = "sub/"
    assert chooser.cwd == (data_root / "sub").resolve()
    assert [v for _, v in chooser.folder.options] == ["..", "inner.dm4"]
    chooser.folder.value = ".."
    assert chooser.cwd == data_root.resolve()
    assert ".." not in [v for _, v in chooser.folder.options]  # the root has no way up
    with pytest.raises(UnsafePathError):
        chooser.change_dir(data_root.parent)
    chooser.close()


def test_chooser_load_calls_back_with_paths(data_root):
    seen = []
    chooser = DataFileChooser(data_root, on_load=lambda si, haadf: seen.append((si, haadf)))
    assert chooser.load_button.disabled
    with pytest.raises(ValueError, match="choose a data file first"):
        chooser.load()
    chooser.select("sub/inner.dm4")
    assert not chooser.load_button.disabled
    chooser.load_button.click()
    assert seen == [((data_root / "sub" / "inner.dm4").resolve(), None)]
    with pytest.raises(FileNotFoundError, match="not a data file"):
        chooser.select("notes.txt")
    chooser.close()


def test_chooser_upload_is_limited_sanitised_and_private(data_root):
    chooser = DataFileChooser(data_root, max_upload_mb=0.001)  # 1 kB
    with pytest.raises(ValueError, match="upload limit"):
        chooser.save_upload("big.hspy", b"0" * 2048)
    with pytest.raises(ValueError, match="not a supported file type"):
        chooser.save_upload("evil.sh", b"#!/bin/sh")
    path = chooser.save_upload("../../x/../scan one.hspy", b"abc")
    assert path.name == "scan_one.hspy" and path.read_bytes() == b"abc"
    assert data_root.resolve() not in path.parents  # never written into the data folder
    again = chooser.save_upload("scan one.hspy", b"def")
    assert again != path and path.read_bytes() == b"abc"  # no overwrite
    # the browser widget path: value holds dicts with name and content
    chooser.upload.value = ({"name": "up.dm3", "content": memoryview(b"12"), "size": 2,
                             "type": "", "last_modified": datetime.now(timezone.utc)},)
    assert chooser.selected[0] is not None and chooser.selected[0].name == "up.dm3"
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
    from plasmonwidgets.widgets.dashboard import Dashboard

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
        assert pretrained.check_compatible(model, si) is None


@needs_models
def test_check_compatible_refuses_other_energy_axes(si):
    model = pretrained.load_default("im2spec", 2)
    assert "energy channels" in pretrained.check_compatible(model, si.crop(0.3, 1.2))
    shifted = si.replace(energy=si.energy + 0.5)
    assert "trained on 0.2" in pretrained.check_compatible(model, shifted)


@needs_models
def test_opens_with_data_tab_only_and_pretrained_models(dashboard, si):
    from plasmonwidgets.widgets.dashboard import TABS

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
    from plasmonwidgets.widgets.dashboard import TABS

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
    assert dashboard.design_viewer.highlight == result.positions.tolist()
    assert "design NMSE" in dashboard.design_result.value
    dashboard.design_source.value = "spectrum at the probe"
    dashboard.design_model.value = ("spec2im", 10)
    dashboard.design_button.click()
    assert dashboard.error_text == "" and dashboard.last_design.direction == "spec2im"


@needs_models
def test_training_replaces_the_model_everywhere(dashboard):
    dashboard.select_tab("Latent")
    old = dashboard.models[("im2spec", 2)]
    dashboard.select_tab("Train")
    progress = dashboard.trainers[("im2spec", 2)]
    progress.start_button.click()
    assert progress.wait(120), "training did not finish"
    assert progress.trainer.state == "finished"
    new = dashboard.models[("im2spec", 2)]
    assert new is not old and dashboard.model_notes[("im2spec", 2)] == "trained here (1 epochs)"
    assert dashboard.probe_link.models["im2spec 2 latent"] is new
    assert "Latent" not in dashboard._built  # rebuilt with the new model when next opened
    dashboard.select_tab("Latent")
    assert dashboard.explorers[("im2spec", 2)].model is new
    assert dashboard.error_text == ""


def test_small_scan_trains_without_a_validation_block():
    """A 24x24 scan leaves no room for a validation block: train on, do not fail the tab."""
    import plasmonwidgets as pw
    from plasmonwidgets.widgets import Dashboard

    small = Dashboard(pw.datasets.nanocube_array(seed=0, size=24), use_pretrained=False,
                      decode_mode="sync")
    small.select_tab("Train")
    small.epochs.value = 1  # the Train tab's epochs control
    progress = small.trainers[("im2spec", 2)]
    assert progress.trainer is not None and small.error_text == ""
    progress.start_button.click()
    assert progress.wait(120), "training did not finish"
    assert progress.trainer.state == "finished" and progress.trainer.history.n_val == 0
    assert small.model_notes[("im2spec", 2)] == "trained here (1 epochs)"


def test_mismatched_file_offers_training(si, tmp_path):
    """A user's file on another energy axis: no pre-trained model is used; training works."""
    from plasmonwidgets import datasets
    from plasmonwidgets.widgets.dashboard import Dashboard

    other = datasets.nanocube_array(seed=3, size=32, n_energy=60)
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
    from plasmonwidgets.widgets.dashboard import Dashboard

    (tmp_path / "broken.dm3").write_bytes(b"this is not a DigitalMicrograph file")
    d = Dashboard(si, data_dir=tmp_path, decode_mode="sync", use_pretrained=False,
                  catch_widget_errors=True)
    try:
        d.select_tab("Data")
        d.chooser.select("broken.dm3")
        d.chooser.load_button.click()  # raises inside the guarded callback
        text = d.error_text
        assert text.startswith("Error while loading the file:"), text
        assert "broken.dm3" in text and str(tmp_path) not in text and "Traceback" not in text
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
        assert d.error_text == ("Error while handling a widget event: "
                                "RuntimeError: boom in ~/secret/file.py"), d.error_text
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
    from plasmonwidgets.widgets.dashboard import Dashboard

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

    from plasmonwidgets.widgets.dashboard import Dashboard

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
    from plasmonwidgets.widgets.dashboard import Dashboard

    d = Dashboard(si=object(), use_pretrained=False)
    assert "TypeError" in d.error_text and "SpectrumImage" in d.error_text
    d.close()


def _walk(widget):
    yield widget
    for child in getattr(widget, "children", ()):
        yield from _walk(child)


def test_small_switch(monkeypatch):
    from plasmonwidgets.widgets.dashboard import small_settings

    monkeypatch.setenv("PLASMONWIDGETS_SMALL", "1")
    assert small_settings()
    monkeypatch.setenv("PLASMONWIDGETS_SMALL", "0")
    assert not small_settings()


def test_dashboard_notebook_is_tiny():
    import nbformat

    nb = nbformat.read(Path(__file__).resolve().parents[1] / "notebooks" / "dashboard.ipynb", 4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    assert len(code) == 1 and "Dashboard(" in code[0] and len(code[0].splitlines()) <= 6
