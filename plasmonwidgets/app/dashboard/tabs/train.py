"""Train tab: train im2spec or spec2im (2 or 10 latent) with live progress.

Each (direction, latent) has its own :class:`~plasmonwidgets.widgets.TrainingProgress`;
Start trains a freshly built model in the Trainer's thread. A run that ends (finished or
stopped) is kept beside the model in use (:meth:`DashboardState.add_trained`): "Use this
model" puts it in every tab, "Revert to pre-trained" brings the packaged model back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as ipw

from plasmonwidgets import pretrained
from plasmonwidgets.widgets._message import message_html

from ..settings import model_label
from ..ui import intro

__all__ = ["TrainTab"]


class TrainTab:
    """The Train tab (a part of :class:`Dashboard`).

    Examples
    --------
    >>> from plasmonwidgets.app.dashboard import Dashboard
    >>> dash = Dashboard(epochs=5)                   # doctest: +SKIP
    >>> progress = dash.trainers[("im2spec", 2)]     # doctest: +SKIP
    >>> progress.start(); progress.wait(120)         # doctest: +SKIP
    True
    >>> dash.use_trained(("im2spec", 2))             # doctest: +SKIP
    """

    def _build_train(self) -> list[ipw.Widget]:
        self.train_direction = ipw.ToggleButtons(options=list(pretrained.DIRECTIONS),
                                                 description="model")
        self.train_latent = ipw.ToggleButtons(
            options=[(str(k), k) for k in pretrained.LATENT_DIMS], description="latent dims",
            style={"button_width": "60px"},
        )
        self.epochs = ipw.BoundedIntText(value=self.default_epochs, min=1, max=1000,
                                         description="epochs", layout={"width": "160px"})
        self.train_box = ipw.VBox()
        self.train_note = ipw.HTML()
        self.train_note.add_class("pw-train-note")
        self.use_button = ipw.Button(description="Use this model", icon="check",
                                     layout={"width": "160px"})
        self.use_button.on_click(self.guard(
            lambda _b: self.use_trained(self._train_key()), "using the trained model"))
        self.revert_button = ipw.Button(description="Revert to pre-trained", icon="undo",
                                        layout={"width": "190px"})
        self.revert_button.on_click(self.guard(
            lambda _b: self.revert_to_pretrained(self._train_key()), "reverting to pre-trained"))
        for control in (self.train_direction, self.train_latent):
            control.observe(self.guard(lambda _c: self._show_trainer(), "choosing a model"), "value")
        self.epochs.observe(self.guard(self._on_epochs, "setting epochs"), "value")
        self._show_trainer()
        return [
            intro(
                f"Train a fresh network on the {len(self.train_set)} training tiles (one half "
                f"of the scan) and monitor the loss on the {len(self.test_set)} test tiles of the "
                "other half. A run trains beside the model in use: when it finishes (or is "
                "stopped), <b>Use this model</b> puts it in every tab and <b>Revert to "
                "pre-trained</b> brings the packaged model back. The loss is each tile's "
                "squared error relative to its signal, in % (NMSE, as in the other tabs)."
            ),
            ipw.HBox([self.train_direction, self.train_latent, self.epochs]),
            self.train_note,
            ipw.HBox([self.use_button, self.revert_button]),
            self.train_box,
        ]

    def _train_key(self) -> tuple[str, int]:
        return (self.train_direction.value, int(self.train_latent.value))

    def _trainer_factory(self, key: tuple[str, int]) -> Callable[[], Any]:
        """Builds a trainer of a freshly initialised model: every Start trains anew (Resume
        continues the same run); the model in use is replaced only when the run ends."""
        from plasmonwidgets.training import Trainer

        def factory() -> Any:
            return Trainer(self._new_model(key), self.train_set, self.test_set,
                           epochs=int(self.epochs.value), batch_size=64, seed=0)

        return factory

    def _new_model(self, key: tuple[str, int]) -> Any:
        from plasmonwidgets.models import model_class

        kwargs = pretrained.architecture(key[0], key[1], self.si.n_energy, window=self.pairs.window)
        return model_class(key[0])(**kwargs, energy=self.si.energy, device="cpu")

    def _show_trainer(self) -> None:
        from plasmonwidgets.widgets.training_progress import TrainingProgress

        key = self._train_key()
        progress = self.trainers.get(key)
        if progress is None:
            factory = self._trainer_factory(key)
            progress = TrainingProgress(trainer_factory=factory)  # shows factory errors itself
            progress.add_class("pw-training-progress")

            def finished(trained: Any, key: tuple[str, int] = key, progress=progress) -> None:
                epochs = len(progress.trainer.history.train_loss)
                if epochs == 0:  # stopped inside the first epoch: nothing learned yet
                    if key == self._train_key():
                        self._show_train_note("Stopped before the first epoch ended: nothing to use.")
                    return
                self.add_trained(key, trained, epochs=epochs)
                if key == self._train_key():
                    self._show_train_note()

            progress.on_finished(self.guard(finished, "using the trained model"))
            self.trainers[key] = progress
        self._show_train_note()
        self.train_box.children = (progress,)

    def _show_train_note(self, first: str = "") -> None:
        """Which model is in use for the chosen key, the last run here, and the buttons
        (``first``: a sentence put before)."""
        key = self._train_key()
        label = model_label(key)
        text = (f"In use: {label}, {self.model_in_use(key)}." if key in self.models
                else f"No {label} model in use yet.")
        text = f"{first} {text}" if first else text
        run = self.trained_runs.get(key)
        using_run = run is not None and self.models.get(key) is run[0]
        if run is not None and not using_run:
            text += f" Last run here ({run[1]}) is not in use."
        self.train_note.value = message_html(text, "info")
        self.use_button.disabled = run is None or using_run
        # a disabled green button reads as active: colour it only when it can be pressed
        self.use_button.button_style = "" if self.use_button.disabled else "success"
        self.revert_button.disabled = not self.can_revert(key)

    def _on_epochs(self, change: dict) -> None:
        """A new epoch count applies to the next run: rebuild trainers that have not started
        (assigning ``progress.trainer`` re-subscribes the panel to the new one)."""
        for progress in self.trainers.values():
            trainer = progress.trainer
            if (trainer is None or trainer.state == "idle") and progress.trainer_factory is not None:
                progress.trainer = progress.trainer_factory()
                progress.refresh()
