"""Dashboard: the paper's workflow as one app (the Voila page ``notebooks/dashboard.ipynb``).

Tabs: **Data** (HAADF viewer, measured and predicted spectrum/tile at the probe,
summary, loading a user's file) → **NMF** → **Train** (im2spec and spec2im at 2
and 10 latent dimensions, live progress) → **Errors** (error maps, 2 vs 10 latent,
error/HAADF correlation) → **Latent** (latent explorer with back-projection) →
**Inverse design** (which observed structures give a target spectrum) → **Autonomous**
(an autonomous experiment replayed on the scan: measure spectra only where a small
ensemble is uncertain, watch the error fall).

Opening fast: the built-in dataset is cached on disk by ``datasets``, small
pre-trained models ship with the package (``plasmonwidgets.pretrained``), and a
tab's content is built the first time it is selected. Pre-trained models are only
used when they match the data's energy axis (``pretrained.incompatibility``);
otherwise the page says so and offers training. On the Voila page the models (and
torch) are loaded in the background once the first HAADF image is drawn
(``defer_models``): the Data tab shows the image, the measured spectrum and tile at
once, then the predictions and test metrics when the models arrive; tabs that need
models are built then.

Errors never take the app down: every callback the dashboard owns is wrapped
(:meth:`Dashboard.guard`) and reports ``Type: message`` in a visible error box;
warnings raised meanwhile are collected and shown in a notice line. No server path
reaches the page: a user's file is named as uploaded or by its path relative to the
data folder, and every message goes through
:func:`~plasmonwidgets.widgets.loading.redact_paths`.
``catch_widget_errors=True`` (the Voila page) also routes exceptions raised inside
other widgets' callbacks, and warnings from any thread, into those boxes instead of
the page's stderr stream.

Tiles: the window is chosen in the Data tab, in HAADF or SI pixels (a window in SI
pixels is ``scale`` times as many HAADF pixels), and so is the direction of the
train/test split (left | right or top / bottom halves; by default across the longer
scan axis). Pre-trained models are used only with the window they were trained on.

Parts: :class:`Dashboard` is assembled from one class per job, each in its own module:
``errors`` (error box and notice line), ``state`` (data, tiles, models), ``tabs``
(built on first view) and ``tabs/<tab>.py`` (one tab each); ``settings`` holds the
names they share.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import ipywidgets as ipw

from plasmonwidgets import pretrained

from .errors import ErrorReporting
from .metrics import ModelMetrics
from .settings import SMALL_ENV, SPLIT_AXES, TABS, WINDOW_UNITS, defer_models_setting, small_settings
from .state import DashboardState
from .tabs import AutonomousTab, DataTab, DesignTab, ErrorsTab, LatentTab, LazyTabs, NMFTab, TrainTab
from .ui import theme_style

__all__ = ["SMALL_ENV", "SPLIT_AXES", "TABS", "WINDOW_UNITS", "Dashboard", "small_settings"]


class Dashboard(ErrorReporting, DashboardState, ModelMetrics, LazyTabs, DataTab, NMFTab, TrainTab, ErrorsTab,
                LatentTab, DesignTab, AutonomousTab, ipw.VBox):
    """The whole workflow in one widget.

    Parameters
    ----------
    si : SpectrumImage, optional
        Data to start with; default the built-in nanocube array
        (``datasets.nanocube_array(**pretrained.DATASET)``, cached on disk).
    data_dir : folder the file chooser may read; default ``$PLASMONWIDGETS_DATA_DIR``,
        else the working directory.
    use_pretrained : load the packaged models when they match the data.
    epochs : default epochs in the Train tab (default 30, or 3 with ``$PLASMONWIDGETS_SMALL``).
    lazy : build a tab's content when it is first selected (False builds all now).
    prebuild : with ``lazy``, build the other tabs in a background thread once the page
        has drawn the first HAADF image, so a first click on a tab finds it ready (the
        Voila page sets it).
    defer_models : with ``use_pretrained``, show the first data without models and load
        them (importing torch) in a background thread once the page has drawn the first
        HAADF image, or when a tab that needs them is opened (``start_loading_models``;
        ``wait_models`` blocks until they are in use). Default: ``prebuild``, unless
        ``$PLASMONWIDGETS_DEFER_MODELS`` is "0" or "1".
    decode_mode : LatentExplorer decoding, ``"thread"`` (UI) or ``"sync"`` (tests).
    catch_widget_errors : also show exceptions raised in other widgets' callbacks
        (comm messages, button handlers) in the error box, and warnings in the notice
        line. Meant for the Voila page, where the kernel serves this dashboard only.
    window, window_unit : tile window (default 16 HAADF pixels); unit ``"haadf"`` or
        ``"si"``.
    split_axis : halves split: None (across the longer scan axis), 1 (left | right)
        or 0 (top / bottom).

    Attributes (named parts, for tests and scripting)
    -------------------------------------------------
    tabs : Tab; ``tab(name)`` returns a tab's content box (built on demand)
    error_box : HTML, empty unless something failed
    notice_box : HTML, warnings raised by the last action (paths removed), else empty
    tile_window, tile_unit, split_choice, tiles_button : Data tab tile controls
    models : dict (direction, latent) -> model in use, or missing
    models_loading : True while deferred pre-trained models are on their way
    model_notes : dict (direction, latent) -> how the model in use was made ("pre-trained",
        "trained here, N epochs")
    trained_runs : dict (direction, latent) -> (model, note) of the last run trained here
    use_button, revert_button : Train tab: put the last run in use / the packaged model back
    model_table(key) : test-half metric table of the model in use (None while computing)
    viewer, spectrum_view, tile_view, probe_link, chooser : Data tab parts
    nmf_panel, trainers, error_panels, explorers, autonomous_panel : other tabs' parts
    children_by_name : the parts above by name, those of unbuilt tabs left out

    Examples
    --------
    >>> from plasmonwidgets.app.dashboard import Dashboard
    >>> d = Dashboard(lazy=True)                     # doctest: +SKIP
    >>> box = d.select_tab("Latent")                 # doctest: +SKIP
    >>> d.error_text                                 # doctest: +SKIP
    ''
    """

    def __init__(
        self,
        si: Any = None,
        *,
        data_dir: str | os.PathLike | None = None,
        use_pretrained: bool = True,
        epochs: int | None = None,
        lazy: bool = True,
        prebuild: bool = False,
        defer_models: bool | None = None,
        decode_mode: str = "thread",
        catch_widget_errors: bool = False,
        window: int = pretrained.WINDOW,
        window_unit: str = "haadf",
        split_axis: int | None = None,
        **kwargs: Any,
    ):
        super().__init__(**kwargs)
        self.add_class("pw-dashboard")
        self.small = small_settings()
        self.data_dir = data_dir
        self.use_pretrained = bool(use_pretrained)
        self.default_epochs = int(epochs) if epochs is not None else (3 if self.small else 30)
        self.decode_mode = decode_mode
        self.lazy = bool(lazy)
        self.prebuild = bool(prebuild) and self.lazy
        self._build_lock = threading.RLock()
        self._prebuild_thread: Any = None
        self._prebuilt: dict[str, tuple] = {}  # tab -> widgets built in the background, not shown yet
        self._closing = False
        if defer_models is None:
            defer_models = defer_models_setting(self.prebuild)
        self._defer_next_models = bool(defer_models)  # for the first data only (set_si)
        self._data_generation = 0  # bumped by set_si: work for older data is dropped
        self._models_pending: int | None = None  # data generation whose models are deferred
        self._models_thread: Any = None
        self._models_start_lock = threading.Lock()
        self._redactions: list[tuple[str, str]] = []
        self._hooks: list[Callable[[], None]] = []
        self.window, self.window_unit, self.split_axis = self._check_tiling(
            window, window_unit, split_axis)

        self.header = ipw.HTML()
        self.error_box = ipw.HTML(layout={"margin": "4px 0"})
        self.error_box.add_class("pw-dashboard-error")
        self.dismiss_button = ipw.Button(
            description="dismiss", layout={"width": "80px", "display": "none"}
        )
        self.dismiss_button.on_click(self.guard(lambda _b: self.clear_error(), "dismiss"))
        self.notice_box = ipw.HTML(layout={"margin": "2px 0"})
        self.notice_box.add_class("pw-dashboard-notice")
        self.tabs = ipw.Tab()
        self.tabs.add_class("pw-dashboard-tabs")
        self._boxes = {name: ipw.VBox(layout={"padding": "6px"}) for name in TABS}
        self.tabs.children = [self._boxes[n] for n in TABS]
        self.tabs.titles = TABS
        self.children = [theme_style(), self.header, ipw.HBox([self.error_box, self.dismiss_button]),
                         self.notice_box, self.tabs]

        self.si: Any = None
        self.pending_si: Any = None  # (si, source) refused for its window, until re-tiled
        self.split_used = ""
        self.pairs: Any = None  # all tiles with a full window
        self.train_set: Any = None
        self.test_set: Any = None
        self.models: dict[tuple[str, int], Any] = {}
        self.model_notes: dict[tuple[str, int], str] = {}
        self.chooser: Any = None
        self._built: set[str] = set()
        self._metrics_run = 0  # bumped to stop a metrics thread whose data or models changed
        self._metrics_thread: Any = None
        self._reset_parts()

        if catch_widget_errors:
            self._install_error_hooks()
        self.tabs.observe(self.guard(self._on_tab, "opening the tab"), "selected_index")
        with self._reporting("loading the data"):
            if si is None:
                from plasmonwidgets import datasets

                si = datasets.nanocube_array(**pretrained.DATASET)
            self.set_si(si)

    def set_si(self, si: Any, source: str | None = None) -> None:
        # never while the prebuild thread builds a tab for the data being replaced
        with self._build_lock:
            super().set_si(si, source)

    def set_model(self, key: tuple[str, int], model: Any, note: str = "trained here") -> None:
        with self._build_lock:  # as set_si: the tabs' models change
            super().set_model(key, model, note)

    def close(self) -> None:
        """Stop training/decoding threads, remove error hooks and uploads, close widgets."""
        self._closing = True
        for thread in (self._models_thread, self._prebuild_thread):
            if thread is not None:  # a model load or tab build in progress ends first
                thread.join(timeout=10)
        self._close_parts()
        for undo in self._hooks:
            undo()
        self._hooks = []
        if self.chooser is not None:
            self.chooser.close()
        super().close()
