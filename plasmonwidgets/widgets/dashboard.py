"""Dashboard: the paper's workflow as one app (the Voila page ``notebooks/dashboard.ipynb``).

Tabs: **Data** (HAADF viewer, measured and predicted spectrum/tile at the probe,
summary, loading a user's file) → **NMF** → **Train** (im2spec and spec2im at 2
and 10 latent dimensions, live progress) → **Errors** (error maps, 2 vs 10 latent,
error/HAADF correlation) → **Latent** (latent explorer with back-projection) →
**Inverse design** (which observed structures give a target spectrum).

Opening fast: the built-in dataset is cached on disk by ``datasets``, small
pre-trained models ship with the package (``plasmonwidgets.pretrained``), and a
tab's content is built the first time it is selected. Pre-trained models are only
used when they match the data's energy axis (``pretrained.check_compatible``);
otherwise the page says so and offers training.

Errors never take the app down: every callback the dashboard owns is wrapped
(:meth:`Dashboard.guard`) and reports ``Type: message`` in a visible error box;
warnings raised meanwhile are collected and shown in a notice line. No server path
reaches the page: a user's file is named as uploaded or by its path relative to the
data folder, and every message goes through :func:`~.loading.redact_paths`.
``catch_widget_errors=True`` (the Voila page) also routes exceptions raised inside
other widgets' callbacks, and warnings from any thread, into those boxes instead of
the page's stderr stream.

Tiles: the window is chosen in the Data tab, in HAADF or SI pixels (a window in SI
pixels is ``scale`` times as many HAADF pixels), and so is the direction of the
train/test split (left | right or top / bottom halves; by default across the longer
scan axis). Pre-trained models are used only with the window they were trained on.
"""

from __future__ import annotations

import html
import logging
import os
import re
import sys
import traceback
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as ipw
import numpy as np

from .. import pretrained
from ._message import message_html
from .loading import for_the_user, load_quietly, redact_paths, upload_budget
from .spectrum_view import intensity_label

__all__ = ["SMALL_ENV", "SPLIT_AXES", "TABS", "WINDOW_UNITS", "Dashboard", "small_settings"]

SMALL_ENV = "PLASMONWIDGETS_SMALL"
TABS = ("Data", "NMF", "Train", "Errors", "Latent", "Inverse design")
KEYS = tuple((d, k) for d in pretrained.DIRECTIONS for k in pretrained.LATENT_DIMS)
_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])
#: tile window units: HAADF pixels, or SI pixels (x scale HAADF pixels each)
WINDOW_UNITS = ("haadf", "si")
#: train/test split of the scan into halves: None = across the longer axis,
#: 1 = left | right (columns cut), 0 = top / bottom (rows cut)
SPLIT_AXES = (None, 1, 0)


def small_settings() -> bool:
    """True when ``$PLASMONWIDGETS_SMALL`` asks for small sizes/epochs (CI, quick looks)."""
    return os.environ.get(SMALL_ENV, "").strip().lower() in ("1", "true", "yes", "on")


# how the page names TilePairs.split's axes ("rows" cut: top / bottom halves)
_AXIS_NAMES = {"columns": "left | right", "rows": "top / bottom"}


def _label(key: tuple[str, int]) -> str:
    return f"{key[0]} {key[1]} latent"


def _intro(text: str) -> ipw.HTML:
    """A tab's explanatory paragraph, at text line spacing (not one widget row per line)."""
    return ipw.HTML(f"<div style='line-height:1.4;margin:4px 0'>{text}</div>")


def _note(text: str, kind: str = "info") -> ipw.HTML:
    return ipw.HTML(message_html(text, kind))


