"""Chunked, lazy whole-image prediction: one Dask task per block of the SI grid.

The HAADF (H, W) is cut into blocks of ``chunk`` x ``chunk`` SI pixels (``scale`` HAADF
pixels each), every block is extended by a halo of half a window from its neighbours
(:func:`dask.array.overlap.overlap`), and each task predicts the spectra of its block's
SI pixels, ``batch`` tiles at a time. The tiles are cut with the same geometry as
:func:`plasmonwidgets.tiles.tile_grid` and predicted with ``model.predict``, so the
result equals the in-memory path of
:func:`~plasmonwidgets.analysis.predict_spectrum_image` to float32 rounding.

Memory per task: the block with its halo, one batch of tiles and the block's spectra
(``chunk``² x E float32), whatever the image size. The model travels as one
:class:`ModelPayload` node in the graph: a distributed worker fetches it once and
builds the network once per thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import math
import threading
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..cluster import report_to_client, torch_threads_for_worker

__all__ = ["ModelPayload", "lazy_spectra", "default_chunk", "TARGET_BLOCK_BYTES"]

#: default output block size: spectra of one task, in bytes (float32)
TARGET_BLOCK_BYTES = 8 * 2**20


class ModelPayload:
    """A model reduced to what rebuilds it (class, config, weights, energy axis): picklable
    (a model's lock is not) and tokenised by its weights, so Dask ships it once.

    Examples
    --------
    >>> payload = ModelPayload(model)                   # doctest: +SKIP
    >>> copy = pickle.loads(pickle.dumps(payload)).new_model()   # doctest: +SKIP
    """

    def __init__(self, model: Any):
        import torch

        with model.lock:
            state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        buf = io.BytesIO()
        torch.save(state, buf)
        self.cls = type(model)
        self.config = dict(model.config)
        self.weights = buf.getvalue()
        self.energy = None if model.energy is None else np.asarray(model.energy)
        self.token = hashlib.sha256(self.weights + repr(sorted(self.config.items())).encode()).hexdigest()

    def __dask_tokenize__(self):
        return ("plasmonwidgets.ModelPayload", self.token)

    def new_model(self) -> Any:
        """A new model on the CPU with these weights, in eval mode."""
        import torch

        model = self.cls(**self.config, device="cpu")
        model.load_state_dict(torch.load(io.BytesIO(self.weights), weights_only=True))
        model.energy = self.energy
        model.eval()
        return model

    def build(self) -> Any:
        """This payload's model, built once per (process, thread): ``model.predict`` holds a
        per-model lock, so threads of a local scheduler must not share one."""
        cache = _BUILT.__dict__.setdefault("models", {})
        model = cache.get(self.token)
        if model is None:
            model = self.new_model()
            cache.clear()  # one model per thread at a time: a long-lived worker does not pile them up
            cache[self.token] = model
        return model


_BUILT = threading.local()


def _autocast(precision: str | None):
    """torch.autocast for bfloat16 inference on the CPU, or a no-op for float32."""
    if precision != "bfloat16":
        return contextlib.nullcontext()
    import torch

    return torch.autocast("cpu", dtype=torch.bfloat16)


def _predict_block(block: np.ndarray, payload: ModelPayload, *, scale: int, window: int, batch: int,
                   precision: str | None, denormalize: Any, report: tuple[str, int] | None = None
                   ) -> np.ndarray:
    """Spectra (n_r, n_c, E) of the SI pixels of one block with its halo of ``window // 2``;
    ``report`` = (topic, tiles of all blocks): on a distributed worker, log the tiles done."""
    halo = window // 2
    n_r, n_c = (block.shape[0] - 2 * halo) // scale, (block.shape[1] - 2 * halo) // scale
    if not np.isfinite(block.sum(dtype=np.float64)):
        raise ValueError(
            f"the HAADF contains {int((~np.isfinite(block)).sum())} NaN/Inf pixels in a block of "
            f"{n_r}x{n_c} SI pixels; fill them (e.g. np.nan_to_num or inpainting) before predicting"
        )
    torch_threads_for_worker()
    model = payload.build()
    view = sliding_window_view(np.asarray(block, dtype=np.float32), (window, window))
    # in block coordinates the window of SI pixel i starts at i*s + s//2 - window//2 + halo
    start_r = np.arange(n_r) * scale + scale // 2 - window // 2 + halo
    start_c = np.arange(n_c) * scale + scale // 2 - window // 2 + halo
    n = n_r * n_c
    out = np.empty((n, int(model.n_energy)), dtype=np.float32)
    with _autocast(precision):
        for lo in range(0, n, batch):
            idx = np.arange(lo, min(lo + batch, n))
            tiles = np.ascontiguousarray(view[start_r[idx // n_c], start_c[idx % n_c]], dtype=np.float32)
            pred = np.asarray(model.predict(tiles), dtype=np.float32).reshape(len(idx), -1)
            out[idx] = denormalize(pred) if denormalize is not None else pred
    if report is not None:
        report_to_client(report[0], {"done": n, "of": int(report[1])})
    return out.reshape(n_r, n_c, -1)


def default_chunk(n_energy: int) -> int:
    """SI pixels per block side so one block's spectra take about ``TARGET_BLOCK_BYTES``.

    Examples
    --------
    The block side shrinks as spectra get longer (E = 100 vs 2000 channels):

    >>> default_chunk(100) > default_chunk(2000) >= 1
    True
    """
    return max(16, int(math.sqrt(TARGET_BLOCK_BYTES / (4 * max(1, n_energy)))))


def _bounds(first: int, end: int, stop: int, chunk: int, min_last: int) -> tuple[int, ...]:
    """Block sizes (SI pixels) covering [0, stop) so that the kept pixels [first, end) fall into
    regular ``chunk``-sized output chunks (the zarr chunks when saved): the first block also takes
    the pixels before ``first``, the last one those from ``end`` on. A last block shorter than
    ``min_last`` joins its neighbour (the halo must fit in one block)."""
    sizes = [first + min(chunk, end - first)]
    while sum(sizes) < end:
        sizes.append(min(chunk, end - sum(sizes)))
    sizes[-1] += stop - end
    if len(sizes) > 1 and sizes[-1] < min_last:
        sizes[-2] += sizes.pop()
    return tuple(sizes)


def lazy_spectra(model: Any, image: Any, *, scale: int, rows: tuple[int, int], cols: tuple[int, int],
                 pad: str | None, chunk: tuple[int, int], batch: int, precision: str | None,
                 denormalize: Any, report: str | None = None):
    """The predicted spectra of SI rows ``rows`` x columns ``cols`` (half-open, SI grid of the
    unpadded image) as a dask array (n_rows, n_cols, E) float32, chunked ``chunk`` SI pixels
    (at least half a window: a block's halo comes from its neighbour alone).

    ``image`` is a dask array (H, W); ``pad="reflect"`` mirrors the borders like
    :meth:`plasmonwidgets.tiles.TileGrid.image` (numpy's "reflect"; Dask's own boundary
    "reflect" repeats the edge pixel, so the image is padded first, by whole SI pixels).
    With ``report`` (a topic name), each block run on a ``dask.distributed`` worker logs
    ``{"done": its tiles, "of": tiles of all blocks}`` there for the client's progress bar
    (:func:`plasmonwidgets.cluster.worker_progress`).

    Examples
    --------
    Spectra predicted from a lazy (dask) HAADF, computed block by block:

    >>> spectra = lazy_spectra(model, haadf, scale=1, rows=(0, 512), cols=(0, 512), pad=None,
    ...                        chunk=(128, 128), batch=1024, precision=None,
    ...                        denormalize=None)  # doctest: +SKIP
    >>> spectra.shape                                 # doctest: +SKIP
    (512, 512, 100)
    """
    import dask
    import dask.array as da

    window = int(model.window)
    halo = window // 2
    s = int(scale)
    k = -(-halo // s) if pad == "reflect" else 0  # SI pixels of padding on each side
    if k:
        image = da.pad(image, k * s, mode="reflect")
    h, w = image.shape[0] // s, image.shape[1] // s
    min_block = -(-halo // s)  # the halo must fit inside a neighbouring block
    r_sizes = _bounds(rows[0] + k, rows[1] + k, h, max(chunk[0], min_block), min_block)
    c_sizes = _bounds(cols[0] + k, cols[1] + k, w, max(chunk[1], min_block), min_block)
    image = image.astype(np.float32).rechunk((tuple(n * s for n in r_sizes), tuple(n * s for n in c_sizes)))
    # constant 0 beyond the image: only pixels whose windows reach there, which are cropped away
    extended = da.overlap.overlap(image, depth={0: halo, 1: halo}, boundary=0)
    payload = dask.delayed(ModelPayload(model), pure=True)
    spectra = da.map_blocks(
        _predict_block, extended, payload, scale=s, window=window, batch=int(batch),
        precision=precision, denormalize=denormalize,
        report=None if report is None else (str(report), sum(r_sizes) * sum(c_sizes)),
        chunks=(r_sizes, c_sizes, (int(model.n_energy),)), new_axis=2, dtype=np.float32,
        name="predict-spectra-" + dask.base.tokenize(image, payload, s, batch, precision, denormalize,
                                                     report),
    )
    return spectra[rows[0] + k : rows[1] + k, cols[0] + k : cols[1] + k]
