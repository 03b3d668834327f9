"""Pre-trained models loaded after the first image (``Dashboard(defer_models=True)``).

The Voila page shows the HAADF image, the measured spectrum and tile before torch is
imported; the models follow in a background thread. Until they arrive every caption says
they are loading (never "no model" nor a count that is wrong), the tabs that need them
wait, and a model put in use meanwhile is kept.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import ipywidgets as ipw
import pytest

from plasmonwidgets import pretrained
from plasmonwidgets.app.dashboard import Dashboard
from plasmonwidgets.app.dashboard.settings import KEYS

# a fresh interpreter: what the Voila kernel has imported when the page gets its first image
FIRST_IMAGE_SCRIPT = r"""
import json, sys
from plasmonwidgets.app.dashboard import Dashboard
d = Dashboard(catch_widget_errors=True, prebuild=True)   # as notebooks/dashboard.ipynb
before = {"torch": "torch" in sys.modules, "loading": d.models_loading, "models": len(d.models),
          "image": d.viewer is not None and d.viewer in d.tab("Data").children[0].children,
          "header": d.header.value}
d.viewer.render_ms = 2.0   # the browser reports the first image drawn
d._prebuild_thread.join(300)
after = {"torch": "torch" in sys.modules, "loading": d.models_loading, "models": len(d.models),
         "probe": sorted(d.probe_link.models), "header": d.header.value, "error": d.error_text}
d.close()
d.wait_metrics(300)   # no torch thread left running at interpreter exit (it aborts)
print(json.dumps({"before": before, "after": after}))
"""


def _text(html: str) -> str:
    return re.sub(r"<[^>]+>", "", html)


@pytest.fixture
def deferred():
    d = Dashboard(defer_models=True, decode_mode="sync", epochs=1)
    try:
        yield d
    finally:
        d.close()


def test_first_image_goes_out_before_torch_is_imported():
    out = subprocess.run([sys.executable, "-c", FIRST_IMAGE_SCRIPT], capture_output=True, text=True,
                         timeout=600, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    before, after = result["before"], result["after"]
    assert before["image"] and before["loading"] and before["models"] == 0
    assert not before["torch"], "torch was imported before the first image was sent"
    assert "loading the pre-trained models" in _text(before["header"])
    assert "models ready" not in _text(before["header"])
    assert after["torch"] and not after["loading"] and after["error"] == ""
    assert after["models"] == 4 and len(after["probe"]) == 4
    assert "4 of 4 models ready (all pre-trained)" in _text(after["header"])


def test_captions_say_loading_until_the_models_arrive(deferred):
    d = deferred
    assert d.models_loading and d.models == {}
    assert d.model_in_use(("im2spec", 2)) == "loading"
    assert "loading the pre-trained models" in _text(d.header.value)
    summary = _text(d.summary.value)
    assert summary.count("pre-trained model loading…") == 4 and "train it in the Train tab" not in summary
    assert "Loading the pre-trained models" in _text(d.models_note.value)
    assert d.models_note.layout.display is None
    assert d.probe_link.models == {} and d.spectrum_view.prediction_names == []

    assert d.wait_models(300)
    assert not d.models_loading and set(d.models) == set(KEYS)
    assert all(d.model_in_use(k) == "pre-trained" for k in KEYS)
    assert "4 of 4 models ready (all pre-trained)" in _text(d.header.value)
    assert d.models_note.value == "" and d.models_note.layout.display == "none"
    assert len(d.probe_link.models) == 4
    assert set(d.spectrum_view.prediction_names) == {"im2spec 2 latent", "im2spec 10 latent"}
    assert d.wait_metrics(300)
    summary = _text(d.summary.value)
    assert "loading" not in summary and summary.count("pre-trained — test NMSE mean") == 4
    assert d.error_text == ""


@pytest.mark.parametrize("name", ["Train", "Errors", "Latent", "Inverse design"])
def test_a_tab_opened_while_loading_is_built_when_the_models_arrive(deferred, name):
    d = deferred
    box = d.select_tab(name)
    assert name not in d._built
    assert "Loading the pre-trained models" in _text(box.children[0].value)
    assert d.wait_models(300)
    assert name in d._built and d.error_text == ""
    shown = " ".join(_text(c.value) for c in box.children if isinstance(c, ipw.HTML))
    assert "Loading the pre-trained models" not in shown and "No trained" not in shown
    if name == "Train":
        assert "In use: im2spec 2 latent, pre-trained." in _text(d.train_note.value)
    elif name == "Errors":
        assert set(d.error_panels) == {"im2spec"}
        assert "im2spec 2 latent: pre-trained" in _text(d.error_models.value)
        # the hidden Data tab's figures change only when it is shown again
        assert len(d.probe_link.models) == 4 and d.spectrum_view.prediction_names == []
        d.select_tab("Data")
        assert set(d.spectrum_view.prediction_names) == {"im2spec 2 latent", "im2spec 10 latent"}
        assert {"spec2im 2 latent", "spec2im 10 latent"} <= set(d.tile_view.heatmaps)
        assert not d._probe_stale
    elif name == "Latent":
        assert ("im2spec", 2) in d.explorers
    else:
        assert d.run_inverse_design() is not None


def test_a_model_put_in_use_while_loading_is_kept(deferred):
    d = deferred
    key = ("spec2im", 10)
    mine = pretrained.load_default(*key)  # stands for a run trained here (same architecture)
    d.set_model(key, mine, note="trained here, 2 epochs")
    assert d.models_loading  # the others are still on their way
    assert "1 of 4 models ready" in _text(d.header.value)
    assert "loading the pre-trained models" in _text(d.header.value)
    assert d.wait_models(300)
    assert d.models[key] is mine and d.model_in_use(key) == "trained here, 2 epochs"
    assert all(d.model_in_use(k) == "pre-trained" for k in KEYS if k != key)
    assert "4 of 4 models ready (3 pre-trained; spec2im 10 latent trained here, 2 epochs)" in _text(
        d.header.value)


def test_new_data_while_loading_drops_the_deferred_models(deferred):
    d = deferred
    loader = d.start_loading_models()
    assert loader is not None and d.start_loading_models() is loader  # started once
    d.set_si(d.si, source="reloaded")  # later data loads its models at once
    assert not d.models_loading and set(d.models) == set(KEYS)
    mine = dict(d.models)
    loader.join(300)
    assert d.models == mine and d.error_text == ""  # the older load changed nothing
    assert d.start_loading_models() is None


def test_first_image_starts_the_loading_without_prebuild(deferred):
    d = deferred
    assert d.prebuild is False and d._models_thread is None
    d.viewer.render_ms = 1.5  # the browser drew the first image
    assert d._models_thread is not None
    assert d.wait_models(300) and len(d.models) == 4
    assert d._built == {"Data"}  # no prebuild asked


def test_models_load_at_once_without_deferral():
    d = Dashboard(decode_mode="sync")
    try:
        assert not d.models_loading and len(d.models) == 4 and d.start_loading_models() is None
    finally:
        d.close()


def test_close_while_loading():
    d = Dashboard(defer_models=True, decode_mode="sync")
    loader = d.start_loading_models()
    d.close()
    loader.join(300)
    assert not loader.is_alive() and d.error_text == ""
