"""The dashboard's tabs: one module per tab, each built the first time it is selected.

A tab's module holds a part of :class:`~plasmonwidgets.app.dashboard.Dashboard` with a
``_build_<tab>`` method returning the tab's widgets; :class:`LazyTabs` calls it when the
tab is first shown and rebuilds tabs whose models changed.

With ``prebuild`` (the Voila page), the tabs not yet shown are built in a background
thread once the page has drawn its first HAADF image: building a tab means computing
NMF, error maps or latent embeddings, seconds of work that would otherwise follow each
first click on a tab. A click on a tab that is still being built waits for that build.
A prebuilt tab's widgets are put into its box only when the tab is shown: a bqplot
figure drawn inside a hidden tab has no size and fills the console with errors.

Deferred models (``Dashboard(defer_models=True)``): the drawn first image also starts
loading the pre-trained models, before the prebuild. The tabs that show models
(``MODEL_TABS``) are built only once the models are in use; opened earlier, such a tab
says the models are loading and is built when they arrive.
"""

from __future__ import annotations

import threading
from typing import Any

import ipywidgets as ipw

from ..settings import MODEL_TABS, TABS, model_label
from ..ui import note
from .autonomous import AutonomousTab
from .data import DataTab
from .design import DesignTab
from .errors import ErrorsTab
from .latent import LatentTab
from .nmf import NMFTab
from .train import TrainTab

__all__ = ["AutonomousTab", "DataTab", "DesignTab", "ErrorsTab", "LatentTab", "LazyTabs", "NMFTab",
           "TrainTab"]


