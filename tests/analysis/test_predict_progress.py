"""Progress of out-of-core prediction on a ``dask.distributed`` cluster.

Dask's local progress bar sees nothing of a cluster's tasks, so the prediction blocks
report themselves from the workers (``cluster.report_to_client``) and the client shows a
bar (``cluster.worker_progress``). Run against a real two-process ``LocalCluster``.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

import plasmonwidgets as pw
from plasmonwidgets import analysis
from plasmonwidgets.analysis.predict_file import predict_to_file
from plasmonwidgets.cluster import report_to_client, worker_progress

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("distributed")

WINDOW = 8
N_ENERGY = 24
SIZE, SCALE, CHUNKS = 256, 4, 16
TILES = (SIZE // SCALE) ** 2  # tiles of all blocks: the SI grid, border pixels included


def haadf_image() -> np.ndarray:
    """(SIZE, SIZE) float32: blurred random particles on a background."""
    rng = np.random.default_rng(0)
    return (gaussian_filter((rng.random((SIZE, SIZE)) > 0.97) * 100.0, 1.5) + 5.0).astype(np.float32)


@pytest.fixture(scope="module")
def model():
    model = pw.Im2Spec(window=WINDOW, n_energy=N_ENERGY, latent_dim=3, energy=np.linspace(0.3, 1.5, N_ENERGY),
                       device="cpu", n_layers_enc=2, n_filters_enc=8, n_filters_dec=8, seed=0)
    image = haadf_image()
    model.x_offset.fill_(float(image.mean()))
    model.x_scale.fill_(float(image.std()))
    model.normalization_fitted.fill_(True)
    return model


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cluster:
        yield cluster


def _report(topic: str, n: int, total: int) -> int:
    report_to_client(topic, {"done": n, "of": total})
    return n


def test_worker_reports_reach_the_client_while_it_waits(cluster, capsys):
    with distributed.Client(cluster) as client:
        with worker_progress(client, "test-progress", desc="working", unit="item") as state:
            futures = client.map(_report, ["test-progress"] * 5, [3] * 5, [15] * 5, pure=False)
            client.gather(futures)
            deadline = time.monotonic() + 10
            while state["done"] < 15 and time.monotonic() < deadline:
                time.sleep(0.05)
            live = state["done"]  # counted from the events as they arrived, before leaving
        assert live == 15 and state["total"] == 15
    assert "working" in capsys.readouterr().err
    report_to_client("test-progress", {"done": 1, "of": 1})  # outside a worker: nothing, no error


@pytest.mark.parametrize("how", ["address", "active client"])
def test_predict_to_file_on_a_cluster_shows_progress(model, cluster, tmp_path, capsys, how):
    image = haadf_image()
    lazy = da.from_array(image, chunks=64)
    out = tmp_path / "pred.zspy"
    if how == "address":  # as `plasmonwidgets predict ... --scheduler tcp://...`
        predict_to_file(model, lazy, out, scale=SCALE, chunks=CHUNKS, precision="float32",
                        scheduler=cluster.scheduler_address)
    else:
        with distributed.Client(cluster):
            predict_to_file(model, lazy, out, scale=SCALE, chunks=CHUNKS, precision="float32")
    err = capsys.readouterr().err
    assert "predicting spectra" in err and f"{TILES}/{TILES}" in err  # every block reported
    eager = analysis.predict_spectrum_image(model, image, scale=SCALE, progress=False)
    back = pw.load(out, lazy=True)
    np.testing.assert_allclose(back.spectra.compute(), eager.spectra, rtol=1e-5, atol=1e-6)


def test_no_bar_when_quiet(model, cluster, tmp_path, capsys):
    predict_to_file(model, da.from_array(haadf_image(), chunks=64), tmp_path / "pred.zspy", scale=SCALE,
                    chunks=CHUNKS, precision="float32", scheduler=cluster.scheduler_address, progress=False)
    assert "predicting spectra" not in capsys.readouterr().err
