"""One metric everywhere: each model's test-half NMSE table, from ``analysis.evaluate``.

The Data tab's summary and the Errors tab show the same numbers for the model in use
(mean, median and max per-sample NMSE, %), computed once per model by
:func:`plasmonwidgets.analysis.evaluate` in a background thread so the page opens
without waiting; until then the captions say "computing…".
"""

from __future__ import annotations

import html
import threading
from typing import Any

from .settings import KEYS

__all__ = ["NMSE_HELP", "ModelMetrics", "format_percent"]

#: what the numbers are, in plain words (caption and tooltip)
NMSE_HELP = ("per-spectrum (im2spec) or per-tile (spec2im) NMSE = 100·Σ(pred−true)²/Σtrue², "
             "on the test half of the scan")


def format_percent(value: float) -> str:
    """Three significant digits, without exponents: ``1.06``, ``55.5``, ``1389``."""
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


class ModelMetrics:
    """Test-half metric tables of the models in use (a part of :class:`Dashboard`).

    Uses ``models``, ``test_set`` and ``_show_metrics`` (refreshes the captions) of the
    dashboard; ``_metrics`` maps (direction, latent) -> (model, EvaluationTable).
    """

    def model_table(self, key: tuple[str, int]) -> Any:
        """The EvaluationTable of the model in use for ``key``, or None while computing."""
        entry = self._metrics.get(key)
        if entry is None or entry[0] is not self.models.get(key):
            return None
        return entry[1]

    def metric_text(self, key: tuple[str, int]) -> str:
        """E.g. "test NMSE mean 1.06 %, median 0.871 %, max 4.8 %" (HTML, with a tooltip)."""
        table = self.model_table(key)
        if table is None:
            body = "test NMSE computing…"
        else:
            s = table.overall
            body = (f"test NMSE mean {format_percent(s.mean)} %, median {format_percent(s.median)} %, "
                    f"max {format_percent(s.max)} %")
        return f"<span title='{html.escape(NMSE_HELP, quote=True)}'>{body}</span>"

    def wait_metrics(self, timeout: float = 120.0) -> bool:
        """Block until the metric tables of the models in use are computed (tests, scripts)."""
        thread = self._metrics_thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def _start_metrics(self) -> None:
        """Compute, in a thread, the tables of models in use that have none yet."""
        self._metrics_run += 1
        run, test_set = self._metrics_run, self.test_set
        todo = [(k, self.models[k]) for k in KEYS if k in self.models and self.model_table(k) is None]
        if not todo or test_set is None:
            return

        def work() -> None:
            from plasmonwidgets.analysis import evaluate

            for key, model in todo:
                if run != self._metrics_run:  # newer data or models: this run is stale
                    return
                try:
                    table = evaluate(model, test_set)
                except Exception as exc:  # shown on the page, never lost in the thread
                    self.show_error(exc, "computing the test metrics")
                    return
                if run != self._metrics_run and test_set is not self.test_set:
                    return
                self._metrics[key] = (model, table)
                try:
                    self._show_metrics()
                except Exception as exc:
                    self.show_error(exc, "showing the test metrics")

        self._metrics_thread = threading.Thread(target=work, name="pw-dashboard-metrics", daemon=True)
        self._metrics_thread.start()