class LazyTabs:
    """Tabs built on demand (a part of :class:`Dashboard`); uses ``tabs``, ``_boxes``, ``_built``.

    Examples
    --------
    >>> box = Dashboard().select_tab("Errors")          # builds the tab on first use  # doctest: +SKIP
    """

    def select_tab(self, name: str) -> ipw.Box:
        """Switch to tab ``name`` (building it if needed) and return its content box."""
        if name not in TABS:
            raise ValueError(f"no tab {name!r}; tabs are {TABS}")
        self.tabs.selected_index = TABS.index(name)
        self._build(name)
        return self._boxes[name]

    @property
    def children_by_name(self) -> dict[str, Any]:
        """"header", "error", "dismiss", "tabs", each tab by its title, and the parts
        built so far: "viewer", "spectrum view", "tile view", "chooser", "nmf",
        "autonomous", "training <model>", "error maps <direction>", "explorer <model>"."""
        named: dict[str, Any] = {"header": self.header, "error": self.error_box,
                                 "dismiss": self.dismiss_button, "tabs": self.tabs}
        named.update(self._boxes)
        parts = {"viewer": self.viewer, "spectrum view": self.spectrum_view,
                 "tile view": self.tile_view, "chooser": self.chooser, "nmf": self.nmf_panel,
                 "autonomous": self.autonomous_panel}
        named.update({k: v for k, v in parts.items() if v is not None})
        named.update({f"training {model_label(k)}": v for k, v in self.trainers.items()})
        named.update({f"error maps {k}": v for k, v in self.error_panels.items()})
        named.update({f"explorer {model_label(k)}": v for k, v in self.explorers.items()})
        return named

    def tab(self, name: str) -> ipw.Box:
        """The content box of tab ``name``, built now if it was not yet."""
        if name not in TABS:
            raise ValueError(f"no tab {name!r}; tabs are {TABS}")
        self._build(name)
        return self._boxes[name]

    def _on_tab(self, change: dict) -> None:
        if change["new"] is not None:
            self._build(TABS[change["new"]])
            if TABS[change["new"]] == "Data" and self._probe_stale:
                self._show_probe_models()  # models changed while it was hidden

    def prebuild_tabs(self) -> threading.Thread:
        """Build every tab not built yet, in a background thread (returned, started).

        Deferred pre-trained models are loaded first, so that the tabs are built with
        them. Stops early when the data changes meanwhile (the tabs are then built for
        the new data when shown).
        """
        generation = self._data_generation  # bumped by set_si

        def run() -> None:
            loading = self.start_loading_models()
            if loading is not None:
                loading.join()
            for name in TABS:
                if self._data_generation != generation or self._closing:
                    return
                self._build(name, show=False)

        thread = threading.Thread(target=run, name="plasmonwidgets-prebuild", daemon=True)
        thread.start()
        self._prebuild_thread = thread
        return thread

    def _prebuild_after_first_image(self) -> None:
        """Start :meth:`prebuild_tabs` (with ``prebuild``) or the deferred models' loading
        once the page has drawn the Data tab's HAADF image (the viewer's ``render_ms``
        comes back from the browser), so that neither delays the first image."""
        viewer = self.viewer
        if viewer is None or not hasattr(viewer, "render_ms"):
            return

        def drawn(_change: dict) -> None:
            viewer.unobserve(handler, "render_ms")
            if self.viewer is not viewer:  # other data shown meanwhile
                return
            if self.prebuild:
                self.prebuild_tabs()
            else:
                self.start_loading_models()

        handler = self.guard(drawn, "preparing the tabs")
        viewer.observe(handler, "render_ms")

    def _build(self, name: str, *, show: bool = True) -> None:
        """Build tab ``name`` unless built; ``show=False`` keeps its widgets aside (in
        ``_prebuilt``) until a later ``_build(name)`` puts them into the tab's box."""
        with self._build_lock:  # the prebuild thread and the user's clicks build in turn
            if name in self._built:
                children = self._prebuilt.pop(name, None)
                if children is not None and show:
                    self._boxes[name].children = children
                elif children is not None:
                    self._prebuilt[name] = children
                return
            self._prebuilt.pop(name, None)  # built for models or data no longer in use
            self._build_locked(name, show)

    def _build_locked(self, name: str, show: bool) -> None:
        if self.si is None:
            return
        box = self._boxes[name]
        if name in MODEL_TABS and self.models_loading:
            # not marked built: the models' arrival builds it if shown, else a later click
            self.start_loading_models()
            box.children = (note(f"Loading the pre-trained models… the {name} tab is built "
                                 "when they are ready (a few seconds)."),)
            return
        box.children = (note(f"Preparing the {name} tab…"),)
        builder = {
            "Data": self._build_data,
            "NMF": self._build_nmf,
            "Train": self._build_train,
            "Errors": self._build_errors,
            "Latent": self._build_latent,
            "Inverse design": self._build_inverse,
            "Autonomous": self._build_autonomous,
        }[name]
        self._built.add(name)
        try:
            children = tuple(builder())
            if show:
                box.children = children
            else:
                self._prebuilt[name] = children
        except Exception as exc:
            self._built.discard(name)
            box.children = (note(f"The {name} tab could not be built; see the error above."),)
            self.show_error(exc, f"building the {name} tab")
            return
        if name == "Data" and (self.prebuild or self.models_loading):
            self._prebuild_after_first_image()

    def _rebuild(self, name: str) -> None:
        self._built.discard(name)
        self._build(name)

    def _missing_models_note(self, direction: str | None = None) -> ipw.Widget:
        have = [k for k in self.models if direction is None or k[0] == direction]
        if have:
            return ipw.HTML("")
        if self.models_loading:  # never "no model": they are on their way
            return note("Loading the pre-trained models… (a few seconds)")
        why = f" ({self._pretrained_problem})" if self._pretrained_problem else ""
        what = f"{direction} model" if direction else "model"
        go = ipw.Button(description="Go to Train", icon="graduation-cap", button_style="info")
        go.on_click(self.guard(lambda _b: self.select_tab("Train"), "switching tabs"))
        return ipw.VBox([
            note(f"No trained {what} for this data yet{why}. Train one in the Train tab (one click)."),
            go,
        ])  # fmt: skip
