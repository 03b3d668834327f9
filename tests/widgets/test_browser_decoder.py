"""The decoder exported to the page computes what model.decode computes; the explorer
hands the decoded view to the page once it says it is drawing.

The page's side (each decoder step, the widget binding sliders to the mark) is tested in
JavaScript: tests/js/browser_decoder.test.mjs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import plasmonwidgets as pw
from plasmonwidgets import pretrained
from plasmonwidgets.nn.export import decoder_program
from plasmonwidgets.widgets import latent_explorer as le
from plasmonwidgets.widgets.browser_decoder import BrowserDecoder

NODE = shutil.which("node")
PARITY = Path(__file__).parents[1] / "js" / "browser_decoder_parity.test.mjs"


def _randomised(model):
    """Random weights and batch-norm statistics, so every step of the program matters."""
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, buf in model.named_buffers():
            if name.endswith("running_mean"):
                buf.copy_(torch.randn(buf.shape, generator=gen) * 0.3)
            elif name.endswith("running_var"):
                buf.copy_(torch.rand(buf.shape, generator=gen) + 0.5)
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
        model.y_offset.copy_(torch.rand(model.y_offset.shape, generator=gen) * 100)
        model.y_scale.fill_(37.5)
    return model


def _check_in_node(name: str, model, z: np.ndarray, tmp_path: Path) -> None:
    """Run tests/js/browser_decoder_parity.test.mjs on this model's exported program;
    the expected values come from ``model.decode`` here (torch), so the data must come
    from Python and the comparison runs in node."""
    ops, weights = decoder_program(model)
    expected = model.decode(z)
    case = {"name": name, "ops": ops, "z": z.tolist(), "shape": list(expected.shape[1:]),
            "expected": expected.reshape(len(z), -1).tolist(),
            "rtol": 1e-4, "atol": 1e-5 * float(np.abs(expected).max())}
    (tmp_path / "case.json").write_text(json.dumps(case))
    (tmp_path / "weights.bin").write_bytes(weights.astype(np.float32).tobytes())
    out = subprocess.run([NODE, "--test", "--test-reporter=tap", str(PARITY)], capture_output=True,
                         text=True, timeout=120, env={**os.environ, "PW_DECODER_FIXTURES": str(tmp_path)})
    report = out.stdout + out.stderr
    assert out.returncode == 0, f"node's decoder differs from model.decode:\n{report}"
    assert "# pass 1" in out.stdout and "# skipped 0" in out.stdout, report  # it ran, not skipped


@pytest.mark.skipif(NODE is None, reason="needs node to run the page's decoder module")
@pytest.mark.parametrize("kind", ["im2spec", "spec2im", "spec2im-unsymmetric",
                                  "packaged im2spec_10", "packaged spec2im_2"])
def test_page_decoder_matches_model_decode(kind, tmp_path):
    if kind.startswith("packaged"):
        direction, latent = kind.split()[1].split("_")
        model = pretrained.load_default(direction, int(latent), device="cpu")
    elif kind == "im2spec":
        model = _randomised(pw.Im2Spec(window=16, n_energy=40, latent_dim=3, n_filters_enc=8,
                                       n_filters_dec=8, device="cpu"))
    else:
        model = _randomised(pw.Spec2Im(n_energy=40, window=16, latent_dim=3, n_filters_enc=8,
                                       n_filters_dec=8, pool=4,
                                       symmetric=kind == "spec2im", device="cpu"))
    z = np.random.default_rng(0).normal(0, 2, (4, model.latent_dim)).astype(np.float32)
    _check_in_node(kind, model, z, tmp_path)


def test_export_refuses_what_it_cannot_express():
    with pytest.raises(TypeError, match="expected an Im2Spec or Spec2Im"):
        decoder_program(torch.nn.Linear(2, 2))
    model = pw.Im2Spec(window=16, n_energy=40, latent_dim=2, n_filters_enc=4, n_filters_dec=4,
                       device="cpu")
    with pytest.raises(ValueError, match="one slider per latent dimension"):
        BrowserDecoder(model, [])
    with pytest.raises(ValueError, match="attribute must be 'y'"):
        BrowserDecoder(model, [None, None], attribute="x")


def _page_says(decoder: BrowserDecoder, content: dict) -> None:
    decoder._handle_custom_msg(content, [])  # how ipywidgets delivers a message from the page


def test_explorer_hands_the_decoded_curve_to_the_page(small_trained, monkeypatch):
    *_, model = small_trained
    pairs = small_trained[1]
    monkeypatch.setattr(le, "SECONDARY_INTERVAL_S", 30.0)  # hold kernel follow-ups back
    ex = le.LatentExplorer(model, pairs, mode="thread")
    try:
        assert ex.wait(10)
        line = ex.spectrum_view.lines["decoded"]
        assert ex.browser_decoder.target is line  # bound to the mark once it exists
        assert not ex.browser_decoder.ready
        # the page binds and says so: the title tells the user, the kernel steps back
        _page_says(ex.browser_decoder, {"type": "ready"})
        assert ex.browser_decoder.ready and "decoded in the browser" in ex.title.value
        before = np.array(line.y)
        slider = ex.sliders[0]
        slider.value = float(slider.min + 0.8 * (slider.max - slider.min))
        ex._coalescer.wait_idle(10)
        np.testing.assert_allclose(ex.last_output, model.decode(ex.z.astype(np.float32)),
                                   rtol=1e-5)
        np.testing.assert_array_equal(np.array(line.y), before)  # drawn by the page, not here
        # the page fails: the kernel draws again at once
        _page_says(ex.browser_decoder, {"type": "error", "message": "boom"})
        assert not ex.browser_decoder.ready and ex.browser_decoder.failed == "boom"
        slider.value = float(slider.min + 0.3 * (slider.max - slider.min))
        ex._coalescer.wait_idle(10)
        np.testing.assert_allclose(np.array(line.y), model.decode(ex.z.astype(np.float32)),
                                   rtol=1e-5, atol=1e-4)
        assert "decoded in the browser" not in ex.title.value
    finally:
        ex.close()


def test_retrained_model_is_sent_to_the_page(small_trained):
    *_, model = small_trained
    pairs = small_trained[1]
    ex = le.LatentExplorer(model, pairs, mode="sync")
    try:
        old = ex.browser_decoder.weights
        other = model.clone()
        with torch.no_grad():
            other.decoder.fc.bias.add_(1.0)
        ex.set_model(other)
        assert ex.browser_decoder.weights != old
        assert ex.browser_decoder.sliders == ex.sliders
        ops, weights = decoder_program(other)
        assert ex.browser_decoder.weights == weights.tobytes() and ex.browser_decoder.ops == ops
    finally:
        ex.close()
