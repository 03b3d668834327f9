"""Hostile data files: crafted with h5py / zarr / zipfile in the test, each must be refused
(or bounded) before a reader touches data, and no test may read bytes from outside the
file. Memory limits are checked in a subprocess under RLIMIT_AS so CI never swaps."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest

import plasmonwidgets as pw
from plasmonwidgets import io as pwio
from plasmonwidgets.io import DataFileError, check_data_file, lazy_read_errors
from plasmonwidgets.io.limits import MAX_NPZ_RATIO, default_memory_budget, parse_bytes
from plasmonwidgets.spectrum_image import SpectrumImage

h5py = pytest.importorskip("h5py")
exspy = pytest.importorskip("exspy")

SECRET = np.full(64, 1234.5, np.float32)  # what a server file holds; must never be read


def _small_si() -> SpectrumImage:
    rng = np.random.default_rng(0)
    return SpectrumImage(rng.random((4, 5, 16), dtype=np.float32), np.linspace(0.2, 1.2, 16),
                         rng.random((4, 5), dtype=np.float32), pixel_size=2.0)


def _plain_hspy(path: Path, shape=(2, 2, 16)) -> Path:
    """A foreign (non-plasmonwidgets) EELS .hspy file, as HyperSpy writes it."""
    s = exspy.signals.EELSSpectrum(np.ones(shape, np.float32))
    s.axes_manager.signal_axes[0].units = "eV"
    s.save(path, overwrite=True)
    return path


def _data_path(f) -> str:
    found = []
    f.visititems(lambda name, obj: found.append(name) if isinstance(obj, h5py.Dataset)
                 and name.endswith("/data") else None)
    return found[0]


def _replace_data(path: Path, make) -> Path:
    """Swap the signal's data dataset for what ``make(file, name, attrs)`` creates."""
    with h5py.File(path, "r+") as f:
        name = _data_path(f)
        attrs = dict(f[name].attrs)
        del f[name]
        make(f, name, attrs)
    return path


@pytest.fixture
def secret(tmp_path) -> Path:
    """A 'server file' outside any data folder."""
    path = tmp_path / "server" / "secret.bin"
    path.parent.mkdir()
    path.write_bytes(SECRET.tobytes())
    return path


@pytest.fixture
def no_reader(monkeypatch):
    """Fail if HyperSpy is asked to read anything: refusals must come from the headers."""
    def refuse(*args, **kwargs):
        raise AssertionError("the reader was called on a file that should have been refused")
    monkeypatch.setattr(pwio.backend, "hs_load", refuse)


def _refused(path, *fragments, **kwargs) -> str:
    with pytest.raises(DataFileError) as exc:
        pw.load(path, **kwargs)
    msg = str(exc.value)
    for frag in fragments:
        assert frag.lower() in msg.lower(), f"{frag!r} not in: {msg}"
    return msg


# --------------------------------------------------------------------------- HDF5
def test_hdf5_external_storage_is_refused(tmp_path, secret, no_reader):
    def external(f, name, attrs):
        f.create_dataset(name, shape=(2, 2, 16), dtype="f4",
                         external=[(str(secret), 0, SECRET.nbytes)])
    path = _replace_data(_plain_hspy(tmp_path / "ext.hspy"), external)
    _refused(path, "ext.hspy", "external files")
    with pytest.raises(DataFileError, match="external files"):
        check_data_file(path)


@pytest.mark.parametrize("ext", [".hspy", ".emd", ".h5"])
def test_hdf5_external_link_is_refused(tmp_path, secret, ext):
    other = secret.with_suffix(".h5")
    with h5py.File(other, "w") as f:
        f["x"] = SECRET
    path = _plain_hspy(tmp_path / "a.hspy").rename(tmp_path / f"link{ext}")

    def link(f, name, attrs):
        f[name] = h5py.ExternalLink(str(other), "/x")
    _replace_data(path, link)
    with pytest.raises(DataFileError, match="external link"):
        check_data_file(path)


def test_hdf5_virtual_dataset_is_refused(tmp_path, secret, no_reader):
    other = secret.with_suffix(".h5")
    with h5py.File(other, "w") as f:
        f["x"] = SECRET.reshape(2, 2, 16)

    def virtual(f, name, attrs):
        layout = h5py.VirtualLayout(shape=(2, 2, 16), dtype="f4")
        layout[...] = h5py.VirtualSource(str(other), "x", shape=(2, 2, 16))
        f.create_virtual_dataset(name, layout)
    path = _replace_data(_plain_hspy(tmp_path / "vds.hspy"), virtual)
    _refused(path, "vds.hspy", "virtual dataset")


