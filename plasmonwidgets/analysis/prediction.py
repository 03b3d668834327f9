"""Predicting a whole spectrum image from a HAADF image alone (im2spec).

Imaging is 10³–10⁵ times faster than spectroscopy, so a trained im2spec model
turns a new HAADF image into an estimated SI. Tiles are cut with exactly the
geometry used for training (:func:`plasmonwidgets.tiles.tile_grid`, as
:func:`~plasmonwidgets.tiles.make_tiles`) from a zero-copy view of the image and
predicted ``chunk`` at a time, so memory is the image, the output and one chunk of
tiles, for any image size.

A lazy image (dask array or lazy HyperSpy signal) gives a lazy prediction by default:
a Dask graph of one task per block of the SI grid
(:mod:`~plasmonwidgets.analysis.lazy_prediction`), computed where and when the caller
says (locally, on a ``dask.distributed`` cluster, or streamed into a file by
:func:`~plasmonwidgets.analysis.predict_to_file`), never holding the whole output.

Before predicting, the data are checked against the model: the energy axis asked
for against the model's, the image's pixel size against the training data's (when
both are known, through ``reference=``), and the image's intensities against the
HAADF statistics the model stored when it was trained (its input normalisation).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .._compat import renamed_keywords
from ..spectrum_image import _is_lazy
from ._inputs import check_model

__all__ = ["predict_spectrum_image", "PROGRESS_MIN_TILES"]

#: with progress=None a bar is shown from this many tiles on
PROGRESS_MIN_TILES = 50_000
#: tolerated relative difference between the image's pixel size and the training data's
PIXEL_SIZE_TOLERANCE = 0.05
#: the image mean may lie this many training standard deviations from the training mean
INTENSITY_Z_LIMIT = 3.0
#: and its standard deviation within this factor of the training one
INTENSITY_SPREAD_LIMIT = 5.0
_UNCALIBRATED_UNITS = ("", "<undefined>", "px", "pixel", "pixels", "haadf px")


class _Image:
    """The HAADF to predict from, with what is known about it."""

    def __init__(self, data: np.ndarray, *, scale: int | None = None, pixel: float | None = None,
                 unit: str | None = None, energy: np.ndarray | None = None,
                 normalization: Any = None, source: str = "array"):
        self.data, self.scale, self.pixel, self.unit = data, scale, pixel, unit
        self.energy, self.normalization, self.source = energy, normalization, source


def _as_haadf(haadf: Any) -> np.ndarray:
    if _is_lazy(haadf):  # NaN/Inf are found block by block when the prediction runs
        if np.dtype(haadf.dtype).kind not in "biuf":
            raise TypeError(f"haadf must hold real numbers, got dtype {haadf.dtype}")
        if haadf.ndim != 2:
            raise ValueError(f"haadf must be a 2-D (H, W) image, got shape {tuple(haadf.shape)}")
        return haadf.astype(np.float32)
    try:
        image = np.asarray(haadf)
    except Exception as exc:
        raise TypeError(f"haadf must be a 2-D numeric array: {exc}") from None
    if image.dtype.kind not in "biuf":
        raise TypeError(f"haadf must hold real numbers, got dtype {image.dtype}")
    if image.ndim != 2:
        raise ValueError(f"haadf must be a 2-D (H, W) image, got shape {image.shape}")
    bad = ~np.isfinite(image)
    if bad.any():
        raise ValueError(
            f"haadf contains {int(bad.sum())} NaN/Inf pixels; fill them (e.g. np.nan_to_num "
            "or inpainting) before predicting"
        )
    return image.astype(np.float32, copy=False)


def _read_lazy(array: Any, name: str) -> np.ndarray:
    """Compute a dask array, read errors naming the file (``io.lazy_read_errors``)."""
    from ..io.names import lazy_read_errors

    with lazy_read_errors(name):
        return np.asarray(array.compute())


def _resolve_input(haadf: Any, lazy: bool | None) -> tuple[_Image, bool]:
    """The image and whether to predict lazily (default: when the image is lazy)."""
    from ..spectrum_image import SpectrumImage

    if isinstance(haadf, SpectrumImage):  # its HAADF is in memory even when the SI is lazy
        return _Image(_as_haadf(haadf.haadf), scale=haadf.scale,
                      pixel=haadf.pixel_size / haadf.scale, unit=haadf.pixel_unit,
                      energy=haadf.energy, normalization=haadf.normalization,
                      source="SpectrumImage"), bool(lazy)
    if hasattr(haadf, "axes_manager") and hasattr(haadf, "data"):  # a HyperSpy signal
        am = haadf.axes_manager
        if am.signal_dimension != 2 or am.navigation_dimension != 0:
            raise ValueError(
                f"expected a single HAADF image (HyperSpy Signal2D without navigation axes), "
                f"got signal dimension {am.signal_dimension} and navigation dimension "
                f"{am.navigation_dimension}"
            )
        x, y = am.signal_axes
        title = str(haadf.metadata.get_item("General.title", "") or "HAADF signal")
        keep = _is_lazy(haadf.data) if lazy is None else bool(lazy)
        data = haadf.data
        if _is_lazy(data) and not keep:
            data = _read_lazy(data, title)
        unit = str(x.units or "")
        pixel = float(x.scale)
        if unit.strip().lower() in _UNCALIBRATED_UNITS or not np.isfinite(pixel) or pixel <= 0:
            pixel, unit = None, None
        elif not np.isclose(float(y.scale), pixel, rtol=1e-3):
            raise ValueError(f"the HAADF signal has non-square pixels ({float(y.scale):g} x {pixel:g} "
                             f"{unit}); resample it to square pixels first")
        return _Image(_as_haadf(data), pixel=pixel, unit=unit, source=f"Signal2D {title!r}"), keep
    if _is_lazy(haadf):
        keep = True if lazy is None else bool(lazy)
        data = haadf if keep else _read_lazy(haadf, "the lazy HAADF image")
        return _Image(_as_haadf(data), source="dask array"), keep
    return _Image(_as_haadf(haadf)), bool(lazy)


def _resolve_scale(img: _Image, scale: Any, pixel_size: float | None, reference: Any) -> int:
    H, W = img.data.shape
    if scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, (int, np.integer, float)) or (
                int(scale) != scale or scale < 1):
            raise ValueError(f"scale must be a positive integer, got {scale!r}")
        if img.scale is not None and int(scale) != img.scale:
            raise ValueError(f"scale={scale} contradicts the SpectrumImage's scale {img.scale}")
        return int(scale)
    if img.scale is not None:
        return img.scale
    target, why = None, ""
    if pixel_size is not None:
        target, why = float(pixel_size), "pixel_size"
    elif reference is not None and img.pixel is not None and reference.pixel_unit == img.unit:
        target, why = reference.pixel_size, "the reference SI's pixel size"
    if target is not None and img.pixel is not None:
        ratio = target / img.pixel
        if round(ratio) < 1 or abs(ratio - round(ratio)) > 1e-3 * ratio:
            raise ValueError(
                f"{why} {target:g} {img.unit} is not a whole number of HAADF pixels "
                f"({img.pixel:g} {img.unit}): {ratio:.4g}; resample the image or pass scale="
            )
        return int(round(ratio))
    raise ValueError(
        f"cannot tell how many HAADF pixels make one SI pixel for this {H}x{W} image "
        f"({img.source}{'' if img.pixel is None else f', {img.pixel:g} {img.unit} pixels'}); "
        "pass scale= (HAADF pixels per predicted SI pixel; scale=1 predicts one spectrum per "
        f"HAADF pixel, {H * W} spectra here), pixel_size= (the SI pixel size, with a calibrated "
        "HyperSpy Signal2D) or reference= (the SpectrumImage the model was trained on)"
    )


def _same_axis(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    step = float(np.min(np.diff(a))) if a.size > 1 else 1.0
    return bool(np.all(np.abs(a - b) <= 0.5 * step))


def _describe(e: np.ndarray) -> str:
    return f"{e[0]:g}-{e[-1]:g} eV, {e.size} channels"


def _resolve_energy(model: Any, energy: Any, img: _Image, reference: Any) -> np.ndarray:
    n_e = int(model.n_energy)
    own = getattr(model, "energy", None)
    if energy is not None:
        energy = np.asarray(energy, dtype=np.float64)
        if energy.shape != (n_e,):
            raise ValueError(f"energy must have shape ({n_e},) to match the model, got {energy.shape}")
        if own is not None and not _same_axis(np.asarray(own), energy):
            raise ValueError(
                f"energy= ({_describe(energy)}) is not the axis this model was trained on "
                f"({_describe(np.asarray(own))}); its spectra are only defined on that axis"
            )
    else:
        energy = own
    if reference is not None:
        if energy is None and reference.n_energy == n_e:
            energy = reference.energy
        elif energy is None or not _same_axis(np.asarray(energy), reference.energy):
            raise ValueError(
                f"the reference SI's energy axis ({_describe(reference.energy)}) is not the "
                f"model's ({'unknown' if energy is None else _describe(np.asarray(energy))}); "
                "pass the SpectrumImage the model was trained on, cropped and binned the same way"
            )
    if energy is None:
        raise ValueError("the model carries no energy axis; pass energy= (E,) in eV")
    energy = np.asarray(energy, dtype=np.float64)
    if img.energy is not None and not _same_axis(energy, img.energy):
        warnings.warn(
            f"the model predicts spectra on {_describe(energy)}, but the SpectrumImage given "
            f"has {_describe(img.energy)}; the prediction uses the model's axis, so crop/bin the "
            "measured SI the same way before comparing", UserWarning, stacklevel=3)
    return energy


def _check_pixel_size(img: _Image, reference: Any) -> None:
    if reference is None or img.pixel is None or reference.pixel_unit != img.unit:
        return
    trained = reference.pixel_size / reference.scale
    if abs(img.pixel / trained - 1) > PIXEL_SIZE_TOLERANCE:
        raise ValueError(
            f"the image has {img.pixel:.4g} {img.unit} HAADF pixels but the model was trained on "
            f"{trained:.4g} {img.unit} pixels (a different magnification): its tiles would cover "
            f"{img.pixel / trained:.3g}x the area; resample the image to {trained:.4g} {img.unit} "
            "pixels first"
        )


def _check_image(model: Any, image: Any, name: str, part: Any) -> None:
    """Warn when the image's intensities are far from the HAADF tiles the model was trained on;
    a lazy image is read once, block by block, and NaN/Inf pixels of its predicted ``part``
    are an error (in memory, :func:`_as_haadf` found them already)."""
    fitted = bool(getattr(model, "is_fitted", False))
    if _is_lazy(image):  # one streaming pass over the image
        import dask
        import dask.array as da

        from .. import io

        bad = (~da.isfinite(part)).sum()
        stats = (image.mean(dtype=np.float64), image.std(dtype=np.float64)) if fitted else ()
        with io.lazy_read_errors(name):
            bad, *stats = dask.compute(bad, *stats)
        if bad:
            raise ValueError(
                f"haadf contains {int(bad)} NaN/Inf pixels; fill them (e.g. np.nan_to_num "
                "or inpainting) before predicting"
            )
    elif fitted:
        stats = image.mean(dtype=np.float64), image.std(dtype=np.float64)
    if not fitted:
        return
    mean = float(model.x_offset.detach().float().mean().cpu())
    spread = float(model.x_scale.detach().float().cpu())
    got_mean, got_spread = float(stats[0]), float(stats[1])
    z = abs(got_mean - mean) / spread if spread > 0 else 0.0
    ratio = got_spread / spread if spread > 0 and got_spread > 0 else 1.0
    if z > INTENSITY_Z_LIMIT or not 1 / INTENSITY_SPREAD_LIMIT <= ratio <= INTENSITY_SPREAD_LIMIT:
        warnings.warn(
            f"the HAADF intensities (mean {got_mean:.4g}, std {got_spread:.4g}) are unlike the "
            f"training tiles (mean {mean:.4g}, std {spread:.4g}): {z:.1f} training std from the "
            "mean; the model extrapolates. Use an image with the same detector settings or "
            "rescale it to the training intensities", UserWarning, stacklevel=3)


def _denormalizer(img: _Image, reference: Any):
    """(function turning model outputs into counts or None, a note on the units)."""
    norm = reference.normalization if reference is not None else img.normalization
    if norm is None:
        if reference is not None:
            return None, "counts"
        return None, "as the training spectra"
    if np.ndim(norm.factor) == 0 and np.ndim(norm.offset) == 0:
        return norm.invert, "counts"
    warnings.warn(
        f"the training spectra were normalised per spectrum ({norm.mode}); a predicted pixel has no "
        "factor to undo, so the prediction stays normalised", UserWarning, stacklevel=3)
    return None, f"normalised ({norm.mode})"


@renamed_keywords(chunk="batch_size")
def predict_spectrum_image(
    model: Any,
    haadf: Any,
    *,
    scale: int | None = None,
    pixel_size: float | None = None,
    pixel_unit: str | None = None,
    energy: Any = None,
    reference: Any = None,
    batch_size: int = 4096,
    pad: str | None = None,
    progress: bool | None = None,
    lazy: bool | None = None,
    chunks: int | tuple[int, int] | None = None,
    precision: str = "float32",
    report: str | None = None,
):
    """Predict the SI that a HAADF image would have been measured with.

    Parameters
    ----------
    model : Im2Spec
        A trained im2spec model (tile -> spectrum).
    haadf : SpectrumImage, HyperSpy Signal2D, array (H, W) or dask array (H, W)
        The image, on the intensity scale of the training HAADF. A SpectrumImage gives
        its ``haadf``, ``scale``, pixel size and normalisation (its spectra are never
        read, so a lazy SI costs nothing); a Signal2D gives its pixel size and unit from
        its calibration (lazy signals are read once, errors naming the signal).
    scale : int, optional
        HAADF pixels per predicted SI pixel s; the predicted scan is (H/s, W/s).
        Required for a plain array; inferred for a SpectrumImage, and for a calibrated
        Signal2D from ``pixel_size`` or ``reference``.
    pixel_size, pixel_unit : optional
        The SI pixel size (and unit) of the result; with a calibrated Signal2D,
        ``pixel_size`` (in its unit) sets ``scale``. Without any calibration the result's
        pixel is ``scale`` "HAADF px".
    energy : array (E,), optional
        Energy axis (eV) for the result; must be the model's own when it has one.
    reference : SpectrumImage, optional
        The SI the model was trained on: its pixel size is checked against the image's
        (a different magnification is an error), its energy axis against the model's,
        and its normalisation is undone so the prediction is in counts.
    batch_size : int
        Tiles predicted per model call; memory is bounded by ``batch_size`` tiles.
        (Called ``chunk`` before; ``chunk=`` still works, with a ``DeprecationWarning``.)
    pad : None or "reflect"
        None predicts only SI pixels whose whole window lies inside the image
        and crops the result (and its HAADF) to that rectangle; "reflect"
        mirrors the borders and predicts every pixel (border spectra are then
        extrapolations).
    progress : bool, optional
        A progress bar (``tqdm.auto``); None shows one from ``PROGRESS_MIN_TILES`` tiles.
        In-memory prediction only: a lazy result shows progress where it is computed.
    lazy : bool, optional
        Return lazy spectra (a dask array; nothing is predicted until they are computed
        or saved). Default: lazy for a dask array or a lazy Signal2D, in memory otherwise.
        A lazy image's matching part stays lazy as the result's ``haadf`` (a dask array,
        written block by block when saved, read by ``compute()``), so no step holds the
        whole image; it is read once beforehand, block by block (NaN/Inf pixels in the
        predicted field, and a fitted model's intensity check).
    chunks : int or (int, int), optional
        Lazy prediction only: SI pixels per block side (one Dask task, and one zarr chunk
        when saved; at least half a window). Default: blocks of about 8 MiB of spectra
        (144² SI pixels for 100 channels).
    precision : "float32", "bfloat16" or "auto"
        Arithmetic of the network: "auto" takes bfloat16 (autocast) on CPUs with native
        support, as training does; float32 reproduces ``model.predict`` exactly.
    report : str, optional
        Lazy prediction on a ``dask.distributed`` cluster: every block logs
        ``{"done": tiles, "of": all tiles}`` as an event on this topic, which
        :func:`plasmonwidgets.cluster.worker_progress` turns into a progress bar
        (as :func:`~plasmonwidgets.analysis.predict_to_file` does).

    Returns
    -------
    SpectrumImage
        ``spectra`` (h', w', E) predicted intensities (counts when the training
        normalisation is known), ``haadf`` the matching part of the input (lazy when
        the input is);
        ``metadata["prediction"]`` records the origin (row, col) of the result in the
        full SI grid, the full grid shape, the window, the padding, the scale, the
        intensity units and whether the pixel size is calibrated.

    Warns when the image's intensities are far from the training HAADF's (the model's
    stored input statistics) or when a SpectrumImage given has another energy axis.

    Examples
    --------
    >>> pred = predict_spectrum_image(model, new_si)                      # doctest: +SKIP
    >>> pred = predict_spectrum_image(model, signal2d, reference=train_si)  # doctest: +SKIP
    >>> pred = predict_spectrum_image(model, array, scale=4)              # doctest: +SKIP
    >>> lazy = predict_spectrum_image(model, dask_image, scale=4, chunks=256)  # doctest: +SKIP
    >>> lazy.spectra        # doctest: +SKIP
    dask.array<...>         (h', w', E); lazy.save("pred.zspy") streams it
    """
    from ..spectrum_image import SpectrumImage
    from ..tiles import tile_grid

    check_model(model, "im2spec")
    if reference is not None and not isinstance(reference, SpectrumImage):
        raise TypeError(f"reference must be the SpectrumImage the model was trained on, "
                        f"got {type(reference).__name__}")
    img, lazy = _resolve_input(haadf, lazy)
    image = img.data
    window = int(model.window)
    H, W = image.shape
    if min(H, W) < window:
        raise ValueError(
            f"the HAADF image ({H}x{W}) is smaller than one {window}x{window} model window; "
            f"acquire a field of view of at least {window}x{window} pixels"
        )
    scale = _resolve_scale(img, scale, pixel_size, reference)
    if H % scale or W % scale:
        raise ValueError(
            f"HAADF shape {(H, W)} is not a multiple of scale {scale}; crop it to "
            f"{(H - H % scale, W - W % scale)} first"
        )
    batch_size = int(batch_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if pad not in (None, "reflect"):
        raise ValueError(f"pad must be None or 'reflect', got {pad!r}")
    autocast = _resolve_precision(precision)
    block = _resolve_chunks(chunks, int(model.n_energy)) if lazy else None
    energy = _resolve_energy(model, energy, img, reference)
    _check_pixel_size(img, reference)
    denormalize, units = _denormalizer(img, reference)
    if pixel_size is not None:
        out_pixel, out_unit = float(pixel_size), pixel_unit or img.unit or "nm"
    elif img.pixel is not None:
        out_pixel, out_unit = img.pixel * scale, pixel_unit or img.unit
    else:
        out_pixel, out_unit = float(scale), "HAADF px"
    calibrated = out_unit != "HAADF px"

    h, w = H // scale, W // scale
    grid = tile_grid((H, W), scale, window, pad=pad)
    r0, c0 = int(grid.rows[0]), int(grid.cols[0])
    out_h, out_w = grid.rows.size, grid.cols.size
    # a lazy image stays lazy: the result's HAADF is a dask slice of it, read block by block
    # when saved (or whole only by ``compute()``), so an image larger than memory never is
    part = image[scale * r0 : scale * (r0 + out_h), scale * c0 : scale * (c0 + out_w)]
    _check_image(model, image, img.source, part)
    if lazy:
        from .lazy_prediction import lazy_spectra

        source = image
        if not _is_lazy(image):
            import dask.array as da

            source = da.from_array(image, chunks=(block[0] * scale, block[1] * scale))
        spectra = lazy_spectra(model, source, scale=scale, rows=(r0, r0 + out_h), cols=(c0, c0 + out_w),
                               pad=pad, chunk=block, batch=batch_size, precision=autocast,
                               denormalize=denormalize, report=report)
    else:
        spectra = _predict_in_memory(model, image, grid, window=window, batch_size=batch_size,
                                     progress=progress, precision=autocast, denormalize=denormalize)
    return SpectrumImage(
        spectra,
        energy,
        part,
        scale=scale,
        pixel_size=out_pixel,
        pixel_unit=out_unit,
        metadata={
            "title": "predicted from HAADF",
            "source": {"name": f"prediction from {img.source}"},
            "prediction": {
                "direction": "im2spec",
                "origin": (r0, c0),
                "full_scan_shape": (h, w),
                "window": window,
                "pad": pad,
                "scale": scale,
                "units": units,
                "calibrated": calibrated,
                "precision": autocast or "float32",
            },
        },
    )


def _resolve_precision(precision: Any) -> str | None:
    """"bfloat16" or None (float32) for CPU inference; "auto" follows training's rule."""
    if precision not in ("auto", "float32", "bfloat16"):
        raise ValueError(f"precision must be 'auto', 'float32' or 'bfloat16', got {precision!r}")
    import torch

    from ..training import _resolve_precision as training_precision

    dtype = training_precision(precision, torch.device("cpu"))
    return None if dtype is None else "bfloat16"


def _resolve_chunks(chunks: Any, n_energy: int) -> tuple[int, int]:
    from .lazy_prediction import default_chunk

    if chunks is None:
        n = default_chunk(n_energy)
        return n, n
    pair = (chunks, chunks) if np.ndim(chunks) == 0 else tuple(chunks)
    if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
                                 for v in pair):
        raise ValueError(f"chunks must be a positive number of SI pixels or a (rows, cols) pair of them, "
                         f"got {chunks!r}")
    return int(pair[0]), int(pair[1])


