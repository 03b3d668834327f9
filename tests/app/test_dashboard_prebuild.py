"""Tabs built in the background (``Dashboard(prebuild=True)``, the Voila page).

A prebuilt tab's widgets stay out of its box until the tab is shown (bqplot figures
drawn in a hidden tab have no size), the first image starts the prebuild, and new data
throws prebuilt tabs away.
"""

from __future__ import annotations

import pytest

from plasmonwidgets.app.dashboard import TABS, Dashboard


@pytest.fixture
def dashboard(small_trained, tmp_path):
    si, *_rest, model = small_trained
    d = Dashboard(si, data_dir=tmp_path, use_pretrained=False, decode_mode="sync", epochs=1,
                  prebuild=True)
    d.set_model(("im2spec", 2), model)
    try:
        yield d
    finally:
        d.close()


def test_prebuilt_tabs_are_shown_only_when_selected(dashboard):
    d = dashboard
    assert d._built == {"Data"}  # nothing before the page has drawn the HAADF image
    d.viewer.render_ms = 3.5  # as the browser reports the first image drawn
    d._prebuild_thread.join(120)
    assert not d._prebuild_thread.is_alive()
    assert d._built == set(TABS) and d.error_text == ""
    hidden = d._boxes["Latent"]
    assert d.explorers and all(e not in hidden.children for e in d.explorers.values())
    prebuilt = d._prebuilt["Latent"]
    d.select_tab("Latent")
    assert hidden.children == prebuilt and "Latent" not in d._prebuilt
    d.viewer.render_ms = 4.0  # later redraws start nothing
    assert not d._prebuild_thread.is_alive()


def test_new_data_discards_prebuilt_tabs(dashboard, small_trained):
    d = dashboard
    d.prebuild_tabs().join(120)
    old = d._prebuilt["NMF"]
    d.set_si(small_trained[0])
    assert d._built == {"Data"}
    box = d.select_tab("NMF")
    assert box.children and box.children != old and "NMF" not in d._prebuilt
