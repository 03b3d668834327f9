"""TrainingProgress: a live panel for a background :class:`plasmonwidgets.Trainer`.

Threads. The widget has no thread of its own. It subscribes to its trainer
(``Trainer.subscribe``, the trainer's one delivery path), so each progress event
arrives on the training thread; the widget folds it into its curves under one lock
and redraws at most every ``poll_interval`` seconds (0.25 s by default) inside
``hold_sync``, plus once when the run ends. The browser therefore receives a few
updates per second however fast the batches are, and the notebook stays free while
training runs. :meth:`TrainingProgress.wait` waits for the end-of-run redraw.

Display. Every error is shown as the rest of the dashboard shows it: the default
(relative) loss is each tile's squared error relative to its signal, plotted x100 as
NMSE in %. A curve only gets points where its value is finite and positive (a log axis),
with x and y of equal length, so the plot never receives NaN; its legend entry shows
only once the curve has points.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable
from typing import Any

import bqplot as bq
import ipywidgets as ipw
import numpy as np
import traitlets as t

from ._message import message_html

__all__ = ["TrainingProgress", "link_training"]

_ACTIVE = ("running", "stopping")
_ENDS = ("finished", "stopped", "failed")
_MAX_BATCH_POINTS = 2000  # the per-batch loss curve is decimated beyond this


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None or not np.isfinite(seconds):
        return "–"
    seconds = int(round(seconds))
    minutes, sec = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}" if hours else f"{minutes}:{sec:02d}"


def _points(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
    """The (x, y) points of a curve on a log axis: only those with finite x and finite,
    positive y, as float64 arrays of equal length (empty when none)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    keep = np.isfinite(x) & np.isfinite(y) & (y > 0)
    return x[keep], y[keep]


def _distinct_format(ticks: np.ndarray) -> str:
    """The shortest d3 ``.N~g`` format under which every tick label differs."""
    for digits in range(1, 7):
        labels = [f"{v:.{digits}g}" for v in ticks]
        if len(set(labels)) == len(labels):
            return f".{digits}~g"
    return ".7~g"


def _log_ticks(lo: float, hi: float) -> np.ndarray:
    """Tick values for a log axis over [lo, hi] (both > 0): decades, 1-2-5 steps, or
    round linear steps when the range spans less than a decade (d3's own log ticks
    then repeat labels such as 0.31, 0.31, 0.32 under a fixed precision)."""
    decades = np.log10(hi / lo)
    if decades >= 1:
        mantissas = (1.0,) if decades > 3 else (1.0, 2.0, 5.0)
        k0, k1 = int(np.floor(np.log10(lo))), int(np.ceil(np.log10(hi)))
        every = max(1, int(np.ceil((k1 - k0) / 6)))  # at most ~6 decade labels
        ticks = np.array([m * 10.0**k for k in range(k0, k1 + 1, every) for m in mantissas])
        ticks = ticks[(ticks >= lo) & (ticks <= hi)]
        if ticks.size >= 2:
            return ticks
    raw = (hi - lo) / 5
    magnitude = 10.0 ** np.floor(np.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw * (1 - 1e-9))
    ticks = np.arange(np.ceil(lo / step - 1e-9), np.floor(hi / step + 1e-9) + 1) * step
    return ticks[ticks > 0]


