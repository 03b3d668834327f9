"""One metric table everywhere: each model's test-half NMSE, from ``analysis.evaluate``.

The Data tab's summary (:meth:`ModelMetrics.metric_text`, one line per model) and the
Errors tab (:meth:`ModelMetrics.metric_table_html`, the full table) show the same numbers
for the models in use: per-position NMSE mean, median, p95 and max, the mean by region,
and the row of the strongest baseline (fitted on the training half). They are computed
by :func:`plasmonwidgets.analysis.evaluate` in a background thread, so the page opens
without waiting (the captions say "computing…" meanwhile), and kept in a process-wide
cache keyed on the model's weights and the test tiles: a second dashboard on the same
data, or a model put back in use, shows its numbers at once.
"""

from __future__ import annotations

import hashlib
import html
import threading
from collections import OrderedDict
from typing import Any

import numpy as np

from plasmonwidgets.roles import role_of

from .settings import KEYS, model_label

__all__ = ["NMSE_HELP", "ModelMetrics", "clear_cache", "data_fingerprint", "format_percent",
           "model_fingerprint"]

#: what the numbers are, in plain words (caption and tooltip)
NMSE_HELP = ("NMSE: squared error of the predicted spectrum (im2spec) or tile (spec2im) divided "
             "by the squared measured one, per probe position, in %, on the test half of the scan; "
             "mean, median, p95 (95 % of positions do better) and max over the positions — max is "
             "what the paper quotes")

#: how the page names the evaluation's regions
REGION_LABELS = {"vacuum": "vacuum (beyond the edge)", "support": "bare support (beyond the edge)"}

# (kind, fingerprints...) -> EvaluationTable; shared by every dashboard of this process
_CACHE: OrderedDict[tuple, Any] = OrderedDict()
_CACHE_SIZE = 64
_CACHE_LOCK = threading.Lock()


def format_percent(value: float) -> str:
    """Three significant digits, without exponents: ``1.06``, ``55.5``, ``1389``; "–" if NaN.

    Examples
    --------
    >>> format_percent(1.0567), format_percent(55.49), format_percent(1388.6), format_percent(float("nan"))
    ('1.06', '55.5', '1389', '–')
    """
    if not np.isfinite(value):
        return "–"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"


def model_fingerprint(model: Any) -> str:
    """A digest of a model's class, configuration and weights: equal for equal models.

    Two loads of the same checkpoint share it; a model trained further does not.

    Examples
    --------
    >>> model_fingerprint(pretrained.load_default("im2spec", 2)) == \\
    ...     model_fingerprint(pretrained.load_default("im2spec", 2))   # doctest: +SKIP
    True
    """
    state = getattr(model, "state_dict", None)
    if state is None:  # not a torch model: only the same object is the same predictor
        return f"object-{id(model)}"
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{type(model).__name__}|{getattr(model, 'direction', '')}|"
             f"{sorted(getattr(model, 'config', {}).items())}".encode())
    lock = getattr(model, "lock", None)
    if lock is not None:
        lock.acquire()
    try:  # under the model's lock: a training thread must not change weights mid-hash
        for name, tensor in state().items():
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    finally:
        if lock is not None:
            lock.release()
    return h.hexdigest()


def data_fingerprint(pairs: Any) -> str:
    """A digest of a TilePairs' tiles, spectra, positions, regions and energy axis.

    Examples
    --------
    Equal tiles and spectra give equal digests (the metric cache's key):

    >>> import numpy as np
    >>> import plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))
    >>> pairs = pw.make_tiles(si, window=8, pad="reflect")
    >>> data_fingerprint(pairs) == data_fingerprint(pw.make_tiles(si, window=8, pad="reflect"))
    True
    """
    h = hashlib.blake2b(digest_size=16)
    for part in (pairs.images, pairs.spectra, pairs.positions, pairs.energy,
                 getattr(pairs, "regions", None)):
        if part is not None:
            a = np.ascontiguousarray(part)
            h.update(f"{a.dtype}{a.shape}".encode())
            h.update(a.tobytes())
    h.update(repr(getattr(pairs, "region_names", None)).encode())
    return h.hexdigest()


