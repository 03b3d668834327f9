"""Im2Spec / Spec2Im: architecture, numpy API, shapes, normalisation, locking, devices."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch
from torch import nn

import plasmonwidgets as pw
from plasmonwidgets.device import select_device
from plasmonwidgets.nn.blocks import ConvBlock, DilatedPyramid

E = 40


@pytest.fixture(scope="module")
def im2spec():
    m = pw.Im2Spec(window=16, n_energy=E, latent_dim=10, device="cpu")
    rng = np.random.default_rng(0)
    m.fit_normalization(rng.uniform(100, 900, (50, 16, 16)), rng.uniform(0, 30, (50, E)))
    return m


@pytest.fixture(scope="module")
def spec2im():
    return pw.Spec2Im(n_energy=E, window=16, latent_dim=2, device="cpu")


def _layers(module, kind):
    return [m for m in module.modules() if isinstance(m, kind)]


def test_default_architecture_is_the_lean_preset_with_the_papers_layer_structure():
    m = pw.Im2Spec(n_energy=100)
    enc_convs = _layers(m.encoder, nn.Conv2d)
    assert [c.out_channels for c in enc_convs] == [16, 16, 16]
    assert all(c.kernel_size == (3, 3) for c in enc_convs)
    assert all(a.negative_slope == 0.1 for a in _layers(m, nn.LeakyReLU))
    assert len(_layers(m.encoder, nn.BatchNorm2d)) == 3
    assert m.encoder.fc.out_features == 10
    assert m.decoder.fc.out_features == 16 * 100
    assert [s[0].dilation for s in m.decoder.pyramid.stages] == [(1,), (2,), (3,), (4,)]
    assert m.decoder.out.kernel_size == (1,) and m.decoder.out.out_channels == 1

    s = pw.Spec2Im(n_energy=100)
    assert s.config["pool"] == 16
    assert s.encoder.length == 7  # ceil(100 / 16): the top channels are not dropped
    assert [c.out_channels for c in _layers(s.encoder, nn.Conv1d)] == [16, 16, 16]
    assert s.decoder.shape == (16, 4, 4)  # dense to a window/4 map, then x2 twice
    assert [st[0].dilation for st in s.decoder.pyramid.stages] == [(1, 1), (2, 2), (3, 3), (4, 4)]
    assert isinstance(s.decoder.out, nn.Conv2d) and s.decoder.out.kernel_size == (1, 1)
    assert s.config["symmetric"] and not pw.Spec2Im(n_energy=100, symmetric=False).config["symmetric"]


def test_paper_preset_has_the_papers_sizes_and_explicit_sizes_override_a_preset():
    m = pw.Im2Spec(window=16, n_energy=100, latent_dim=10, preset="paper")
    assert [c.out_channels for c in _layers(m.encoder, nn.Conv2d)] == [64, 64, 64]
    assert m.decoder.fc.out_features == 64 * 100
    s = pw.Spec2Im(n_energy=100, window=16, latent_dim=2, preset="paper")
    assert s.decoder.shape == (64, 4, 4) and s.config["pool"] == 16
    mixed = pw.Im2Spec(n_energy=100, preset="paper", n_filters_dec=8)
    assert (mixed.config["n_filters_enc"], mixed.config["n_filters_dec"]) == (64, 8)
    # the lean default does ~15x less arithmetic per sample than the paper's network
    from torch.utils.flop_counter import FlopCounterMode

    flops = []
    for net in (pw.Im2Spec(n_energy=100, device="cpu"), m.to("cpu")):
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            net(torch.zeros(1, 16, 16))
        flops.append(counter.get_total_flops())
    assert 12 < flops[1] / flops[0] < 18
    with pytest.raises(ValueError, match=r"unknown preset 'huge'.*lean.*paper"):
        pw.Im2Spec(n_energy=100, preset="huge")


def test_sizes_are_keyword_only_and_n_energy_is_required():
    with pytest.raises(TypeError, match="positional"):
        pw.Im2Spec(16, 100)
    with pytest.raises(TypeError, match="positional"):
        pw.Spec2Im(100, 16)
    with pytest.raises(TypeError, match="n_energy"):
        pw.Im2Spec(window=16)


def test_the_default_is_what_the_dashboard_and_packaged_models_use():
    from plasmonwidgets import pretrained
    from plasmonwidgets.models import PRESETS

    lean = pw.Im2Spec(n_energy=100).config
    assert {k: lean[k] for k in pretrained.ARCH} == pretrained.ARCH
    assert all(lean[k] == v for k, v in PRESETS["lean"].items())
    if not pretrained.available():
        pytest.skip("no packaged checkpoints (python scripts/make_pretrained.py)")
    for direction, latent in pretrained.available():  # saved configs still load
        model = pretrained.load_default(direction, latent)
        rebuilt = (pw.Im2Spec if direction == "im2spec" else pw.Spec2Im)(
            **pretrained.architecture(direction, latent, model.n_energy))
        assert {k: v.shape for k, v in rebuilt.state_dict().items()} == \
            {k: v.shape for k, v in model.state_dict().items()}


def test_spec2im_tiles_are_symmetric_under_rotations_about_the_probe():
    rng = np.random.default_rng(5)
    spectra = rng.uniform(0, 50, (40, E)).astype(np.float32)
    tiles = rng.uniform(0, 300, (40, 16, 16)).astype(np.float32)
    models = [pw.Spec2Im(n_energy=E, latent_dim=3, n_filters_enc=8, n_filters_dec=8, pool=4,
                         symmetric=sym, device="cpu") for sym in (True, False)]
    for m in models:
        m.fit_normalization(spectra, tiles)  # the offset (mean tile) is not symmetric
    sym, plain = (m.predict(spectra[:5]) for m in models)
    block = sym[:, 1:, 1:]  # centred on the probe pixel (8, 8); row/col 0 have no partner
    for k in (1, 2, 3):
        np.testing.assert_allclose(np.rot90(block, k, (1, 2)), block, rtol=1e-5, atol=1e-3)
    # the symmetric output is the rotation average of the plain one (same seed and weights)
    avg = np.mean([np.rot90(plain[:, 1:, 1:], k, (1, 2)) for k in range(4)], axis=0)
    np.testing.assert_allclose(block, avg, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(sym[:, 0], plain[:, 0], rtol=1e-5, atol=1e-3)
    # decode and predict agree; forward stays in normalised units
    m = models[0]
    np.testing.assert_allclose(m.decode(m.encode(spectra[:5])), sym, rtol=1e-5, atol=1e-3)


def test_pyramid_sums_all_stage_outputs():
    torch.manual_seed(0)
    block = DilatedPyramid(1, 3, 5, (1, 2, 3)).eval()
    x = torch.randn(2, 3, 20)
    a = block.stages[0](x)
    b = block.stages[1](a)
    c = block.stages[2](b)
    torch.testing.assert_close(block(x), a + b + c)
    assert block(x).shape == (2, 5, 20)  # 'same' padding for every dilation
    conv = ConvBlock(2, 2, 1, 4)
    assert conv(torch.randn(3, 1, 8, 8)).shape == (3, 4, 8, 8)


def test_numpy_shapes_single_and_batched(im2spec, spec2im):
    x = np.random.default_rng(1).uniform(100, 900, (5, 16, 16)).astype(np.float32)
    z = im2spec.encode(x)
    assert z.shape == (5, 10) and z.dtype == np.float32
    assert im2spec.decode(z).shape == (5, E)
    assert im2spec.predict(x).shape == (5, E)
    assert im2spec.encode(x[0]).shape == (10,)
    assert im2spec.decode(z[0]).shape == (E,)
    np.testing.assert_allclose(im2spec.predict(x[0]), im2spec.predict(x)[0], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(im2spec.predict(x), im2spec.decode(im2spec.encode(x)),
                               rtol=1e-5, atol=1e-4)
    assert im2spec.predict(np.zeros((0, 16, 16))).shape == (0, E)

    spectra = np.random.default_rng(2).uniform(0, 10, (3, E))
    assert spec2im.encode(spectra).shape == (3, 2)
    assert spec2im.predict(spectra).shape == (3, 16, 16)
    assert spec2im.predict(spectra[1]).shape == (16, 16)
    assert spec2im.decode([0.5, -1.0]).shape == (16, 16)
    assert isinstance(im2spec.predict(torch.from_numpy(x)), np.ndarray)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((15, 15)), r"\(16, 16\).*got shape \(15, 15\).*window=16"),
    (np.zeros((4, 15, 15)), r"got shape \(4, 15, 15\)"),
    (np.zeros((4, 1, 16, 16)), r"got shape \(4, 1, 16, 16\)"),
    (np.full((16, 16), np.nan), "NaN"),
    (np.array([["a"] * 16] * 16), "numeric"),
])
def test_bad_image_input_raises_clear_error(im2spec, bad, match):
    with pytest.raises(ValueError, match=match):
        im2spec.predict(bad)


def test_bad_spectrum_and_latent_raise(im2spec, spec2im):
    with pytest.raises(ValueError, match=rf"\({E},\).*got shape \({E - 1},\).*n_energy"):
        spec2im.predict(np.zeros(E - 1))
    with pytest.raises(ValueError, match=r"latent vector of shape \(10,\).*got shape \(3,\)"):
        im2spec.decode(np.zeros(3))
    with pytest.raises(ValueError, match=r"\(2,\).*got shape \(5, 3\)"):
        spec2im.decode(np.zeros((5, 3)))
    with pytest.raises(ValueError, match="Inf"):
        spec2im.encode(np.full(E, np.inf))


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="divisible by 4"):
        pw.Spec2Im(n_energy=E, window=14)
    with pytest.raises(ValueError, match="pool=64 exceeds n_energy"):
        pw.Spec2Im(n_energy=E, pool=64)
    with pytest.raises(ValueError, match="latent_dim"):
        pw.Im2Spec(n_energy=E, latent_dim=0)
    with pytest.raises(ValueError, match="dilations"):
        pw.Im2Spec(n_energy=E, dilations=())
    with pytest.raises(ValueError, match=r"shape \(40,\)"):
        pw.Im2Spec(n_energy=E, energy=np.linspace(0, 1, 10))
    with pytest.raises(ValueError, match="increasing"):
        pw.Im2Spec(n_energy=3, energy=[0.3, 0.2, 0.4])


def test_normalisation_is_explicit_and_in_physical_units():
    rng = np.random.default_rng(3)
    x = rng.uniform(1000, 5000, (64, 8, 8)).astype(np.float32)
    y = rng.uniform(0, 100, (64, 12)).astype(np.float32)
    m = pw.Im2Spec(window=8, n_energy=12, latent_dim=3, n_filters_enc=8, n_filters_dec=8)
    assert not m.is_fitted
    m.fit_normalization(x, y)
    assert m.is_fitted
    np.testing.assert_allclose(m.x_offset.numpy(), x.mean(0), rtol=1e-5)
    np.testing.assert_allclose(float(m.x_scale), (x - x.mean(0)).std(), rtol=1e-4)
    np.testing.assert_allclose(m.y_offset.numpy(), y.mean(0), rtol=1e-5)
    # encode/decode apply exactly the stored transforms, nothing else
    m.eval()
    with torch.no_grad():
        z_ref = m.encoder((torch.from_numpy(x) - m.x_offset) / m.x_scale).numpy()
        y_ref = (m.decoder(torch.from_numpy(z_ref)) * m.y_scale + m.y_offset).numpy()
    np.testing.assert_allclose(m.encode(x), z_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(m.decode(z_ref), y_ref, rtol=1e-5, atol=1e-4)
    # inputs are not silently rescaled: scaling the input changes the latent
    assert not np.allclose(m.encode(x * 2), m.encode(x))
    # constant data keeps a unit scale instead of dividing by zero
    m.fit_normalization(np.ones((4, 8, 8)), np.ones((4, 12)))
    assert float(m.x_scale) == 1.0 and float(m.y_scale) == 1.0


def test_inference_is_eval_mode_and_restores_mode(im2spec):
    x = np.random.default_rng(4).uniform(100, 900, (8, 16, 16))
    before = {k: v.clone() for k, v in im2spec.state_dict().items()}
    im2spec.train()
    y_train_mode = im2spec.predict(x)
    assert im2spec.training  # restored
    im2spec.eval()
    np.testing.assert_array_equal(im2spec.predict(x), y_train_mode)
    for k, v in im2spec.state_dict().items():  # batch-norm statistics untouched
        torch.testing.assert_close(v, before[k])


def test_lock_guards_inference(im2spec):
    assert isinstance(im2spec.lock, type(threading.RLock()))
    done = threading.Event()

    def worker():
        im2spec.predict(np.ones((16, 16)))
        done.set()

    with im2spec.lock:
        t = threading.Thread(target=worker)
        t.start()
        time.sleep(0.2)
        assert not done.is_set()  # predict waits while weights are being changed
    t.join(10)
    assert done.is_set()


def test_seeded_initialisation_is_reproducible_and_leaves_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(1)
    torch.manual_seed(123)
    a = pw.Im2Spec(window=8, n_energy=10, latent_dim=2, seed=5)
    after = torch.rand(1)
    assert torch.equal(after, expected)
    b = pw.Im2Spec(window=8, n_energy=10, latent_dim=2, seed=5)
    c = pw.Im2Spec(window=8, n_energy=10, latent_dim=2, seed=6)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert not all(torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters()))


def test_config_rebuilds_model_and_clone_is_independent(spec2im):
    rebuilt = type(spec2im)(**spec2im.config)
    assert rebuilt.config == spec2im.config
    assert (rebuilt.direction, rebuilt.latent_dim, rebuilt.window, rebuilt.n_energy) == \
        ("spec2im", 2, 16, E)
    twin = spec2im.clone()
    assert twin.lock is not spec2im.lock
    with torch.no_grad():
        next(twin.parameters()).add_(1.0)
    assert not torch.equal(next(twin.parameters()), next(spec2im.parameters()))


def test_energy_attribute():
    e = np.linspace(0.2, 1.2, E)
    m = pw.Spec2Im(n_energy=E, energy=e)
    np.testing.assert_array_equal(m.energy, e)
    assert pw.Spec2Im(n_energy=E).energy is None


def test_select_device():
    auto = select_device()
    expected = "cuda" if torch.cuda.is_available() else (
        "mps" if torch.backends.mps.is_available() else "cpu")
    assert auto.type == expected
    assert select_device("cpu") == torch.device("cpu")
    assert pw.Im2Spec(window=8, n_energy=5, device="cpu").device == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device"):
        select_device("quantum")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            select_device("cuda")


def test_the_other_directions_input_gets_a_hint_naming_the_right_model():
    im = pw.Im2Spec(window=8, n_energy=12, latent_dim=2, n_filters_enc=4, n_filters_dec=4)
    sp = pw.Spec2Im(n_energy=12, window=8, latent_dim=2, n_filters_enc=4, n_filters_dec=4, pool=4)
    with pytest.raises(ValueError, match="use a Spec2Im model for spectra"):
        im.predict(np.zeros((3, 12), np.float32))
    with pytest.raises(ValueError, match="use an Im2Spec model for tiles"):
        sp.predict(np.zeros((3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="built for 8x8 tiles"):  # a wrong window keeps its hint
        im.predict(np.zeros((3, 16, 16), np.float32))
