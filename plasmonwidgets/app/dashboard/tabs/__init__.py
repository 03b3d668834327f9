"""The dashboard's tabs: one module per tab, each built the first time it is selected.

A tab's module holds a part of :class:`~plasmonwidgets.app.dashboard.Dashboard` with a
``_build_<tab>`` method returning the tab's widgets; :class:`LazyTabs` calls it when the
tab is first shown and rebuilds tabs whose models changed.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as ipw

from ..settings import TABS, model_label
from ..ui import note
from .data import DataTab
from .design import DesignTab
from .errors import ErrorsTab
from .latent import LatentTab
from .nmf import NMFTab
from .train import TrainTab

__all__ = ["DataTab", "DesignTab", "ErrorsTab", "LatentTab", "LazyTabs", "NMFTab", "TrainTab"]


class LazyTabs:
    """Tabs built on demand (a part of :class:`Dashboard`); uses ``tabs``, ``_boxes``, ``_built``."""

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
        "training <model>", "error maps <direction>", "explorer <model>"."""
        named: dict[str, Any] = {"header": self.header, "error": self.error_box,
                                 "dismiss": self.dismiss_button, "tabs": self.tabs}
        named.update(self._boxes)
        parts = {"viewer": self.viewer, "spectrum view": self.spectrum_view,
                 "tile view": self.tile_view, "chooser": self.chooser, "nmf": self.nmf_panel}
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

    def _build(self, name: str) -> None:
        if name in self._built or self.si is None:
            return
        box = self._boxes[name]
        box.children = (note(f"Preparing the {name} tab…"),)
        builder = {
            "Data": self._build_data,
            "NMF": self._build_nmf,
            "Train": self._build_train,
            "Errors": self._build_errors,
            "Latent": self._build_latent,
            "Inverse design": self._build_inverse,
        }[name]
        self._built.add(name)
        try:
            box.children = tuple(builder())
        except Exception as exc:
            self._built.discard(name)
            box.children = (note(f"The {name} tab could not be built; see the error above."),)
            self.show_error(exc, f"building the {name} tab")

    def _rebuild(self, name: str) -> None:
        self._built.discard(name)
        self._build(name)

    def _missing_models_note(self, direction: str | None = None) -> ipw.Widget:
        have = [k for k in self.models if direction is None or k[0] == direction]
        if have:
            return ipw.HTML("")
        why = f" ({self._pretrained_problem})" if self._pretrained_problem else ""
        what = f"{direction} model" if direction else "model"
        go = ipw.Button(description="Go to Train", icon="graduation-cap", button_style="info")
        go.on_click(self.guard(lambda _b: self.select_tab("Train"), "switching tabs"))
        return ipw.VBox([
            note(f"No trained {what} for this data yet{why}. Train one in the Train tab (one click)."),
            go,
        ])  # fmt: skip