def _predict_in_memory(model: Any, image: np.ndarray, grid: Any, *, window: int, batch_size: int,
                       progress: bool | None, precision: str | None, denormalize: Any) -> np.ndarray:
    """(out_h, out_w, E) spectra of the grid's pixels, ``batch_size`` tiles per model call."""
    from .lazy_prediction import _autocast

    view = sliding_window_view(grid.image(image), (window, window))
    out_h, out_w = grid.rows.size, grid.cols.size
    n_e = int(model.n_energy)
    spectra = np.empty((out_h * out_w, n_e), dtype=np.float32)
    n = out_h * out_w
    show = n >= PROGRESS_MIN_TILES if progress is None else bool(progress)
    bar = None
    if show:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc="predicting spectra", unit="spectrum", leave=True)
    try:
        # centres row-major over the kept rectangle, matching `spectra`
        for start in range(0, n, batch_size):
            idx = np.arange(start, min(start + batch_size, n))
            sr, sc = grid.start_r[idx // out_w], grid.start_c[idx % out_w]
            tiles = np.ascontiguousarray(view[sr, sc], dtype=np.float32)
            with _autocast(precision):
                pred = np.asarray(model.predict(tiles), dtype=np.float32).reshape(len(idx), n_e)
            spectra[idx] = denormalize(pred) if denormalize is not None else pred
            if bar is not None:
                bar.update(len(idx))
    finally:
        if bar is not None:
            bar.close()
    return spectra.reshape(out_h, out_w, n_e)
