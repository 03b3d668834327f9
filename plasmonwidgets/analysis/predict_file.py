"""Out-of-core prediction: a HAADF file in, a predicted spectrum image (.zspy) out.

The image is read lazily, the prediction is a Dask graph of one task per block of the
SI grid (:mod:`~plasmonwidgets.analysis.lazy_prediction`), and HyperSpy's writer stores
it block by block, so only a few blocks of spectra are in memory at any time, whatever
the size of the image. The graph runs on the scheduler given (:mod:`plasmonwidgets.cluster`):
locally by default, or on any ``dask.distributed`` cluster. This is the library side of
``plasmonwidgets predict``.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from pathlib import Path
from typing import Any

from .._compat import renamed_keywords

__all__ = ["predict_to_file", "read_haadf"]


def read_haadf(path: str | os.PathLike, *, signal: int | str | None = None,
               display_name: str | None = None) -> Any:
    """The HAADF image of a file as a lazy HyperSpy Signal2D (nothing read but headers).

    Parameters
    ----------
    path : .hspy, .zspy, .emd, .dm3 or .dm4 file
        Checked first for hostile content (:func:`plasmonwidgets.io.check_data_file`).
    signal : int or str, optional
        Which image (index or title) when the file holds several; by default the one
        titled like a dark-field detector (HAADF, ADF, DF), else the only image.
    display_name : str, optional
        The name used for the file in messages.

    Raises
    ------
    DataFileError
        An unreadable or hostile file, or one without a single 2-D image to choose.

    Examples
    --------
    >>> haadf = read_haadf("velox_scan.emd")         # doctest: +SKIP
    >>> haadf.data.shape                             # a dask array, read on .compute()  # doctest: +SKIP
    (1024, 1024)
    """
    from ..io import DataFileError, check_data_file
    from ..io.backend import hs_load
    from ..io.paths import check_path
    from ..io.select import describe, detector_rank, is_image, title_of

    p = check_path(path, "HAADF", hints=display_name is None)
    shown = display_name or str(p)
    # a lazy read needs only the headers in memory: the budget concerns them alone
    check_data_file(p, display_name=display_name, role="HAADF")
    signals = hs_load(p, True, "HAADF")
    images = [i for i, s in enumerate(signals) if is_image(s)]
    if signal is not None:
        chosen = [i for i in images if i == signal or title_of(signals[i]) == signal]
        if not chosen:
            raise DataFileError(f"HAADF file {shown!r} has no image {signal!r}; its images: "
                                + ("; ".join(describe(i, signals[i]) for i in images) or "none") + ".")
        return signals[chosen[0]]
    if not images:
        raise DataFileError(f"HAADF file {shown!r} contains no single 2-D image; it holds: "
                            + "; ".join(describe(i, s) for i, s in enumerate(signals)) + ".")
    ranked = sorted((r, i) for i in images if (r := detector_rank(title_of(signals[i]))) is not None)
    if ranked:
        return signals[ranked[0][1]]
    if len(images) > 1:
        raise DataFileError(f"HAADF file {shown!r} holds several images and none is titled like a "
                            "HAADF/ADF/DF detector: " + "; ".join(describe(i, signals[i]) for i in images)
                            + "; choose one with signal=<index or title>.")
    return signals[images[0]]


@renamed_keywords(batch="batch_size")
def predict_to_file(
    model: Any,
    haadf: Any,
    out: str | os.PathLike,
    *,
    scale: int | None = None,
    pixel_size: float | None = None,
    reference: Any = None,
    chunks: int | tuple[int, int] | None = None,
    batch_size: int = 4096,
    pad: str | None = None,
    precision: str = "auto",
    scheduler: Any = None,
    progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Predict the SI of a HAADF image and write it to ``out`` block by block.

    Parameters
    ----------
    model : Im2Spec or path of a saved model (``model.save``)
    haadf : path of an image file, HyperSpy Signal2D, dask or numpy array (H, W)
        Files are read lazily (:func:`read_haadf`).
    out : path ending in .zspy (zarr, written in parallel) or .hspy
    scale, pixel_size, reference, pad
        As for :func:`~plasmonwidgets.analysis.predict_spectrum_image`.
    chunks : int or (int, int), optional
        SI pixels per block side: one task and one zarr chunk (h, w, E) each. Default:
        about 8 MiB of spectra per block.
    batch_size : int
        Tiles per model call inside a block. (Called ``batch`` before; ``batch=`` still
        works, with a ``DeprecationWarning``.)
    precision : "auto" (bfloat16 where the CPU has it), "bfloat16" or "float32"
    scheduler : None, "threads", "processes", "synchronous", "tcp://host:port" or a Client
        Where the graph runs (:func:`plasmonwidgets.cluster.dask_scheduler`); None uses an
        active ``dask.distributed.Client`` or else the local threaded scheduler.
    progress : bool
        A progress bar: Dask's on stdout for local schedulers; on a distributed cluster one
        (``tqdm``, in spectra) fed by the workers as they finish blocks
        (:func:`plasmonwidgets.cluster.worker_progress`), besides the cluster's dashboard.
    overwrite : bool
        Replace an existing ``out``.

    Returns
    -------
    Path
        ``out``; ``plasmonwidgets.load(out, lazy=True)`` reads it back.

    Memory: a few blocks of spectra and one batch of tiles per worker thread, whatever the
    image size: the HAADF stored alongside the spectra is written block by block too.

    Examples
    --------
    >>> predict_to_file("im2spec.pt", "montage.hspy", "montage_si.zspy", scale=4)  # doctest: +SKIP
    """
    from ..cluster import dask_scheduler, worker_progress
    from ..io import lazy_read_errors, save
    from .prediction import predict_spectrum_image

    if isinstance(model, (str, os.PathLike)):
        from ..models import load_model

        model = load_model(model)
    target = Path(out).expanduser()
    if target.suffix.lower() not in (".zspy", ".hspy"):
        raise ValueError(f"out must end in .zspy or .hspy (a file HyperSpy writes block by block), "
                         f"got {str(out)!r}")
    if target.exists() and not overwrite:
        raise FileExistsError(f"{str(target)!r} already exists; pass overwrite=True (--overwrite) "
                              "to replace it")
    name = str(haadf) if isinstance(haadf, (str, os.PathLike)) else "the HAADF image"
    if isinstance(haadf, (str, os.PathLike)):
        haadf = read_haadf(haadf)
    with contextlib.ExitStack() as stack:
        client = stack.enter_context(dask_scheduler(scheduler))
        # Dask's local progress bar sees nothing of a cluster's tasks: there the blocks report
        topic = f"plasmonwidgets-predict-{uuid.uuid4().hex}" if client is not None and progress else None
        pred = predict_spectrum_image(model, haadf, scale=scale, pixel_size=pixel_size, reference=reference,
                                      batch_size=batch_size, pad=pad, lazy=True, chunks=chunks,
                                      precision=precision, report=topic)
        pred.metadata["source"] = {"name": f"prediction from {name}"}
        if not progress:
            # local schedulers: HyperSpy's writer shows Dask's progress bar on stdout while it
            # stores the blocks; no switch reaches it through ``save``, so quiet means no stdout
            stack.enter_context(contextlib.redirect_stdout(stack.enter_context(open(os.devnull, "w"))))
        if topic is not None:
            stack.enter_context(worker_progress(client, topic, desc="predicting spectra", unit="spectrum"))
        stack.enter_context(lazy_read_errors(name))
        return save(pred, target, overwrite=overwrite)