class TrainingProgress(ipw.VBox):
    """Progress bar, live loss curves, Start/Stop/Resume and a summary for a Trainer.

    Parameters
    ----------
    trainer : plasmonwidgets.Trainer, optional
        An existing trainer (any state; the epochs it already ran are drawn). Either this
        (and/or ``trainer_factory``) or ``model``/``train``/``test``.
    model, train, test : Im2Spec/Spec2Im and TilePairs, optional
        Build the trainer here: ``Trainer(model, train, test, epochs=epochs,
        **trainer_kwargs)``. Start after a finished run then trains anew.
    epochs : epochs for a trainer built here.
    trainer_factory : callable() -> Trainer, optional
        Makes a fresh trainer when Start is pressed after a run ended
        (finished, stopped or failed). Built automatically from ``model``/``train``/``test``.
    poll_interval : seconds, at least this long between widget updates while training.
    **trainer_kwargs : passed to ``Trainer`` (batch_size, lr, seed, ...).

    Attributes
    ----------
    trainer : the Trainer shown (assigning another one re-subscribes the widget)
    start_button, stop_button, resume_button : Buttons
    progress : IntProgress, batches done out of ``epochs * batches per epoch``
    status : HTML, epoch/batch, elapsed, ETA, samples/s, loss
    loss_figure : bqplot Figure with ``train_line``/``val_line``/``test_line`` (per
        epoch) and ``batch_line`` (per batch), log-scaled loss axis (NMSE in % for the
        default relative loss)
    message : HTML, errors in red
    summary : HTML, final metrics
    model_version : Int trait, incremented whenever a run ends with new weights
        (finished or stopped); observe it, or use :meth:`on_finished`.
    state : Unicode trait mirroring ``trainer.state``
    children_by_name : "start", "stop", "resume", "progress", "status", "loss",
        "message", "summary"

    Examples
    --------
    >>> import numpy as np, plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))        # 12x12 scan, E = 32
    >>> train, test = pw.make_tiles(si, window=8, pad="reflect").split("halves")
    >>> model = pw.Im2Spec(window=8, n_energy=32, latent_dim=2, device="cpu")
    >>> panel = TrainingProgress(model=model, train=train, test=test, epochs=2)
    >>> panel.start()                                                  # display(panel) to watch
    >>> panel.wait(120)
    True
    >>> panel.state, len(panel.train_line.y)                           # one point per epoch
    ('finished', 2)
    """

    model_version = t.Int(0)
    state = t.Unicode("idle")

    def __init__(
        self,
        trainer: Any = None,
        *,
        model: Any = None,
        train: Any = None,
        test: Any = None,
        epochs: int = 60,
        trainer_factory: Callable[[], Any] | None = None,
        poll_interval: float = 0.25,
        **trainer_kwargs: Any,
    ):
        super().__init__()
        if trainer is None and trainer_factory is None:
            if model is None or train is None:
                raise ValueError(
                    "pass a Trainer, a trainer_factory, or model= and train= (and test=) "
                    "TilePairs so TrainingProgress can build one"
                )
            from ..training import Trainer

            def trainer_factory():
                return Trainer(model, train, test, epochs=epochs, **trainer_kwargs)

        elif model is not None or train is not None or test is not None:
            raise ValueError("pass either trainer/trainer_factory or model/train/test, not both")
        if not float(poll_interval) > 0:
            raise ValueError(f"poll_interval must be > 0 seconds, got {poll_interval}")
        self.trainer_factory = trainer_factory
        self.poll_interval = float(poll_interval)
        self._callbacks: list[Callable[[Any], None]] = []
        # the curves and the widgets are written by the training thread (events) and the
        # kernel's thread (buttons, refresh): one lock for both; re-entrant for refresh()
        self._lock = threading.RLock()
        self._done = threading.Event()  # set while no run is waiting for its final redraw
        self._done.set()
        self._trainer: Any = None
        self._unsubscribe: Callable[[], None] | None = None

        self.start_button = ipw.Button(description="Start", icon="play", button_style="success")
        self.stop_button = ipw.Button(description="Stop", icon="stop", button_style="warning")
        self.resume_button = ipw.Button(description="Resume", icon="forward")
        self.progress = ipw.IntProgress(value=0, min=0, max=1, description="epoch 0",
                                        layout={"width": "420px"},
                                        style={"description_width": "90px"})
        self.status = ipw.HTML()
        self.message = ipw.HTML()
        self.summary = ipw.HTML()
        self._build_loss_figure()
        self.start_button.on_click(lambda _: self.start())
        self.stop_button.on_click(lambda _: self.stop())
        self.resume_button.on_click(lambda _: self.resume())
        self.children = [
            ipw.HBox([self.start_button, self.stop_button, self.resume_button]),
            ipw.HBox([self.progress, self.status]),
            self.loss_figure,
            self.message,
            self.summary,
        ]
        self._reset_run_state()
        if trainer is not None:
            self.trainer = trainer
        else:
            self._new_trainer()
        self._refresh_buttons()

    # -- public API -----------------------------------------------------------------
    @property
    def trainer(self) -> Any:
        """The Trainer shown (None while none could be built); assigning one subscribes
        the widget to it and draws the epochs it already ran."""
        return self._trainer

    @trainer.setter
    def trainer(self, trainer: Any) -> None:
        with self._lock:
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None
            self._trainer = trainer
            self._reset_run_state()
            if trainer is None:
                return
            self._loss_axis.label = self._loss_label()
            self._factor = 100.0 if getattr(trainer, "loss_is_nmse", False) else 1.0
            self._from_history(trainer.history)
            # bind the trainer: an event still in flight from a replaced one is ignored
            self._unsubscribe = trainer.subscribe(lambda event: self._on_event(trainer, event))
            if trainer.state in _ACTIVE:
                self._done.clear()
            self._draw()

    def start(self) -> None:
        """Start training (a fresh trainer from the factory if the last run ended)."""
        state = self.trainer_state
        if state in _ACTIVE:
            return
        if self.trainer is None or state != "idle":
            if self.trainer_factory is None:
                self._show_error(
                    f"this trainer already ran (state {state!r}); press Resume to continue a "
                    "stopped run, or pass trainer_factory= / model, train, test to start anew"
                )
                return
            if not self._new_trainer():
                return
        self._launch(self.trainer.start)

    @property
    def trainer_state(self) -> str:
        """The trainer's state ("idle" while no trainer could be built)."""
        return "idle" if self.trainer is None else self.trainer.state

    def stop(self) -> None:
        """Ask the trainer to stop after the current batch (returns at once)."""
        if self.trainer_state == "running":
            self.trainer.stop()
        self._refresh_buttons()

    def resume(self) -> None:
        """Continue a stopped run where it left off."""
        if self.trainer_state != "stopped":
            self._show_error(
                f"only a stopped run can be resumed; the trainer is {self.trainer_state!r}"
            )
            return
        self._launch(self.trainer.resume)

    def on_finished(self, callback: Callable[[Any], None], remove: bool = False) -> None:
        """Call ``callback(model)`` whenever a run ends with new weights (finished or
        stopped). Runs on the training thread, after the widget shows the run's end."""
        if remove:
            self._callbacks.remove(callback)
        else:
            self._callbacks.append(callback)

    def refresh(self) -> None:
        """Redraw the curves, labels and buttons now from the events received so far
        (while training they are redrawn every ``poll_interval`` seconds anyway)."""
        with self._lock:
            self._draw()
        self._refresh_buttons()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the current run has ended and the widget shows its final state
        (summary, errors, ``model_version``). Returns False on timeout (s)."""
        return self._done.wait(timeout)

    def close(self) -> None:
        """Stop a running trainer, stop listening to it, and close the widgets."""
        if self.trainer_state == "running":
            self.trainer.stop()
        with self._lock:
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None
        self._done.set()  # nothing more will be shown: never leave wait() hanging
        super().close()

    # -- construction ---------------------------------------------------------------
    @property
    def children_by_name(self) -> dict[str, ipw.Widget]:
        """The named children, for driving the widget without a browser."""
        return {"start": self.start_button, "stop": self.stop_button,
                "resume": self.resume_button, "progress": self.progress, "status": self.status,
                "loss": self.loss_figure, "message": self.message, "summary": self.summary}

    def _build_loss_figure(self) -> None:
        sx, sy = bq.LinearScale(min=0.0), bq.LogScale()
        self.batch_line = bq.Lines(scales={"x": sx, "y": sy}, colors=["#9ecae1"],
                                   stroke_width=1, labels=["train (batch)"])
        self.train_line = bq.Lines(scales={"x": sx, "y": sy}, colors=["#1f77b4"], marker="circle",
                                   marker_size=16, stroke_width=2, labels=["train"])
        self.val_line = bq.Lines(scales={"x": sx, "y": sy}, colors=["#2ca02c"], marker="circle",
                                 marker_size=16, stroke_width=2, labels=["validation"])
        self.test_line = bq.Lines(scales={"x": sx, "y": sy}, colors=["#ff7f0e"], marker="circle",
                                  marker_size=16, stroke_width=2, labels=["test"])
        self._lines = (self.batch_line, self.train_line, self.val_line, self.test_line)
        for line in self._lines:
            line.display_legend = False  # a curve enters the legend with its first point
        self._loss_scale = sy
        self._factor = 1.0  # loss -> displayed value (100: the relative loss in %)
        self._loss_axis = bq.Axis(scale=sy, label="loss", orientation="vertical",
                                  tick_format=".2~g", label_offset="55px")
        self.loss_figure = bq.Figure(
            marks=list(self._lines),
            axes=[bq.Axis(scale=sx, label="epoch", label_offset="32px"), self._loss_axis],
            legend_location="top-right",
            fig_margin={"top": 20, "bottom": 45, "left": 70, "right": 20},
            layout={"width": "560px", "height": "300px"},
        )

    def _reset_run_state(self) -> None:
        with self._lock:
            self._epochs: list[int] = []
            self._train_loss: list[float] = []
            self._val_loss: list[float] = []
            self._test_loss: list[float] = []
            self._batch_x: list[float] = []
            self._batch_loss: list[float] = []
            self._last_event: Any = None
            self._progress_event: Any = None  # the latest "batch" or "epoch" event
            self._test_nmse: float | None = None  # latest mean per-tile test NMSE, %
            self._rate = 0.0  # latest training throughput, samples/s
            self._last_draw = 0.0
            self._notified = False
            with self.loss_figure.hold_sync():
                for line in self._lines:
                    line.x, line.y = np.zeros(0), np.zeros(0)
                    line.display_legend = False
            self.progress.value = 0
            self.progress.bar_style = ""
            self.message.value = ""
            self.summary.value = ""
            self.status.value = "ready"

    def _from_history(self, history: Any) -> None:
        """Fold the epochs a trainer already ran (attached after it started) into the curves."""
        self._epochs = list(range(1, len(history.train_loss) + 1))
        for values, logged in ((self._train_loss, history.train_loss),
                               (self._val_loss, history.val_loss),
                               (self._test_loss, history.test_loss)):
            values[:] = [np.nan if v is None else float(v) for v in logged]
        nmse = [v for v in history.test_nmse if v is not None]
        self._test_nmse = nmse[-1] if nmse else None

    # -- running ------------------------------------------------------------------------
    def _new_trainer(self) -> bool:
        """Build a trainer with the factory; on bad data/config show why and return False."""
        try:
            trainer = self.trainer_factory()
        except Exception as exc:
            self.trainer = None
            self._show_error(f"could not set up training: {exc}")
            self._refresh_buttons()
            return False
        self.trainer = trainer
        return True

    def _loss_label(self) -> str:
        """Axis label naming the trainer's loss, e.g. "loss: NMSE (%)"."""
        if getattr(self.trainer, "loss_is_nmse", False):
            return "loss: NMSE (%)"
        return getattr(self.trainer, "loss_name", "training loss")

    def _launch(self, action: Callable[[], None]) -> None:
        self.message.value = ""
        self._done.clear()
        try:
            action()
        except Exception as exc:  # bad data / configuration rejected before the thread starts
            self._done.set()
            self._show_error(str(exc) or type(exc).__name__)
            self._refresh_buttons()
            return
        self._refresh_buttons()

    def _on_event(self, trainer: Any, event: Any) -> None:
        """A progress event, on the training thread: fold it in, redraw when due, and
        finish the run on its last event. Never raises (that would fail the run)."""
        if trainer is not self._trainer:
            return
        ended = event.kind in _ENDS
        try:
            with self._lock:
                self._fold(event)
                now = time.monotonic()
                if ended or now - self._last_draw >= self.poll_interval:
                    self._last_draw = now
                    self._draw()
            if ended:
                self._finish(trainer)
        except Exception as exc:  # never die silently: show what went wrong
            self._show_error(f"progress display failed: {exc}")
        finally:
            if ended:
                self._done.set()

    def _finish(self, trainer: Any) -> None:
        """The run ended: final summary, errors, notify listeners of new weights."""
        state = trainer.state
        if state == "failed":
            self.progress.bar_style = "danger"
            self._show_error(trainer.error or "training failed (no message from the trainer)")
        elif state == "finished":
            self.progress.bar_style = "success"
        self._show_summary(trainer)
        self._refresh_buttons()
        if state in ("finished", "stopped") and not self._notified:
            self._notified = state == "finished"  # a stopped run may still be resumed
            self.model_version += 1
            for callback in list(self._callbacks):
                try:
                    callback(trainer.model)
                except Exception as exc:
                    self._show_error(f"on_finished callback {callback!r} failed: {exc}")

    def _fold(self, event: Any) -> None:
        """Add one progress event to the curves (no redraw)."""
        if event.kind == "batch" and event.train_loss is not None:
            self._batch_x.append(event.epoch - 1 + event.batch / max(event.n_batches, 1))
            self._batch_loss.append(float(event.train_loss))
            if len(self._batch_x) > _MAX_BATCH_POINTS:  # keep every other point: bounded payload
                self._batch_x, self._batch_loss = self._batch_x[::2], self._batch_loss[::2]
        elif event.kind == "epoch" and not (self._epochs and event.epoch <= self._epochs[-1]):
            self._epochs.append(event.epoch)
            for values, loss in ((self._train_loss, event.train_loss),
                                 (self._val_loss, getattr(event, "val_loss", None)),
                                 (self._test_loss, event.test_loss)):
                values.append(np.nan if loss is None else float(loss))
        if getattr(event, "test_nmse", None) is not None:
            self._test_nmse = float(event.test_nmse)
        if event.kind in ("batch", "epoch"):
            self._progress_event = event
        self._last_event = event

    def _draw(self) -> None:
        """Push the curves, the loss axis and the status to the widgets (one message each)."""
        epochs = np.asarray(self._epochs, dtype=np.float64)
        curves = ((self.batch_line, self._batch_x, self._batch_loss),
                  (self.train_line, epochs, self._train_loss),
                  (self.val_line, epochs, self._val_loss),
                  (self.test_line, epochs, self._test_loss))
        with self.loss_figure.hold_sync():
            for line, x, values in curves:
                x, y = _points(x, np.asarray(values, dtype=np.float64) * self._factor)
                with line.hold_sync():
                    line.x, line.y = x, y
                    line.display_legend = bool(len(x))
        self._update_loss_axis()
        if self._last_event is not None:
            self._show_progress(self._last_event)

    def _update_loss_axis(self) -> None:
        """Fix the loss range and its ticks so every tick label is distinct."""
        values = np.concatenate([np.asarray(line.y, dtype=np.float64).ravel()
                                 for line in self._lines])
        values = values[np.isfinite(values) & (values > 0)]
        if values.size == 0:
            return
        lo, hi = float(values.min()), float(values.max())
        pad = 10 ** (0.04 * max(np.log10(hi / lo), 0.1))  # a little room in log units
        lo, hi = lo / pad, hi * pad
        ticks = _log_ticks(lo, hi)
        with self._loss_scale.hold_sync():
            self._loss_scale.min, self._loss_scale.max = lo, hi
        with self._loss_axis.hold_sync():
            self._loss_axis.tick_values = ticks
            self._loss_axis.tick_format = _distinct_format(ticks)

    def _loss_text(self, value: float | None) -> str:
        """A loss as shown: "1.23 %" for the relative loss, else the number."""
        if value is None or not np.isfinite(value):
            return "–"
        return f"{value * 100:.3g} %" if self._factor == 100.0 else f"{value:.4g}"

    def _show_progress(self, last: Any) -> None:
        """Bar, its caption and the status line for the newest event ``last``."""
        # a run's end reports completed epochs only; the bar keeps the batches already
        # done (stopped inside an epoch, even the first one, must not drop to zero)
        shown = self._progress_event or last
        n_batches = max(int(shown.n_batches), 1)
        done = (shown.epoch - 1) * n_batches + (shown.batch if shown.kind == "batch"
                                                 else n_batches)
        if shown is not last:
            done = max(done, last.epoch * n_batches)
        with self.progress.hold_sync():
            self.progress.max = max(int(shown.n_epochs) * n_batches, 1)
            self.progress.value = int(np.clip(done, 0, self.progress.max))
            self.progress.description = f"epoch {max(shown.epoch, 1)}/{shown.n_epochs}"
        loss = "" if last.train_loss is None else f" · loss {self._loss_text(last.train_loss)}"
        if self._test_nmse is not None:
            loss += f" · test NMSE {self._test_nmse:.3g} %"
        if last.samples_per_s:
            self._rate = float(last.samples_per_s)
        if last.kind in ("batch", "epoch"):
            where = (f"epoch {last.epoch}/{last.n_epochs} · batch {last.batch}/"
                     f"{last.n_batches} · ETA {_fmt_seconds(last.eta_s)}")
        elif shown.kind == "batch":  # ended inside an epoch: say how far it got
            where = (f"{last.kind} after {last.epoch}/{last.n_epochs} epochs "
                     f"(epoch {shown.epoch} at batch {shown.batch}/{shown.n_batches})")
        else:  # finished / stopped / failed at an epoch boundary
            where = f"{last.kind} after {last.epoch}/{last.n_epochs} epochs"
        self.status.value = (
            f"<small>{where} · elapsed {_fmt_seconds(last.elapsed_s)} · "
            f"{self._rate:.0f} samples/s{loss}</small>"
        )

    def _show_summary(self, trainer: Any) -> None:
        history = trainer.history
        rows = [("state", trainer.state), ("epochs", f"{len(history.train_loss)}")]
        for label, values in (("validation", history.val_loss), ("test", history.test_loss)):
            losses = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
            losses[~(np.isfinite(losses) & (losses > 0))] = np.nan
            if np.isfinite(losses).any():
                best = int(np.nanargmin(losses))
                rows.append((f"best {label} loss",
                             f"{self._loss_text(losses[best])} (epoch {best + 1})"))
        nmse = [v for v in getattr(history, "test_nmse", []) if v is not None]
        if nmse:
            rows.append(("test NMSE (mean per tile)", f"{nmse[-1]:.3g} %"))
        if getattr(history, "best_epoch", None):
            rows.append(("weights kept", f"epoch {history.best_epoch}"))
        if history.train_loss:
            rows.append(("final train loss", self._loss_text(history.train_loss[-1])))
        if history.epoch_time:
            rows.append(("time", _fmt_seconds(float(np.sum(history.epoch_time)))))
        if history.samples_per_s:
            rows.append(("samples/s", f"{float(np.mean(history.samples_per_s)):.0f}"))
        cells = "".join(
            f"<tr><td>{k}</td><td><b>{html.escape(v)}</b></td></tr>" for k, v in rows
        )
        # line-height: the HTML widget's default (one widget row per line) spreads tables out
        self.summary.value = f"<table style='font-size:90%;line-height:1.4'>{cells}</table>"

    def _show_error(self, text: str) -> None:
        self.message.value = message_html(f"Training error: {text}")

    def _refresh_buttons(self) -> None:
        state = self.trainer_state
        self.state = state
        can_restart = state == "idle" or (state not in _ACTIVE and self.trainer_factory is not None)
        with self.start_button.hold_sync():
            self.start_button.disabled = not can_restart
        self.stop_button.disabled = state != "running"
        self.resume_button.disabled = state != "stopped"


def link_training(progress: TrainingProgress, explorer: Any) -> Callable[[Any], None]:
    """Make ``explorer`` (a LatentExplorer) pick up the weights whenever a run of
    ``progress`` ends. Returns the callback (pass it to ``on_finished(cb, remove=True)``
    to unlink).

    Examples
    --------
    >>> import numpy as np, plasmonwidgets as pw
    >>> from plasmonwidgets.widgets.latent_explorer import LatentExplorer
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))        # 12x12 scan, E = 32
    >>> pairs = pw.make_tiles(si, window=8, pad="reflect")
    >>> train, test = pairs.split("halves")
    >>> model = pw.Im2Spec(window=8, n_energy=32, latent_dim=2, device="cpu")
    >>> explorer = LatentExplorer(model, pairs, mode="sync")
    >>> progress = TrainingProgress(model=model, train=train, test=test, epochs=1)
    >>> callback = link_training(progress, explorer)    # each finished run re-indexes it
    >>> progress.start()
    >>> progress.wait(60)
    True
    >>> progress.on_finished(callback, remove=True)     # unlink
    """

    def pick_up(model: Any) -> None:
        explorer.set_model(model)

    progress.on_finished(pick_up)
    return pick_up
