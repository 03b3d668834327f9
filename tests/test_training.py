"""Training engine: train(), Trainer thread, validation carving, determinism, failures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

import plasmonwidgets as pw
from plasmonwidgets.metrics import nmse_percent
from plasmonwidgets.training import (
    History,
    ProgressEvent,
    Trainer,
    TrainingError,
    carve_validation,
)

E = 24
WINDOW = 8
SMALL = dict(n_filters_enc=8, n_filters_dec=8, latent_dim=3)


def synthetic_si(size=24, n_energy=E, seed=0):
    """Blobs in the HAADF; each spectrum's peak shifts with the local HAADF intensity."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    haadf = np.zeros((size, size))
    for _ in range(max(3, size * size // 60)):
        r0, c0 = rng.uniform(0, size, 2)
        haadf += np.exp(-((yy - r0) ** 2 + (xx - c0) ** 2) / (2 * rng.uniform(1.5, 3) ** 2))
    haadf = 100 + 900 * haadf / haadf.max()
    local = ndimage.gaussian_filter(haadf, 2) / 1000
    edge = ndimage.gaussian_gradient_magnitude(haadf, 2) / 100
    energy = np.linspace(0.2, 1.2, n_energy)
    peak = 1 / (1 + ((energy - (0.5 + 0.4 * local[..., None])) / 0.08) ** 2)
    spectra = 50 * (peak + edge[..., None] * np.exp(-energy / 0.3))
    return pw.SpectrumImage(spectra.astype(np.float32), energy, haadf.astype(np.float32))


@pytest.fixture(scope="module")
def pairs():
    torch.set_num_threads(1)
    return pw.make_tiles(synthetic_si(), window=WINDOW)


@pytest.fixture(scope="module")
def split(pairs):
    return pairs.split("halves")


def im2spec(**kw):
    return pw.Im2Spec(window=WINDOW, n_energy=E, device="cpu", **{**SMALL, **kw})


def test_train_learns_and_keeps_best_weights(tmp_path):
    # enough batches per epoch for the batch-norm running statistics to settle
    train, test = pw.make_tiles(synthetic_si(32), window=WINDOW).split("halves")
    model = im2spec()
    h = pw.train(model, train, test, epochs=6, batch_size=8, checkpoint_dir=tmp_path,
                 validation=0.1)
    assert isinstance(h, History) and len(h) == 6
    for seq in (h.train_loss, h.val_loss, h.test_loss, h.epoch_time, h.samples_per_s):
        assert len(seq) == 6 and all(v is not None and math.isfinite(v) for v in seq)
    assert h.train_loss[-1] < h.train_loss[0]
    assert h.best_epoch == 1 + int(np.argmin(h.val_loss))
    assert h.best_val_loss == min(h.val_loss)
    assert h.n_train + h.n_val + h.n_guard == len(train) and h.n_test == len(test)
    assert h.stop_reason == "finished"
    # normalisation fitted on the (carved) training tiles, energy axis attached
    assert model.is_fitted and not model.training
    assert 100 < float(model.x_offset.mean()) < 1000
    np.testing.assert_array_equal(model.energy, train.energy)
    # the model holds the best-validation weights, identical to best.pt
    best = pw.load_model(tmp_path / "best.pt")
    np.testing.assert_array_equal(best.predict(test.images[:5]), model.predict(test.images[:5]))
    assert pw.load_model(tmp_path / "last.pt").is_fitted
    # physical-unit predictions fit much better than the mean spectrum: it learned
    err = nmse_percent(model.predict(train.images), train.spectra).mean()
    base = nmse_percent(np.broadcast_to(train.spectra.mean(0), train.spectra.shape),
                        train.spectra).mean()
    assert err < 0.8 * base


def test_spec2im_trains(split):
    train, test = split
    model = pw.Spec2Im(n_energy=E, window=WINDOW, pool=4, device="cpu", **SMALL)
    h = pw.train(model, train, test, epochs=3, batch_size=32)
    assert all(math.isfinite(v) for v in h.test_loss)
    assert model.predict(test.spectra[:2]).shape == (2, WINDOW, WINDOW)


def test_same_seed_gives_identical_loss_curve(split):
    train, test = split
    runs = [pw.train(im2spec(), train, test, epochs=3, batch_size=32, seed=s).train_loss
            for s in (7, 7, 8)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_validation_is_spatial_block_from_training_side(split):
    train, test = split
    fit, val = carve_validation(train, 0.15)
    assert abs(len(val) - round(0.15 * len(train))) <= 1
    fit_set = {tuple(p) for p in fit.positions}
    val_set = {tuple(p) for p in val.positions}
    train_set = {tuple(p) for p in train.positions}
    assert val_set <= train_set and not (val_set & fit_set)
    assert not val_set & {tuple(p) for p in test.positions}
    # no remaining training window contains a validation centre (no leak into selection)
    half = WINDOW // 2
    for r, c in fit.positions:
        inside = [(vr, vc) for vr, vc in val.positions
                  if r - half <= vr < r - half + WINDOW and c - half <= vc < c - half + WINDOW]
        assert not inside
    # a compact block: its bounding box is not much larger than the block itself
    span = val.positions.max(0) - val.positions.min(0) + 1
    assert span.prod() <= 2 * len(val)


def test_explicit_or_no_validation(split):
    train, test = split
    fit, val = carve_validation(train, 0.2)
    h = pw.train(im2spec(), fit, test, epochs=2, validation=val)
    assert h.n_val == len(val) and h.n_guard == 0
    h = pw.train(im2spec(), train, None, epochs=2, validation=None)
    assert h.val_loss == [None, None] and h.test_loss == [None, None]
    assert h.best_epoch == 2 and h.n_val == 0


def test_tiny_test_set_and_bad_training_sets(split, pairs):
    train, test = split
    h = pw.train(im2spec(), train, test.subset([0, 1, 2]), epochs=1, batch_size=64)
    assert math.isfinite(h.test_loss[0])
    with pytest.raises(ValueError, match="training set is empty"):
        pw.train(im2spec(), train.subset([]), test)
    with pytest.raises(ValueError, match="at least 2 training samples"):
        pw.train(im2spec(), train.subset([0]), test, validation=None)
    with pytest.raises(ValueError, match="8x8 tiles but the model expects window=12"):
        pw.train(pw.Im2Spec(window=12, n_energy=E, **SMALL), train, test)
    with pytest.raises(ValueError, match="n_energy=30"):
        pw.train(pw.Im2Spec(window=WINDOW, n_energy=30, **SMALL), train, test)
    with pytest.raises(TypeError, match="TilePairs"):
        pw.train(im2spec(), np.zeros((10, 8, 8)), test)
    with pytest.raises(ValueError, match="epochs"):
        pw.train(im2spec(), train, test, epochs=0)


def test_nan_loss_fails_cleanly_and_keeps_good_weights(split):
    train, test = split
    model = im2spec()
    calls = {"n": 0, "limit": 10**9}

    def poisoned(pred, target):
        loss = torch.nn.functional.mse_loss(pred, target)
        if torch.is_grad_enabled():  # training batches (evaluation runs without grad)
            calls["n"] += 1
            if calls["n"] > calls["limit"]:
                return loss * float("nan")
        return loss

    trainer = Trainer(model, train, test, epochs=4, batch_size=32, loss=poisoned)
    calls["limit"] = trainer.n_batches + 1  # the 2nd batch of epoch 2 turns NaN
    trainer.run()
    assert trainer.state == "failed"
    assert "nan" in trainer.error.lower() and "epoch 2" in trainer.error
    events = trainer.poll()
    assert events[-1].kind == "failed" and "nan" in events[-1].message.lower()
    assert len(trainer.history) == 1
    assert np.all(np.isfinite(model.predict(test.images[:4])))
    with pytest.raises(RuntimeError, match="new Trainer"):
        trainer.resume()

    calls["n"] = 0
    with pytest.raises(TrainingError, match="nan") as info:
        pw.train(im2spec(), train, test, epochs=4, batch_size=32, loss=poisoned)
    assert len(info.value.history) == 1


def test_swappable_loss_and_optimizer(split):
    train, test = split
    base = pw.train(im2spec(), train, test, epochs=2).train_loss
    l1 = pw.train(im2spec(), train, test, epochs=2, loss=torch.nn.L1Loss()).train_loss
    sgd = pw.train(im2spec(), train, test, epochs=2, optimizer=torch.optim.SGD).train_loss
    fac = pw.train(im2spec(), train, test, epochs=2,
                   optimizer=lambda p: torch.optim.AdamW(p, lr=3e-3)).train_loss
    assert len({tuple(base), tuple(l1), tuple(sgd), tuple(fac)}) == 4
    model = im2spec()
    with pytest.raises(TypeError, match="private copy"):
        pw.train(model, train, test, optimizer=torch.optim.Adam(model.parameters()))


def test_trainer_stop_resume_matches_uninterrupted_run(split):
    train, test = split
    reference = pw.train(im2spec(), train, test, epochs=3, batch_size=16).train_loss

    model = im2spec()
    trainer = Trainer(model, train, test, epochs=3, batch_size=16, event_interval_s=0.0)

    def stop_mid_epoch_2(event: ProgressEvent):
        if event.kind == "batch" and event.epoch == 2 and event.batch == 3:
            trainer.stop()

    unsubscribe = trainer.subscribe(stop_mid_epoch_2)
    assert trainer.state == "idle"
    trainer.start()
    assert trainer.join(60)
    assert trainer.state == "stopped" and trainer.epoch == 1
    events = trainer.poll()
    kinds = [e.kind for e in events]
    assert kinds.count("epoch") == 1 and kinds[-1] == "stopped"
    assert all(isinstance(e, ProgressEvent) and e.n_epochs == 3 for e in events)
    batch = [e for e in events if e.kind == "batch"]
    assert batch and all(e.train_loss is not None and e.eta_s is not None for e in batch)
    assert np.all(np.isfinite(model.predict(test.images[:3])))

    unsubscribe()
    trainer.resume()
    assert trainer.join(60) and trainer.state == "finished"
    assert trainer.history.train_loss == reference  # same optimizer state and batch order
    rest = trainer.poll()
    assert [e.epoch for e in rest if e.kind == "epoch"] == [2, 3]
    assert rest[-1].kind == "finished" and trainer.poll() == []
    with pytest.raises(RuntimeError, match="finished"):
        trainer.start()
    trainer.resume(epochs=4)  # a finished run can be extended
    assert trainer.join(60) and len(trainer.history) == 4


def test_model_stays_consistent_while_training_in_background(split):
    train, test = split
    model = im2spec()
    z = np.zeros((4, SMALL["latent_dim"]))
    trainer = Trainer(model, train, test, epochs=4, batch_size=16).start()
    outputs, modes = [], []
    while trainer.state in ("running", "stopping"):
        with model.lock:
            modes.append(model.training)
        outputs.append(model.decode(z))
    assert trainer.join(60) and trainer.state == "finished"
    assert outputs and not any(modes)
    assert all(np.all(np.isfinite(o)) for o in outputs)
    # decoding the same latent changed as epochs were published
    assert not np.array_equal(outputs[0], model.decode(z))


def test_callbacks_and_patience(split):
    train, test = split
    seen = []
    h = pw.train(im2spec(), train, test, epochs=30, lr=1e-2, patience=1, validation=0.2,
                 callbacks=[seen.append])
    assert len(h) < 30 and "early stopping" in h.stop_reason
    assert h.best_epoch == len(h) - 1  # stopped one epoch after the last improvement
    epochs = [e.epoch for e in seen if e.kind == "epoch"]
    assert epochs == list(range(1, len(h) + 1))
    assert seen[-1].kind == "finished"


def test_nmse_percent():
    true = np.array([[1.0, 2.0, 2.0], [0.0, 3.0, 4.0]])
    pred = np.array([[1.0, 2.0, 3.0], [0.0, 3.0, 4.0]])
    np.testing.assert_allclose(nmse_percent(pred, true), [100 / 9, 0.0])
    assert nmse_percent(pred, true, axis=None) == pytest.approx(100 / 34)
    img = np.ones((2, 4, 4))
    np.testing.assert_allclose(nmse_percent(img * 1.1, img, axis=(-2, -1)), [1.0, 1.0])
    with pytest.raises(ValueError, match="same shape"):
        nmse_percent(pred, true[:1])


def test_cosine_schedule_decays_to_zero_and_constant_keeps_lr(split):
    train, test = split
    lrs = {}
    for schedule in ("cosine", "constant"):
        trainer = Trainer(im2spec(), train, test, epochs=4, lr=1e-3, lr_schedule=schedule)
        trainer.run()
        lrs[schedule] = trainer._opt.param_groups[0]["lr"]
    last_step = (4 * trainer.n_batches - 1) / (4 * trainer.n_batches)  # of the last batch
    assert lrs["cosine"] == pytest.approx(0.5e-3 * (1 + math.cos(math.pi * last_step)))
    assert lrs["cosine"] < 0.5e-3 and lrs["constant"] == 1e-3
    with pytest.raises(ValueError, match="lr_schedule must be 'cosine' or 'constant'"):
        Trainer(im2spec(), train, test, lr_schedule="step")


def test_dihedral_symmetries_fix_the_probe_and_form_a_group():
    from plasmonwidgets.nn.symmetry import dihedral_about_probe, rotation_average

    for w in (16, 15):
        t = torch.arange(2 * w * w, dtype=torch.float32).reshape(2, w, w)
        images = [dihedral_about_probe(t, r % 4, r >= 4) for r in range(8)]
        keys = {tuple(im.flatten().tolist()) for im in images}
        assert len(keys) == 8  # eight distinct transforms
        for im in images:  # each keeps the probe pixel and the multiset of values
            assert im[:, w // 2, w // 2].tolist() == t[:, w // 2, w // 2].tolist()
            assert torch.equal(im.flatten(1).sort().values, t.flatten(1).sort().values)
        # four quarter turns are the identity; the average is invariant under a turn
        turned = t
        for _ in range(4):
            turned = dihedral_about_probe(turned, 1, False)
        assert torch.equal(turned, t)
        avg = rotation_average(t)
        assert torch.allclose(dihedral_about_probe(avg, 1, False), avg)


def test_augment_option(split):
    train, test = split
    assert Trainer(im2spec(), train, test).augment == "dihedral"
    assert Trainer(im2spec(), train, test, augment=None).augment is None
    spec = pw.Spec2Im(n_energy=E, window=WINDOW, device="cpu", pool=4, **SMALL)
    assert Trainer(spec, train, test).augment is None
    with pytest.raises(ValueError, match="needs an Im2Spec"):
        Trainer(spec, train, test, augment="dihedral")
    with pytest.raises(ValueError, match="augment must be"):
        Trainer(im2spec(), train, test, augment="flip")


def test_patience_without_validation_is_refused(split):
    train, test = split
    with pytest.raises(ValueError, match=r"patience \(early stopping\) needs a validation set"):
        Trainer(im2spec(), train, test, epochs=5, patience=2)


def test_train_shows_a_progress_bar_with_epoch_loss_and_test_nmse(split, capsys):
    train, test = split
    pw.train(im2spec(), train, test, epochs=2, batch_size=32)
    bar = capsys.readouterr().err
    assert "im2spec 3 latent" in bar and "2/2" in bar
    assert "loss=" in bar and "test NMSE=" in bar and "%" in bar
    pw.train(im2spec(), train, test, epochs=2, batch_size=32, progress=False)
    assert capsys.readouterr().err == ""


def test_history_test_nmse_is_the_mean_per_sample_nmse_of_the_final_model(split):
    train, test = split
    model = im2spec()
    h = pw.train(model, train, test, epochs=2, batch_size=32, precision="float32",
                 progress=False)
    assert len(h.test_nmse) == 2 and all(v is not None and v > 0 for v in h.test_nmse)
    expected = nmse_percent(model.predict(test.images), test.spectra).mean()
    assert h.test_nmse[-1] == pytest.approx(expected, rel=1e-4)
    h = pw.train(im2spec(), train, None, epochs=1, batch_size=32, progress=False)
    assert h.test_nmse == [None]