def clear_cache() -> None:
    """Forget every cached table (tests; a changed evaluation protocol).

    Examples
    --------
    >>> clear_cache()
    """
    with _CACHE_LOCK:
        _CACHE.clear()


def _cached(key: tuple) -> Any:
    with _CACHE_LOCK:
        table = _CACHE.get(key)
        if table is not None:
            _CACHE.move_to_end(key)
        return table


def _store(key: tuple, table: Any) -> None:
    with _CACHE_LOCK:
        _CACHE[key] = table
        _CACHE.move_to_end(key)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)


def _model_key(model: Any, test_fp: str) -> tuple:
    return ("model", model_fingerprint(model), test_fp)


def _baseline_key(direction: str, train_fp: str, test_fp: str) -> tuple:
    return ("baseline", direction, train_fp, test_fp)


def _evaluate_model(model: Any, test_set: Any) -> Any:
    # looked up at call time, so tests can count the calls
    import plasmonwidgets.analysis as analysis

    return analysis.evaluate(model, test_set)


def _strongest_baseline(direction: str, train_set: Any, test_set: Any) -> Any:
    """The table of the best standard baseline (lowest mean NMSE), fitted on ``train_set``."""
    import plasmonwidgets.analysis as analysis
    from plasmonwidgets.analysis import baselines

    tables = [analysis.evaluate(b.fit(train_set), test_set)
              for b in baselines.default_baselines(direction, oracles=False)]
    best = baselines.strongest_baseline(tables)
    best.info["tried"] = [t.name for t in tables]
    return best


def _region_cell(table: Any, region: str) -> str:
    s = table.rows.get(f"region: {region}")
    if s is None or s.n == 0:
        return "<td style='text-align:right;padding:1px 8px'>–</td>"
    tip = (f"{REGION_LABELS.get(region, region)}: {s.n} positions; NMSE mean {format_percent(s.mean)} %, "
           f"median {format_percent(s.median)} %, p95 {format_percent(s.p95)} %, "
           f"max {format_percent(s.max)} %")
    return (f"<td style='text-align:right;padding:1px 8px' title='{html.escape(tip, quote=True)}'>"
            f"{format_percent(s.mean)}</td>")