def test_hdf5_dangling_soft_link_is_refused(tmp_path, no_reader):
    path = _plain_hspy(tmp_path / "soft.hspy")
    with h5py.File(path, "r+") as f:
        f["Experiments/extra"] = h5py.SoftLink("/nowhere/data")
    _refused(path, "soft link", "/nowhere/data", "does not exist")


def test_hdf5_soft_link_inside_the_file_is_fine(tmp_path):
    path = _plain_hspy(tmp_path / "soft_ok.hspy")
    with h5py.File(path, "r+") as f:
        f["shortcut"] = h5py.SoftLink("/" + _data_path(f))
    assert check_data_file(path) >= 2 * 2 * 16 * 4
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert pw.load(path).scan_shape == (2, 2)


def test_real_files_pass_the_check(velox, dm4):
    assert check_data_file(velox) > 3 * 16 * 20 * 2048 * 2  # three uint16 EELS SIs and more
    assert check_data_file(dm4) == dm4.stat().st_size


# --------------------------------------------------------------------------- zarr
@pytest.fixture
def zspy(tmp_path) -> Path:
    pytest.importorskip("zarr")
    (tmp_path / "data").mkdir()
    return _small_si().save(tmp_path / "data" / "scan.zspy")


def _deepest_chunk(store: Path) -> Path:
    chunks = [p for p in store.rglob("*") if p.is_file() and not p.name.startswith(".")]
    return max(chunks, key=lambda p: len(p.parts))


def test_zarr_chunk_symlinked_outside_is_refused(zspy, secret, no_reader):
    chunk = _deepest_chunk(zspy)
    assert len(chunk.relative_to(zspy).parts) >= 3  # deep inside, not the top folder
    chunk.unlink()
    chunk.symlink_to(secret)
    msg = _refused(zspy, "symbolic link", chunk.name)
    with pytest.raises(DataFileError, match="symbolic link"):
        check_data_file(zspy)
    assert "1234.5" not in msg


def test_zarr_folder_symlink_is_refused(zspy, secret, no_reader):
    sub = _deepest_chunk(zspy).parent
    target = secret.parent / "copied"
    sub.rename(target)
    sub.symlink_to(target, target_is_directory=True)
    _refused(zspy, "symbolic link")


def test_zarr_special_file_is_refused(zspy, no_reader):
    chunk = _deepest_chunk(zspy)
    chunk.unlink()
    os.mkfifo(chunk)  # reading a pipe would hang the server
    _refused(zspy, "not a regular file")


def test_zarr_declared_size_counts_every_array(zspy):
    si = _small_si()
    assert check_data_file(zspy) >= si.spectra.nbytes + si.haadf.nbytes


# --------------------------------------------------------------------------- npz
def _npz_with_member(path: Path, shape, *, payload: int | None = None,
                     compression=zipfile.ZIP_DEFLATED) -> Path:
    """A plasmonwidgets .npz whose spectra member declares ``shape`` (float32) and holds
    ``payload`` zero bytes after its header (default: as many as declared)."""
    good = _small_si().save(path.with_name("good.npz"))
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(path, "w", compression) as z:
        for info in src.infolist():
            if info.filename != "spectra.npy":
                z.writestr(info.filename, src.read(info.filename))
        head = io.BytesIO()
        np.lib.format.write_array_header_1_0(
            head, {"descr": "<f4", "fortran_order": False, "shape": tuple(shape)})
        n = int(np.prod(shape)) * 4 if payload is None else payload
        with z.open("spectra.npy", "w", force_zip64=True) as m:
            m.write(head.getvalue())
            block = bytes(1 << 20)
            while n > 0:
                m.write(block[:min(n, len(block))])
                n -= len(block)
    return path


def test_npz_zip_bomb_is_refused_before_inflating(tmp_path):
    bomb = _npz_with_member(tmp_path / "bomb.npz", (64, 64, 4096))  # 64 MiB of zeros
    assert bomb.stat().st_size < 1 << 20
    msg = _refused(bomb, "bomb.npz", "spectra.npy", f"more than {MAX_NPZ_RATIO}:1")
    assert "not unpacked" in msg


def test_npz_member_size_disagreeing_with_header_is_refused(tmp_path):
    path = _npz_with_member(tmp_path / "liar.npz", (512, 512, 512), payload=4096,
                            compression=zipfile.ZIP_STORED)
    _refused(path, "declares a (512, 512, 512)", "not unpacked")


