"""Composite widgets expose their named children, and driving them by name works."""

from __future__ import annotations

import numpy as np

import plasmonwidgets as pw
from plasmonwidgets.app.dashboard import Dashboard
from plasmonwidgets.widgets import LatentExplorer, SpectrumView, TrainingProgress


def test_latent_explorer_children_drive_the_decoder(small_trained):
    _, pairs, _, _, model = small_trained
    view = SpectrumView()
    ex = LatentExplorer(model, pairs, spectrum_view=view, mode="sync")
    named = ex.children_by_name
    assert {"slider z0", "slider z1", "pad", "x", "y", "k", "mode", "status"} <= set(named)
    assert named["spectrum view"] is view
    slider = named["slider z1"]
    slider.value = float(slider.min + 0.7 * (slider.max - slider.min))
    np.testing.assert_allclose(view.lines["decoded"].y, model.decode(ex.z.astype(np.float32)),
                               rtol=1e-5, atol=1e-5)
    named["mode"].value = "grid"
    assert ex.output_box.children == (named["grid"],)
    ex.close()


def test_training_progress_children_start_and_stop_a_run(small_trained):
    _, _, train, test, _ = small_trained
    model = pw.Im2Spec(window=16, n_energy=train.spectra.shape[1], latent_dim=2, n_filters_enc=8,
                       n_filters_dec=8, device="cpu")
    progress = TrainingProgress(model=model, train=train, test=test, epochs=500,
                                poll_interval=0.05)
    named = progress.children_by_name
    assert set(named) == {"start", "stop", "resume", "progress", "status", "loss", "message",
                          "summary"}
    named["start"].click()
    assert progress.trainer.state == "running"
    named["stop"].click()
    assert progress.wait(30) and progress.state == "stopped"
    assert not named["resume"].disabled


def test_dashboard_children_name_built_parts_only(small_trained, tmp_path):
    si = small_trained[0]
    d = Dashboard(si, data_dir=tmp_path, use_pretrained=False, decode_mode="sync", epochs=1)
    try:
        named = d.children_by_name
        assert {"header", "error", "tabs", "Data", "viewer", "spectrum view"} <= set(named)
        assert "nmf" not in named  # the NMF tab is built when first opened
        d.select_tab("Train")
        assert "training im2spec 2 latent" in d.children_by_name
        d.children_by_name["viewer"].position = [3, 4]
        np.testing.assert_allclose(d.children_by_name["spectrum view"].lines["measured"].y,
                                   si.spectra[3, 4])
    finally:
        d.close()
