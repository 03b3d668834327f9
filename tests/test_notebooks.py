"""Every notebook in notebooks/ runs top to bottom (small settings) and is stored without outputs."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
CELL_TIMEOUT_S = 600


def test_notebooks_found():
    names = {p.name for p in PATHS}
    for expected in ("dashboard.ipynb", "01_quickstart.ipynb", "02_im2spec.ipynb",
                     "03_spec2im.ipynb", "04_your_data.ipynb"):
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


@pytest.mark.slow
@pytest.mark.parametrize("path", PATHS, ids=[p.stem for p in PATHS])
def test_notebook_runs(path, tmp_path):
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    env_before = dict(os.environ)
    os.environ.update(PLASMONWIDGETS_SMALL="1", MPLBACKEND="Agg", OMP_NUM_THREADS="1")
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
    if path.name == "dashboard.ipynb":
        boxes = _dashboard_error_boxes(nb)
        assert boxes, "the dashboard's error box widget was not found in the widget state"
        assert boxes == [""], f"the dashboard shows an error: {boxes}"
