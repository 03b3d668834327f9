"""Fixtures shared by the test modules: the real instrument files in ../shared/data/real."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
from hypothesis import settings

# CI replays the same examples every run (a property failure is then a real, reproducible
# finding, not a flake); locally each run explores new ones.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI"):
    settings.load_profile("ci")

REAL = Path(__file__).parents[1] / ".." / "shared" / "data" / "real"
VELOX_ZIP = REAL / "velox_EELS_EDS.zip"
DM4 = REAL / "EELS_SI.dm4"


@pytest.fixture(scope="session")
def velox(tmp_path_factory) -> Path:
    """The real Velox EMD (EELS SI, EDS and DF images), unzipped once; treat as read-only."""
    if not VELOX_ZIP.is_file():
        pytest.skip(f"real Velox EMD test file not found at {VELOX_ZIP}")
    out = tmp_path_factory.mktemp("velox")
    with zipfile.ZipFile(VELOX_ZIP) as z:
        z.extractall(out)
    return out / "example_velox_EELS_EDS.emd"


@pytest.fixture(scope="session")
def dm4() -> Path:
    """The real DigitalMicrograph EELS spectrum image; treat as read-only."""
    if not DM4.is_file():
        pytest.skip(f"real DigitalMicrograph test file not found at {DM4}")
    return DM4


@pytest.fixture(scope="module")
def small_trained():
    """A 32x32 built-in scan (25 channels), its tiles and halves split, and a small
    2-latent Im2Spec trained for one epoch: (si, pairs, train, test, model)."""
    import torch

    import plasmonwidgets as pw

    torch.set_num_threads(1)
    si = pw.datasets.nanocube_array(seed=0, size=32, physics="toy").bin(energy=4)
    pairs = pw.make_tiles(si, window=16)
    train, test = pairs.split("halves")
    model = pw.Im2Spec(window=16, n_energy=si.n_energy, latent_dim=2, n_filters_enc=8, n_filters_dec=8,
                       device="cpu")
    pw.train(model, train, test, epochs=1)
    return si, pairs, train, test, model


@pytest.fixture(scope="session")
def builtin_dataset_cached() -> None:
    """The built-in scan simulated and cached on disk before a server or notebook needs it:
    a page waits at most seconds for it then, not the simulation's minute."""
    from plasmonwidgets.app.cli import prepare_builtin_dataset

    prepare_builtin_dataset()
