"""BrowserDecoder: run a model's decoder in the page, linked to latent sliders and a mark.

A latent slider dragged in the browser otherwise waits for a kernel round trip per
move (browser → server → kernel → server → browser, then a redraw): tens of ms on
a busy machine, more on a remote server such as Binder. This widget carries the
decoder as a small program (:func:`plasmonwidgets.nn.export.decoder_program`, a few
hundred kB of float32 weights) to the page, where ``static/browser_decoder.js``
decodes the sliders' values on every move and writes the result into the target
bqplot mark (``Lines.y`` for a spectrum, ``HeatMap.color`` for a tile) in the same
frame. The kernel keeps decoding too: its values arrive later and the page keeps its
own newer one on top.

The page says ``ready`` when it has bound to the sliders and the mark (``ready``
becomes True); ``error`` if the program failed, after which the page stops drawing and
``failed`` holds the message. ``on_status`` callbacks run on both. Without a browser (a
script, a test) nothing is ever ready and the kernel draws everything itself.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets as ipw
import numpy as np
import traitlets as t

from ..nn.export import decoder_program

__all__ = ["BrowserDecoder"]

_STATIC = Path(__file__).parent / "static"


class BrowserDecoder(anywidget.AnyWidget):
    """Decode ``model`` in the browser from ``sliders`` into ``target``'s ``attribute``.

    Parameters
    ----------
    model : Im2Spec or Spec2Im (its current weights are exported; call
        :meth:`set_model` after retraining).
    sliders : one FloatSlider per latent dimension, in order (z0, z1, ...).
    target : the bqplot mark to draw into, or None until it exists (``set_target``).
    attribute : the mark's trait: "y" (Lines, spectra) or "color" (HeatMap, tiles).

    Examples
    --------
    Two latent sliders drive a spectrum (a bqplot Lines mark) without a round trip to the kernel:

    >>> import bqplot as bq
    >>> import ipywidgets as ipw
    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> model = pw.Im2Spec(window=8, n_energy=32, latent_dim=2, device="cpu")
    >>> line = bq.Lines(x=np.arange(32), y=np.zeros(32), scales={"x": bq.LinearScale(),
    ...                                                          "y": bq.LinearScale()})
    >>> decoder = BrowserDecoder(model, [ipw.FloatSlider(), ipw.FloatSlider()], target=line)
    >>> decoder.attribute, len(decoder.sliders)
    ('y', 2)
    """

    _esm = _STATIC / "browser_decoder.js"
    ops = t.List().tag(sync=True)
    weights = t.Bytes(b"").tag(sync=True)
    sliders = t.List(t.Instance(ipw.Widget)).tag(sync=True, **ipw.widget_serialization)
    target = t.Instance(ipw.Widget, allow_none=True).tag(sync=True, **ipw.widget_serialization)
    attribute = t.Unicode("y").tag(sync=True)
    ready = t.Bool(False).tag(sync=False)
    failed = t.Unicode("").tag(sync=False)

    def __init__(self, model: Any, sliders: list, target: Any = None, attribute: str = "y"):
        if attribute not in ("y", "color"):
            raise ValueError(f"attribute must be 'y' (Lines) or 'color' (HeatMap), got {attribute!r}")
        if len(sliders) != int(model.latent_dim):
            raise ValueError(f"need one slider per latent dimension ({model.latent_dim}), "
                             f"got {len(sliders)}")
        super().__init__(sliders=list(sliders), target=target, attribute=attribute,
                         layout=ipw.Layout(display="none"))
        self._status_callbacks: list[Callable[[], None]] = []
        self.set_model(model)
        self.on_msg(self._on_page_message)

    def set_model(self, model: Any) -> None:
        """Export ``model``'s decoder (after retraining, or another model of equal latent size)."""
        ops, weights = decoder_program(model)
        with self.hold_sync():
            self.ops = ops
            self.weights = np.ascontiguousarray(weights, dtype=np.float32).tobytes()

    def set_target(self, target: Any) -> None:
        """Draw into ``target`` from now on (the page re-binds and says ready again)."""
        if target is not self.target:
            self.ready = False
            self.target = target

    def on_status(self, callback: Callable[[], None]) -> None:
        """Call ``callback()`` whenever the page starts drawing or fails."""
        self._status_callbacks.append(callback)

    def _on_page_message(self, _widget: Any, content: Any, _buffers: list) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "ready" and self.target is not None and not self.failed:
            self.ready = True
        elif kind == "error":
            self.ready = False
            self.failed = str(content.get("message", "unknown error"))[:500]
        else:
            return
        for callback in list(self._status_callbacks):
            callback()
