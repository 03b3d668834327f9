"""Every notebook in notebooks/ runs top to bottom (small settings) and is stored without outputs."""

from __future__ import annotations

import os
import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
YOUR_DATA = NOTEBOOKS / "04_your_data.ipynb"
TUTORIALS = [p for p in PATHS if p != YOUR_DATA]  # 04 runs on several data files, below
CELL_TIMEOUT_S = 600


def test_notebooks_found():
    names = {p.name for p in PATHS}
    for expected in ("dashboard.ipynb", "01_quickstart.ipynb", "02_im2spec.ipynb",
                     "03_spec2im.ipynb", "04_your_data.ipynb", "05_autonomous.ipynb"):
        assert expected in names, f"{expected} missing from {NOTEBOOKS}"


@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, f"{path.name}: cells {dirty} have outputs; strip them before committing"
    assert "widgets" not in nb.metadata, f"{path.name}: stored widget state; strip it"


def _dashboard_error_boxes(nb) -> list[str]:
    """Values of the dashboard's error box widgets in the stored widget state."""
    state = nb.metadata.get("widgets", {}).get(
        "application/vnd.jupyter.widget-state+json", {}).get("state", {})
    return [m["state"].get("value", "") for m in state.values()
            if "pw-dashboard-error" in m.get("state", {}).get("_dom_classes", [])]


def _execute(path: Path, env: dict[str, str]):
    """Run a notebook top to bottom in a fresh kernel (small settings); returns it with outputs."""
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    env_before = dict(os.environ)
    os.environ.update(PLASMONWIDGETS_SMALL="1", MPLBACKEND="Agg", OMP_NUM_THREADS="1", **env)
    try:
        client = NotebookClient(
            nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", store_widget_state=True,
            resources={"metadata": {"path": str(NOTEBOOKS)}},
        )  # fmt: skip
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors, f"{path.name}: {errors[0].ename}: {errors[0].evalue}"
    return nb


def _printed(nb) -> str:
    return "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                     for o in c.outputs if o.output_type == "stream")


@pytest.mark.slow
@pytest.mark.parametrize("path", TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_notebook_runs(path):
    nb = _execute(path, {})
    if path.name == "dashboard.ipynb":
        boxes = _dashboard_error_boxes(nb)
        assert boxes, "the dashboard's error box widget was not found in the widget state"
        assert boxes == [""], f"the dashboard shows an error: {boxes}"


@pytest.mark.slow
@pytest.mark.parametrize("source", ["no-example-files", "velox", "dm4"])
def test_your_data_notebook_runs_on_any_file(source, request, tmp_path):
    """04_your_data on a fresh clone (no ../shared: a simulated raw scan with a ZLP tail),
    on the real low-loss Velox EMD and on the real core-loss DM4 (a 2x2 scan)."""
    if source == "no-example-files":
        env = {"PLASMONWIDGETS_EXAMPLES": str(tmp_path / "absent")}
    else:
        env = {"PLASMONWIDGETS_DATA_FILE": str(request.getfixturevalue(source))}
    printed = _printed(_execute(YOUR_DATA, env))
    if source == "no-example-files":
        assert "example files: none" in printed
        assert "ZLP tail (power law) fitted in 0.05-0.15 eV" in printed
        assert re.search(r"test NMSE [\d.]+ % \(the mean training spectrum", printed), printed
    elif source == "velox":
        # a flat signal around 0 eV: no ZLP, so the background route; 16x20 scan trains
        assert "no zero-loss peak" in printed and "power-law background fitted in" in printed
        assert re.search(r"5x5 tiles, \d+ train / \d+ test; test NMSE", printed), printed
    else:
        # core loss from 300 eV: the background is fitted over the first tenth of the axis
        assert "no zero-loss peak" in printed and "power-law background fitted in 300-504.7 eV" in printed
        assert "2x2 scan, 4 tiles: too small to train and test on" in printed