def test_npz_over_budget_is_refused_since_it_cannot_be_lazy(tmp_path):
    path = _npz_with_member(tmp_path / "big.npz", (16, 16, 1024),
                            compression=zipfile.ZIP_STORED)  # 1 MiB, honest
    _refused(path, "memory budget", memory_budget=100_000)
    # within the budget the same file passes the header check (its energy axis does
    # not match these spectra, which the loader then reports)
    assert check_data_file(path, memory_budget=10 * 2**20) >= 16 * 16 * 1024 * 4


def test_npz_with_non_array_member_is_refused(tmp_path):
    path = _small_si().save(tmp_path / "a.npz")
    with zipfile.ZipFile(path, "a") as z:
        z.writestr("notes.txt", "hello")
    _refused(path, "notes.txt", "not a .npy")


# --------------------------------------------------------------------------- budget
def test_memory_budget_env_and_parse(monkeypatch):
    monkeypatch.setenv("PLASMONWIDGETS_MEMORY_BUDGET", "1.5GiB")
    assert default_memory_budget() == int(1.5 * 2**30)
    monkeypatch.setenv("PLASMONWIDGETS_MEMORY_BUDGET", "lots")
    with pytest.raises(ValueError, match="PLASMONWIDGETS_MEMORY_BUDGET"):
        default_memory_budget()
    monkeypatch.delenv("PLASMONWIDGETS_MEMORY_BUDGET")
    assert default_memory_budget() > 0
    assert parse_bytes("500 MB") == 500 * 10**6 and parse_bytes("2048") == 2048


def test_file_over_budget_loads_lazily_with_a_warning(tmp_path):
    path = _plain_hspy(tmp_path / "big.hspy", shape=(8, 8, 256))  # 64 KiB of data
    with pytest.warns(UserWarning) as rec:
        si = pw.load(path, memory_budget=10_000)
    texts = [str(w.message) for w in rec]
    assert any("more than the memory budget" in t and "lazily" in t for t in texts), texts
    assert any("HAADF is blank" in t for t in texts), texts  # no stand-in streamed
    assert si.is_lazy
    assert all(Path(w.filename).resolve() == Path(__file__).resolve() for w in rec), \
        [w.filename for w in rec]  # warnings point at this line, not into the package
    assert np.asarray(si.compute().spectra).shape == (8, 8, 256)


_UNDER_LIMIT = textwrap.dedent("""
    import resource, sys, warnings
    resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))
    warnings.simplefilter("ignore")
    import h5py, numpy as np, exspy
    import plasmonwidgets as pw
    path, lazy = sys.argv[1], sys.argv[2] == "lazy"
    shape = tuple(int(n) for n in sys.argv[3].split("x"))
    s = exspy.signals.EELSSpectrum(np.zeros((2, 2, 4), np.float32))
    s.axes_manager.signal_axes[0].units = "eV"
    s.save(path)
    with h5py.File(path, "r+") as f:  # declare a huge, never written dataset
        name = "Experiments/__unnamed__/data"
        attrs = dict(f[name].attrs)
        del f[name]
        d = f.create_dataset(name, shape=shape, dtype="f4", chunks=True)
        d.attrs.update(attrs)
        for i, n in enumerate(shape):
            f[f"Experiments/__unnamed__/axis-{i}"].attrs["size"] = n
    try:
        si = pw.load(path, lazy=lazy)  # budget: a quarter of the 3 GiB address space
    except pw.io.DataFileError as exc:
        print("REFUSED", exc)
    else:
        print("OK", si.is_lazy, si.scan_shape, si.metadata["haadf_source"])
""")