class Dashboard(ipw.VBox):
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
    model_notes : dict (direction, latent) -> where the model came from
    viewer, spectrum_view, tile_view, probe_link, chooser : Data tab parts
    nmf_panel, trainers, error_panels, explorers : other tabs' parts
    children_by_name : the parts above by name, those of unbuilt tabs left out
    """

    def __init__(
        self,
        si: Any = None,
        *,
        data_dir: str | os.PathLike | None = None,
        use_pretrained: bool = True,
        epochs: int | None = None,
        lazy: bool = True,
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
        self.children = [self.header, ipw.HBox([self.error_box, self.dismiss_button]),
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
        self._reset_parts()

        if catch_widget_errors:
            self._install_error_hooks()
        self.tabs.observe(self.guard(self._on_tab, "opening the tab"), "selected_index")
        with self._reporting("loading the data"):
            if si is None:
                from .. import datasets

                si = datasets.nanocube_array(**pretrained.DATASET)
            self.set_si(si)

    # ------------------------------------------------------------------ errors
    def guard(self, fn: Callable[..., Any], what: str = "") -> Callable[..., Any]:
        """``fn`` wrapped so an exception shows in the error box instead of propagating."""

        def wrapped(*args: Any, **kwargs: Any) -> Any:
            # warnings are shown on the page (paths removed), not sent to its stderr stream
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    return fn(*args, **kwargs)
                except Exception as exc:
                    self.show_error(exc, what)
                    return None
                finally:
                    self.show_warnings(for_the_user(caught), what)

        wrapped.__name__ = getattr(fn, "__name__", "callback")
        wrapped.__doc__ = getattr(fn, "__doc__", None)
        return wrapped

    def show_error(self, error: BaseException | str, context: str = "") -> None:
        """Show an error (exception or text) in the visible error box; no traceback."""
        if isinstance(error, BaseException):
            # the full traceback goes to the server's terminal only, never to the page
            if sys.__stderr__ is not None:
                print(f"plasmonwidgets dashboard: error while {context or 'working'}:",
                      file=sys.__stderr__)
                traceback.print_exception(type(error), error, error.__traceback__,
                                          file=sys.__stderr__)
            text = f"{type(error).__name__}: {error}"
        else:
            text = str(error)
        text = self._redact(text)
        where = f"Error while {context}: " if context else "Error: "
        self.error_box.value = (
            '<div class="pw-error-box" role="alert" style="color:var(--jp-error-color1,#b71c1c);'
            'background:var(--jp-error-color3,#fdecea);'
            'border:1px solid var(--jp-error-color2,#f5c6cb);border-radius:4px;padding:6px 10px;">'
            f"<b>{html.escape(where)}</b>{html.escape(text)}</div>"
        )
        self.dismiss_button.layout.display = ""

    def clear_error(self) -> None:
        self.error_box.value = ""
        self.dismiss_button.layout.display = "none"

    def show_warnings(self, texts: list[str], context: str = "") -> None:
        """Show warning texts (each once, server paths removed) in the notice line.

        An empty list leaves the line as it is; :meth:`clear_warnings` empties it.
        """
        shown: list[str] = []
        for text in texts:
            text = self._redact(str(text))
            if text not in shown:
                shown.append(text)
        if not shown:
            return
        where = f"Note while {context}: " if context else "Note: "
        self.notice_box.value = message_html(where + " | ".join(shown), "warning")

    def clear_warnings(self) -> None:
        self.notice_box.value = ""

    @property
    def notice_text(self) -> str:
        """The warnings shown, as plain text ('' when none)."""
        return html.unescape(re.sub(r"<[^>]+>", "", self.notice_box.value))

    @property
    def error_text(self) -> str:
        """The error shown, as plain text ('' when none)."""
        return html.unescape(re.sub(r"<[^>]+>", "", self.error_box.value))

    def _reporting(self, what: str):
        dashboard = self

        class _Ctx:
            def __enter__(self):
                return self

            def __exit__(self, exc_type, exc, tb):
                if exc is not None and isinstance(exc, Exception):
                    dashboard.show_error(exc, what)
                    return True
                return False

        return _Ctx()

    def _redact(self, text: str) -> str:
        """Remove server paths from a message: a user's files by the names the user knows
        them by, the data folder, the package and the environment by labels, and any other
        absolute path by its last component."""
        pairs = [*self._redactions, (_PACKAGE_DIR, "plasmonwidgets"), (sys.prefix, "<env>")]
        if self.chooser is not None:
            pairs += self.chooser.redactions().items()
        return redact_paths(text, pairs)

    def _install_error_hooks(self) -> None:
        """Route exceptions from other widgets' callbacks into the error box.

        ipywidgets reports exceptions in button/message handlers with the shell's
        ``showtraceback`` and the comm layer logs exceptions raised while applying
        browser state; on a Voila page nobody sees either.
        """
        dashboard = self

        class _Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.exc_info and record.exc_info[1] is not None:
                    dashboard.show_error(record.exc_info[1], "handling a widget event")

        handler = _Handler(level=logging.ERROR)
        loggers = [logging.getLogger(name) for name in ("Comm", "ipykernel.comm")]
        for lg in loggers:
            lg.addHandler(handler)
        self._hooks.append(lambda: [lg.removeHandler(handler) for lg in loggers])

        # warnings from any thread (training, decoding) reach the notice line, not stderr
        original_showwarning = warnings.showwarning

        def showwarning(message, category, filename, lineno, file=None, line=None):
            record = warnings.WarningMessage(message, category, filename, lineno, file, line)
            shown = for_the_user([record])
            if shown:
                dashboard.show_warnings(shown)
            elif sys.__stderr__ is not None:  # developers' warnings: the server's terminal
                print(warnings.formatwarning(message, category, filename, lineno, line),
                      file=sys.__stderr__, end="")

        warnings.showwarning = showwarning
        self._hooks.append(lambda: setattr(warnings, "showwarning", original_showwarning))
        try:
            from IPython import get_ipython
        except ImportError:  # pragma: no cover - IPython ships with ipykernel
            return
        shell = get_ipython()
        if shell is None:
            return
        original = shell.showtraceback

        def showtraceback(*args: Any, **kwargs: Any) -> None:
            exc = sys.exc_info()[1]
            if exc is None:
                return original(*args, **kwargs)
            dashboard.show_error(exc, "handling a widget event")
            return None

        shell.showtraceback = showtraceback
        self._hooks.append(lambda: setattr(shell, "showtraceback", original))

    # ------------------------------------------------------------------ data
    def set_si(self, si: Any, source: str | None = None) -> None:
        """Show ``si`` everywhere: tabs are rebuilt, models re-checked against its energy axis."""
        from ..tiles import make_tiles

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
        self.si, self.pairs, self.train_set, self.test_set = si, pairs, train_set, test_set
        axis = train_set.split_info.get("axis")
        self.split_used = _AXIS_NAMES.get(axis, "random (the scan is too small for halves)")
        self.source = source or str(si.metadata.get("title") or "built-in nanocube array")
        self.models, self.model_notes = {}, {}
        if self.use_pretrained:
            self._load_pretrained()
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

    # ------------------------------------------------------------------ tiles
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
        reason = pretrained.check_compatible(model, self.si)
        if reason is None and int(getattr(model, "window", self.pairs.window)) != self.pairs.window:
            n = int(model.window)
            reason = (f"the {model.direction} model ({model.latent_dim} latent) uses {n}x{n} "
                      f"HAADF-pixel tiles, these tiles are {self.pairs.window}x{self.pairs.window}; "
                      "train new models in the Train tab")
        return reason

    def _load_pretrained(self) -> None:
        missing, refused = [], []
        for key in KEYS:
            try:
                model = pretrained.load_default(*key)
            except FileNotFoundError:
                missing.append(_label(key))
                continue
            reason = self._incompatible(model)
            if reason is not None:
                refused.append(reason)
                continue
            self.models[key] = model
            nmse = model.pretrained_info.get("test_nmse_median")
            self.model_notes[key] = "pre-trained" + (
                f", median test NMSE {nmse:.1f} %" if nmse is not None else ""
            )
        self._pretrained_problem = (
            refused[0] if refused else (f"no packaged models ({', '.join(missing)})" if missing else "")
        )

    def set_model(self, key: tuple[str, int], model: Any, note: str = "trained here") -> None:
        """Use ``model`` for (direction, latent) everywhere (probe predictions, errors, latent)."""
        reason = self._incompatible(model)
        if reason is not None:
            raise ValueError(reason)
        self.models[key] = model
        self.model_notes[key] = note
        if self.probe_link is not None:
            self.probe_link.models = self._probe_models()
            self.probe_link.update()
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
        self._update_header()
        current = TABS[self.tabs.selected_index or 0]
        if current in ("Errors", "Latent", "Inverse design"):
            self._rebuild(current)

    # ------------------------------------------------------------------ tabs
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
        named.update({f"training {_label(k)}": v for k, v in self.trainers.items()})
        named.update({f"error maps {k}": v for k, v in self.error_panels.items()})
        named.update({f"explorer {_label(k)}": v for k, v in self.explorers.items()})
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
        box.children = (_note(f"Preparing the {name} tab…"),)
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
            box.children = (_note(f"The {name} tab could not be built; see the error above."),)
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
            _note(f"No trained {what} for this data yet{why}. Train one in the Train tab (one click)."),
            go,
        ])  # fmt: skip

    # --- Data -----------------------------------------------------------------------
    def _build_data(self) -> list[ipw.Widget]:
        from .haadf_viewer import HAADFViewer
        from .linking import link
        from .spectrum_view import SpectrumView
        from .tile_view import TileView

        si = self.si
        self.viewer = HAADFViewer(si, size=420, title="HAADF — click to probe")
        self.viewer.add_class("pw-dashboard-viewer")
        self.spectrum_view = SpectrumView(energy=si.energy, title="spectrum at the probe",
                                          width="520px", height="300px", y_label=intensity_label(si))
        self.spectrum_view.figure.add_class("pw-probe-spectrum")
        self.tile_view = TileView(tile_size=120)
        h, w = si.scan_shape
        self.viewer.position = [h // 2, w // 2]
        self.probe_link = link(self.viewer, self.spectrum_view, self.tile_view,
                               models=self._probe_models(), si=si, window=self.pairs.window)
        self.summary = ipw.HTML(self._summary_html())
        parts = [
            ipw.HBox([self.viewer, ipw.VBox([self.spectrum_view, self.tile_view])]),
            self.summary,
            self._build_tiling(),
        ]
        loader = ipw.Accordion(children=[self._build_loader()], selected_index=None)
        loader.set_title(0, "Load your own data (.dm3/.dm4/.emd/.hspy)")
        parts.append(loader)
        return parts

    def _build_tiling(self) -> ipw.Widget:
        self.tile_window = ipw.BoundedIntText(value=self.window, min=1, max=4096, description="window",
                                              layout={"width": "170px"})
        self.tile_unit = ipw.ToggleButtons(options=[("HAADF px", "haadf"), ("SI px", "si")],
                                           value=self.window_unit, style={"button_width": "80px"})
        self.split_choice = ipw.Dropdown(
            options=[("halves across the longer axis", None), ("left | right halves", 1),
                     ("top / bottom halves", 0)],
            value=self.split_axis, description="split", layout={"width": "320px"},
        )
        self.tiles_button = ipw.Button(description="Apply", icon="th", layout={"width": "90px"})
        self.tiles_button.on_click(self.guard(lambda _b: self._apply_tiling(), "making tiles"))
        return ipw.VBox([
            ipw.HTML("<b>Tiles</b> (HAADF window around each SI pixel; train and test come from "
                     "different halves of the scan):"),
            ipw.HBox([self.tile_window, self.tile_unit, self.split_choice, self.tiles_button]),
        ])  # fmt: skip

    def _apply_tiling(self) -> None:
        self.set_tiling(window=int(self.tile_window.value), window_unit=self.tile_unit.value,
                        split_axis=self.split_choice.value)

    def _probe_models(self) -> dict[str, Any]:
        return {_label(k): m for k, m in sorted(self.models.items())}

    def _build_loader(self) -> ipw.Widget:
        from .file_chooser import DataFileChooser

        try:
            if self.chooser is None:
                self.chooser = DataFileChooser(self.data_dir)
                self.chooser.on_load(self.guard(self._on_chooser_load, "loading the file"))
                self._redactions.append((str(self.chooser.root), "<data folder>"))
        except FileNotFoundError as exc:
            return _note(self._redact(str(exc)), "error")
        e = np.asarray(self.si.energy)
        self.zlp = ipw.Checkbox(value=False, description="remove ZLP tail (power law)", indent=False)
        self.crop_range = ipw.FloatRangeSlider(
            value=(float(e[0]), float(e[-1])), min=float(e[0]), max=float(e[-1]),
            step=float(np.median(np.diff(e))) if e.size > 1 else 0.01,
            description="crop (eV)", continuous_update=False, layout={"width": "420px"},
        )  # fmt: skip
        self.builtin_button = ipw.Button(description="Back to the built-in dataset", icon="undo")
        self.builtin_button.on_click(self.guard(lambda _b: self._load_builtin(), "loading data"))
        self.preprocess_button = ipw.Button(description="Apply to current data", icon="cut")
        self.preprocess_button.on_click(self.guard(lambda _b: self._preprocess(), "pre-processing"))
        return ipw.VBox([
            self.chooser,
            ipw.HTML("<b>Pre-processing</b> (applied when loading, or to the current data):"),
            self.zlp, self.crop_range, ipw.HBox([self.preprocess_button, self.builtin_button]),
        ])  # fmt: skip

    def _crop_arg(self, si: Any) -> tuple[float, float] | None:
        lo, hi = self.crop_range.value
        e = np.asarray(si.energy)
        if lo <= e[0] + 1e-9 and hi >= e[-1] - 1e-9:
            return None
        return float(lo), float(hi)

    def _on_chooser_load(self, si_path: Path, haadf_path: Path | None) -> None:
        self.chooser.status.value = message_html(f"loading {self.display_name(si_path)}…", "info")
        # the crop slider still spans the current data: a narrowed range is the user's choice
        self.load_file(si_path, haadf_path, remove_zlp=self.zlp.value,
                       crop=self._crop_arg(self.si))
        self.select_tab("Data")

    def _preprocess(self) -> None:
        si = self.si
        if self.zlp.value:
            si = si.remove_zlp()
        crop = self._crop_arg(si)
        if crop is not None:
            si = si.crop(*crop)
        if si is self.si:
            raise ValueError("nothing to apply: tick 'remove ZLP tail' or narrow the crop range")
        self.set_si(si, source=f"{self.source} (pre-processed)")

    def _load_builtin(self) -> None:
        from .. import datasets

        self.set_si(datasets.nanocube_array(**pretrained.DATASET))

    def _summary_html(self) -> str:
        si = self.si
        e = np.asarray(si.energy)
        rows = [
            ("source", html.escape(self.source)),
            ("scan (SI pixels)", f"{si.scan_shape[0]} × {si.scan_shape[1]}"),
            ("HAADF pixels", f"{si.haadf.shape[0]} × {si.haadf.shape[1]} (×{si.scale} per SI pixel)"),
            ("energy", f"{e.size} channels, {e[0]:.3g}–{e[-1]:.3g} eV"),
            ("pixel size", f"{si.pixel_size:.3g} {html.escape(si.pixel_unit)}"),
            ("tiles", f"{len(self.pairs)} of {self.pairs.window}×{self.pairs.window} HAADF px "
                      f"({self.pairs.window / si.scale:.3g} SI px) — {len(self.train_set)} train / "
                      f"{len(self.test_set)} test, split {html.escape(self.split_used)}"),
        ]
        names = si.metadata.get("region_names")
        if names:
            rows.append(("regions", html.escape(", ".join(map(str, names)))))
        for key in KEYS:
            rows.append((_label(key), html.escape(self.model_notes.get(key, "— (train it)"))))
        cells = "".join(f"<tr><td style='padding-right:12px'>{k}</td><td>{v}</td></tr>"
                        for k, v in rows)
        # line-height: the HTML widget's default (one widget row per line) spreads tables out
        return f"<table class='pw-summary' style='font-size:90%;line-height:1.4'>{cells}</table>"

    def _update_header(self) -> None:
        n = len(self.models)
        problem = getattr(self, "_pretrained_problem", "")
        models = (f"{n} of 4 models ready" if n else "no models yet — train them in the Train tab")
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
        if getattr(self, "summary", None) is not None and "Data" in self._built:
            self.summary.value = self._summary_html()

    # --- NMF ------------------------------------------------------------------------
    def _build_nmf(self) -> list[ipw.Widget]:
        from .haadf_viewer import HAADFViewer
        from .linking import link_probe
        from .nmf_panel import NMFPanel

        viewer = HAADFViewer(self.si, size=300, window=0, title="HAADF with abundance overlay")
        if self.viewer is not None:
            viewer.position = list(self.viewer.position)
            self._links.append(link_probe(self.viewer, viewer))
        self.nmf_viewer = viewer
        self.nmf_panel = NMFPanel(self.si, viewer=viewer, n_components=4, run=True)
        return [
            _intro("Non-negative matrix factorisation of the spectrum image: abundance maps "
                     "and endmember spectra (the paper's Fig. 1)."),
            ipw.HBox([viewer, self.nmf_panel]),
        ]

    # --- Train ----------------------------------------------------------------------
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
        for control in (self.train_direction, self.train_latent):
            control.observe(self.guard(lambda _c: self._show_trainer(), "choosing a model"), "value")
        self.epochs.observe(self.guard(self._on_epochs, "setting epochs"), "value")
        self._show_trainer()
        return [
            _intro(
                f"Train a fresh network on the {len(self.train_set)} training tiles (one half "
                f"of the scan) and monitor the loss on the {len(self.test_set)} test tiles of the "
                "other half. When a run finishes (or is stopped) the new model replaces the "
                "current one in every tab."
            ),
            ipw.HBox([self.train_direction, self.train_latent, self.epochs]),
            self.train_note,
            self.train_box,
        ]

    def _train_key(self) -> tuple[str, int]:
        return (self.train_direction.value, int(self.train_latent.value))

    def _trainer_factory(self, key: tuple[str, int]) -> Callable[[], Any]:
        """Builds a trainer of a freshly initialised model: every Start trains anew (Resume
        continues the same run); the model in use is replaced only when the run ends."""
        from ..training import Trainer

        def factory() -> Any:
            return Trainer(self._new_model(key), self.train_set, self.test_set,
                           epochs=int(self.epochs.value), batch_size=64, seed=0)

        return factory

    def _new_model(self, key: tuple[str, int]) -> Any:
        from ..models import Im2Spec, Spec2Im

        cls = Im2Spec if key[0] == "im2spec" else Spec2Im
        kwargs = pretrained.architecture(key[0], key[1], self.si.n_energy, window=self.pairs.window)
        return cls(**kwargs, energy=self.si.energy, device="cpu")

    def _show_trainer(self) -> None:
        from .training_progress import TrainingProgress

        key = self._train_key()
        progress = self.trainers.get(key)
        if progress is None:
            factory = self._trainer_factory(key)
            progress = TrainingProgress(trainer_factory=factory)  # shows factory errors itself
            progress.add_class("pw-training-progress")

            def finished(trained: Any, key: tuple[str, int] = key, progress=progress) -> None:
                epochs = len(progress.trainer.history.train_loss)
                if epochs == 0:  # stopped inside the first epoch: nothing learned yet
                    self.train_note.value = message_html(
                        f"Stopped before the first epoch ended; {_label(key)} keeps its "
                        "current model.", "info")
                    return
                self.set_model(key, trained, note=f"trained here ({epochs} epochs)")

            progress.on_finished(self.guard(finished, "using the trained model"))
            self.trainers[key] = progress
        note = self.model_notes.get(key)
        self.train_note.value = message_html(
            f"{_label(key)} in use: {note}." if note else f"No {_label(key)} model yet.", "info"
        )
        self.train_box.children = (progress,)

    def _on_epochs(self, change: dict) -> None:
        for progress in self.trainers.values():
            trainer = progress.trainer
            if (trainer is None or trainer.state == "idle") and progress.trainer_factory is not None:
                progress.trainer = progress.trainer_factory()
                progress.refresh()

    # --- Errors ---------------------------------------------------------------------
    def _build_errors(self) -> list[ipw.Widget]:
        self.error_direction = ipw.ToggleButtons(options=list(pretrained.DIRECTIONS),
                                                 description="model")
        self.error_holder = ipw.VBox()
        self.error_direction.observe(
            self.guard(lambda _c: self._show_error_panel(), "computing error maps"), "value"
        )
        self._show_error_panel()
        return [
            _intro(
                "Per-pixel prediction error (normalised MSE, %) on the <b>test half</b> of the "
                "scan for 2 and 10 latent dimensions, and its correlation with the HAADF "
                "(the paper's Figs. 3, 5 and S1b). Click a map to move the probe."
            ),
            self.error_direction,
            self.error_holder,
        ]

    def _show_error_panel(self) -> None:
        from .error_map_panel import ErrorMapPanel

        direction = self.error_direction.value
        models = {f"{k} latent": m for (d, k), m in sorted(self.models.items()) if d == direction}
        if not models:
            self.error_holder.children = (self._missing_models_note(direction),)
            return
        panel = self.error_panels.get(direction)
        if panel is None:
            panel = ErrorMapPanel(models, self.test_set, viewer=self.viewer, si=self.si,
                                  map_size=260)
            self.error_panels[direction] = panel
        self.error_holder.children = (panel,)

    # --- Latent ---------------------------------------------------------------------
    def _build_latent(self) -> list[ipw.Widget]:
        from .haadf_viewer import HAADFViewer

        self.latent_key = ipw.Dropdown(
            options=[(_label(k), k) for k in KEYS], value=("im2spec", 2), description="model",
            layout={"width": "260px"},
        )
        self.latent_holder = ipw.VBox()
        self.latent_viewer = HAADFViewer(self.si, size=300, title="nearest observed tiles",
                                         window=self.pairs.window, show_probe=False)
        self.latent_key.observe(
            self.guard(lambda _c: self._show_explorer(), "opening the latent explorer"), "value"
        )
        self._show_explorer()
        return [
            _intro(
                "Drag the point on the latent pad or the sliders: the decoder's output updates "
                "live, and the observed tiles whose encodings are nearest (back-projection) are "
                "outlined on the HAADF."
            ),
            self.latent_key,
            ipw.HBox([self.latent_holder, self.latent_viewer]),
        ]

    def _show_explorer(self) -> None:
        from .latent_explorer import LatentExplorer

        key = self.latent_key.value
        model = self.models.get(key)
        if model is None:
            self.latent_holder.children = (self._missing_models_note(key[0]),)
            return
        explorer = self.explorers.get(key)
        if explorer is None:
            explorer = LatentExplorer(model, self.pairs, viewer=self.latent_viewer,
                                      mode=self.decode_mode)
            if key[0] == "im2spec":
                explorer.spectrum_view.figure.add_class("pw-latent-spectrum")
                explorer.spectrum_view.y_axis.label = intensity_label(self.si)
            else:
                explorer.tile_view.add_class("pw-latent-tiles")
            explorer.add_class("pw-latent-explorer")
            self.explorers[key] = explorer
        self.latent_holder.children = (explorer,)

    # --- Inverse design -------------------------------------------------------------
    def _build_inverse(self) -> list[ipw.Widget]:
        from .haadf_viewer import HAADFViewer
        from .spectrum_view import SpectrumView
        from .tile_view import TileView

        e = np.asarray(self.si.energy, dtype=np.float64)
        self.design_source = ipw.Dropdown(
            options=["Gaussian peak", "spectrum at the probe", "NMF endmember"],
            description="target", layout={"width": "300px"},
        )
        mid = float(e[len(e) // 2])
        span = float(e[-1] - e[0])
        self.design_energy = ipw.FloatSlider(
            value=mid, min=float(e[0]), max=float(e[-1]), step=span / 200, description="peak (eV)",
            readout_format=".3f", continuous_update=True,
        )
        self.design_width = ipw.FloatSlider(
            value=span / 20, min=span / 200, max=span / 4, step=span / 400,
            description="width (eV)", readout_format=".3f",
        )
        self.design_component = ipw.BoundedIntText(value=1, min=1, max=10, description="component",
                                                   layout={"width": "160px"})
        self.design_model = ipw.Dropdown(
            options=[(_label(k), k) for k in KEYS], value=("im2spec", 10), description="model",
            layout={"width": "260px"},
        )
        self.design_k = ipw.BoundedIntText(value=5, min=1, max=20, description="k",
                                           layout={"width": "120px"})
        self.design_button = ipw.Button(description="Find structures", icon="search",
                                        button_style="primary")
        self.design_result = ipw.HTML()
        self.design_spectra = SpectrumView(energy=e, title="target and design", width="520px",
                                           height="300px", y_label=intensity_label(self.si))
        self.design_tiles = TileView(tile_size=100)
        self.design_viewer = HAADFViewer(self.si, size=300, window=self.pairs.window,
                                         show_probe=False, title="structures found")
        for control in (self.design_source, self.design_energy, self.design_width,
                        self.design_component):
            control.observe(self.guard(lambda _c: self._show_target(), "making the target"),
                            "value")
        self.design_button.on_click(self.guard(lambda _b: self.run_inverse_design(),
                                               "running inverse design"))
        self._show_target()
        return [
            _intro(
                "Choose a target spectrum; the model finds the latent point whose decoded "
                "spectrum matches it best (im2spec) or encodes it (spec2im), and shows the "
                "observed structures nearest to that point."
            ),
            ipw.HBox([self.design_source, self.design_model, self.design_k]),
            ipw.HBox([self.design_energy, self.design_width, self.design_component]),
            self.design_button,
            self.design_result,
            ipw.HBox([self.design_spectra, self.design_viewer]),
            self.design_tiles,
        ]

    def target_spectrum(self) -> np.ndarray:
        """The inverse-design target (E,) chosen in the Inverse design tab."""
        source = self.design_source.value
        si = self.si
        if source == "spectrum at the probe":
            r, c = self.viewer.position if self.viewer is not None else np.array(si.scan_shape) // 2
            return np.asarray(si.spectra[r, c], dtype=np.float64)
        if source == "NMF endmember":
            result = getattr(self.nmf_panel, "result", None)
            if result is None:
                raise ValueError("run NMF in the NMF tab first to use an endmember as target")
            k = int(self.design_component.value) - 1
            if not 0 <= k < len(result.spectra):
                raise ValueError(f"component must be 1..{len(result.spectra)}")
            spec = np.asarray(result.spectra[k], dtype=np.float64)
            mean = np.asarray(si.spectra, dtype=np.float64).reshape(-1, si.n_energy).mean(0)
            # endmembers are normalised: bring the target to the data's intensity scale
            return spec * (mean.max() / max(spec.max(), 1e-30))
        e = np.asarray(si.energy, dtype=np.float64)
        mean = np.asarray(si.spectra, dtype=np.float64).reshape(-1, si.n_energy).mean(0)
        peak = np.exp(-0.5 * ((e - self.design_energy.value) / self.design_width.value) ** 2)
        return mean + (mean.max() - mean.min()) * peak

    def _show_target(self) -> None:
        source = self.design_source.value
        peak = source == "Gaussian peak"
        self.design_energy.layout.display = "" if peak else "none"
        self.design_width.layout.display = "" if peak else "none"
        self.design_component.layout.display = "" if source == "NMF endmember" else "none"
        try:
            target = self.target_spectrum()
        except ValueError as exc:
            self.design_result.value = message_html(str(exc))
            return
        self.design_result.value = ""
        self._draw_design({"target": target})

    def _draw_design(self, curves: dict[str, np.ndarray]) -> None:
        view = self.design_spectra
        view.clear()
        view.update(predictions=curves, colors={"target": "#7f7f7f"})  # legible on light and dark
        view.reset_y_range()

    def run_inverse_design(self) -> Any:
        """Run ``analysis.inverse_design`` for the current target and show the result."""
        from ..analysis import LatentIndex, inverse_design

        key = self.design_model.value
        model = self.models.get(key)
        if model is None:
            raise ValueError(f"no {_label(key)} model for this data; train one in the Train tab")
        target = self.target_spectrum()
        index = self._index_cache.get(key)
        if index is None:
            index = self._index_cache[key] = LatentIndex(model, self.pairs)
        k = int(self.design_k.value)
        result = inverse_design(model, target, self.pairs, k=k, index=index,
                                n_starts=4 if self.small else 8)
        self.last_design = result
        curves = {"target": target}
        if result.direction == "im2spec":
            curves["design"] = np.asarray(result.decoded, dtype=np.float64)
        curves[f"{k} nearest (mean)"] = np.asarray(result.spectra, dtype=np.float64).mean(0)
        self._draw_design(curves)
        tiles = {f"({r},{c}) {err:.0f}%": img for (r, c), err, img
                 in zip(result.positions, result.spectra_nmse, result.images)}
        if result.direction == "spec2im":
            self.design_tiles.set_tiles(measured=None,
                                        predictions={"decoded": result.decoded, **tiles})
        else:
            self.design_tiles.set_tiles(predictions=tiles)
        self.design_viewer.highlight = [[int(r), int(c)] for r, c in result.positions]
        where = "inside" if result.in_range else "<b>outside</b>"
        self.design_result.value = message_html(
            f"{_label(key)}: design NMSE {result.nmse:.2f} % vs target; latent point {where} "
            f"the observed range; the {k} nearest observed structures are outlined "
            "(captions: SI position and their measured-spectrum NMSE).", "info"
        ).replace("&lt;b&gt;", "<b>").replace("&lt;/b&gt;", "</b>")
        return result

    # ------------------------------------------------------------------ lifecycle
    def _reset_parts(self) -> None:
        self.viewer: Any = None
        self.spectrum_view: Any = None
        self.tile_view: Any = None
        self.probe_link: Any = None
        self.summary: Any = None
        self.nmf_panel: Any = None
        self.trainers: dict[tuple[str, int], Any] = {}
        self.error_panels: dict[str, Any] = {}
        self.explorers: dict[tuple[str, int], Any] = {}
        self._index_cache: dict[tuple[str, int], Any] = {}
        self._links: list[Any] = []
        self.last_design: Any = None
        self._pretrained_problem = ""

    def _close_parts(self) -> None:
        """Stop background work and release the widgets of the previous data."""
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
        """Block until training runs and latent decodes have finished (tests, scripts)."""
        ok = True
        for progress in self.trainers.values():
            ok &= progress.wait(timeout)
        for explorer in self.explorers.values():
            ok &= explorer.wait(timeout)
        return bool(ok)

    def close(self) -> None:
        """Stop training/decoding threads, remove error hooks and uploads, close widgets."""
        self._close_parts()
        for undo in self._hooks:
            undo()
        self._hooks = []
        if self.chooser is not None:
            self.chooser.close()
        super().close()

