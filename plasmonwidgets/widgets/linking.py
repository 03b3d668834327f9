"""Linking views through the probe position.

:func:`link` connects a :class:`HAADFViewer` to a :class:`SpectrumView` and a
:class:`TileView`: whenever the probe moves, the measured spectrum and tile at
that SI pixel are shown together with every model's prediction (im2spec models
predict spectra from the tile, spec2im models predict tiles from the spectrum).
:func:`link_probe` keeps the probe of two viewers in step. With an SI and a spectrum
view, the link also gives spectrum comparison (:class:`~.spectrum_compare.SpectrumCompare`:
pinned spectra, region sums, energy-window maps), its controls under the spectrum plot.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from typing import Any

import ipywidgets as ipw
import numpy as np
import traitlets

__all__ = ["ProbeLink", "link", "link_probe", "model_label"]


def model_label(model: Any) -> str:
    """A short display name, e.g. "im2spec 10 latent".

    Examples
    --------
    >>> import plasmonwidgets as pw
    >>> model_label(pw.Im2Spec(window=8, n_energy=32, latent_dim=2, device="cpu"))
    'im2spec 2 latent'
    """
    direction = getattr(model, "direction", type(model).__name__)
    latent = getattr(model, "latent_dim", None)
    return f"{direction} {latent} latent" if latent is not None else str(direction)


def _named_models(models: Any) -> dict[str, Any]:
    if models is None:
        return {}
    if isinstance(models, Mapping):
        named = {str(k): v for k, v in models.items()}
    else:
        named = {}
        for m in models:
            name = model_label(m)
            if name in named:
                raise ValueError(
                    f"two models would both be called {name!r}; pass a dict "
                    '{"name": model, ...} to name them'
                )
            named[name] = m
    for name, m in named.items():
        if getattr(m, "input_kind", None) not in ("image", "spectrum") or not hasattr(m, "predict"):
            raise TypeError(
                f"model {name!r} is a {type(m).__name__}, not an Im2Spec/Spec2Im model "
                "(needs .input_kind and .predict)"
            )
    return named


def link_probe(a: Any, b: Any, in_browser: bool = False):
    """Keep the probe ``position`` of viewers ``a`` and ``b`` equal (both directions).

    The viewers must share an SI scan shape. Through the kernel by default (so
    Python observers of either viewer fire); ``in_browser=True`` uses
    ``ipywidgets.jslink``, which works without a kernel but only updates the
    kernel-side value of the viewer that was clicked. Returns the link; call
    ``.unlink()`` to undo it.

    Examples
    --------
    Two viewers of the same 12 x 12 scan follow each other's probe:

    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> from plasmonwidgets.widgets import HAADFViewer
    >>> a, b = HAADFViewer(si), HAADFViewer(si)
    >>> _ = link_probe(a, b)
    >>> a.position = [3, 4]
    >>> list(b.position)
    [3, 4]
    """
    if tuple(a.scan_shape) != tuple(b.scan_shape):
        raise ValueError(
            f"cannot link probes of viewers with different SI scan shapes "
            f"{tuple(a.scan_shape)} and {tuple(b.scan_shape)}"
        )
    if in_browser:
        return ipw.jslink((a, "position"), (b, "position"))
    return traitlets.link((a, "position"), (b, "position"))


class ProbeLink:
    """Updates spectrum and tile views from a viewer's probe position.

    Parameters
    ----------
    viewer : HAADFViewer
        The viewer whose ``position`` (SI row, col) drives the views.
    spectrum_view : SpectrumView, optional
    tile_view : TileView, optional
    models : dict name -> model, or a sequence of models (named by :func:`model_label`)
    si : SpectrumImage, optional
        Source of measured spectra and tiles; defaults to ``viewer.si``.
    pairs : TilePairs, optional
        Tiles to read instead of cutting them from ``si`` (pixels without a pair
        are reported in the viewer's message).
    window : int, optional
        Tile size when cutting from ``si``; defaults to the models' window, else 16.
    compare : bool
        Add pinning, region sums and energy-window maps (:attr:`compare`) when there is an
        SI and a spectrum view.

    Attributes
    ----------
    compare : SpectrumCompare or None

    Prediction errors do not raise out of the browser event: they are shown in
    the viewer's ``message`` (and kept in :attr:`last_error`).

    Examples
    --------
    Usually made by :func:`link`; ``probe`` moves the probe and returns what the views show:

    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> pairs = pw.make_tiles(si, window=8, pad="reflect")   # 144 tiles (8, 8), spectra (32,)
    >>> model = pw.Im2Spec(window=8, n_energy=32, latent_dim=2, device="cpu")   # untrained
    >>> from plasmonwidgets.widgets import HAADFViewer, SpectrumView
    >>> viewer = HAADFViewer(si)
    >>> probe = ProbeLink(viewer, SpectrumView(energy=si.energy), models=[model], si=si)
    >>> shown = probe.probe(3, 4)                    # measured and predicted at SI pixel (3, 4)
    >>> shown["spectrum"].shape, shown["tile"].shape, list(shown["spectra"])
    ((32,), (8, 8), ['im2spec 2 latent'])
    """

    def __init__(
        self,
        viewer: Any,
        spectrum_view: Any = None,
        tile_view: Any = None,
        models: Any = (),
        si: Any = None,
        pairs: Any = None,
        window: int | None = None,
        compare: bool = True,
    ):
        self.viewer = viewer
        self.spectrum_view = spectrum_view
        self.tile_view = tile_view
        self.models = _named_models(models)
        self.si = si if si is not None else getattr(viewer, "si", None)
        if self.si is None and pairs is None:
            raise ValueError(
                "link needs the data: pass si=SpectrumImage or pairs=TilePairs "
                "(or build the viewer with HAADFViewer(si))"
            )
        windows = {int(m.window) for m in self.models.values() if getattr(m, "window", None)}
        if pairs is not None:
            windows.add(int(pairs.window))
        if len(windows) > 1:
            raise ValueError(f"models and pairs disagree on the tile window: {sorted(windows)}")
        if window is None:
            window = windows.pop() if windows else 16
        self.window = int(window)
        if pairs is None:
            from ..tiles import make_tiles

            # reflect padding gives every SI pixel a tile, edges included
            pairs = make_tiles(self.si, window=self.window, pad="reflect")
        elif int(pairs.window) != self.window:
            raise ValueError(f"pairs have window {pairs.window}, expected {self.window}")
        self.pairs = pairs
        if tuple(pairs.scan_shape) != tuple(viewer.scan_shape):
            raise ValueError(
                f"pairs are on scan {tuple(pairs.scan_shape)} but the viewer shows "
                f"{tuple(viewer.scan_shape)}"
            )
        self.last_error: str | None = None
        if spectrum_view is not None and spectrum_view.energy.size != pairs.n_energy:
            spectrum_view.set_energy(pairs.energy)
        viewer.window = self.window
        self.compare = None
        if compare and self.si is not None and spectrum_view is not None:
            from .spectrum_compare import SpectrumCompare

            self.compare = SpectrumCompare(viewer, spectrum_view, self.si)
        viewer.observe(self._on_position, names="position")
        self.update()

    def unlink(self) -> None:
        """Stop following the viewer (and stop the spectrum comparison)."""
        self.viewer.unobserve(self._on_position, names="position")
        if self.compare is not None:
            self.compare.close()

    def _on_position(self, _change: dict) -> None:
        self.update()

    def probe(self, row: int, col: int) -> dict[str, Any]:
        """Measured data and predictions at SI pixel (row, col).

        Returns a dict with "spectrum" (E,), "tile" (w, w), "spectra" {name: (E,)}
        from im2spec models and "tiles" {name: (w, w)} from spec2im models.
        """
        index = self.pairs.index_of(row, col)
        if index is None:
            raise LookupError(f"no tile is centred on SI pixel ({row}, {col}) in these pairs")
        tile = np.array(self.pairs.tile(index), dtype=np.float32)  # own copy: may be a read-only view
        if self.si is not None:
            spectrum = np.asarray(self.si.spectra[row, col], dtype=np.float32)
        else:
            spectrum = self.pairs.spectra[index]
        spectra, tiles = {}, {}
        for name, model in self.models.items():
            # a model reads the tile and predicts a spectrum, or the other way round
            if model.input_kind == "image":
                spectra[name] = np.asarray(model.predict(tile))
            else:
                tiles[name] = np.asarray(model.predict(spectrum))
        return {"spectrum": spectrum, "tile": tile, "spectra": spectra, "tiles": tiles}

    def update(self) -> None:
        """Refresh the linked views for the viewer's current position."""
        row, col = self.viewer.position
        try:
            data = self.probe(row, col)
            if self.spectrum_view is not None:
                self.spectrum_view.update(measured=data["spectrum"], predictions=data["spectra"])
            if self.tile_view is not None:
                self.tile_view.set_tiles(measured=data["tile"], predictions=data["tiles"])
        except Exception as exc:  # shown in the widget: a browser click has no traceback
            self.last_error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            self.viewer.message = f"probe ({row}, {col}): {self.last_error}"
            return
        if self.last_error is not None:
            self.last_error = None
            self.viewer.message = ""


def link(
    viewer: Any,
    spectrum_view: Any = None,
    tile_view: Any = None,
    models: Any = (),
    si: Any = None,
    pairs: Any = None,
    window: int | None = None,
    compare: bool = True,
) -> ProbeLink:
    """Make clicks on ``viewer`` update ``spectrum_view`` and ``tile_view``; see :class:`ProbeLink`.

    With an SI and a spectrum view (and ``compare=True``) the spectrum view also gets the
    comparison tools: pin, region box, energy-window map (``link(...).compare``).

    Examples
    --------
    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> from plasmonwidgets.widgets import HAADFViewer, SpectrumView
    >>> viewer, spectra = HAADFViewer(si), SpectrumView(energy=si.energy)
    >>> linked = link(viewer, spectra, si=si, window=8)   # 8 x 8 HAADF tiles
    >>> viewer.position = [5, 6]                     # a click; the spectrum view follows
    """
    return ProbeLink(viewer, spectrum_view, tile_view, models, si=si, pairs=pairs, window=window,
                     compare=compare)