@pytest.mark.parametrize("shape, lazy, expected", [
    # 4 GiB declared, eager request: loaded lazily, no stand-in summed over empty chunks
    ("1024x1024x1024", "eager", "OK True (1024, 1024) none (blank"),
    # 3 TiB declared: even its 20000 x 20000 image exceeds the budget: refused at once
    ("20000x20000x2048", "lazy", "REFUSED"),
])
def test_huge_declared_file_is_bounded_under_a_memory_limit(tmp_path, shape, lazy, expected):
    """A 30 kB file declaring a huge SI, loaded in a process limited to 3 GiB of address
    space: nothing is allocated for the declared size and the summed-intensity stand-in
    (which would stream every empty chunk) is not computed. That the subprocess finishes
    with this answer (no MemoryError, no hang until the timeout) is the check."""
    out = subprocess.run([sys.executable, "-c", _UNDER_LIMIT, str(tmp_path / "huge.hspy"),
                          lazy, shape], capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    assert expected in out.stdout, out.stdout
    if expected == "REFUSED":
        assert "20000 x 20000 pixels" in out.stdout and "memory budget" in out.stdout


# --------------------------------------------------------------------------- display names
def test_display_name_replaces_the_server_path_everywhere(tmp_path, secret):
    upload = tmp_path / "upload-3f9a"
    upload.mkdir()
    cases = {}
    # truncated file
    good = _plain_hspy(upload / "g.hspy")
    (upload / "cut.hspy").write_bytes(good.read_bytes()[:3000])
    cases["cut.hspy"] = {}
    # external storage
    def external(f, name, attrs):
        f.create_dataset(name, shape=(2, 2, 16), dtype="f4",
                         external=[(str(secret), 0, SECRET.nbytes)])
    _replace_data(_plain_hspy(upload / "ext.hspy"), external)
    cases["ext.hspy"] = {}
    # not a file of that type
    (upload / "text.hspy").write_text("not data\n" * 40)
    cases["text.hspy"] = {}
    # no EELS SI inside
    hs = pytest.importorskip("hyperspy.api")
    hs.signals.Signal2D(np.ones((4, 4), np.float32)).save(upload / "image.hspy")
    cases["image.hspy"] = {}
    # a signal index out of range, a HAADF of the wrong shape, over budget
    cases["g.hspy"] = {"signal": 7}
    for name, kwargs in cases.items():
        with warnings.catch_warnings(record=True):
            warnings.simplefilter("always")
            with pytest.raises(DataFileError) as exc:
                pw.load(upload / name, display_name="scan.hspy", **kwargs)
        msg = str(exc.value)
        assert "scan.hspy" in msg, msg
        assert str(upload) not in msg and "upload-3f9a" not in msg, msg
        assert str(tmp_path) not in msg, msg
        assert exc.value.__cause__ is None  # no chained error carries the path either


def test_display_name_in_warnings_and_source(tmp_path):
    upload = tmp_path / "upload-77"
    upload.mkdir()
    path = _plain_hspy(upload / "tmp1234.hspy", shape=(4, 4, 64))
    with pytest.warns(UserWarning) as rec:
        si = pw.load(path, display_name="my scan.hspy", memory_budget=1000)
    texts = [str(w.message) for w in rec]
    assert any("my scan.hspy" in t for t in texts), texts
    assert not any(str(upload) in t or "tmp1234" in t for t in texts), texts
    assert all(Path(w.filename).resolve() == Path(__file__).resolve() for w in rec)
    assert si.metadata["source"]["name"] == "my scan.hspy"
    assert str(upload) not in json.dumps(si.metadata["source"], default=str)


def test_missing_upload_lists_no_other_server_files(tmp_path):
    (tmp_path / "other_users_scan.hspy").write_bytes(b"x")
    msg = _refused(tmp_path / "other_users_scn.hspy", display_name="scan.hspy")
    assert "other_users" not in msg and str(tmp_path) not in msg


# --------------------------------------------------------------------------- lazy reads
def test_lazy_file_truncated_afterwards_names_the_file(tmp_path):
    path = _plain_hspy(tmp_path / "scan.hspy", shape=(64, 64, 256))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        si = pw.load(path, lazy=True, haadf=np.ones((64, 64), np.float32))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])  # the file shrinks after it was opened
    with pytest.raises(DataFileError, match=r"Cannot read the data of 'scan\.hspy'.*load it again"):
        with lazy_read_errors(si.metadata["source"]["name"]):
            np.asarray(si.spectra.sum(axis=-1).compute())


def test_lazy_read_errors_leaves_other_errors_alone():
    with pytest.raises(ZeroDivisionError):
        with lazy_read_errors("scan.hspy"):
            1 / 0  # noqa: B018


def test_every_loaded_or_simulated_si_has_a_source_name(tmp_path, dm4):
    sim = pw.datasets.nanocube_array(seed=0, size=16, n_energy=20, physics="toy")
    assert "simulated" in sim.metadata["source"]["name"]
    for ext in ("hspy", "npz"):
        assert pw.load(sim.save(tmp_path / f"s.{ext}")).metadata["source"]["name"] == f"s.{ext}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        assert pw.load(dm4).metadata["source"]["name"] == dm4.name
