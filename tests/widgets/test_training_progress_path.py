"""TrainingProgress gets progress by one path (the trainer's subscribers) and draws no NaN.

A real Trainer on a tiny synthetic scan (tiles (N, 8, 8), spectra (N, 16)) with a narrow
Im2Spec, so each run takes a second or two on one CPU core.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

import plasmonwidgets as pw
from plasmonwidgets.training import EventQueue, Trainer
from plasmonwidgets.widgets.training_progress import TrainingProgress

WINDOW, N_ENERGY = 8, 16


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def split():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:20, 0:20].astype(float)
    frac = np.exp(-((yy - 9) ** 2 + (xx - 11) ** 2) / 20.0)
    e = np.linspace(0.5, 2.0, N_ENERGY)
    spectra = frac[..., None] / (1 + ((e - 1.0) / 0.1) ** 2) + 0.2
    haadf = 100 + 900 * frac + rng.normal(0, 5, frac.shape)
    si = pw.SpectrumImage(spectra.astype(np.float32), e, haadf.astype(np.float32))
    return pw.make_tiles(si, window=WINDOW, pad="reflect").split("halves")


def small_model():
    return pw.Im2Spec(window=WINDOW, n_energy=N_ENERGY, latent_dim=2, n_filters_enc=4,
                      n_filters_dec=4, device="cpu")


def marks_state(progress: TrainingProgress) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(label, x, y) of every mark of the loss figure, decoded from the state sent to the
    browser (the serialized arrays, not the Python-side values)."""
    out = []
    for mark in progress.loss_figure.marks:
        state = mark.get_state(["x", "y"])
        x, y = (np.frombuffer(state[k]["value"], dtype=state[k]["dtype"]).reshape(state[k]["shape"])
                for k in ("x", "y"))
        out.append((mark.labels[0], x, y))
    return out


def test_the_trainer_delivers_by_subscribers_only_and_poll_is_one_of_them(split):
    train, test = split
    seen: list[str] = []
    trainer = Trainer(small_model(), train, test, epochs=2, batch_size=16,
                      callbacks=[lambda event: seen.append(threading.current_thread().name)])
    queue = EventQueue()
    trainer.subscribe(queue)
    trainer.start().join(60)
    polled, queued = trainer.poll(), queue.poll()
    assert [e.kind for e in polled] == [e.kind for e in queued] and polled[-1].kind == "finished"
    assert len(seen) == len(polled) and set(seen) == {"plasmonwidgets-trainer"}
    assert trainer.poll() == []  # drained


def test_the_widget_runs_no_thread_of_its_own(split):
    train, test = split
    before = {t.ident for t in threading.enumerate()}
    progress = TrainingProgress(model=small_model(), train=train, test=test, epochs=3,
                                batch_size=16, poll_interval=0.05)
    progress.start()
    assert progress.wait(60) and progress.state == "finished"
    progress.close()
    progress.trainer.join(10)
    extra = [t.name for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    assert extra == []
    assert len(progress.train_line.y) == 3


def test_stopped_early_no_mark_gets_nan_and_x_matches_y(split):
    train, test = split
    progress = TrainingProgress(model=small_model(), train=train, test=test, epochs=500,
                                batch_size=8, poll_interval=0.01, event_interval_s=0.0,
                                test_every=3)
    stopped = threading.Event()

    def stop_in_epoch_4(event):
        if event.kind == "batch" and event.epoch == 4 and event.batch >= 2 and not stopped.is_set():
            stopped.set()
            progress.trainer.stop()

    progress.start()
    progress.trainer.subscribe(stop_in_epoch_4)
    assert progress.wait(60) and progress.state == "stopped"
    states = marks_state(progress)
    for label, x, y in states:
        assert x.shape == y.shape, f"{label}: x {x.shape} vs y {y.shape}"
        assert np.all(np.isfinite(x)) and np.all(np.isfinite(y)), label
        assert np.all(y > 0), f"{label}: a log axis gets a non-positive value"
    by_label = {label: (x, y) for label, x, y in states}
    assert len(by_label["train"][0]) == 3 and len(by_label["train (batch)"][0]) > 3
    # tested every third epoch: one test point, at epoch 3, and no gaps sent as NaN
    np.testing.assert_array_equal(by_label["test"][0], [3.0])
    assert len(by_label["validation"][0]) == 0  # no validation set: no points


def test_legend_lists_validation_only_with_a_validation_curve(split):
    train, test = split
    plain = TrainingProgress(model=small_model(), train=train, test=test, epochs=2,
                             batch_size=16, poll_interval=0.05)
    assert not any(line.display_legend for line in plain.loss_figure.marks)  # nothing drawn yet
    plain.start()
    assert plain.wait(60)
    assert not plain.val_line.display_legend
    assert plain.train_line.display_legend and plain.test_line.display_legend
    validated = TrainingProgress(model=small_model(), train=train, test=test, epochs=2,
                                 batch_size=16, poll_interval=0.05, validation=0.2)
    validated.start()
    assert validated.wait(60)
    assert validated.val_line.display_legend and len(validated.val_line.y) == 2


def test_loss_and_errors_read_in_percent(split):
    train, test = split
    progress = TrainingProgress(model=small_model(), train=train, test=test, epochs=2,
                                batch_size=16, poll_interval=0.05)
    progress.start()
    assert progress.wait(60)
    history = progress.trainer.history
    assert progress._loss_axis.label == "loss: NMSE (%)"
    np.testing.assert_allclose(progress.train_line.y, 100 * np.asarray(history.train_loss),
                               rtol=1e-6)
    assert f"{100 * history.train_loss[-1]:.3g} %" in progress.summary.value
    assert f"test NMSE {history.test_nmse[-1]:.3g} %" in progress.status.value
    # another loss has no percent reading: shown as it is, named by the trainer
    mse = TrainingProgress(model=small_model(), train=train, test=test, epochs=1,
                           batch_size=16, poll_interval=0.05, loss="mse")
    mse.start()
    assert mse.wait(60)
    assert mse._loss_axis.label == "MSE"
    np.testing.assert_allclose(mse.train_line.y, mse.trainer.history.train_loss, rtol=1e-6)


def test_a_trainer_attached_after_its_run_shows_the_epochs_it_ran(split):
    train, test = split
    trainer = Trainer(small_model(), train, test, epochs=2, batch_size=16)
    trainer.run()
    progress = TrainingProgress(trainer)
    assert len(progress.train_line.x) == 2 and len(progress.test_line.x) == 2
    progress.close()
