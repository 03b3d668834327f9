"""The dashboard's metric table: evaluate's numbers, by region, with the strongest baseline,
cached per model and data so a second dashboard does not compute them again."""

from __future__ import annotations

import copy
import html
import re

import numpy as np
import pytest
import torch

from plasmonwidgets import pretrained

pytestmark = pytest.mark.skipif(
    len(pretrained.available()) < 4,
    reason="packaged pre-trained models missing; run `python scripts/make_pretrained.py`",
)


@pytest.fixture(scope="module")
def si():
    from plasmonwidgets import datasets

    return datasets.nanocube_array(**pretrained.DATASET)


@pytest.fixture(scope="module")
def dashboard(si, tmp_path_factory):
    from plasmonwidgets.app.dashboard import Dashboard
    from plasmonwidgets.app.dashboard.metrics import clear_cache

    clear_cache()
    d = Dashboard(si, data_dir=tmp_path_factory.mktemp("data"), decode_mode="sync")
    assert d.wait_metrics(600), "the metric tables were not computed"
    yield d
    d.close()


def _text(value: str) -> str:
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", " ", value)))


def test_table_values_are_evaluates(dashboard):
    from plasmonwidgets.analysis import evaluate
    from plasmonwidgets.app.dashboard.metrics import REGION_LABELS, format_percent
    from plasmonwidgets.app.dashboard.settings import KEYS

    dashboard.select_tab("Errors")
    for direction in ("im2spec", "spec2im"):
        dashboard.error_direction.value = direction
        text = _text(dashboard.error_models.value)
        for key in (k for k in KEYS if k[0] == direction):
            table = dashboard.model_table(key)
            fresh = evaluate(dashboard.models[key], dashboard.test_set)
            assert table.rows.keys() == fresh.rows.keys()
            for row in fresh.rows:
                np.testing.assert_allclose(
                    [getattr(table[row], c) for c in ("mean", "median", "p95", "max")],
                    [getattr(fresh[row], c) for c in ("mean", "median", "p95", "max")])
            s = fresh.overall
            regions = [r[len("region: "):] for r in fresh.rows if r.startswith("region: ")]
            assert {"interior", "gap", "vacancy", "hole", "edge", "support"} <= set(regions)
            # the row: how it was trained, mean, median, p95, max, then the mean of each region
            cells = [format_percent(v) for v in (s.mean, s.median, s.p95, s.max)]
            cells += [format_percent(fresh[f"region: {r}"].mean) for r in regions]
            assert f"{direction} {key[1]} latent: pre-trained " + " ".join(cells) in text
            for r in regions:
                assert REGION_LABELS.get(r, r) in text
        # the Data tab quotes the same figures
        summary = _text(dashboard.summary.value)
        s = dashboard.model_table((direction, 10)).overall
        assert (f"test NMSE mean {format_percent(s.mean)} %, median {format_percent(s.median)} %, "
                f"p95 {format_percent(s.p95)} %, max {format_percent(s.max)} %") in summary


def test_strongest_baseline_row(dashboard):
    from plasmonwidgets.analysis import baselines, evaluate
    from plasmonwidgets.app.dashboard.metrics import NMSE_HELP, format_percent

    tables = [evaluate(b.fit(dashboard.train_set), dashboard.test_set)
              for b in baselines.default_baselines("im2spec", oracles=False)]
    best = baselines.strongest_baseline(tables)
    shown = dashboard.baseline_table("im2spec")
    assert shown.name == best.name and shown.overall.mean == pytest.approx(best.overall.mean)
    dashboard.select_tab("Errors")
    dashboard.error_direction.value = "im2spec"
    value = dashboard.error_models.value
    s = best.overall
    assert (f"strongest baseline: {best.name} " + " ".join(
        format_percent(v) for v in (s.mean, s.median, s.p95, s.max))) in _text(value)
    # the plain-language explanation: caption and tooltip
    assert NMSE_HELP in _text(value)
    assert f"title='{html.escape(NMSE_HELP, quote=True)}'" in value
    assert "max is what the paper quotes" in NMSE_HELP
    # the Data tab's line carries the regions and the baseline in its tooltip
    tip = html.unescape(re.search(r"title='([^']*)'", dashboard.metric_text(("im2spec", 2))).group(1))
    assert "Mean by region: interior" in tip and f"Strongest baseline ({best.name}" in tip


def test_a_second_dashboard_takes_the_tables_from_the_cache(dashboard, si, tmp_path, monkeypatch):
    import plasmonwidgets.analysis as analysis
    from plasmonwidgets.app.dashboard import Dashboard
    from plasmonwidgets.app.dashboard.settings import KEYS

    calls = []
    real = analysis.evaluate
    monkeypatch.setattr(analysis, "evaluate", lambda *a, **k: calls.append(a) or real(*a, **k))
    d = Dashboard(si, data_dir=tmp_path, decode_mode="sync")
    try:
        assert d.wait_metrics(60)
        assert calls == [] and d._metrics_thread is None  # nothing computed, no thread started
        for key in KEYS:
            assert d.models[key] is not dashboard.models[key]  # loaded again, same weights
            assert d.model_table(key) is dashboard.model_table(key)
        assert d.baseline_table("spec2im") is dashboard.baseline_table("spec2im")
        assert "computing" not in _text(d.summary.value)
    finally:
        d.close()


def test_other_weights_are_computed_again(dashboard, monkeypatch):
    import plasmonwidgets.analysis as analysis
    from plasmonwidgets.app.dashboard.metrics import data_fingerprint, model_fingerprint

    key = ("im2spec", 2)
    model = dashboard.models[key]
    assert model_fingerprint(model) == model_fingerprint(pretrained.load_default(*key))
    changed = copy.deepcopy(model)
    with torch.no_grad():
        next(changed.parameters()).add_(0.01)
    assert model_fingerprint(changed) != model_fingerprint(model)
    assert data_fingerprint(dashboard.test_set) != data_fingerprint(dashboard.train_set)

    calls = []
    real = analysis.evaluate
    monkeypatch.setattr(analysis, "evaluate", lambda *a, **k: calls.append(a) or real(*a, **k))
    dashboard.set_model(key, changed, note="trained here, 1 epochs")
    assert dashboard.wait_metrics(300)
    assert len(calls) == 1 and calls[0][0] is changed
    assert dashboard.model_table(key).overall.mean != pytest.approx(
        dashboard._metrics[("im2spec", 10)][1].overall.mean)
    dashboard.revert_to_pretrained(key)  # the packaged model's table comes back from the cache
    assert dashboard.model_table(key) is not None and len(calls) == 1
