"""TileDataset: many scans, split each on its own, read band by band; training on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch

import plasmonwidgets as pw
from plasmonwidgets.tiles import TilePairs

E = 24
WINDOW = 8
SMALL = dict(n_filters_enc=8, n_filters_dec=8, latent_dim=3)


def lazy(si, rows=2):
    import dask.array as da

    return si.replace(spectra=da.from_array(si.spectra, chunks=(rows, -1, -1)))


def labelled_si(scan, h=14, w=11, s=2, e=6):
    """Channels 0-2 of each spectrum hold (scan, row, col), so a batch names its tiles."""
    rng = np.random.default_rng(scan)
    spectra = rng.random((h, w, e)).astype(np.float32)
    spectra[..., 0] = scan
    spectra[..., 1] = np.arange(h)[:, None]
    spectra[..., 2] = np.arange(w)[None, :]
    haadf = rng.random((s * h, s * w)).astype(np.float32)
    return pw.SpectrumImage(spectra, np.linspace(0.5, 3.0, e), haadf)


def keys(spectra):
    return [tuple(int(v) for v in row[:3]) for row in spectra]


def expected(si, scan, split, window=4):
    train, test = pw.make_tiles(si, window=window).split(**split)
    label = lambda pairs: [(scan, int(r), int(c)) for r, c in pairs.positions]  # noqa: E731
    return label(train), label(test)


def test_batches_cover_every_training_tile_once_and_never_a_test_tile():
    a, b = labelled_si(0), labelled_si(1, h=17, w=9)
    splits = [{"method": "halves", "axis": "rows"}, {"method": "blocks", "seed": 3}]
    # a band of ~3 scan rows: each scan is read in several bands
    data = pw.TileDataset([lazy(a), b], window=4, split=splits, band_bytes=3 * 11 * (6 + 16) * 4)
    assert len(data.bands()) > 4
    train_a, test_a = expected(a, 0, splits[0])
    train_b, test_b = expected(b, 1, splits[1])
    assert len(data) == len(train_a) + len(train_b) and data.counts == [len(train_a), len(train_b)]
    orders = []
    for epoch in range(2):
        batches = list(data.batches(7, seed=epoch))
        assert all(len(im) == 7 for im, _ in batches[:-1]) and 1 <= len(batches[-1][0]) <= 7
        seen = keys(np.concatenate([sp for _, sp in batches]))
        assert sorted(seen) == sorted(train_a + train_b)  # each training tile exactly once
        assert not set(seen) & set(test_a + test_b)
        orders.append(seen)
        # each tile is the HAADF window of its own centre
        images = np.concatenate([im for im, _ in batches])
        k = seen.index(train_b[0])
        ref = pw.make_tiles(b, window=4)
        np.testing.assert_array_equal(images[k], ref.images[ref.index_of(*train_b[0][1:])])
    assert orders[0] != orders[1]  # shuffled anew each epoch
    test = data.with_part("test")
    seen = keys(np.concatenate([p.spectra for p in test.chunks()]))
    assert seen == test_a + test_b and len(test) == len(seen)


def test_paths_are_loaded_lazily_and_a_different_energy_axis_names_the_file(tmp_path):
    a = labelled_si(0).save(tmp_path / "a.hspy")
    b = labelled_si(1).save(tmp_path / "b.hspy")
    other = labelled_si(2)
    other = other.replace(energy=other.energy + 0.1)
    c = other.save(tmp_path / "shifted.hspy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = pw.TileDataset([a, b], window=4)
        assert all(s.si.is_lazy for s in data._scans)
        assert len(data) == sum(len(t) for t in [expected(labelled_si(i), i, {"method": "halves"})[0]
                                                 for i in (0, 1)])
        with pytest.raises(ValueError, match=r"'shifted\.hspy' has an energy axis of 6 channels, "
                                             r"0\.6-3\.1 eV.*'a\.hspy' has 6 channels, 0\.5-3 eV"):
            pw.TileDataset([a, c], window=4)
    with pytest.raises(ValueError, match="need one energy axis"):
        pw.TileDataset([labelled_si(0), labelled_si(1, e=7)], window=4)


def test_one_window_in_haadf_pixels_and_argument_errors():
    coarse = labelled_si(1, s=1)
    coarse.metadata["source"] = {"name": "coarse.hspy"}
    with pytest.raises(ValueError, match=r"'coarse\.hspy' gives 2x2 HAADF-pixel tiles \(scale 1\)"):
        pw.TileDataset([labelled_si(0), coarse], window=2, window_unit="si")
    with pytest.raises(ValueError, match="2 entries for 3 sources"):
        pw.TileDataset([labelled_si(i) for i in range(3)], window=4, split=["halves", "blocks"])
    with pytest.raises(ValueError, match="unknown split method 'diagonal'"):
        pw.TileDataset([labelled_si(0)], window=4, split="diagonal")
    with pytest.raises(TypeError, match="source #1 is a ndarray"):
        pw.TileDataset([labelled_si(0), np.zeros(3)], window=4)


# ------------------------------------------------------------------ training on it
def synthetic_si(size=24, seed=0):
    """The training tests' scan: blobs whose spectra shift with the local HAADF intensity."""
    from test_training import synthetic_si as blobs

    return blobs(size=size, n_energy=E, seed=seed)


