"""Where the dashboard's state lives: the data, its tiles and split, and the models.

``set_si`` replaces the data (re-tiles, re-checks the models, rebuilds the tabs);
``set_tiling`` changes the tile window or split; ``set_model`` puts a model in use in
every tab. A run trained here is kept beside the model in use (``add_trained``) until
``use_trained`` adopts it; ``revert_to_pretrained`` brings the packaged model back.
Pre-trained models are used only when they fit the data's energy axis and
the tile window (``pretrained.incompatibility``).

Deferred models (``Dashboard(defer_models=True)``, the Voila page): loading the packaged
models imports torch, seconds that would delay the first HAADF image. The first data is
then shown without models; :meth:`~DashboardState.start_loading_models` loads them in a
background thread (started once the page has drawn the image, or when a tab that needs
them is opened) and puts them in use in every tab at once. Meanwhile ``models_loading``
is True and every caption says the models are loading.
"""

from __future__ import annotations

import copy
import html
import os
import threading
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from plasmonwidgets import pretrained
from plasmonwidgets.widgets.loading import for_the_user, load_quietly, upload_budget

from .settings import AXIS_NAMES, KEYS, MODEL_TABS, SPLIT_AXES, TABS, WINDOW_UNITS, model_label

__all__ = ["DashboardState"]


