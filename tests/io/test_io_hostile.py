"""Bad files: every case must end in a clear DataFileError (which file, what is wrong,
what to do), never a raw reader traceback and never a hang."""

from __future__ import annotations

import shutil
import signal
import warnings
from pathlib import Path

import numpy as np
import pytest

import plasmonwidgets as pw
from plasmonwidgets.io import DataFileError
from plasmonwidgets.spectrum_image import SpectrumImage

hs = pytest.importorskip("hyperspy.api")
exspy = pytest.importorskip("exspy")

TIME_LIMIT_S = 60


@pytest.fixture(autouse=True)
def no_hang():
    """Fail (rather than hang the suite) if a bad file makes a reader loop."""
    if not hasattr(signal, "SIGALRM"):
        yield
        return

    def on_alarm(signum, frame):
        raise TimeoutError(f"loading a bad file took more than {TIME_LIMIT_S} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(TIME_LIMIT_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _small_si() -> SpectrumImage:
    rng = np.random.default_rng(0)
    return SpectrumImage(rng.random((4, 5, 30), dtype=np.float32), np.linspace(0.2, 1.2, 30),
                         rng.random((8, 10), dtype=np.float32), pixel_size=2.0,
                         metadata={"regions": np.zeros((4, 5), int)})


@pytest.fixture(scope="session")
def hspy_file(tmp_path_factory) -> Path:
    return _small_si().save(tmp_path_factory.mktemp("own") / "own.hspy")


def load_fails(path, *fragments, **kwargs) -> str:
    """Load must raise DataFileError naming the file and every fragment; returns the message."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        with pytest.raises(DataFileError) as exc:
            pw.load(path, **kwargs)
    msg = str(exc.value)
    assert Path(path).name in msg, msg
    for frag in fragments:
        assert frag.lower() in msg.lower(), f"{frag!r} not in: {msg}"
    return msg


# --------------------------------------------------------------------------- paths
def test_missing_file_suggests_similar_names(tmp_path):
    (tmp_path / "scan_01.dm4").write_bytes(b"x")
    load_fails(tmp_path / "scan_1.dm4", "does not exist", "scan_01.dm4")


def test_missing_folder(tmp_path):
    load_fails(tmp_path / "nowhere" / "scan.dm4", "does not exist", "folder")


@pytest.mark.parametrize("name", ["notes.txt", "scan", "scan.tif"])
def test_unknown_extension_lists_supported_formats(tmp_path, name):
    (tmp_path / name).write_text("hello")
    load_fails(tmp_path / name, "does not read", ".dm4", ".emd", ".hspy", ".npz")


@pytest.mark.parametrize("name", ["data", "data.dm4"])
def test_directory_path(tmp_path, name):
    (tmp_path / name).mkdir()
    load_fails(tmp_path / name, "is a directory")


def test_folder_named_zspy_that_is_not_a_store(tmp_path):
    (tmp_path / "x.zspy").mkdir()
    load_fails(tmp_path / "x.zspy", "not a .zspy store")


@pytest.mark.parametrize("ext", [".dm3", ".dm4", ".emd", ".hspy", ".npz"])
def test_empty_file(tmp_path, ext):
    (tmp_path / f"empty{ext}").touch()
    load_fails(tmp_path / f"empty{ext}", "empty (0 bytes)", "again")


def test_path_of_wrong_type():
    with pytest.raises(TypeError, match=r"str or pathlib\.Path"):
        pw.load(123)


# --------------------------------------------------------------------------- damaged files
def _cut(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


@pytest.mark.parametrize("lazy", [False, True], ids=["eager", "lazy"])
@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("kind", ["dm4", "hspy", "emd"])
def test_truncated_real_files(tmp_path, kind, fraction, lazy, request):
    src = {"dm4": lambda: request.getfixturevalue("dm4"),
           "hspy": lambda: request.getfixturevalue("hspy_file"),
           "emd": lambda: request.getfixturevalue("velox")}[kind]()
    cut = _cut(src, tmp_path / f"cut{src.suffix}", fraction)
    msg = load_fails(cut, "truncated", "again", lazy=lazy)
    assert f"({cut.stat().st_size} bytes on disk, but its header says" in msg


@pytest.mark.parametrize("offset", [100, 1000, 5000])
def test_dm4_with_damaged_tag_directory(dm4, tmp_path, offset):
    data = bytearray(dm4.read_bytes())
    data[offset:offset + 64] = np.random.default_rng(offset).integers(0, 256, 64, np.uint8).tobytes()
    (tmp_path / "damaged.dm4").write_bytes(bytes(data))
    load_fails(tmp_path / "damaged.dm4", "damaged", "DigitalMicrograph 4", "export it again")


def test_truncated_npz(tmp_path):
    path = _small_si().save(tmp_path / "a.npz")
    cut = _cut(path, tmp_path / "cut.npz", 0.5)
    load_fails(cut, "not a numpy .npz", "truncated")


def test_npz_with_corrupted_member(tmp_path):
    path = _small_si().save(tmp_path / "a.npz")
    data = bytearray(path.read_bytes())
    start = data.index(b"spectra.npy") + 200  # inside the compressed-free member payload
    data[start:start + 64] = bytes(64)
    path.write_bytes(bytes(data))
    load_fails(path, "damaged")


@pytest.mark.parametrize("ext", [".dm3", ".dm4", ".emd", ".hspy", ".npz"])
def test_text_file_renamed(tmp_path, ext):
    path = tmp_path / f"notes{ext}"
    path.write_text("This is a lab notebook entry, not microscope data.\n" * 20)
    load_fails(path, "cannot read")


def test_plain_npz_that_is_not_ours(tmp_path):
    np.savez(tmp_path / "other.npz", x=np.arange(3))
    load_fails(tmp_path / "other.npz", "not a plasmonwidgets", "missing", "SpectrumImage(")


def test_npz_with_pickled_objects_is_not_unpickled(tmp_path):
    np.savez(tmp_path / "evil.npz", header=np.array([{"a": 1}], dtype=object),
             spectra=np.zeros((1, 1, 2)), haadf=np.zeros((1, 1)))
    load_fails(tmp_path / "evil.npz", "cannot read")


def test_nan_in_file(tmp_path):
    data = np.ones((3, 4, 10), np.float32)
    data[1, 2, 3] = np.nan
    s = exspy.signals.EELSSpectrum(data)
    s.axes_manager.signal_axes[0].units = "eV"
    s.save(tmp_path / "nan.hspy")
    load_fails(tmp_path / "nan.hspy", "NaN")


def test_zspy_with_missing_chunk_warns(tmp_path):
    pytest.importorskip("zarr")
    path = _small_si().save(tmp_path / "a.zspy")
    chunks = [p for p in path.rglob("*") if p.is_file() and "data" in p.parts
              and not p.name.startswith(".") and "plasmonwidgets" not in p.parts]
    assert chunks, "no data chunks found in the .zspy store"
    chunks[0].unlink()  # an incomplete copy: zarr silently reads the gap as zeros
    with pytest.warns(UserWarning, match="differ from the checksum"):
        pw.load(path)


# --------------------------------------------------------------------------- wrong content
def test_eds_only_file(tmp_path):
    eds = exspy.signals.EDSTEMSpectrum(np.ones((4, 5, 50)))
    eds.axes_manager.signal_axes[0].units = "keV"
    eds.save(tmp_path / "eds.hspy")
    load_fails(tmp_path / "eds.hspy", "no EELS spectrum image", "EDSTEMSpectrum")


def test_image_only_file(tmp_path):
    img = hs.signals.Signal2D(np.ones((16, 20)))
    img.metadata.General.title = "DF-S"
    img.save(tmp_path / "image.hspy")
    load_fails(tmp_path / "image.hspy", "no EELS spectrum image", "Signal2D", "'DF-S'")


def test_velox_signal_that_is_an_image(velox):
    load_fails(velox, "not an EELS spectrum image", "DF-S", signal="DF-S")


def test_velox_signal_that_is_eds(velox):
    load_fails(velox, "not an EELS spectrum image", "EDS", signal=0)


def test_velox_unknown_title_lists_signals(velox):
    load_fails(velox, "no signal with that title", "DF-S", "#16", signal="HAADF-X")


def test_velox_index_out_of_range(velox):
    load_fails(velox, "out of range", "18 signals", signal=99)


def test_velox_haadf_signal_off_grid(velox):
    load_fails(velox, "(128, 128)", "(16, 20)", "integer multiple", haadf_signal="a")


def _velox_parts(velox, tmp_path):
    signals = hs.load(str(velox))
    eels = next(s for s in signals if type(s).__name__ == "EELSSpectrum"
                and s.axes_manager.signal_axes[0].offset < 0)
    df = next(s for s in signals if s.metadata.General.title == "DF-S")
    eels.save(tmp_path / "si.hspy")
    return df


def test_haadf_of_different_field_of_view(velox, tmp_path):
    df = _velox_parts(velox, tmp_path)
    wide = df.deepcopy()
    for ax in wide.axes_manager.signal_axes:
        ax.scale = ax.scale * 2  # same pixels, twice the field of view
    wide.save(tmp_path / "wide.hspy")
    msg = load_fails(tmp_path / "si.hspy", "different fields of view", "(16, 20)", "wide.hspy",
                     haadf=tmp_path / "wide.hspy")
    assert "SI 2539 x 3173 nm, image 5077 x 6346 nm" in msg  # rows x columns


def test_haadf_of_other_shape(velox, tmp_path):
    df = _velox_parts(velox, tmp_path)
    df.isig[:15, :].save(tmp_path / "small.hspy")
    load_fails(tmp_path / "si.hspy", "(16, 15)", "(16, 20)", "integer multiple",
               haadf=tmp_path / "small.hspy")


def test_haadf_file_that_is_a_spectrum_image(velox, tmp_path, dm4):
    _velox_parts(velox, tmp_path)
    with pytest.raises(DataFileError, match=r"EELS_SI\.dm4.*no single 2-D image"):
        pw.load(tmp_path / "si.hspy", haadf=dm4)


def test_haadf_file_missing(velox, tmp_path):
    _velox_parts(velox, tmp_path)
    with pytest.raises(DataFileError, match=r"HAADF file .*nope\.dm4.* does not exist"):
        pw.load(tmp_path / "si.hspy", haadf=tmp_path / "nope.dm4")


def test_haadf_file_truncated(velox, tmp_path):
    df = _velox_parts(velox, tmp_path)
    df.save(tmp_path / "df.hspy")
    _cut(tmp_path / "df.hspy", tmp_path / "df_cut.hspy", 0.5)
    with pytest.raises(DataFileError, match=r"HAADF file .*df_cut\.hspy.*truncated"):
        pw.load(tmp_path / "si.hspy", haadf=tmp_path / "df_cut.hspy")


# --------------------------------------------------------------------------- saving
def test_save_unknown_extension(tmp_path):
    with pytest.raises(DataFileError, match=r"scan\.dm4.*use \.hspy, \.zspy, \.npz"):
        _small_si().save(tmp_path / "scan.dm4")


def test_save_into_missing_folder(tmp_path):
    with pytest.raises(DataFileError, match="does not exist; create it first"):
        _small_si().save(tmp_path / "no" / "scan.hspy")


def test_save_metadata_that_cannot_be_stored(tmp_path):
    si = _small_si()
    si.metadata["model"] = {"fit": object()}
    with pytest.raises(TypeError, match=r"metadata\['model'\]\['fit'\] holds a builtins.object"):
        si.save(tmp_path / "a.npz")
    assert not list(tmp_path.iterdir())


def test_save_over_a_folder(tmp_path):
    (tmp_path / "a.hspy").mkdir()
    with pytest.raises(DataFileError, match="a folder of that name exists"):
        _small_si().save(tmp_path / "a.hspy")


def test_save_leaves_no_temp_files_after_failure(tmp_path):
    si = _small_si()
    si.metadata["bad"] = np.array([object()], dtype=object)
    for ext in ("hspy", "npz"):
        with pytest.raises(TypeError, match="numpy array of Python objects"):
            si.save(tmp_path / f"a.{ext}")
    assert not list(tmp_path.iterdir())


def test_real_dm4_untouched_by_reading(dm4, tmp_path):
    copy = shutil.copy(dm4, tmp_path / "copy.dm4")
    before = Path(copy).read_bytes()
    with pytest.warns(UserWarning, match="stand-in"):
        pw.load(copy)
    assert Path(copy).read_bytes() == before
