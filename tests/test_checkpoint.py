"""Checkpoints: round trip, atomic writes, refusal of foreign / truncated / malicious files."""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import plasmonwidgets as pw
from plasmonwidgets.checkpoint import FORMAT_VERSION, CheckpointError, read_checkpoint
from plasmonwidgets.models import load_model

E = 24


def _fitted_im2spec(seed=0):
    rng = np.random.default_rng(seed)
    m = pw.Im2Spec(window=8, n_energy=E, latent_dim=3, n_filters_enc=8, n_filters_dec=8,
                   energy=np.linspace(0.2, 1.2, E), seed=seed)
    m.fit_normalization(rng.uniform(100, 900, (30, 8, 8)), rng.uniform(0, 50, (30, E)))
    # non-default batch-norm statistics so the round trip covers them
    m.train()
    with torch.no_grad():
        m(torch.randn(16, 8, 8))
    m.eval()
    return m


def test_round_trip_restores_everything(tmp_path):
    m = _fitted_im2spec()
    path = m.save(tmp_path / "m.pt", extra={"note": "hello", "loss": [1.0, 0.5]})
    assert path == tmp_path / "m.pt"
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temp file left behind
    loaded = load_model(path, device="cpu")
    assert isinstance(loaded, pw.Im2Spec) and not loaded.training
    assert loaded.config == m.config
    np.testing.assert_array_equal(loaded.energy, m.energy)
    for key, value in m.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)
    x = np.random.default_rng(1).uniform(100, 900, (5, 8, 8))
    np.testing.assert_array_equal(loaded.predict(x), m.predict(x))
    payload = read_checkpoint(path)
    assert payload["format_version"] == FORMAT_VERSION
    assert payload["package_version"] == pw.__version__
    assert payload["extra"] == {"note": "hello", "loss": [1.0, 0.5]}
    assert pw.load_model is load_model


def test_spec2im_round_trip_and_overwrite(tmp_path):
    s = pw.Spec2Im(n_energy=E, window=8, latent_dim=2, n_filters_enc=4, n_filters_dec=4, pool=4)
    path = tmp_path / "s.pt"
    _fitted_im2spec().save(path)
    s.save(path)  # replaces the previous file
    loaded = load_model(path)
    assert isinstance(loaded, pw.Spec2Im) and loaded.energy is None
    z = np.array([[0.1, -0.3]])
    np.testing.assert_array_equal(loaded.decode(z), s.decode(z))


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_model(tmp_path / "nope.pt")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _fitted_im2spec().save(tmp_path / "missing_dir" / "m.pt")


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_foreign_and_truncated_files_raise_checkpoint_error(tmp_path):
    junk = tmp_path / "junk.pt"
    rng = np.random.default_rng(0)
    for _ in range(50):  # garbage makes torch raise many different exception types
        junk.write_bytes(rng.bytes(2000))
        with pytest.raises(CheckpointError, match="not a readable checkpoint"):
            load_model(junk)

    tensor_file = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), tensor_file)
    with pytest.raises(CheckpointError, match="not a plasmonwidgets model checkpoint"):
        load_model(tensor_file)

    good = _fitted_im2spec().save(tmp_path / "good.pt")
    data = good.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_model(truncated)
    assert issubclass(CheckpointError, ValueError)


def _rewrite(src: Path, dst: Path, **changes):
    payload = torch.load(src, weights_only=True)
    payload.update(changes)
    torch.save(payload, dst)
    return dst


def test_incompatible_checkpoints(tmp_path):
    good = _fitted_im2spec().save(tmp_path / "good.pt")
    future = _rewrite(good, tmp_path / "future.pt", format_version=FORMAT_VERSION + 1)
    with pytest.raises(CheckpointError, match=r"format version .* upgrade"):
        load_model(future)
    alien = _rewrite(good, tmp_path / "alien.pt", model_class="Transformer")
    with pytest.raises(CheckpointError, match="unknown model class 'Transformer'"):
        load_model(alien)
    payload = torch.load(good, weights_only=True)
    config = dict(payload["config"], latent_dim=7)
    wrong = _rewrite(good, tmp_path / "wrong.pt", config=config)
    with pytest.raises(CheckpointError, match="does not match"):
        load_model(wrong)
    incomplete = dict(payload)
    del incomplete["state_dict"]
    torch.save(incomplete, tmp_path / "incomplete.pt")
    with pytest.raises(CheckpointError, match="missing"):
        load_model(tmp_path / "incomplete.pt")


class _Exploit:
    """Unpickling this would create the marker file (it must never happen)."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("writer, match", [
    ("pickle2", "could run code"),  # reaches torch's allow-list check of globals
    ("pickle5", "not a readable checkpoint"),  # opcodes the safe unpickler rejects outright
    ("torch", "could run code"),
])
def test_malicious_pickle_is_refused_without_running_code(tmp_path, writer, match):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    payload = {"format": "plasmonwidgets-model", "format_version": 1,
               "model_class": "Im2Spec", "config": {}, "state_dict": {},
               "payload": _Exploit(marker)}
    if writer.startswith("pickle"):
        with open(evil, "wb") as fh:
            pickle.dump(payload, fh, protocol=int(writer[-1]))
    else:
        torch.save(payload, evil)
    with pytest.raises(CheckpointError, match=match):
        load_model(evil)
    assert not marker.exists()


_SAVER = textwrap.dedent("""
    import os, sys, time, numpy as np, plasmonwidgets as pw
    path = sys.argv[1]
    m = pw.Im2Spec(window=48, n_energy=1500, latent_dim=16, n_filters_enc=48,
                   n_filters_dec=64, device="cpu")
    m.energy = np.linspace(0.1, 2.0, 1500)
    m.save(path)
    print("saved", flush=True)
    # the next save stops inside its write (data in the temporary file, not yet moved into
    # place) and says so: the parent kills it there, whatever the machine's load
    real_fsync = os.fsync
    def stalled_fsync(fd):
        real_fsync(fd)
        print("writing", flush=True)
        time.sleep(60)
    os.fsync = stalled_fsync
    m.energy = np.linspace(0.1, 2.0, 1500) + 1
    m.save(path)
