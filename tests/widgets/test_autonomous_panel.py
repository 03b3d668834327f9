"""AutonomousPanel without a browser, and the dashboard's Autonomous tab.

Toy-physics 24x24 scans (< 1 s to simulate), 8-pixel tiles, 16 energy channels and
2-member ensembles trained for an epoch or two, so a step takes a fraction of a second
on one CPU core. The panel is driven through its buttons and inputs (``children_by_name``)
as the browser would; background steps are awaited with ``panel.wait``.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

import plasmonwidgets as pw
from plasmonwidgets.widgets.autonomous_panel import (
    AutonomousPanel,
    default_model_factory,
    scalar_map,
    whole_scan_nmse,
)

SIZE, N_ENERGY, WINDOW = 24, 16, 8
FAST = dict(n_members=2, epochs=1, epochs_first=2, updates=4, batch_size=32, window=WINDOW)
WAIT_S = 120


@pytest.fixture(autouse=True)
def one_thread():
    torch.set_num_threads(1)


def scope(seed: int = 0) -> pw.SimulatedMicroscope:
    return pw.SimulatedMicroscope(seed=seed, size=SIZE, n_energy=N_ENERGY, physics="toy")


class SlowScope(pw.RecordedMicroscope):
    """Replays a scan, ``delay`` seconds per acquisition; fails from acquisition ``fail_at``."""

    def __init__(self, si, delay: float = 0.0, fail_at: int | None = None):
        super().__init__(si)
        self.delay, self.fail_at, self.calls = delay, fail_at, 0

    def acquire(self, positions):
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise RuntimeError("the stage lost its position")
        time.sleep(self.delay)
        return super().acquire(positions)


def panel_on(microscope, **kw) -> AutonomousPanel:
    options = dict(budget=12, batch=4, **FAST)
    options.update(kw)
    return AutonomousPanel(microscope, **options)


def click(panel: AutonomousPanel, name: str) -> None:
    panel.children_by_name[name].click()


def counts(panel: AutonomousPanel) -> dict[str, int]:
    return {group: len(boxes) for group, boxes in panel.viewer.overlays.items()}


def test_initial_state_shows_the_haadf_and_starts_nothing():
    microscope = scope()
    panel = panel_on(microscope)
    assert panel.state == "idle" and panel.n_measured == 0 and panel.loop is None
    np.testing.assert_array_equal(panel.viewer.image_data, microscope.haadf())
    assert panel.viewer.overlays == {} and len(microscope.acquired) == 0
    named = panel.children_by_name
    assert not named["start"].disabled and not named["step"].disabled and named["stop"].disabled
    assert "0 / 12 spectra measured" in panel.status.value and panel.message.value == ""
    assert panel.error_figure in panel.children  # the simulated scope knows the whole scan
    assert {"viewer", "prediction", "uncertainty", "error", "budget", "batch",
            "strategy", "quantity"} <= set(named)


def test_step_acquires_one_batch_and_draws_it():
    microscope = scope()
    panel = panel_on(microscope)
    click(panel, "step")
    assert panel.wait(WAIT_S)
    assert panel.state == "paused" and panel.n_measured == 4
    assert counts(panel) == {"measured": 0, "latest": 4}
    assert len(microscope.acquired) == 4  # the panel measures on the microscope it was given
    # markers sit on the acquired pixels
    boxes = panel.viewer.overlays["latest"]
    drawn = sorted((int(b["y0"]), int(b["x0"])) for b in boxes)
    assert drawn == sorted(map(tuple, panel.loop.positions.tolist()))
    assert panel.prediction_view.title.startswith("predicted intensity")
    assert float(np.ptp(panel.uncertainty_view.image_data)) > 0
    n, nmse = panel.error_curve
    assert n.tolist() == [4] and np.isfinite(nmse).all()
    assert nmse[0] == pytest.approx(whole_scan_nmse(panel.loop.mean, microscope.si.spectra))
    assert len(panel.error_lines[0].x) == 1 and "4 / 12 spectra measured" in panel.status.value
    click(panel, "step")
    assert panel.wait(WAIT_S)
    assert panel.n_measured == 8 and counts(panel) == {"measured": 4, "latest": 4}
    assert panel.error_curve[0].tolist() == [4, 8]


def test_start_runs_to_the_budget_and_never_beyond():
    microscope = scope()
    panel = panel_on(microscope, budget=10, batch=4)
    click(panel, "start")
    assert panel.wait(WAIT_S)
    assert panel.state == "finished" and panel.n_measured == 10
    assert [len(s.positions) for s in panel.loop.steps] == [4, 4, 2]
    assert len({tuple(p) for p in microscope.acquired.tolist()}) == 10
    named = panel.children_by_name
    assert named["start"].disabled and named["step"].disabled and named["stop"].disabled
    click(panel, "step")  # nothing more to do: no new step, no error
    assert panel.wait(5) and panel.n_measured == 10
    panel.budget_input.value = 14  # a larger budget continues the same run
    assert panel.state == "paused" and not named["start"].disabled
    click(panel, "start")
    assert panel.wait(WAIT_S)
    assert panel.n_measured == 14 and panel.state == "finished"


def test_stop_returns_at_once_and_start_resumes_the_same_loop():
    panel = panel_on(SlowScope(scope().si, delay=0.4), budget=16, batch=4)
    click(panel, "start")
    t0 = time.perf_counter()
    click(panel, "stop")
    assert time.perf_counter() - t0 < 0.2  # the kernel is not blocked by the running step
    assert panel.state == "stopping" and panel.children_by_name["stop"].disabled
    assert panel.wait(WAIT_S)
    assert panel.state == "paused" and panel.n_measured == 4  # the step in progress completed
    loop = panel.loop
    click(panel, "start")
    assert panel.wait(WAIT_S)
    assert panel.loop is loop and panel.state == "finished" and panel.n_measured == 16
    assert panel.error_curve[0].tolist() == [4, 8, 12, 16]


def test_bad_inputs_show_a_message_and_change_nothing():
    panel = panel_on(scope())
    panel.budget_input.value = SIZE * SIZE + 1
    assert "budget must be between 2 and 576" in panel.message.value
    assert 'role="alert"' in panel.message.value
    panel.batch_input.value = 0
    assert "batch must be between 1 and 576" in panel.message.value
    click(panel, "step")  # the loop itself refuses the batch: a message, no thread
    assert panel.wait(5)
    assert "could not start" in panel.message.value and panel.state == "failed"
    assert panel.loop is None and panel.n_measured == 0
    panel.batch_input.value = 4
    panel.budget_input.value = 8
    click(panel, "step")
    assert panel.wait(WAIT_S)
    assert panel.n_measured == 4 and panel.message.value == ""


def test_a_failing_microscope_is_reported_in_the_panel():
    panel = panel_on(SlowScope(scope().si, fail_at=2))
    click(panel, "start")
    assert panel.wait(WAIT_S)
    assert panel.state == "failed" and panel.n_measured == 4
    assert "RuntimeError: the stage lost its position" in panel.message.value
    assert not panel.children_by_name["reset"].disabled


def test_a_factory_that_does_not_fit_is_reported():
    wrong = default_model_factory(n_energy=N_ENERGY + 3, window=WINDOW)
    panel = panel_on(scope(), model_factory=wrong)
    click(panel, "step")
    assert panel.wait(5)
    assert "could not start" in panel.message.value and "n_energy=16" in panel.message.value


def test_reset_starts_a_new_run_and_keeps_the_old_curve():
    microscope = scope()
    panel = panel_on(microscope, budget=8)
    click(panel, "start")
    assert panel.wait(WAIT_S)
    panel.strategy_input.value = "random"
    assert "press Reset" in panel.message.value
    click(panel, "reset")
    assert panel.loop is None and panel.n_measured == 0 and panel.viewer.overlays == {}
    assert panel.microscope is not microscope  # a fresh replay of the same scan
    click(panel, "start")
    assert panel.wait(WAIT_S)
    assert panel.loop.strategy == "random" and panel.n_measured == 8
    labels = [line.labels[0] for line in panel.error_lines if len(line.x)]
    assert labels == ["uncertainty", "random"]
    assert len(microscope.acquired) == 8  # the first run's positions only


def test_on_demand_microscope_runs_without_a_truth_and_resets_to_a_fresh_one():
    from plasmonwidgets.simulate.quasistatic.scene import QuasistaticSceneConfig

    microscope = pw.SimulatedMicroscope(seed=3, size=16, n_energy=N_ENERGY, on_demand=True,
                                        config=QuasistaticSceneConfig(lattice_materials=False))
    panel = panel_on(microscope, budget=8)
    assert panel.truth is None and panel.error_figure not in panel.children
    click(panel, "start")
    assert panel.wait(WAIT_S) and panel.n_measured == 8 and panel.message.value == ""
    first, first_spectra = panel.loop.positions, panel.loop.result.spectra
    click(panel, "reset")
    assert panel.microscope is not microscope and len(panel.microscope.acquired) == 0
    assert panel.microscope.scene is microscope.scene      # the set-up scene is shared
    click(panel, "start")
    assert panel.wait(WAIT_S) and panel.n_measured == 8
    # the same seed measures the same positions again, and gets the same spectra there
    np.testing.assert_array_equal(panel.loop.positions, first)
    np.testing.assert_array_equal(panel.loop.result.spectra, first_spectra)


def test_steps_run_with_one_torch_thread_and_leave_the_setting_as_it_was():
    threads = []

    class Recording(pw.RecordedMicroscope):
        def acquire(self, positions):
            threads.append(torch.get_num_threads())  # on the panel's worker thread
            return super().acquire(positions)

    before = torch.get_num_threads()
    panel = panel_on(Recording(scope().si), budget=8)
    click(panel, "start")
    assert panel.wait(WAIT_S) and panel.n_measured == 8
    assert threads and set(threads) == {1}
    assert torch.get_num_threads() == before


def test_map_quantity_and_energy_window():
    panel = panel_on(scope())
    click(panel, "step")
    assert panel.wait(WAIT_S)
    energy = panel.energy
    panel.quantity_input.value = "peak energy"
    panel.energy_window.value = (float(energy[4]), float(energy[10]))
    values = panel.prediction_view.image_data
    assert values.min() >= energy[4] - 1e-6 and values.max() <= energy[10] + 1e-6
    assert "peak energy" in panel.prediction_view.title
    expected = scalar_map(panel.loop.mean, energy, "peak energy", panel.energy_window.value)
    np.testing.assert_allclose(values, expected)


def test_scalarizer_strategy_uses_the_map_quantity():
    panel = panel_on(scope(), strategy="scalarizer", budget=8)
    click(panel, "start")
    assert panel.wait(WAIT_S)
    assert panel.state == "finished" and panel.loop.strategy == "scalarizer"


def test_without_truth_there_is_no_error_curve_and_bad_microscopes_are_refused():
    panel = panel_on(scope(), truth=False)
    assert panel.error_figure not in panel.children
    click(panel, "step")
    assert panel.wait(WAIT_S) and panel.n_measured == 4 and panel.error_curve[0].size == 0
    with pytest.raises(TypeError, match=r"plasmonwidgets\.Microscope"):
        AutonomousPanel(object())


def test_dashboard_tab_builds_lazily_and_stops_with_new_data(tmp_path):
    from plasmonwidgets.app.dashboard import Dashboard
    from plasmonwidgets.app.dashboard.settings import MODEL_TABS, TABS

    assert "Autonomous" in TABS and "Autonomous" not in MODEL_TABS
    si = pw.datasets.nanocube_array(seed=0, size=SIZE, n_energy=N_ENERGY, physics="toy")
    d = Dashboard(si, data_dir=tmp_path, use_pretrained=False, decode_mode="sync", epochs=1,
                  window=WINDOW)
    try:
        assert "Autonomous" not in d._built and d.autonomous_panel is None
        box = d.select_tab("Autonomous")
        panel = d.autonomous_panel
        assert panel in box.children and d.error_text == ""
        assert panel.state == "idle" and panel.loop is None  # nothing runs by itself
        assert isinstance(panel.microscope, pw.RecordedMicroscope) and panel.microscope.si is si
        panel.loop_options.update(n_members=2, epochs=1, epochs_first=2)
        click(panel, "step")
        assert panel.wait(WAIT_S) and panel.n_measured == panel.batch_input.value
        d.set_si(pw.datasets.nanocube_array(seed=1, size=SIZE, n_energy=N_ENERGY, physics="toy"))
        assert panel._closed  # the old scan's loop is stopped
        # the tab shown is rebuilt at once for the new data, idle
        new = d.autonomous_panel
        assert new is not panel and new.microscope.si is d.si and new.loop is None
        assert new in d._boxes["Autonomous"].children and d.error_text == ""
    finally:
        d.close()