def concatenated(parts):
    """One in-memory TilePairs holding the tiles of several scans."""
    return TilePairs(np.concatenate([p.images for p in parts]), np.concatenate([p.spectra for p in parts]),
                     np.concatenate([p.positions for p in parts]), parts[0].energy, (10**6, 10**6))


@pytest.mark.parametrize("direction", ["im2spec", "spec2im"])
def test_training_on_two_scans_matches_training_on_their_concatenated_tiles(direction):
    torch.set_num_threads(1)
    sis = [synthetic_si(seed=0), lazy(synthetic_si(seed=1), rows=4)]
    data = pw.TileDataset(sis, window=WINDOW, split="halves", band_bytes=6 * 24 * (E + 64) * 4)
    assert len(data.bands()) >= 4
    splits = [pw.make_tiles(si, window=WINDOW).split("halves") for si in sis]
    train, test = concatenated([s[0] for s in splits]), concatenated([s[1] for s in splits])
    cls = pw.Im2Spec if direction == "im2spec" else pw.Spec2Im
    results = []
    for train_set, test_set in ((data, data.with_part("test")), (train, test)):
        model = cls(window=WINDOW, n_energy=E, device="cpu", seed=0, **SMALL)
        history = pw.train(model, train_set, test_set, epochs=6, batch_size=32, lr=3e-3, seed=0,
                           progress=False)
        results.append((model, history))
    (streamed, hs), (in_memory, hm) = results
    # the streaming pass fits the normalisation the in-memory one does
    for name in ("x_offset", "x_scale", "y_offset", "y_scale"):
        np.testing.assert_allclose(getattr(streamed, name).numpy(), getattr(in_memory, name).numpy(),
                                   rtol=1e-5, atol=1e-6 * float(getattr(in_memory, name).abs().max()))
    assert (hs.n_train, hs.n_test) == (hm.n_train, hm.n_test) == (len(train), len(test))
    assert hs.train_loss[-1] < 0.8 * hs.train_loss[0]  # it learns
    # same data, another batch order: the same result within run-to-run noise
    assert hs.test_nmse[-1] == pytest.approx(hm.test_nmse[-1], rel=0.25)
    assert hs.train_loss[-1] == pytest.approx(hm.train_loss[-1], rel=0.25)


def test_trainer_checks_a_dataset_against_the_model_and_refuses_carving():
    data = pw.TileDataset([synthetic_si()], window=WINDOW)
    with pytest.raises(ValueError, match="build the TileDataset with window=6"):
        pw.Trainer(pw.Im2Spec(window=6, n_energy=E, device="cpu", **SMALL), data)
    with pytest.raises(TypeError, match="validation carving needs a TilePairs"):
        pw.Trainer(pw.Im2Spec(window=WINDOW, n_energy=E, device="cpu", **SMALL), data, validation=0.1)


MEMORY_SCRIPT = textwrap.dedent("""
    import json, resource, sys, warnings
    import numpy as np, torch
    import plasmonwidgets as pw

    mode, folder, h, w, e = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
    paths = [f"{folder}/scan{k}.hspy" for k in range(2)]
    if mode == "write":  # in its own process, so its memory is not counted below
        for k, path in enumerate(paths):
            rng = np.random.default_rng(k)
            pw.SpectrumImage(rng.random((h, w, e), dtype=np.float32) + 1, np.linspace(0.5, 3.0, e),
                             rng.random((h, w)).astype(np.float32)).save(path)
        sys.exit()
    torch.set_num_threads(1)
    model = pw.Im2Spec(window=4, n_energy=e, latent_dim=2, n_filters_enc=4, n_filters_dec=4,
                       device="cpu")
    options = dict(epochs=1, batch_size=64, progress=False, precision="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = pw.TileDataset(paths, window=4, split="halves", band_bytes=8 * 2**20, mix=1)
        # the model's own working set (activations, gradients, optimizer) on 2 bands of
        # tiles in memory (evaluation batches included): the baseline of the streamed run
        small = pw.make_tiles(pw.load(paths[0], lazy=True), window=4, rows=(0, 24)).split("halves")
        pw.train(model.clone(), *small, **options)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        history = pw.train(model, data, data.with_part("test"), **options)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"before_mb": before, "peak_mb": peak, "n_train": history.n_train,
                      "spectra_mb": len(paths) * h * w * e * 4 / 2**20}))
""")


def test_training_on_lazy_files_keeps_memory_below_the_data_size(tmp_path):
    # two 45 MiB scans (48x48 pixels x 5120 channels) written to .hspy and loaded lazily;
    # training reads them in bands of one HDF5 chunk (a few rows, 8 MiB at most)
    size = ["48", "48", "5120"]
    # a fixed mmap threshold: glibc then returns freed band buffers to the system instead of
    # keeping them in its heap, so the peak shows what is held, not allocator retention
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="1048576")
    for mode in ("write", "train"):
        out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, mode, str(tmp_path), *size],
                             capture_output=True, text=True, timeout=300, env=env)
        assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["n_train"] > 1500
    # the normalisation pass, one epoch and the test evaluation raise the peak above that of
    # training on two bands in memory by far less than the 90 MiB of spectra (in memory the
    # trainer would hold them twice, as read and normalised)
    assert got["peak_mb"] - got["before_mb"] < 0.25 * got["spectra_mb"], got