class DashboardState:
    """Data, tiles and models of the dashboard (a part of :class:`Dashboard`).

    State: ``si``, ``pending_si``, ``pairs``, ``train_set``, ``test_set``, ``split_used``,
    ``source``, ``window``, ``window_unit``, ``split_axis``, ``models``, ``model_notes``,
    ``models_loading``; the tabs' parts (``viewer``, ``trainers``, ``explorers`` ...) are
    reset with the data.

    Examples
    --------
    >>> dash = Dashboard()                                        # doctest: +SKIP
    >>> dash.set_si(pw.datasets.nanocube_array(seed=1, size=64))  # doctest: +SKIP
    >>> dash.si.scan_shape, sorted(dash.models)                   # doctest: +SKIP
    ((64, 64), [('im2spec', 2), ('im2spec', 10), ('spec2im', 2), ('spec2im', 10)])
    """

    def set_si(self, si: Any, source: str | None = None) -> None:
        """Show ``si`` everywhere: tabs are rebuilt, models re-checked against its energy axis."""
        from plasmonwidgets.tiles import make_tiles

        for attr in ("spectra", "haadf", "energy", "scan_shape"):
            if not hasattr(si, attr):
                raise TypeError(f"expected a SpectrumImage (with .{attr}), got {type(si).__name__}")
        window = self.tile_pixels(si)
        h, w = si.scan_shape
        H, W = si.haadf.shape
        if window > min(H, W):
            # kept, so that choosing a smaller window (set_tiling) shows this data
            self.pending_si = (si, source)
            smaller = min(H, W) if self.window_unit == "haadf" else min(H, W) // si.scale
            raise ValueError(
                f"the scan ({h}x{w} SI pixels, HAADF {H}x{W}) is too small for {window}x{window} "
                f"HAADF-pixel tiles; choose a window of at most {smaller} "
                f"{'HAADF' if self.window_unit == 'haadf' else 'SI'} pixels in the Data tab"
            )
        pairs = make_tiles(si, window=self.window, window_unit=self.window_unit)
        self.pending_si = None
        try:  # split_axis None: across the longer scan axis
            train_set, test_set = pairs.split(pretrained.SPLIT, axis=self.split_axis)
        except ValueError:
            train_set, test_set = pairs.split("random", test_fraction=0.3, seed=0)
        self._close_parts()
        self._data_generation += 1  # a deferred model load for the previous data is dropped
        self.si, self.pairs, self.train_set, self.test_set = si, pairs, train_set, test_set
        axis = train_set.split_info.get("axis")
        self.split_used = AXIS_NAMES.get(axis, "random (the scan is too small for halves)")
        self.source = source or str(si.metadata.get("title") or "built-in nanocube array")
        self.models, self.model_notes = {}, {}
        self._models_pending, self._models_thread = None, None
        if self.use_pretrained and self._defer_next_models:
            # the page's first data: the first image goes out before torch is imported
            self._defer_next_models = False
            self._models_pending = self._data_generation
        elif self.use_pretrained:
            self._load_pretrained()
        self._start_metrics()
        self._built.clear()
        for box in self._boxes.values():
            box.children = ()
        self._update_header()
        self.clear_error()
        if self.lazy:
            self._build(TABS[self.tabs.selected_index or 0])
        else:
            for name in TABS:
                self._build(name)

    def load_file(self, si_path: str | os.PathLike, haadf_path: str | os.PathLike | None = None,
                  *, remove_zlp: bool = False, crop: tuple[float, float] | None = None,
                  memory_budget: int | None = None) -> Any:
        """Load a file with ``pw.load`` (optionally remove the ZLP tail and crop) and show it.

        Files are named as the user knows them (:meth:`display_name`); warnings raised
        while loading appear in :attr:`notice_box` with server paths removed. Uploaded
        files are loaded with the lower upload memory budget unless ``memory_budget``
        (bytes) is given.
        """
        name = self.display_name(si_path)
        haadf_name = self.display_name(haadf_path) if haadf_path is not None else None
        for path, shown in ((si_path, name), (haadf_path, haadf_name)):
            if path is not None and (str(path), shown) not in self._redactions:
                self._redactions.append((str(path), shown))
        uploaded = self.chooser is not None and any(
            self.chooser.is_upload(p) for p in (si_path, haadf_path) if p is not None)
        if memory_budget is None and uploaded:
            memory_budget = upload_budget()
        self.clear_warnings()
        si, notes = load_quietly(si_path, haadf_path, display_name=name,
                                 haadf_display_name=haadf_name, memory_budget=memory_budget)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if remove_zlp:
                si = si.remove_zlp()
            if crop is not None:
                si = si.crop(*crop)
            self.set_si(si, source=name)
        notes += for_the_user(caught)
        self.show_warnings(notes, f"loading {name}")
        return si

    def display_name(self, path: str | os.PathLike) -> str:
        """How a file is named on the page: as uploaded, or relative to the data folder."""
        if self.chooser is not None:
            return self.chooser.display_name(path)
        path = Path(path)
        if self.data_dir is not None:
            try:
                return path.resolve().relative_to(Path(self.data_dir).resolve()).as_posix()
            except ValueError:
                pass
        return path.name

    @staticmethod
    def _check_tiling(window: Any, unit: Any, split_axis: Any) -> tuple[int, str, int | None]:
        if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
            raise ValueError(f"the tile window must be a positive whole number of pixels, got {window!r}")
        if unit not in WINDOW_UNITS:
            raise ValueError(f"window_unit must be one of {WINDOW_UNITS}, got {unit!r}")
        if split_axis not in SPLIT_AXES:
            raise ValueError(f"split_axis must be None (longer axis), 1 (left | right) or 0 "
                             f"(top / bottom), got {split_axis!r}")
        return int(window), str(unit), split_axis

    def tile_pixels(self, si: Any = None) -> int:
        """The tile window in HAADF pixels for ``si`` (default the current data)."""
        si = self.si if si is None else si
        return self.window * (int(si.scale) if self.window_unit == "si" else 1)

    def set_tiling(self, *, window: int, window_unit: str = "haadf",
                   split_axis: int | None = None) -> None:
        """Choose the tile window (in HAADF or SI pixels) and the split, and re-tile the data.

        Models trained on another window no longer fit: the pre-trained ones are used
        only with their own window, models trained here are dropped.
        """
        old = (self.window, self.window_unit, self.split_axis)
        self.window, self.window_unit, self.split_axis = self._check_tiling(
            window, window_unit, split_axis)
        # data whose loading stopped at a window too large for it, else the data shown
        si, source = self.pending_si or (self.si, self.source)
        try:
            self.set_si(si, source=source)
        except Exception:
            self.window, self.window_unit, self.split_axis = old
            raise

    def _incompatible(self, model: Any) -> str | None:
        """Why ``model`` cannot be used on the current tiles (energy axis, window), or None."""
        reason = pretrained.incompatibility(model, self.si)
        if reason is None and int(getattr(model, "window", self.pairs.window)) != self.pairs.window:
            n = int(model.window)
            reason = (f"the {model.direction} model ({model.latent_dim} latent) uses {n}x{n} "
                      f"HAADF-pixel tiles, these tiles are {self.pairs.window}x{self.pairs.window}; "
                      "train new models in the Train tab")
        return reason

    @staticmethod
    def _read_pretrained() -> dict[tuple[str, int], Any]:
        """The packaged models by key (None where none ships); imports torch."""
        found: dict[tuple[str, int], Any] = {}
        for key in KEYS:
            try:
                found[key] = pretrained.load_default(*key)
            except FileNotFoundError:
                found[key] = None
        return found

    def _load_pretrained(self) -> None:
        self._use_pretrained_models(self._read_pretrained())

    def _use_pretrained_models(self, found: dict[tuple[str, int], Any]) -> None:
        """Put the packaged models that fit the data in use; a model already in use stays."""
        missing = [model_label(k) for k, m in found.items() if m is None]
        refused = []
        for key, model in found.items():
            if model is None:
                continue
            reason = self._incompatible(model)
            if reason is not None:
                refused.append(reason)
                continue
            if key not in self.models:  # one trained and put in use while these loaded
                self.models[key] = model
                self.model_notes[key] = "pre-trained"
        self._pretrained_problem = (
            refused[0] if refused else (f"no packaged models ({', '.join(missing)})" if missing else "")
        )

    @property
    def models_loading(self) -> bool:
        """True while the pre-trained models of the data shown are deferred or loading."""
        return self._models_pending is not None and self._models_pending == self._data_generation

    def start_loading_models(self) -> threading.Thread | None:
        """Load the deferred pre-trained models in a background thread (started once).

        Returns the thread, or None when no models are waiting. When they arrive they are
        put in use everywhere: probe predictions, summary, header, metrics, and the tabs
        that waited for them are built.
        """
        with self._models_start_lock:
            if not self.models_loading:
                return None
            if self._models_thread is None:
                generation = self._data_generation
                self._models_thread = threading.Thread(
                    target=self._load_deferred_models, args=(generation,),
                    name="plasmonwidgets-models", daemon=True)
                self._models_thread.start()
            return self._models_thread

    def wait_models(self, timeout: float = 120.0) -> bool:
        """Load deferred models now if needed and block until they are in use (tests, scripts)."""
        thread = self.start_loading_models()
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _load_deferred_models(self, generation: int) -> None:
        try:
            found = self._read_pretrained()  # outside the lock: clicks go on meanwhile
        except Exception as exc:  # shown on the page, never lost in the thread
            found = {}
            self.show_error(exc, "loading the pre-trained models")
        with self._build_lock:
            if generation != self._data_generation or self._closing:
                return  # new data meanwhile: it got its own models
            try:
                self._use_pretrained_models(found)
            finally:
                self._models_pending = None
            self._models_arrived()

    def _models_arrived(self) -> None:
        """Show the models that were deferred in every part built without them."""
        self._show_probe_models()
        self._show_models_note()
        self._start_metrics()
        self._update_header()
        if "Train" in self._built:
            self._show_train_note()
        current = TABS[self.tabs.selected_index or 0]
        if current in MODEL_TABS and current not in self._built:
            self._build(current)  # it shows a "loading" note: built now with the models

    def add_trained(self, key: tuple[str, int], model: Any, *, epochs: int) -> bool:
        """Keep a model trained here beside the one in use; returns True if it was put in use.

        A run never replaces a model in use silently: it is used at once only when
        (direction, latent) has no model yet, else :meth:`use_trained` adopts it.
        """
        reason = self._incompatible(model)
        if reason is not None:
            raise ValueError(reason)
        # a copy: Resume goes on training the run's own model, not the one put in use
        self.trained_runs[key] = (copy.deepcopy(model), f"trained here, {epochs} epochs")
        if key not in self.models:
            self.use_trained(key)
            return True
        self._update_header()
        return False

    def use_trained(self, key: tuple[str, int]) -> None:
        """Put the last model trained here for ``key`` in use in every tab."""
        run = self.trained_runs.get(key)
        if run is None:
            raise ValueError(f"no run of {model_label(key)} has finished here yet; press Start "
                             "in the Train tab first")
        self.set_model(key, run[0], note=run[1])

    def can_revert(self, key: tuple[str, int]) -> bool:
        """True when a packaged model fits the current data and window and is not in use."""
        if self.model_notes.get(key, "").startswith("pre-trained"):
            return False
        if key not in self._pretrained_fits:  # loading a checkpoint takes a moment: once per data
            try:
                self._pretrained_fits[key] = self._incompatible(pretrained.load_default(*key)) is None
            except FileNotFoundError:
                self._pretrained_fits[key] = False
        return self._pretrained_fits[key]

    def revert_to_pretrained(self, key: tuple[str, int]) -> None:
        """Put the packaged model for ``key`` back in use (the run trained here is kept)."""
        try:
            model = pretrained.load_default(*key)
        except FileNotFoundError:
            raise ValueError(f"no pre-trained {model_label(key)} model ships with this "
                             "version") from None
        reason = self._incompatible(model)
        if reason is not None:
            raise ValueError(f"the pre-trained {model_label(key)} model does not fit this data: "
                             f"{reason}")
        self.set_model(key, model, note="pre-trained")

    def model_in_use(self, key: tuple[str, int]) -> str:
        """How the model in use for ``key`` was made, e.g. "pre-trained" or
        "trained here, 5 epochs"; "loading" while the pre-trained models load, "none"
        when there is none."""
        if key not in self.model_notes and self.models_loading:
            return "loading"
        return self.model_notes.get(key, "none")

    def set_model(self, key: tuple[str, int], model: Any, note: str = "trained here") -> None:
        """Use ``model`` for (direction, latent) everywhere (probe predictions, errors, latent)."""
        reason = self._incompatible(model)
        if reason is not None:
            raise ValueError(reason)
        self.models[key] = model
        self.model_notes[key] = note
        self._show_probe_models()
        explorer = self.explorers.get(key)
        if explorer is not None:
            explorer.set_model(model)
        self._index_cache.pop(key, None)
        direction = key[0]
        panel = self.error_panels.pop(direction, None)
        if panel is not None:
            panel.close()
        for name in ("Errors", "Latent", "Inverse design"):
            if name in self._built and name != TABS[self.tabs.selected_index or 0]:
                self._built.discard(name)  # rebuilt with the new model when next opened
        self._start_metrics()
        self._update_header()
        if "Train" in self._built:
            self._show_train_note()
        current = TABS[self.tabs.selected_index or 0]
        if current in ("Errors", "Latent", "Inverse design"):
            self._rebuild(current)

    def _update_header(self) -> None:
        n = len(self.models)
        problem = getattr(self, "_pretrained_problem", "")
        if self.models_loading and not n:
            models = "loading the pre-trained models…"
        else:
            models = (f"{n} of 4 models ready" if n else "no models yet — train them in the Train tab")
        if n:
            made = [(model_label(k), self.model_notes.get(k, "")) for k in KEYS if k in self.models]
            pre = [label for label, how in made if how.startswith("pre-trained")]
            here = [f"{label} {how}" for label, how in made if not how.startswith("pre-trained")]
            parts = ([f"{'all' if len(pre) == n else len(pre)} pre-trained"] if pre else []) + here
            models += " (" + "; ".join(parts) + ")"
            if self.models_loading:
                models += "; loading the pre-trained models…"
        warn = (f" <span style='color:var(--jp-warn-color1,#8a6d3b)'>({html.escape(problem)})</span>"
                if problem and n < 4 else "")
        si = self.si
        self.header.value = (
            "<div class='pw-dashboard-header'><b style='font-size:120%'>plasmonwidgets</b> — "
            "HAADF structure ↔ EELS plasmon response "
            "<span style='color:var(--jp-ui-font-color2,#555)'>"
            f"| {html.escape(self.source)}: {si.scan_shape[0]}×"
            f"{si.scan_shape[1]} scan, {si.n_energy} channels | {models}</span>{warn}</div>"
        )
        self._show_metrics()

    def _show_metrics(self) -> None:
        """Refresh the captions that name the models in use and their test metrics."""
        if getattr(self, "summary", None) is not None and "Data" in self._built:
            self.summary.value = self._summary_html()
        if getattr(self, "error_models", None) is not None and "Errors" in self._built:
            self.error_models.value = self._models_caption(self.error_direction.value)

    def _reset_parts(self) -> None:
        self.viewer: Any = None
        self.spectrum_view: Any = None
        self.tile_view: Any = None
        self.probe_link: Any = None
        self.summary: Any = None
        self.models_note: Any = None  # Data tab: "loading the pre-trained models…"
        self._probe_stale = False  # models changed while the Data tab was hidden
        self.nmf_panel: Any = None
        self.trainers: dict[tuple[str, int], Any] = {}
        self.error_panels: dict[str, Any] = {}
        self.explorers: dict[tuple[str, int], Any] = {}
        self._index_cache: dict[tuple[str, int], Any] = {}
        self._links: list[Any] = []
        self.last_design: Any = None
        # (direction, latent) -> (model, how it was trained) of the last run here, used or not
        self.trained_runs: dict[tuple[str, int], tuple[Any, str]] = {}
        self._pretrained_fits: dict[tuple[str, int], bool] = {}
        self._metrics: dict[tuple[str, int], tuple[Any, Any]] = {}
        self._baselines: dict[str, Any] = {}  # direction -> strongest baseline's table
        self._pretrained_problem = ""

    def _close_parts(self) -> None:
        """Stop background work and release the widgets of the previous data."""
        self._metrics_run += 1  # a metrics thread still running stops after its model
        for progress in self.trainers.values():
            progress.close()
        for explorer in self.explorers.values():
            explorer.close()
        for panel in self.error_panels.values():
            panel.close()
        if self.probe_link is not None:
            self.probe_link.unlink()
        for lk in self._links:
            lk.unlink()
        for widget in (self.viewer, self.spectrum_view, self.tile_view, self.nmf_panel):
            if widget is not None:
                widget.close()
        self._reset_parts()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until deferred models are in use and training runs and latent decodes have
        finished (tests, scripts)."""
        ok = self.wait_models(timeout)
        for progress in self.trainers.values():
            ok &= progress.wait(timeout)
        for explorer in self.explorers.values():
            ok &= explorer.wait(timeout)
        ok &= self.wait_metrics(timeout)
        return bool(ok)
