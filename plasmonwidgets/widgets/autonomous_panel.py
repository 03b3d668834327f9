"""AutonomousPanel: watch an autonomous experiment choose, measure and learn, live.

The panel drives a :class:`plasmonwidgets.autonomous.Loop` on a microscope
(:class:`~plasmonwidgets.SimulatedMicroscope`, :class:`~plasmonwidgets.RecordedMicroscope`
or any :class:`~plasmonwidgets.Microscope`) and shows, after every step: the HAADF with
the beam positions measured so far (rings; the latest step's in orange), the predicted map
of a chosen quantity of the spectrum and the ensemble's uncertainty map side by side, and,
when the microscope knows the whole scan (a recorded or simulated SI), the whole-scan
error of the predicted SI against the number of spectra measured.

Threads. Start and Step run the loop in a background thread, so the notebook stays free;
Stop takes effect after the current step (a step is never cut in half) and Start
continues the same loop. The thread updates the widgets once per step under one lock
(shared with the kernel's thread, which redraws on a dropdown change), inside
``hold_sync``, as :class:`~plasmonwidgets.widgets.training_progress.TrainingProgress`
does. Every failure is shown in the panel's message line; nothing is raised into the
kernel from the thread. :meth:`AutonomousPanel.wait` blocks until the thread is done.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import bqplot as bq
import ipywidgets as ipw
import numpy as np
import torch
import traitlets as t

from ..autonomous import default_model_factory, whole_scan_nmse  # re-exported: the panel's defaults
from ._message import message_html
from .haadf_viewer import HAADFViewer

__all__ = ["AutonomousPanel", "SCALARS", "default_model_factory", "scalar_map", "whole_scan_nmse"]

#: the quantities the predicted map can show (spectra reduced over the energy window)
SCALARS = ("intensity", "peak energy")
#: the strategies offered in the dropdown (the scalarizer maximises the chosen quantity)
PANEL_STRATEGIES = ("uncertainty", "random", "raster", "scalarizer")
LATEST_COLOR = "#ff7f0e"  # the latest step's positions
EARLIER_COLOR = "#4fc3f7"  # every earlier position
CURVE_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#17becf")
MAX_RUNS_SHOWN = len(CURVE_COLORS)  # earlier runs' error curves kept for comparison
_ACTIVE = ("running", "stopping")
_LAZY_TRUTH_LIMIT = 50_000_000  # values: a lazy scan larger than this gets no error curve


def scalar_map(spectra: np.ndarray, energy: np.ndarray, quantity: str,
               window: tuple[float, float] | None = None) -> np.ndarray:
    """Reduce spectra (..., E) to one number each over the energy ``window`` (eV).

    ``quantity``: ``"intensity"`` (summed counts in the window) or ``"peak energy"``
    (energy of the largest channel in the window, eV).

    Examples
    --------
    >>> import numpy as np
    >>> e = np.linspace(0.5, 1.5, 11)
    >>> s = np.exp(-((e - 1.2) / 0.1) ** 2)[None]
    >>> round(float(scalar_map(s, e, "peak energy")[0]), 2)
    1.2
    >>> round(float(scalar_map(s, e, "intensity", (0.5, 0.8))[0]), 3)
    0.0
    """
    energy = np.asarray(energy, dtype=np.float64)
    spectra = np.asarray(spectra)
    if quantity not in SCALARS:
        raise ValueError(f"quantity must be one of {SCALARS}, got {quantity!r}")
    lo, hi = (energy[0], energy[-1]) if window is None else (float(window[0]), float(window[1]))
    keep = (energy >= min(lo, hi)) & (energy <= max(lo, hi))
    if not keep.any():  # a window narrower than a channel: the nearest channel
        keep[np.argmin(np.abs(energy - 0.5 * (lo + hi)))] = True
    part = spectra[..., keep]
    if quantity == "intensity":
        return part.sum(axis=-1, dtype=np.float64).astype(np.float32)
    return energy[keep][np.argmax(part, axis=-1)].astype(np.float32)


def _truth_of(microscope: Any) -> np.ndarray | None:
    """The whole scan's spectra when the microscope replays a recorded/simulated SI."""
    si = getattr(microscope, "si", None)
    spectra = getattr(si, "spectra", None)
    if spectra is None:
        return None
    if hasattr(spectra, "vindex"):  # lazy: read all of it only when small
        if int(np.prod(spectra.shape)) > _LAZY_TRUTH_LIMIT:
            return None
        spectra = spectra.compute()
    return np.asarray(spectra, dtype=np.float32)


