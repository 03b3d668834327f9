"""A lazy HAADF stays lazy through prediction and saving: never held in memory as a whole.

The HAADF is generated block by block by a function that counts its calls, so the tests
see every read; memory is measured with ``tracemalloc`` (numpy's buffers are traced) and
every task result of the saving graph is inspected, so a step that gathered the whole
image (in the graph or outside it) would show.
"""

from __future__ import annotations

import threading
import tracemalloc

import numpy as np
import pytest

import plasmonwidgets as pw
from plasmonwidgets import analysis
from plasmonwidgets.analysis.predict_file import predict_to_file

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

WINDOW = 8
N_ENERGY = 24
MEAN, SPREAD = 50.0, 10.0


class CountingHaadf:
    """A lazily generated (size, size) float32 HAADF: each block drawn from its position
    when computed; ``calls`` counts the blocks made and ``largest`` the biggest one."""

    def __init__(self, size: int, block: int):
        self.calls, self.largest, self.lock = 0, 0, threading.Lock()

        def make(x, block_info=None):
            loc = block_info[None]["chunk-location"]
            with self.lock:
                self.calls += 1
                self.largest = max(self.largest, x.size)
            rng = np.random.default_rng(1000 * loc[0] + loc[1])
            return (MEAN + SPREAD * rng.standard_normal(x.shape)).astype(np.float32)

        self.array = da.zeros((size, size), chunks=block, dtype=np.float32).map_blocks(make, dtype=np.float32)


@pytest.fixture(scope="module")
def model():
    # untrained weights serve to compare two ways of predicting; fitted input statistics make
    # the intensity check run (one streaming pass over a lazy image)
    model = pw.Im2Spec(window=WINDOW, n_energy=N_ENERGY, latent_dim=3, energy=np.linspace(0.3, 1.5, N_ENERGY),
                       device="cpu", n_layers_enc=2, n_filters_enc=8, n_filters_dec=8, seed=0)
    model.x_offset.fill_(MEAN)
    model.x_scale.fill_(SPREAD)
    model.normalization_fitted.fill_(True)
    return model


class _LargestResult(dask.callbacks.Callback):
    """Records, for the local scheduler's graphs, the largest array a task returned and the
    most array elements one computation handed back to its caller (a whole image read by
    ``compute()`` or ``np.asarray`` is gathered there, outside the graph)."""

    def __init__(self):
        super().__init__()
        self.largest = self.returned = 0

    def _posttask(self, key, result, dsk, state, worker_id):
        if isinstance(result, np.ndarray):
            self.largest = max(self.largest, result.size)

    def _finish(self, dsk, state, errored):
        # what is left in the cache at the end are the results going back to the caller
        self.returned = max(self.returned, sum(v.size for v in state["cache"].values()
                                               if isinstance(v, np.ndarray)))


def test_a_lazy_haadf_larger_than_the_budget_is_never_read_whole(model):
    # 8192² float32 = 256 MiB if it were ever gathered; blocks of 1024² = 4 MiB
    haadf = CountingHaadf(8192, 1024)
    tracemalloc.start()
    try:
        pred = analysis.predict_spectrum_image(model, haadf.array, scale=4)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert pred.is_lazy
    assert isinstance(pred.haadf, da.Array)  # a slice of the lazy input, not an in-memory copy
    assert pred.haadf.shape == (pred.scan_shape[0] * 4, pred.scan_shape[1] * 4)
    # the intensity check's one streaming pass read each block once, never the whole image
    assert haadf.calls == 64 and haadf.largest == 1024 * 1024
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MiB traced while building the prediction"
    assert "HAADF 8184x8184" in repr(pred)  # shapes are known without reading anything


def test_saving_streams_the_haadf_and_equals_the_in_memory_path(model, tmp_path):
    haadf = CountingHaadf(256, 64)
    image = haadf.array.compute()  # the in-memory reference, read before counting
    haadf.calls = haadf.largest = 0
    largest = _LargestResult()
    with largest:
        out = predict_to_file(model, haadf.array, tmp_path / "pred.zspy", scale=4, chunks=16,
                              precision="float32", scheduler="threads", progress=False)
    # the saving graph: blocks of the HAADF in, blocks of spectra out; no task held the image
    assert haadf.largest == 64 * 64
    assert 0 < largest.largest < image.size and largest.returned < image.size // 4
    eager = analysis.predict_spectrum_image(model, image, scale=4, progress=False)
    back = pw.load(out, lazy=True)
    np.testing.assert_array_equal(back.haadf, eager.haadf)
    np.testing.assert_allclose(back.spectra.compute(), eager.spectra, rtol=1e-5, atol=1e-6)
    # in memory on request: compute() reads the HAADF with the spectra
    lazy = analysis.predict_spectrum_image(model, haadf.array, scale=4, chunks=16)
    assert isinstance(lazy.haadf, da.Array)
    done = lazy.compute()
    assert isinstance(done.haadf, np.ndarray) and not done.is_lazy
    np.testing.assert_array_equal(done.haadf, eager.haadf)
    np.testing.assert_allclose(done.spectra, eager.spectra, rtol=1e-5, atol=1e-6)
