"""Predicting a whole spectrum image from a HAADF image alone (im2spec).

Imaging is 10³–10⁵ times faster than spectroscopy, so a trained im2spec model
turns a new HAADF image into an estimated SI. Tiles are cut with exactly the
geometry used for training (:func:`plasmonwidgets.tiles.make_tiles`) and
predicted chunk by chunk, so memory stays bounded for any image size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._inputs import check_model

__all__ = ["predict_spectrum_image"]


def _as_haadf(haadf: Any) -> np.ndarray:
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


def predict_spectrum_image(
    model: Any,
    haadf: Any,
    scale: int | None = None,
    chunk: int = 4096,
    pad: str | None = None,
    energy: Any = None,
    pixel_size: float | None = None,
    pixel_unit: str | None = None,
):
    """Predict the SI that a HAADF image would have been measured with.

    Parameters
    ----------
    model : Im2Spec
        A trained im2spec model (tile -> spectrum).
    haadf : array (H, W) or SpectrumImage
        HAADF counts on the same intensity scale as the training HAADF. A
        SpectrumImage contributes its ``haadf``, ``scale`` and pixel size.
    scale : int, optional
        HAADF pixels per SI pixel s (H and W must be multiples of s); the
        predicted scan is (H/s, W/s). Default 1 (or the SpectrumImage's).
    chunk : int
        Tiles predicted per batch; memory is bounded by ``chunk`` tiles.
    pad : None or "reflect"
        None predicts only SI pixels whose whole window lies inside the image
        and crops the result (and its HAADF) to that rectangle; "reflect"
        mirrors the borders and predicts every pixel (border spectra are then
        extrapolations).
    energy : array (E,), optional
        Energy axis (eV) for the result; defaults to ``model.energy``.

    Returns
    -------
    SpectrumImage
        ``spectra`` (h', w', E) predicted intensities, ``haadf`` the matching
        part of the input; ``metadata["prediction"]`` records the origin
        (row, col) of the result in the full SI grid, the full grid shape, the
        window and the padding.
    """
    from ..spectrum_image import SpectrumImage
    from ..tiles import make_tiles

    check_model(model, "im2spec")
    default_size, default_unit = 1.0, "nm"
    if isinstance(haadf, SpectrumImage):
        scale = haadf.scale if scale is None else scale
        default_size, default_unit = haadf.pixel_size, haadf.pixel_unit
        haadf = haadf.haadf
    image = _as_haadf(haadf)
    scale = 1 if scale is None else scale
    if isinstance(scale, bool) or int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    scale = int(scale)
    window = int(model.window)
    H, W = image.shape
    if min(H, W) < window:
        raise ValueError(
            f"the HAADF image ({H}x{W}) is smaller than one {window}x{window} model window; "
            f"acquire a field of view of at least {window}x{window} pixels"
        )
    if H % scale or W % scale:
        raise ValueError(
            f"HAADF shape {(H, W)} is not a multiple of scale {scale}; crop it to "
            f"{(H - H % scale, W - W % scale)} first"
        )
    chunk = int(chunk)
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    if energy is None:
        energy = getattr(model, "energy", None)
    if energy is None:
        raise ValueError("the model carries no energy axis; pass energy= (E,) in eV")
    energy = np.asarray(energy, dtype=np.float64)
    n_e = int(model.n_energy)
    if energy.shape != (n_e,):
        raise ValueError(f"energy must have shape ({n_e},) to match the model, got {energy.shape}")

    h, w = H // scale, W // scale
    # make_tiles needs a SpectrumImage; a one-channel placeholder SI carries the
    # geometry without allocating anything the size of the output
    grid = SpectrumImage(np.zeros((h, w, 1), np.float32), [0.0], image, scale=scale)
    pairs = make_tiles(grid, window=window, pad=pad)
    rows, cols = pairs.positions[:, 0], pairs.positions[:, 1]
    r0, c0 = int(rows.min()), int(cols.min())
    out_h, out_w = int(rows.max()) - r0 + 1, int(cols.max()) - c0 + 1
    spectra = np.empty((out_h * out_w, n_e), dtype=np.float32)
    # make_tiles orders centres row-major over the kept rectangle, matching `spectra`
    for start in range(0, len(pairs), chunk):
        idx = np.arange(start, min(start + chunk, len(pairs)))
        tiles = pairs.subset(idx).images
        spectra[idx] = np.asarray(model.predict(tiles)).reshape(len(idx), n_e)
    return SpectrumImage(
        spectra.reshape(out_h, out_w, n_e),
        energy,
        image[scale * r0 : scale * (r0 + out_h), scale * c0 : scale * (c0 + out_w)],
        scale=scale,
        pixel_size=default_size if pixel_size is None else pixel_size,
        pixel_unit=default_unit if pixel_unit is None else pixel_unit,
        metadata={
            "title": "predicted from HAADF",
            "prediction": {
                "direction": "im2spec",
                "origin": (r0, c0),
                "full_scan_shape": (h, w),
                "window": window,
                "pad": pad,
            },
        },
    )