class AutonomousPanel(ipw.VBox):
    """Run an autonomous experiment on ``microscope`` and watch it live.

    Parameters
    ----------
    microscope : Microscope
        What is measured: its HAADF is shown at once, spectra are acquired step by step.
    model_factory : callable(seed) -> Im2Spec, optional
        Builds one ensemble member; default :func:`default_model_factory` (small lean
        Im2Spec) with the microscope's energy channels and ``window``.
    budget : int
        Spectra to measure in all (editable in the panel).
    batch : int
        Spectra per step (editable); the first step measures ``n_seed`` spectra.
    strategy : {"uncertainty", "random", "raster", "scalarizer"}
        How positions are chosen (:mod:`plasmonwidgets.autonomous`); ``"scalarizer"``
        maximises the quantity chosen for the predicted map (expected improvement).
    n_seed : int, optional
        Spectra of the first step; default ``batch`` (at least 2, at most ``budget``).
    n_members, epochs : int
        Ensemble size and training epochs per step (the first step trains twice as long).
    seed : int
        Seeds the ensemble and the random choices.
    window : int, optional
        Tile side in HAADF pixels for the default factory (default 16, or the HAADF's
        shorter side if smaller).
    truth : array (h, w, E), optional
        The whole scan for the error curve; default the microscope's SI when it has one
        (``False`` hides the curve).
    map_size : int
        Longest side of each image on screen, CSS pixels.
    torch_threads : int or None
        Torch CPU threads while a step runs (restored after each run of steps; None leaves
        them alone). One: the members are small, and in a kernel that also serves the page
        more threads only contend (a 96x96 step trained about twice as slowly with two).
    **loop_options
        More :class:`~plasmonwidgets.autonomous.Loop` options (``min_distance``,
        ``batch_size``, ``lr``, ``acquisition``, ``trainer_options`` ...).

    Attributes
    ----------
    loop : Loop or None
        The run shown (None until the first Start/Step, and after Reset).
    viewer : HAADFViewer
        The HAADF with measured positions (box groups ``"measured"`` and ``"latest"``).
    prediction_view, uncertainty_view : HAADFViewer
        Predicted map of the chosen quantity and ensemble spread summed over energy.
    error_figure : bqplot Figure
        Whole-scan NMSE (%) against spectra measured, one line per run (``error_lines``).
    start_button, stop_button, step_button, reset_button : Buttons
    budget_input, batch_input : IntText
    strategy_input, quantity_input : Dropdown
    energy_window : FloatRangeSlider, eV range of the map's quantity
    status, message : HTML (errors in the message line)
    state : Unicode trait: "idle", "running", "stopping", "paused", "finished", "failed"
    n_measured : Int trait, spectra measured in the current run
    children_by_name : the named parts above

    Examples
    --------
    >>> import plasmonwidgets as pw
    >>> scope = pw.SimulatedMicroscope(seed=0, size=24, n_energy=16, physics="toy")
    >>> panel = AutonomousPanel(scope, budget=12, batch=4, n_members=2, epochs=2, window=8)
    >>> panel.step()                         # one step in the background (display(panel))
    >>> panel.wait(120)
    True
    >>> panel.n_measured, panel.state
    (4, 'paused')
    >>> panel.start(); panel.wait(120)       # on to the budget
    True
    >>> panel.n_measured, panel.state
    (12, 'finished')
    """

    state = t.Unicode("idle")
    n_measured = t.Int(0)

    def __init__(self, microscope: Any, model_factory: Callable[[int], Any] | None = None, *,
                 budget: int = 100, batch: int = 10, strategy: str = "uncertainty",
                 n_seed: int | None = None, n_members: int = 3, epochs: int = 10, seed: int = 0,
                 window: int | None = None, truth: Any = None, map_size: int = 300,
                 torch_threads: int | None = 1, **loop_options: Any):
        from ..microscope import Microscope

        super().__init__()
        if not isinstance(microscope, Microscope):
            raise TypeError(f"microscope must have haadf(), acquire(), scan_shape and energy "
                            f"(plasmonwidgets.Microscope), got {type(microscope).__name__}")
        if strategy not in PANEL_STRATEGIES:
            raise ValueError(f"strategy must be one of {PANEL_STRATEGIES}, got {strategy!r}")
        self.add_class("pw-autonomous")
        self.microscope = microscope
        self._fresh_microscope = True  # no position acquired from it yet
        self.energy = np.asarray(microscope.energy, dtype=np.float64)
        self.scan_shape = tuple(int(v) for v in microscope.scan_shape)
        haadf = np.asarray(microscope.haadf(), dtype=np.float32)
        self._scale = max(1, haadf.shape[0] // self.scan_shape[0])
        if window is None:
            window = min(16, *haadf.shape)
        self.model_factory = model_factory or default_model_factory(len(self.energy), window)
        self.n_seed = n_seed
        self.loop_options = dict(n_members=n_members, epochs=epochs, seed=seed, **loop_options)
        self.torch_threads = torch_threads
        self.truth = None if truth is False else (_truth_of(microscope) if truth is None
                                                  else np.asarray(truth, dtype=np.float32))
        if self.truth is not None and self.truth.shape != (*self.scan_shape, len(self.energy)):
            raise ValueError(f"truth has shape {self.truth.shape}; expected the whole scan "
                             f"{(*self.scan_shape, len(self.energy))}")
        self.loop: Any = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._done = threading.Event()
        self._done.set()
        self._thread: threading.Thread | None = None
        self._runs: list[dict] = []  # error curves: {"label", "n", "nmse"}, the current one last
        self._closed = False

        si = getattr(microscope, "si", None)
        pixel = dict(pixel_size=float(getattr(si, "pixel_size", 1.0)),
                     pixel_unit=str(getattr(si, "pixel_unit", "px")))
        self.viewer = HAADFViewer(image=haadf, scale=self._scale, window=0, size=map_size,
                                  title="HAADF · measured positions", show_probe=False, **pixel)
        self.viewer.image_label = "HAADF (counts)"
        blank = np.zeros(self.scan_shape, dtype=np.float32)
        self.prediction_view = HAADFViewer(image=blank, cmap="viridis", window=0, size=map_size,
                                           title="predicted map (after the first step)",
                                           show_probe=False, **pixel)
        self.uncertainty_view = HAADFViewer(image=blank, cmap="magma", window=0, size=map_size,
                                            title="uncertainty (after the first step)",
                                            show_probe=False, **pixel)
        self.uncertainty_view.image_label = "spread, Σ energy (counts)"

        self.start_button = ipw.Button(description="Start", icon="play", button_style="success",
                                       tooltip="run steps until the budget is spent (Stop pauses)")
        self.stop_button = ipw.Button(description="Stop", icon="stop", button_style="warning",
                                      tooltip="stop after the current step")
        self.step_button = ipw.Button(description="Step", icon="step-forward",
                                      tooltip="one step: choose, measure, train, predict")
        self.reset_button = ipw.Button(description="Reset", icon="undo",
                                       tooltip="forget this run and start a new one")
        small = {"width": "190px"}
        style = {"description_width": "60px"}
        self.budget_input = ipw.IntText(value=int(budget), description="budget", layout=small,
                                        style=style)
        self.batch_input = ipw.IntText(value=int(batch), description="batch", layout=small,
                                       style=style)
        self.strategy_input = ipw.Dropdown(options=PANEL_STRATEGIES, value=strategy,
                                           description="strategy", layout={"width": "230px"},
                                           style=style)
        self.quantity_input = ipw.Dropdown(options=SCALARS, value=SCALARS[0], description="map",
                                           layout={"width": "200px"},
                                           style={"description_width": "40px"})
        e0, e1 = float(self.energy.min()), float(self.energy.max())
        step = float(np.median(np.abs(np.diff(self.energy)))) if len(self.energy) > 1 else 0.01
        self.energy_window = ipw.FloatRangeSlider(
            value=(e0, e1), min=e0, max=e1, step=step or 0.01, description="eV",
            readout_format=".2f", continuous_update=False, layout={"width": "360px"},
            style={"description_width": "30px"})
        self.status = ipw.HTML()
        self.status.add_class("pw-autonomous-status")
        self.message = ipw.HTML()
        self._build_error_figure()

        self.start_button.on_click(lambda _b: self.start())
        self.stop_button.on_click(lambda _b: self.stop())
        self.step_button.on_click(lambda _b: self.step())
        self.reset_button.on_click(lambda _b: self.reset())
        self.budget_input.observe(self._on_budget, "value")
        self.batch_input.observe(self._on_batch, "value")
        self.strategy_input.observe(self._on_strategy, "value")
        self.quantity_input.observe(lambda _c: self._guarded(self._draw_maps), "value")
        self.energy_window.observe(lambda _c: self._guarded(self._draw_maps), "value")

        controls = ipw.HBox([self.start_button, self.stop_button, self.step_button,
                             self.reset_button, self.budget_input, self.batch_input,
                             self.strategy_input], layout={"flex_flow": "row wrap"})
        maps = ipw.HBox([self.viewer, self.prediction_view, self.uncertainty_view],
                        layout={"flex_flow": "row wrap"})
        figure_row = [self.error_figure] if self.truth is not None else [ipw.HTML(message_html(
            "No error curve: this microscope does not know the whole scan.", "info"))]
        self.children = [controls, self.status, self.message,
                         ipw.HBox([self.quantity_input, self.energy_window]), maps, *figure_row]
        self._show_status()
        self._refresh_buttons()

    # -- public API -----------------------------------------------------------------
    @property
    def children_by_name(self) -> dict[str, ipw.Widget]:
        """The named children, for driving the panel without a browser."""
        return {"start": self.start_button, "stop": self.stop_button, "step": self.step_button,
                "reset": self.reset_button, "budget": self.budget_input,
                "batch": self.batch_input, "strategy": self.strategy_input,
                "quantity": self.quantity_input, "energy window": self.energy_window,
                "viewer": self.viewer, "prediction": self.prediction_view,
                "uncertainty": self.uncertainty_view, "error": self.error_figure,
                "status": self.status, "message": self.message}

    @property
    def running(self) -> bool:
        """True while steps run in the background (until the last one is shown)."""
        return self.state in _ACTIVE

    @property
    def error_curve(self) -> tuple[np.ndarray, np.ndarray]:
        """(spectra measured, whole-scan NMSE %) after each step of the current run."""
        with self._lock:
            run = self._runs[-1] if self._runs and self._runs[-1]["current"] else None
            if run is None:
                return np.zeros(0, np.int64), np.zeros(0)
            return np.array(run["n"], dtype=np.int64), np.array(run["nmse"], dtype=np.float64)

    def start(self) -> None:
        """Run steps in the background until the budget is spent or :meth:`stop`."""
        self._launch(None)

    def step(self) -> None:
        """Run one step in the background (choose, acquire ``batch`` spectra, train, predict)."""
        self._launch(1)

    def stop(self) -> None:
        """Stop after the current step (returns at once); :meth:`start` continues."""
        with self._lock:
            if self.running:
                self._stop.set()
                self.state = "stopping"
        self._show_status()
        self._refresh_buttons()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the background steps are done and shown; False on timeout (s)."""
        return self._done.wait(timeout)

    def reset(self) -> None:
        """Forget the current run (its error curve stays for comparison); the next
        Start/Step begins a new one with the current budget, batch and strategy."""
        if self.running:
            self._show_message("stop the run before Reset (Stop, then Reset)", "warning")
            return
        if self.loop is not None or not self._fresh_microscope:
            microscope = self._replay()
            if microscope is None:
                return
            self.microscope = microscope
            self._fresh_microscope = True
        with self._lock:
            self.loop = None
            if self._runs:
                self._runs[-1]["current"] = False
            self.n_measured = 0
            self.state = "idle"
            self._draw_positions()
            self._draw_blank_maps()
            self._draw_curves()
        self._show_message("")
        self._show_status()
        self._refresh_buttons()

    def close(self) -> None:
        """Close the widgets and stop the loop after its current step (returns at once;
        the step in progress finishes in the background and is not shown)."""
        self._closed = True
        self._stop.set()
        for widget in (self.viewer, self.prediction_view, self.uncertainty_view):
            widget.close()
        super().close()

    # -- running ----------------------------------------------------------------------
    def _replay(self) -> Any:
        """A fresh microscope over the same scan (each position is measured once)."""
        from ..microscope import RecordedMicroscope

        if callable(getattr(self.microscope, "fresh", None)):
            return self.microscope.fresh()
        si = getattr(self.microscope, "si", None)
        if si is None:
            self._show_message(
                f"a {type(self.microscope).__name__} cannot measure the same positions again; "
                "make a new AutonomousPanel with a fresh microscope", "error")
            return None
        return RecordedMicroscope(si)

    def _new_loop(self) -> Any:
        from ..autonomous import Loop

        budget, batch = int(self.budget_input.value), int(self.batch_input.value)
        strategy = self.strategy_input.value
        n_seed = self.n_seed if self.n_seed is not None else batch
        n_seed = max(2, min(int(n_seed), budget))
        options = dict(self.loop_options)
        if strategy == "scalarizer":
            quantity, window = self.quantity_input.value, tuple(self.energy_window.value)
            energy = self.energy
            options.update(scalarizer=lambda s: scalar_map(s, energy, quantity, window),
                           scalarizer_vectorized=True)
        if not self._fresh_microscope:
            microscope = self._replay()
            if microscope is None:
                return None
            self.microscope = microscope
        loop = Loop(self.microscope, self.model_factory, budget=budget, batch=batch,
                    strategy=strategy, n_seed=n_seed, **options)
        self._fresh_microscope = False
        label = strategy if strategy != "scalarizer" else f"scalarizer ({self.quantity_input.value})"
        with self._lock:
            if self._runs and self._runs[-1]["current"]:
                self._runs[-1]["current"] = False
            self._runs.append({"label": label, "n": [], "nmse": [], "current": True})
            del self._runs[:-MAX_RUNS_SHOWN]
        return loop

    def _launch(self, n_steps: int | None) -> None:
        with self._lock:
            if self.running or self._closed:
                return
            self._show_message("")
            if self.loop is None:
                try:
                    self.loop = self._new_loop()
                except Exception as exc:  # bad budget/batch/model: say why, start nothing
                    self.loop = None
                    self._show_message(f"could not start: {exc}")
                    self.state = "failed"
                    self._refresh_buttons()
                    return
                if self.loop is None:
                    return
            if self.loop.done:
                self._show_message(f"the budget of {self.loop.budget} spectra is spent; raise the "
                                   "budget to continue, or Reset for a new run", "warning")
                return
            self._stop.clear()
            self._done.clear()
            self.state = "running"
            self._thread = threading.Thread(target=self._work, args=(self.loop, n_steps),
                                            name="plasmonwidgets-autonomous", daemon=True)
            self._thread.start()
        self._show_status()
        self._refresh_buttons()

    def _work(self, loop: Any, n_steps: int | None) -> None:
        """The background thread: steps, one redraw per step; never raises."""
        state, error = "paused", ""
        threads = torch.get_num_threads()
        try:
            if self.torch_threads:
                torch.set_num_threads(int(self.torch_threads))
            done_steps = 0
            # Start then Stop at once still makes the step that Start began
            while not loop.done and not (done_steps and self._stop.is_set()) and (
                    n_steps is None or done_steps < n_steps):
                record = loop.step()
                done_steps += 1
                if record is None:
                    break
                self._record(loop)
            if loop.done:
                state = "finished"
        except Exception as exc:
            state, error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            torch.set_num_threads(threads)
        try:
            with self._lock:
                if self.loop is loop:
                    self.state = state
                if error:
                    self._show_message(f"the experiment stopped: {error}")
            self._show_status()
            self._refresh_buttons()
        except Exception as exc:  # the widgets were closed meanwhile
            if not self._closed:
                self._show_message(f"display failed: {exc}")
        finally:
            self._done.set()

    def _record(self, loop: Any) -> None:
        """After a step (on the loop's thread): error, positions, maps, curve, status."""
        nmse = whole_scan_nmse(loop.mean, self.truth) if self.truth is not None else None
        with self._lock:
            if self.loop is not loop or self._closed:
                return
            run = self._runs[-1]
            if nmse is not None:
                run["n"].append(loop.n_measured)
                run["nmse"].append(nmse)
            self.n_measured = loop.n_measured
            self._draw_positions()
            self._draw_maps()
            self._draw_curves()
        self._show_status()

    # -- drawing --------------------------------------------------------------------
    def _build_error_figure(self) -> None:
        sx = bq.LinearScale(min=0.0)
        sy = bq.LinearScale(min=0.0)
        self._error_scales = (sx, sy)
        self.error_lines: list[bq.Lines] = []
        for color in CURVE_COLORS:
            line = bq.Lines(x=np.zeros(0), y=np.zeros(0), scales={"x": sx, "y": sy},
                            colors=[color], marker="circle", marker_size=20, stroke_width=2,
                            labels=[""], display_legend=False)
            self.error_lines.append(line)
        ax = bq.Axis(scale=sx, label="spectra measured", tick_format="d")
        ay = bq.Axis(scale=sy, label="whole-scan NMSE (%)", orientation="vertical",
                     tick_format=".3~g", label_offset="45px")
        self.error_figure = bq.Figure(
            marks=self.error_lines, axes=[ax, ay], title="error of the predicted SI",
            legend_location="top-right", fig_margin={"top": 40, "bottom": 45, "left": 60, "right": 20},
            layout={"width": "560px", "height": "300px"})
        self.error_figure.add_class("pw-autonomous-error")

    def _draw_curves(self) -> None:
        with self._lock, self.error_figure.hold_sync():
            xmax, ymax = 1.0, 0.0
            for i, line in enumerate(self.error_lines):
                run = self._runs[i] if i < len(self._runs) else None
                x = np.asarray(run["n"] if run else [], dtype=np.float64)
                y = np.asarray(run["nmse"] if run else [], dtype=np.float64)
                keep = np.isfinite(y)
                x, y = x[keep], y[keep]
                with line.hold_sync():
                    line.x, line.y = x, y
                    line.labels = [run["label"] if run else ""]
                    line.display_legend = bool(len(x))
                    line.opacities = [1.0 if (run and run["current"]) else 0.55]
                if len(x):
                    xmax, ymax = max(xmax, float(x.max())), max(ymax, float(y.max()))
            sx, sy = self._error_scales
            budget = self.loop.budget if self.loop is not None else xmax
            sx.max = float(max(xmax, budget))
            sy.max = float(ymax * 1.08) if ymax > 0 else 1.0

    def _draw_positions(self) -> None:
        loop = self.loop
        view = self.viewer
        if loop is None or not loop.steps:
            view.remove_boxes()
            return
        steps = list(loop.steps)
        latest = steps[-1].positions
        earlier = [p for s in steps[:-1] for p in s.positions.tolist()]
        with view.hold_sync():
            view.set_boxes("measured", [view.pixel_box(r, c, color=EARLIER_COLOR, style="marker")
                                        for r, c in earlier])
            view.set_boxes("latest", [view.pixel_box(int(r), int(c), color=LATEST_COLOR,
                                                     style="marker") for r, c in latest])

    def _draw_blank_maps(self) -> None:
        blank = np.zeros(self.scan_shape, dtype=np.float32)
        for view, what in ((self.prediction_view, "predicted map"),
                           (self.uncertainty_view, "uncertainty")):
            with view.hold_sync():
                view.set_image(blank)
                view.title = f"{what} (after the first step)"

    def _draw_maps(self) -> None:
        with self._lock:
            loop = self.loop
            if loop is None or loop.mean is None:
                return
            mean, std = loop.mean, loop.std
            quantity = self.quantity_input.value
            lo, hi = self.energy_window.value
            values = scalar_map(mean, self.energy, quantity, (lo, hi))
            unit = "counts" if quantity == "intensity" else "eV"
            with self.prediction_view.hold_sync():
                self.prediction_view.set_image(values)
                self.prediction_view.title = f"predicted {quantity}, {lo:.2f}–{hi:.2f} eV"
                self.prediction_view.image_label = f"{quantity} ({unit})"
            umap = std.sum(axis=-1, dtype=np.float64).astype(np.float32)
            with self.uncertainty_view.hold_sync():
                self.uncertainty_view.set_image(umap)
                # the uncertainty strategy weighs this spread (relative to the signal) over
                # alike tiles, so bright is where the model doubts, not always the next pick
                self.uncertainty_view.title = "uncertainty (ensemble spread)"

    def _show_status(self) -> None:
        with self._lock:
            loop = self.loop
            budget = loop.budget if loop is not None else self.budget_input.value
            n = loop.n_measured if loop is not None else 0
            parts = [f"<b>{self.state}</b>", f"{n} / {budget} spectra measured"]
            if loop is not None and loop.steps:
                last = loop.steps[-1]
                parts.append(f"step {last.step + 1}: {len(last.positions)} spectra in "
                             f"{last.wall_s:.1f} s (training {last.train_s:.1f} s)")
                _, nmse = self.error_curve
                if nmse.size and np.isfinite(nmse[-1]):
                    parts.append(f"whole-scan NMSE {nmse[-1]:.3g} %")
            strategy = loop.strategy if loop is not None else self.strategy_input.value
            parts.append(f"strategy {strategy}")
            h, w = self.scan_shape
            parts.append(f"{h}×{w} scan")
            self.status.value = ("<div style='line-height:1.4'>" + " · ".join(parts)
                                 + " · <span style='color:" + LATEST_COLOR + "'>●</span> latest step"
                                 " <span style='color:" + EARLIER_COLOR + "'>●</span> earlier</div>")

    def _show_message(self, text: str, kind: str = "error") -> None:
        self.message.value = message_html(text, kind)

    def _refresh_buttons(self) -> None:
        running = self.running
        done = self.loop is not None and self.loop.done
        self.start_button.disabled = running or done
        self.step_button.disabled = running or done
        self.stop_button.disabled = not running or self.state == "stopping"
        self.reset_button.disabled = running
        self.strategy_input.disabled = running

    # -- inputs ---------------------------------------------------------------------
    def _guarded(self, action: Callable[[], None]) -> None:
        try:
            action()
        except Exception as exc:
            self._show_message(f"{type(exc).__name__}: {exc}")

    def _check_int(self, name: str, value: Any, lo: int, hi: int) -> bool:
        if not lo <= int(value) <= hi:
            self._show_message(f"{name} must be between {lo} and {hi}, got {value}")
            return False
        return True

    def _on_budget(self, change: dict) -> None:
        h, w = self.scan_shape
        loop = self.loop
        lo = max(2, loop.n_measured if loop is not None else 2)
        if not self._check_int("budget", change["new"], lo, h * w):
            return
        self._show_message("")
        if loop is not None:
            loop.budget = int(change["new"])  # read at every step: applies to this run
            with self._lock:
                if not self.running:
                    self.state = "finished" if loop.done else "paused"
        self._show_status()
        self._refresh_buttons()

    def _on_batch(self, change: dict) -> None:
        h, w = self.scan_shape
        if not self._check_int("batch", change["new"], 1, h * w):
            return
        self._show_message("")
        if self.loop is not None:
            self.loop.batch = int(change["new"])  # read at every step: applies to this run

    def _on_strategy(self, change: dict) -> None:
        if self.loop is not None:
            self._show_message(f"the strategy {change['new']!r} applies to a new run: press "
                               "Reset, then Start or Step", "info")
        self._show_status()
