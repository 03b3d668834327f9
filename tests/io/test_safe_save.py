"""Saves killed at every step: the user's path always ends up naming a complete file
(old or new), and leftovers are cleaned up by the next save or load of that path.

Each kill is a real process exit (``os._exit``) in a subprocess, placed between two
steps of the save by wrapping ``os.replace`` or the writer there."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import plasmonwidgets as pw
from plasmonwidgets import _atomic as atomic
from plasmonwidgets.spectrum_image import SpectrumImage

pytest.importorskip("hyperspy.api")

_KILLER = textwrap.dedent("""
    import os, sys, numpy as np
    from pathlib import Path
    import plasmonwidgets as pw
    from plasmonwidgets import _atomic as atomic
    from plasmonwidgets.io import writer
    from plasmonwidgets.spectrum_image import SpectrumImage
    path, step, value = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    if sys.argv[4] == "no-exchange":
        atomic._exchange = lambda a, b: False  # the portable two-rename path
    real_replace, real_remove = os.replace, atomic.remove

    def replace(src, dst):
        src, dst = Path(src), Path(dst)
        if step == "before-park" and src == path:           # old not yet parked
            os._exit(9)
        if step == "after-park" and dst == path and src.name.endswith(".new"):
            os._exit(9)                                      # old parked, new not in place
        real_replace(src, dst)

    def remove(p):
        if step == "before-cleanup":                         # new in place, old not deleted
            os._exit(9)
        real_remove(p)

    def partial_write(si, tmp):                              # dies while writing
        Path(tmp).write_bytes(b"partial")
        os._exit(9)

    os.replace, atomic.remove = replace, remove
    if step == "mid-write":
        writer.write_hyperspy = writer.write_npz = partial_write
    si = SpectrumImage(np.full((3, 4, 8), value, np.float32), np.linspace(1, 2, 8),
                       np.ones((3, 4), np.float32))
    si.save(path)
    print("saved")
""")


def _si(value: float) -> SpectrumImage:
    return SpectrumImage(np.full((3, 4, 8), value, np.float32), np.linspace(1, 2, 8),
                         np.ones((3, 4), np.float32))


def _kill_save(path: Path, step: str, mode: str = "exchange") -> None:
    out = subprocess.run([sys.executable, "-c", _KILLER, str(path), step, "2.0", mode],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 9, (out.stdout, out.stderr[-2000:])  # killed at that step


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _value(path: Path) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # our own files load silently
        return float(np.asarray(pw.load(path).spectra)[0, 0, 0])


@pytest.mark.parametrize("mode", ["exchange", "no-exchange"])
@pytest.mark.parametrize("step, expected", [("mid-write", 1.0), ("before-park", 1.0),
                                            ("after-park", 2.0), ("before-cleanup", 2.0)])
def test_zspy_save_killed_at_each_step(tmp_path, step, expected, mode):
    pytest.importorskip("zarr")
    if mode == "exchange" and step in ("before-park", "after-park"):
        pytest.skip("the atomic exchange has no parking step")
    path = _si(1.0).save(tmp_path / "scan.zspy")
    _kill_save(path, step, mode)
    if step == "after-park":
        # the one moment a folder cannot be swapped atomically: only hidden copies exist
        assert not path.exists() and _hidden(tmp_path)
    # the next load finds the complete copy under the user's name and cleans up
    assert _value(path) == expected
    assert _hidden(tmp_path) == []


@pytest.mark.parametrize("ext", ["hspy", "npz"])
def test_file_save_killed_mid_write_keeps_old_and_next_save_cleans(tmp_path, ext):
    path = _si(1.0).save(tmp_path / f"scan.{ext}")
    _kill_save(path, "mid-write")
    assert _hidden(tmp_path), "the killed save left its temporary file"
    assert _value(path) == 1.0  # the previous complete file
    assert _hidden(tmp_path) == []  # ... and the load removed the leftover
    _kill_save(path, "mid-write")
    _si(3.0).save(path)  # the next save removes it too
    assert _hidden(tmp_path) == [] and _value(path) == 3.0


def test_temporaries_of_a_running_save_are_left_alone(tmp_path):
    path = _si(1.0).save(tmp_path / "scan.hspy")
    writer = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        busy = tmp_path / f".scan.hspy.{writer.pid}-0123abcd.tmp.hspy"
        busy.write_bytes(b"being written")
        mine = atomic.temp_path(path)  # this process, still writing
        mine.write_bytes(b"being written")
        _si(2.0).save(path)
        assert busy.exists() and mine.exists()
    finally:
        writer.kill()
        writer.wait()
    atomic.remove(mine)
    for _ in range(50):  # the pid is gone once reaped
        if atomic.recover(path) is None and not busy.exists():
            break
        time.sleep(0.1)
    assert not busy.exists() and _value(path) == 2.0


def test_checkpoint_temporaries_use_the_same_cleanup(tmp_path):
    model = pw.Im2Spec(window=8, n_energy=12, latent_dim=2)
    path = model.save(tmp_path / "m.pt")
    stale = tmp_path / ".m.pt.999999999-0123abcd.tmp.pt"  # no such process
    stale.write_bytes(b"half a checkpoint")
    assert pw.load_model(path, device="cpu").n_energy == 12
    assert not stale.exists()
    assert os.listdir(tmp_path) == ["m.pt"]
