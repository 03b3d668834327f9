"""The command line, run as a user would: simulate a file, then train a model on it."""

from __future__ import annotations

import re
import subprocess
import sys

import plasmonwidgets as pw


def run_cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "plasmonwidgets.app.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_simulate_then_train_writes_a_loadable_model(tmp_path):
    data = tmp_path / "cubes.hspy"
    sim = run_cli("simulate", str(data), "--size", "48", "--seed", "1", cwd=tmp_path)
    assert sim.returncode == 0, sim.stderr
    assert "saved to" in sim.stdout and data.is_file()

    out = tmp_path / "model.pt"
    tr = run_cli("train", str(data), "--direction", "im2spec", "--latent", "2", "--epochs", "2",
                 "--out", str(out), cwd=tmp_path)
    assert tr.returncode == 0, tr.stderr
    line = tr.stdout.strip().splitlines()[-1]
    match = re.match(r"im2spec latent=2: test NMSE ([\d.]+) % over (\d+) test tiles, 2 epochs", line)
    assert match, line
    assert 0 < float(match.group(1)) < 100 and int(match.group(2)) > 0
    assert "epoch" in tr.stderr  # the tqdm bar
    model = pw.load_model(out)
    assert model.latent_dim == 2 and model.config["n_filters_enc"] == pw.pretrained.ARCH["n_filters_enc"]


def test_train_on_a_missing_file_says_so(tmp_path):
    tr = run_cli("train", str(tmp_path / "nope.dm4"), "--epochs", "1", cwd=tmp_path)
    assert tr.returncode != 0
    assert "does not exist" in tr.stderr and "Traceback" not in tr.stderr
