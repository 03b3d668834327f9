"""Lazy, chunked prediction and the Dask schedulers it runs on.

The lazy path (one Dask task per block of the SI grid, halo of half a window) must give
the in-memory prediction to float32 rounding for every geometry, on the local threaded
scheduler and on a real two-process ``LocalCluster``, and stream into a .zspy file.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

import plasmonwidgets as pw
from plasmonwidgets import analysis
from plasmonwidgets.analysis.lazy_prediction import ModelPayload
from plasmonwidgets.analysis.predict_file import predict_to_file, read_haadf
from plasmonwidgets.cluster import dask_scheduler

da = pytest.importorskip("dask.array")
hs = pytest.importorskip("hyperspy.api")

WINDOW = 8
N_ENERGY = 24
ENERGY = np.linspace(0.3, 1.5, N_ENERGY)


def haadf_image(shape=(40, 52), seed=0) -> np.ndarray:
    """Blurred random particles on a background: (H, W) float32 counts."""
    rng = np.random.default_rng(seed)
    image = gaussian_filter((rng.random(shape) > 0.97) * 100.0, 1.5) + 5.0
    return image.astype(np.float32)


@pytest.fixture(scope="module")
def model():
    # untrained weights are as good as trained ones for comparing two ways of predicting;
    # fitted input statistics make the intensity check run (one lazy pass over the image)
    model = pw.Im2Spec(window=WINDOW, n_energy=N_ENERGY, latent_dim=3, energy=ENERGY, device="cpu",
                       n_layers_enc=2, n_filters_enc=8, n_filters_dec=8, seed=0)
    image = haadf_image()
    model.x_offset.fill_(float(image.mean()))
    model.x_scale.fill_(float(image.std()))
    model.normalization_fitted.fill_(True)
    return model


@pytest.mark.parametrize(("scale", "pad", "chunks", "shape"), [
    (1, None, 7, (40, 52)),
    (1, "reflect", (5, 9), (40, 52)),
    (2, None, 4, (40, 52)),
    (3, "reflect", 6, (39, 51)),
    (4, None, 64, (40, 52)),  # one block
    (2, "reflect", 1, (40, 52)),  # blocks smaller than the halo: raised to half a window
])
def test_lazy_prediction_equals_the_in_memory_one(model, scale, pad, chunks, shape):
    image = haadf_image(shape)
    eager = analysis.predict_spectrum_image(model, image, scale=scale, pad=pad, progress=False)
    lazy = analysis.predict_spectrum_image(model, da.from_array(image, chunks=(13, 17)), scale=scale,
                                           pad=pad, chunks=chunks)
    assert lazy.is_lazy and not eager.is_lazy
    assert lazy.scan_shape == eager.scan_shape
    assert lazy.metadata["prediction"] == eager.metadata["prediction"]
    np.testing.assert_array_equal(lazy.haadf, eager.haadf)
    rows = (chunks, chunks) if np.ndim(chunks) == 0 else chunks
    rows = [max(n, -(-(WINDOW // 2) // scale)) for n in rows]
    # regular blocks of `chunks` SI pixels (the zarr chunks when saved), only the last shorter
    for got, step in zip(lazy.spectra.chunks[:2], rows):
        assert all(c == step for c in got[:-1]) and 0 < got[-1] <= step
    np.testing.assert_allclose(lazy.spectra.compute(), eager.spectra, rtol=1e-5, atol=1e-6)


def test_lazy_input_gives_lazy_output_by_default(model):
    image = haadf_image()
    sig = hs.signals.Signal2D(image).as_lazy()
    assert analysis.predict_spectrum_image(model, sig, scale=2).is_lazy
    assert analysis.predict_spectrum_image(model, da.from_array(image), scale=2).is_lazy
    assert not analysis.predict_spectrum_image(model, da.from_array(image), scale=2, lazy=False,
                                               progress=False).is_lazy
    assert analysis.predict_spectrum_image(model, image, scale=2, lazy=True).is_lazy
    assert not analysis.predict_spectrum_image(model, image, scale=2, progress=False).is_lazy


def test_the_model_is_one_node_of_the_graph(model):
    lazy = analysis.predict_spectrum_image(model, haadf_image(), scale=1, lazy=True, chunks=5)
    graph = dict(lazy.spectra.__dask_graph__())
    payloads = [v for v in graph.values() if isinstance(getattr(v, "value", v), ModelPayload)]
    assert len(lazy.spectra.to_delayed().ravel()) > 30 and len(payloads) == 1
    # tokenised by its weights: the same model gives the same graph keys
    again = analysis.predict_spectrum_image(model, haadf_image(), scale=1, lazy=True, chunks=5)
    assert again.spectra.name == lazy.spectra.name


def test_bfloat16_inference_is_close_to_float32(model):
    image = haadf_image()
    fp32 = analysis.predict_spectrum_image(model, image, scale=2, progress=False)
    bf16 = analysis.predict_spectrum_image(model, image, scale=2, lazy=True, chunks=8, precision="bfloat16")
    assert bf16.metadata["prediction"]["precision"] == "bfloat16"
    got = bf16.spectra.compute()
    scale = np.abs(fp32.spectra).max()
    assert np.abs(got - fp32.spectra).max() < 0.05 * scale
    assert not np.array_equal(got, fp32.spectra)  # it really ran in bfloat16


def test_lazy_prediction_bad_input(model):
    image = haadf_image()
    bad = image.copy()
    bad[30, 40] = np.nan  # inside the predicted field: found when its HAADF is read
    with pytest.raises(ValueError, match="1 NaN/Inf pixels; fill them"):
        analysis.predict_spectrum_image(model, da.from_array(bad, chunks=20), scale=2, chunks=6)
    bad = image.copy()
    bad[0, 40] = np.nan  # in the border only tiles see: found by the block that reads it
    lazy = analysis.predict_spectrum_image(model, da.from_array(bad, chunks=20), scale=2, chunks=6)
    with pytest.raises(ValueError, match="1 NaN/Inf pixels in a block"):
        lazy.spectra.compute()
    for chunks in (0, (4, 0), (1, 2, 3), 2.5):
        with pytest.raises(ValueError, match="chunks must be a positive number of SI pixels"):
            analysis.predict_spectrum_image(model, image, scale=2, lazy=True, chunks=chunks)
    with pytest.raises(ValueError, match="precision must be"):
        analysis.predict_spectrum_image(model, image, scale=2, lazy=True, precision="half")
    with pytest.raises(ValueError, match="2-D"):
        analysis.predict_spectrum_image(model, da.ones((2, 16, 16)), scale=1)


# ------------------------------------------------------------------ out of core, to a file
def _haadf_file(path, image, title="HAADF"):
    sig = hs.signals.Signal2D(image)
    sig.metadata.General.title = title
    sig.save(path)
    return path


def test_predict_to_file_streams_blocks_into_zspy(model, tmp_path):
    image = haadf_image((48, 64))
    src = _haadf_file(tmp_path / "haadf.hspy", image)
    out = predict_to_file(model, src, tmp_path / "pred.zspy", scale=2, chunks=6, precision="float32",
                          progress=False)
    back = pw.load(out, lazy=True)
    eager = analysis.predict_spectrum_image(model, image, scale=2, progress=False)
    assert back.is_lazy and back.spectra.chunksize[:2] == (6, 6)  # the blocks are the zarr chunks
    np.testing.assert_allclose(back.spectra.compute(), eager.spectra, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(back.haadf, eager.haadf)
    with pytest.raises(FileExistsError, match="overwrite"):
        predict_to_file(model, src, out, scale=2)
    with pytest.raises(ValueError, match=r"\.zspy or \.hspy"):
        predict_to_file(model, src, tmp_path / "pred.npz", scale=2)


def test_read_haadf_picks_the_detector_image_lazily(tmp_path):
    image = haadf_image()
    src = _haadf_file(tmp_path / "one.hspy", image, title="whatever")
    sig = read_haadf(src)
    assert sig._lazy and sig.data.shape == image.shape
    spectra = hs.signals.Signal1D(np.ones((4, 5, 8)))
    spectra.save(tmp_path / "spectra.hspy")
    with pytest.raises(pw.io.DataFileError, match="no single 2-D image"):
        read_haadf(tmp_path / "spectra.hspy")


def test_predict_command_end_to_end(model, tmp_path):
    """``plasmonwidgets predict`` in a fresh process: model file, HAADF file in, .zspy out."""
    model.save(tmp_path / "m.pt")
    image = haadf_image((48, 64))
    _haadf_file(tmp_path / "haadf.hspy", image)
    cmd = [sys.executable, "-m", "plasmonwidgets.app.cli", "predict", str(tmp_path / "haadf.hspy"),
           "--model", str(tmp_path / "m.pt"), "--out", str(tmp_path / "pred.zspy"), "--scale", "4",
           "--chunks", "5", "--precision", "float32"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "100% Completed" in done.stdout + done.stderr  # the progress bar
    assert "written to" in done.stdout
    back = pw.load(tmp_path / "pred.zspy", lazy=True)
    eager = analysis.predict_spectrum_image(model, image, scale=4, progress=False)
    np.testing.assert_allclose(back.spectra.compute(), eager.spectra, rtol=1e-5, atol=1e-6)
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)  # refuses to overwrite
    assert again.returncode == 2 and "already exists" in again.stderr


# -------------------------------------------------------------------------- on a cluster
@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                  dashboard_address=None) as cluster:
        yield cluster


def test_the_same_graph_runs_on_a_two_process_cluster(model, cluster, tmp_path):
    from distributed import Client, get_task_stream

    image = haadf_image((48, 64))
    eager = analysis.predict_spectrum_image(model, image, scale=2, progress=False)
    with dask_scheduler(cluster.scheduler_address) as client:
        lazy = analysis.predict_spectrum_image(model, da.from_array(image, chunks=16), scale=2, chunks=4)
        with get_task_stream(client) as stream:
            got = lazy.spectra.compute()
    np.testing.assert_allclose(got, eager.spectra, rtol=1e-5, atol=1e-6)
    workers = {t["worker"] for t in stream.data if t["key"][0].startswith("predict-spectra")}
    assert len(workers) == 2  # both worker processes predicted blocks
    # an active client is used without naming it; the workers read the HAADF file and write the store
    src = _haadf_file(tmp_path / "haadf.hspy", image)
    with Client(cluster) as client:
        out = predict_to_file(model, src, tmp_path / "pred.zspy", scale=2, chunks=4, precision="float32",
                              scheduler=None)
        assert client.has_what()  # connected
    np.testing.assert_allclose(pw.load(out, lazy=True).spectra.compute(), eager.spectra,
                               rtol=1e-5, atol=1e-6)


def test_scheduler_choices():
    import dask

    with dask_scheduler("synchronous") as client:
        assert client is None and dask.config.get("scheduler") == "synchronous"
    with pytest.raises(ValueError, match="tcp://host:8786"):
        with dask_scheduler("my-cluster"):
            pass
    with pytest.raises(TypeError, match=r"dask\.distributed\.Client"):
        with dask_scheduler(42):
            pass


# ----------------------------------------------------------------------- sweeps on a cluster
def _small_si() -> pw.SpectrumImage:
    """A 24x24 scan at scale 1 whose spectra follow the local HAADF intensity."""
    image = haadf_image((24, 24), seed=1)
    density = gaussian_filter(image, 2.0)
    density = (density - density.min()) / (density.max() - density.min())
    peak = 0.6 + 0.6 * density
    spectra = 1.0 / (1 + ((ENERGY - peak[..., None]) / 0.1) ** 2)
    return pw.SpectrumImage(spectra, ENERGY, image)


def test_latent_sweep_trains_one_task_per_model_on_the_cluster(cluster):
    from distributed import Client

    si = _small_si()
    train, test = pw.make_tiles(si, window=WINDOW).split("halves")
    options = dict(dims=(2,), epochs=1, si=si, return_models=True, progress=False,
                   model_kwargs=dict(n_layers_enc=2, n_filters_enc=8, n_filters_dec=8, device="cpu"),
                   train_kwargs=dict(batch_size=64, augment=None))
    here = analysis.latent_sweep(train, test, "im2spec", seed=0, **options)
    with Client(cluster) as client:  # an ensemble: two seeds, two tasks
        there = analysis.latent_sweep(train, test, "im2spec", seed=(0, 1), client=client, **options)
    assert [(row["latent_dim"], row["seed"]) for row in there] == [(2, 0), (2, 1)]
    for a, b in zip(here, there[:1]):
        assert b["model"].latent_dim == b["latent_dim"]
        # the same seeds: the same training, up to float summation order across thread counts
        assert b["test_nmse"] == pytest.approx(a["test_nmse"], rel=0.02)
        np.testing.assert_allclose(b["model"].predict(test.images[:20]), a["model"].predict(test.images[:20]),
                                   rtol=0.05, atol=1e-3)
    assert there[0]["test_nmse"] != there[1]["test_nmse"]  # another seed, another model
    with pytest.raises(ValueError, match="scheduler address"):
        analysis.latent_sweep(train, test, "im2spec", client="localhost", **options)