class ModelMetrics:
    """Test-half metric tables of the models in use (a part of :class:`Dashboard`).

    Uses ``models``, ``model_notes``, ``train_set``, ``test_set`` and ``_show_metrics``
    (refreshes the captions) of the dashboard; ``_metrics`` maps (direction, latent) ->
    (model, EvaluationTable) and ``_baselines`` direction -> EvaluationTable.

    Examples
    --------
    Used through the dashboard, which mixes it in:

    >>> from plasmonwidgets.app.dashboard import Dashboard
    >>> dash = Dashboard()                           # doctest: +SKIP
    >>> dash.wait_metrics(120)                       # doctest: +SKIP
    True
    >>> print(dash.metric_text(("im2spec", 10)))     # doctest: +SKIP
    """

    def model_table(self, key: tuple[str, int]) -> Any:
        """The EvaluationTable of the model in use for ``key``, or None while computing."""
        entry = self._metrics.get(key)
        if entry is None or entry[0] is not self.models.get(key):
            return None
        return entry[1]

    def baseline_table(self, direction: str) -> Any:
        """The EvaluationTable of the strongest baseline of ``direction``, or None while computing."""
        return self._baselines.get(direction)

    def metric_text(self, key: tuple[str, int]) -> str:
        """E.g. "test NMSE mean 1.06 %, median 0.871 %, p95 2.9 %, max 4.8 %" (HTML).

        Its tooltip explains the metric and lists the mean by region and the strongest
        baseline's figures.
        """
        table = self.model_table(key)
        if table is None:
            return (f"<span title='{html.escape(NMSE_HELP, quote=True)}'>test NMSE computing…"
                    "</span>")
        s = table.overall
        body = (f"test NMSE mean {format_percent(s.mean)} %, median {format_percent(s.median)} %, "
                f"p95 {format_percent(s.p95)} %, max {format_percent(s.max)} %")
        lines = [NMSE_HELP + "."]
        regions = [(name[len("region: "):], r) for name, r in table.rows.items()
                   if name.startswith("region: ") and r.n]
        if regions:
            lines.append("Mean by region: " + ", ".join(
                f"{REGION_LABELS.get(n, n)} {format_percent(r.mean)} %" for n, r in regions) + ".")
        base = self.baseline_table(key[0])
        if base is not None:
            b = base.overall
            lines.append(f"Strongest baseline ({base.name}, fitted on the training half): mean "
                         f"{format_percent(b.mean)} %, median {format_percent(b.median)} %, "
                         f"p95 {format_percent(b.p95)} %, max {format_percent(b.max)} %.")
        tip = html.escape("\n".join(lines), quote=True)
        return f"<span title='{tip}' style='cursor:help'>{body}</span>"

    def metric_table_html(self, direction: str) -> str:
        """The full metric table of ``direction``'s models in use and the strongest baseline.

        Columns: NMSE mean, median, p95, max over all test positions, then the mean by
        region (tooltips give each region's full figures); for spec2im also without vacuum
        tiles and rotation-averaged. '' when no model of ``direction`` is in use.
        """
        keys = [k for k in KEYS if k[0] == direction and k in self.models]
        if not keys:
            return ""
        tables = [self.model_table(k) for k in keys]
        base = self.baseline_table(direction)
        known = [t for t in [*tables, base] if t is not None]
        regions: list[str] = []
        for t in known:
            regions += [r[len("region: "):] for r in t.rows if r.startswith("region: ")
                        and r[len("region: "):] not in regions]
        extras = [("non-vacuum", "on the film",
                   "mean NMSE over the tiles centred on the film (not on vacuum or bare support)"),
                  ("symmetrised", "rotation-averaged",
                   "mean NMSE of prediction and truth both averaged over the 4 rotations about the "
                   "probe: what a spectrum can determine (it cannot tell a structure from its "
                   "rotations)")] if role_of(direction).target_kind == "image" else []
        extras = [e for e in extras if any(e[0] in t.rows for t in known)]
        th = "style='padding:1px 8px;text-align:right;font-weight:600'"
        paper = html.escape("the paper quotes the maximum of its error maps", quote=True)
        head1 = ("<tr><th rowspan='2' style='text-align:left;padding:1px 8px 1px 0'>NMSE, % "
                 "(test half)</th><th colspan='4' style='text-align:center'>all positions</th>")
        head2 = (f"<tr><th {th}>mean</th><th {th}>median</th><th {th}>p95</th>"
                 f"<th {th} title='{paper}'>max</th>")
        if regions:
            head1 += f"<th colspan='{len(regions)}' style='text-align:center'>mean by region</th>"
            head2 += "".join(f"<th {th[:-1]};max-width:80px;white-space:normal'>"
                             f"{html.escape(REGION_LABELS.get(r, r))}</th>" for r in regions)
        if extras:
            head1 += f"<th colspan='{len(extras)}' style='text-align:center'>mean, spec2im</th>"
            head2 += "".join(f"<th {th} title='{html.escape(tip, quote=True)}'>{label}</th>"
                             for _, label, tip in extras)
        head1 += "</tr>"
        head2 += "</tr>"

        def cells(table: Any) -> str:
            n = 4 + len(regions) + len(extras)
            if table is None:
                return f"<td colspan='{n}' style='padding-left:8px'>computing…</td>"
            s = table.overall
            out = "".join(f"<td style='text-align:right;padding:1px 8px'>{format_percent(v)}</td>"
                          for v in (s.mean, s.median, s.p95, s.max))
            out += "".join(_region_cell(table, r) for r in regions)
            for row, _, _ in extras:
                e = table.rows.get(row)
                out += (f"<td style='text-align:right;padding:1px 8px'>"
                        f"{format_percent(e.mean) if e is not None else '–'}</td>")
            return out

        rows = "".join(
            f"<tr class='pw-metric-model'><td style='padding:1px 8px 1px 0'>{model_label(k)}: "
            f"{html.escape(self.model_in_use(k))}</td>{cells(t)}</tr>"
            for k, t in zip(keys, tables))
        if base is None:
            label = "strongest baseline: computing…"
            tip = "simple predictors fitted on the training half; the best one is shown"
        else:
            label = f"strongest baseline: {html.escape(base.name)}"
            tip = ("the best (lowest mean NMSE) of the simple predictors fitted on the training "
                   "half: " + ", ".join(base.info.get("tried", [base.name])))
        rows += (f"<tr class='pw-metric-baseline' style='color:var(--jp-ui-font-color2,#616161);"
                 f"border-top:1px solid var(--jp-border-color2,#ddd)'>"
                 f"<td style='padding:1px 8px 1px 0' title='{html.escape(tip, quote=True)}'>{label}"
                 f"</td>{cells(base) if base is not None else cells(None)}</tr>")
        return (f"<table class='pw-metric-table' title='{html.escape(NMSE_HELP, quote=True)}' "
                f"style='font-size:90%;line-height:1.4;border-collapse:collapse;margin:2px 0'>"
                f"<thead style='border-bottom:1px solid var(--jp-border-color1,#bbb)'>{head1}{head2}"
                f"</thead><tbody>{rows}</tbody></table>")

    def wait_metrics(self, timeout: float = 120.0) -> bool:
        """Block until the metric tables of the models in use are computed (tests, scripts)."""
        thread = self._metrics_thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def _start_metrics(self) -> None:
        """Take the tables of the models in use from the cache, compute the rest in a thread."""
        self._metrics_run += 1
        run, train_set, test_set = self._metrics_run, self.train_set, self.test_set
        if test_set is None:
            return
        test_fp = data_fingerprint(test_set)
        train_fp = data_fingerprint(train_set) if train_set is not None else ""
        todo: list[tuple[tuple[str, int], Any, tuple]] = []
        for key in KEYS:
            model = self.models.get(key)
            if model is None or self.model_table(key) is not None:
                continue
            cache_key = _model_key(model, test_fp)
            table = _cached(cache_key)
            if table is not None:
                self._metrics[key] = (model, table)
            else:
                todo.append((key, model, cache_key))
        directions = [d for d in dict.fromkeys(k[0] for k in self.models)
                      if d not in self._baselines and train_set is not None]
        base_todo = []
        for direction in directions:
            cache_key = _baseline_key(direction, train_fp, test_fp)
            table = _cached(cache_key)
            if table is not None:
                self._baselines[direction] = table
            else:
                base_todo.append((direction, cache_key))
        if not todo and not base_todo:
            return

        def current() -> bool:
            return run == self._metrics_run or test_set is self.test_set

        def show() -> None:
            try:
                self._show_metrics()
            except Exception as exc:
                self.show_error(exc, "showing the test metrics")

        def work() -> None:
            for key, model, cache_key in todo:
                if run != self._metrics_run:  # newer data or models: this run is stale
                    return
                try:
                    table = _evaluate_model(model, test_set)
                except Exception as exc:  # shown on the page, never lost in the thread
                    self.show_error(exc, "computing the test metrics")
                    return
                _store(cache_key, table)
                if not current():
                    return
                self._metrics[key] = (model, table)
                show()
            for direction, cache_key in base_todo:
                if run != self._metrics_run:
                    return
                try:
                    table = _strongest_baseline(direction, train_set, test_set)
                except Exception as exc:
                    self.show_error(exc, "computing the baselines' metrics")
                    return
                _store(cache_key, table)
                if not current():
                    return
                self._baselines[direction] = table
                show()

        self._metrics_thread = threading.Thread(target=work, name="pw-dashboard-metrics", daemon=True)
        self._metrics_thread.start()