""")


def test_killed_save_leaves_previous_checkpoint_loadable(tmp_path):
    path = tmp_path / "ckpt.pt"
    script = tmp_path / "saver.py"
    script.write_text(_SAVER)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for _ in range(2):
        proc = subprocess.Popen([sys.executable, str(script), str(path)], env=env,
                                stdout=subprocess.PIPE, text=True)
        try:
            assert proc.stdout.readline().strip() == "saved", "saver produced no checkpoint"
            assert proc.stdout.readline().strip() == "writing"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            proc.stdout.close()
        assert list(tmp_path.glob(".ckpt.pt.*.tmp*")), "the kill did not land mid-write"
        model = load_model(path, device="cpu")  # the previous complete checkpoint
        assert model.n_energy == 1500 and np.isclose(model.energy[0], 0.1)
        # the next read of that path removes the killed save's temporary file
        assert not list(tmp_path.glob(".ckpt.pt.*")), list(tmp_path.iterdir())


def test_saved_checkpoint_has_the_usual_file_mode(tmp_path):
    mask = os.umask(0o022)
    try:
        path = pw.Im2Spec(window=8, n_energy=12, latent_dim=2, n_filters_enc=4,
                          n_filters_dec=4).save(tmp_path / "m.pt")
    finally:
        os.umask(mask)
    assert (path.stat().st_mode & 0o777) == 0o644


# --------------------------------------------------------------------------- crafted files
def _crafted(tmp_path, name, **changes):
    """A valid checkpoint with top-level fields, config entries (``config_*``) or weights
    (``state_*``) replaced: what an attacker or a damaged copy could hand us."""
    good = _fitted_im2spec().save(tmp_path / "good.pt")
    payload = torch.load(good, weights_only=True)
    for key, value in changes.items():
        if key.startswith("config_"):
            payload["config"][key[7:]] = value
        elif key.startswith("state_"):
            payload["state_dict"][key[6:].replace("__", ".")] = value
        else:
            payload[key] = value
    torch.save(payload, tmp_path / name)
    return tmp_path / name


@pytest.mark.parametrize("changes, match", [
    ({"energy": "abc"}, "'energy' must be a float tensor"),
    ({"energy": torch.linspace(0, 1, 5, dtype=torch.float64)}, r"'energy' has shape \(5,\)"),
    ({"model_class": ["Im2Spec"]}, "'model_class' must be a class name"),
    ({"config": "window=8"}, "'config' must be a dict"),
    ({"extra": [1, 2]}, "'extra' must be a dict"),
    ({"config_n_energy": 2e7}, "n_energy=20000000.0 is not a size"),
    ({"config_n_energy": -24}, "n_energy=-24 is not a size"),
    ({"config_window": True}, "window=True is not a size"),
    ({"config_latent_dim": 3.0}, "latent_dim=3.0 is not a size"),
    ({"config_n_filters_dec": 10**6}, "n_filters_dec=1000000 is not a size"),
    ({"config_dilations": [1, 2, 10**6]}, "dilations="),
    ({"config_latent_dim": 7}, r"'encoder.fc.weight' has shape \(3, 512\).*need \(7, 512\)"),
    ({"state_x_offset": [[0.0] * 8] * 8}, "'x_offset' is a list, not a tensor"),
    ({"state_y_offset": torch.zeros(1).expand(24)}, "holds less data"),
    ({"state_y_scale": torch.tensor(float("nan"))}, "NaN or infinite"),
])
def test_crafted_checkpoints_raise_checkpoint_error_naming_the_file(tmp_path, changes, match):
    path = _crafted(tmp_path, "crafted.pt", **changes)
    with pytest.raises(CheckpointError, match=match) as exc:
        load_model(path, device="cpu")
    assert str(path) in str(exc.value)


def test_int_2e7_energy_checkpoint_fails_fast_under_a_memory_limit(tmp_path):
    """config.n_energy = 20000000 (a 70 kB file): refused from the config alone, in a
    process limited to 3 GiB of address space (building that model needs ~10 GB)."""
    path = _crafted(tmp_path, "huge.pt", config_n_energy=20_000_000)
    script = textwrap.dedent("""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (3 * 2**30, 3 * 2**30))
        from plasmonwidgets.models import load_model
        from plasmonwidgets.checkpoint import CheckpointError
        try:
            load_model(sys.argv[1], device="cpu")
        except CheckpointError as exc:
            print("REFUSED", exc)
    """)
    out = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "REFUSED" in out.stdout and "n_energy=20000000 is not a size" in out.stdout


def test_consistent_but_edited_shapes_are_compared_before_building(tmp_path, monkeypatch):
    """A config that agrees in range but not with the weights is refused without
    constructing the model."""
    path = _crafted(tmp_path, "edited.pt", config_n_energy=4096)
    built = []
    monkeypatch.setattr(pw.Im2Spec, "__init__", lambda self, *a, **k: built.append(k))
    with pytest.raises(CheckpointError, match=r"'y_offset' has shape \(24,\)"):
        load_model(path, device="cpu")
    assert built == []
