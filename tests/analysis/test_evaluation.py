"""The evaluation table (analysis.evaluate), the baselines and the protocol benchmark."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import plasmonwidgets as pw
from plasmonwidgets.analysis import EvaluationTable, evaluate
from plasmonwidgets.analysis.baselines import (
    KNN,
    IntensityOracle,
    IntensityTimesMeanSpectrum,
    MeanTarget,
    PCARidge,
    RotationOracle,
    default_baselines,
    strongest_baseline,
)
from plasmonwidgets.tiles import TilePairs

NAMES = ["interior", "gap", "vacancy", "hole", "edge", "vacuum"]


def make_pairs(tiles, spectra, regions=None, region_names=NAMES) -> TilePairs:
    n = len(spectra)
    pos = np.stack([np.arange(n) // 10, np.arange(n) % 10], axis=1)
    return TilePairs(tiles, spectra, pos, np.linspace(0.2, 1.2, spectra.shape[1]),
                     (n // 10 + 1, 10), regions, region_names if regions is not None else None)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# ----------------------------------------------------------------------- the table
def test_ten_percent_too_high_everywhere_is_one_percent_per_sample(rng):
    truth = rng.uniform(1, 5, (30, 12))
    table = evaluate(truth * 1.1, (rng.normal(size=(30, 4, 4)), truth), direction="im2spec")
    np.testing.assert_allclose(table.per_sample, 1.0)
    s = table["all"]
    assert s.n == 30
    for value in (s.mean, s.median, s.p95, s.p99, s.max, s.pooled):
        assert value == pytest.approx(1.0)


def test_pooled_weighs_samples_by_signal_unlike_the_mean():
    # sample A: 1 % error on Σtrue² = 1; sample B: exact, Σtrue² = 100
    truth = np.array([[1.0, 0.0], [10.0, 0.0]])
    pred = np.array([[1.1, 0.0], [10.0, 0.0]])
    s = evaluate(pred, (np.zeros((2, 4, 4)), truth), direction="im2spec")["all"]
    assert s.mean == pytest.approx(0.5)
    assert s.median == pytest.approx(0.5)
    assert s.max == pytest.approx(1.0)
    assert s.pooled == pytest.approx(100 * 0.01 / 101)


def test_region_rows_count_their_samples_in_label_order(rng):
    labels = np.array([0] * 5 + [1] * 3 + [5] * 2)
    truth = rng.uniform(1, 2, (10, 6))
    pred = truth.copy()
    pred[labels == 1] *= 1.2  # only the gap samples are off: 4 % each
    pairs = make_pairs(rng.uniform(size=(10, 4, 4)).astype(np.float32), truth.astype(np.float32),
                       labels)
    table = evaluate(lambda x: pred, pairs, direction="im2spec")
    assert list(table.rows) == ["all", "region: interior", "region: gap", "region: vacuum"]
    assert [table[f"region: {r}"].n for r in ("interior", "gap", "vacuum")] == [5, 3, 2]
    assert table["region: gap"].mean == pytest.approx(4.0, rel=1e-5)
    assert table["region: interior"].max == pytest.approx(0.0, abs=1e-9)
    assert table["all"].mean == pytest.approx(1.2, rel=1e-5)
    # string labels give the same rows, in order of appearance
    again = evaluate(pred, pairs, direction="im2spec", regions=np.array(NAMES)[labels])
    assert again["region: gap"].n == 3


def test_spec2im_rows_leave_out_vacuum_and_compare_rotation_averages(rng):
    w = 8
    truth = rng.uniform(1, 3, (6, w, w))
    # the truth rotated by 90 degrees about the probe pixel: wrong tile, same symmetrised tile
    pred = truth.copy()
    pred[:, 1:, 1:] = np.rot90(truth[:, 1:, 1:], 1, axes=(1, 2))
    labels = np.array([0, 0, 1, 5, 5, 5])
    pairs = make_pairs(truth.astype(np.float32), rng.uniform(size=(6, 5)).astype(np.float32),
                       labels)
    table = evaluate(pred.astype(np.float32), pairs, direction="spec2im")
    assert table["all"].mean > 1
    assert table["non-vacuum"].n == 3
    assert table["non-vacuum"].mean == pytest.approx(table.per_sample[:3].mean())
    assert table["symmetrised"].max == pytest.approx(0.0, abs=1e-9)
    assert table["symmetrised, non-vacuum"].n == 3


def test_without_region_labels_there_are_no_region_or_vacuum_rows(rng):
    truth = rng.uniform(1, 3, (4, 8, 8))
    table = evaluate(truth, (rng.uniform(size=(4, 5)), truth), direction="spec2im")
    assert list(table.rows) == ["all", "symmetrised"]
    assert table["all"].max == 0


def test_table_renders_as_markdown_and_json(rng):
    truth = rng.uniform(1, 2, (5, 3))
    table = evaluate(truth * 0.9, (np.zeros((5, 4, 4)), truth), direction="im2spec", name="demo")
    md = table.to_markdown()
    assert md.splitlines()[0].startswith("| demo (im2spec)")
    assert "| all | 5 | 1 | 1 |" in md
    d = json.loads(json.dumps(table.as_dict()))
    assert d["rows"]["all"]["pooled"] == pytest.approx(1.0)
    assert d["kind"] == "predictor"
    assert "demo" in repr(table) and isinstance(table, EvaluationTable)
    with pytest.raises(KeyError, match="rows are"):
        table["region: gap"]


def test_unclear_or_inconsistent_inputs_are_refused(rng):
    truth = rng.uniform(1, 2, (5, 3))
    data = (np.zeros((5, 4, 4)), truth)
    with pytest.raises(ValueError, match="direction"):
        evaluate(lambda x: truth, data)
    with pytest.raises(ValueError, match="shape"):
        evaluate(truth[:, :2], data, direction="im2spec")
    with pytest.raises(ValueError, match="spec2im predictor"):
        evaluate(MeanTarget("spec2im").fit((truth, np.zeros((5, 4, 4)))), data,
                 direction="im2spec")
    with pytest.raises(TypeError, match="cannot evaluate"):
        evaluate(object(), data, direction="im2spec")


def test_a_model_on_a_simulated_scene_gets_region_rows_from_its_metadata():
    si = pw.datasets.nanocube_array(seed=0, size=32, physics="toy").bin(energy=4)
    _, test = pw.make_tiles(si, window=16).split("halves")
    model = pw.Im2Spec(window=16, n_energy=si.n_energy, latent_dim=2, device="cpu")
    table = evaluate(model, test)
    assert table.info["kind"] == "model" and table.direction == "im2spec"
    regions = [k for k in table.rows if k.startswith("region: ")]
    assert regions and sum(table[k].n for k in regions) == len(test)
    np.testing.assert_allclose(
        table.per_sample, pw.metrics.nmse_percent(model.predict(test.images), test.spectra),
        rtol=1e-5)


# ----------------------------------------------------------------------- baselines
def intensity_times_one_shape(rng, n=80, w=6, e=20):
    """Tiles, and spectra = one shape × an intensity linear in tile sum and centre pixel."""
    tiles = rng.uniform(0, 1, (n, w, w))
    intensity = 2.0 + 0.5 * tiles.sum(axis=(1, 2)) + 3.0 * tiles[:, w // 2, w // 2]
    shape = np.exp(-((np.arange(e) - 8.0) / 3.0) ** 2) + 0.1
    return tiles, intensity[:, None] * shape[None, :]


def test_three_parameter_model_and_intensity_oracle_are_exact_on_intensity_times_shape(rng):
    tiles, spectra = intensity_times_one_shape(rng)
    train, test = (tiles[:50], spectra[:50]), (tiles[50:], spectra[50:])
    model = IntensityTimesMeanSpectrum("im2spec").fit(train)
    np.testing.assert_allclose(model.predict(test[0]), test[1], rtol=1e-9)
    assert evaluate(model, test)["all"].max < 1e-12
    oracle = IntensityOracle("im2spec").fit(train)
    assert evaluate(oracle, test)["all"].max < 1e-12
    # the mean spectrum alone cannot follow the intensity
    assert evaluate(MeanTarget("im2spec").fit(train), test)["all"].mean > 1


def test_knn_with_one_neighbour_returns_training_targets_and_symmetric_knn_is_symmetric(rng):
    spectra = rng.uniform(0, 1, (40, 10))
    tiles = rng.uniform(1, 2, (40, 8, 8))
    knn = KNN("spec2im", k=1, n_components=5).fit((spectra, tiles))
    np.testing.assert_allclose(knn.predict(spectra), tiles, rtol=1e-9)
    sym = KNN("spec2im", k=3, symmetric=True).fit((spectra, tiles)).predict(spectra[:5])
    np.testing.assert_allclose(sym[:, 1:, 1:], np.rot90(sym[:, 1:, 1:], 1, axes=(1, 2)))
    with pytest.raises(ValueError, match="spec2im only"):
        KNN("im2spec", symmetric=True)


def test_pca_ridge_recovers_a_low_rank_linear_map(rng):
    z = rng.normal(size=(200, 3))
    x = z @ rng.normal(size=(3, 36))
    y = 5 + z @ rng.normal(size=(3, 7))
    model = PCARidge("im2spec", n_components=3, alpha=1e-6).fit((x.reshape(-1, 6, 6), y))
    np.testing.assert_allclose(model.predict(x.reshape(-1, 6, 6)), y, atol=1e-4)


def test_baselines_see_only_the_training_side(rng):
    tiles, spectra = intensity_times_one_shape(rng, n=60)
    spectra = spectra * rng.uniform(0.5, 1.5, spectra.shape)  # not exactly one shape
    train = (tiles[:40].copy(), spectra[:40].copy())
    test_x, test_y = tiles[40:], spectra[40:]
    for b in default_baselines("im2spec", oracles=False):
        before = b.fit(train).predict(test_x)
        # the test targets play no part in fitting or predicting: change them all
        evaluate(b, (test_x, test_y * 3 + 1))
        np.testing.assert_array_equal(b.predict(test_x), before)
        refit = type(b)("im2spec", **({"n_components": b.n_components}
                                      if isinstance(b, PCARidge) else {})).fit(train)
        np.testing.assert_allclose(refit.predict(test_x), before)
        np.testing.assert_array_equal(train[1], spectra[:40])  # fitting did not alter data


def test_oracles_need_the_truth_and_are_never_the_strongest_baseline(rng):
    tiles = rng.uniform(1, 2, (30, 8, 8))
    spectra = rng.uniform(0, 1, (30, 6))
    with pytest.raises(ValueError, match="oracle"):
        RotationOracle("spec2im").fit((spectra, tiles)).predict(spectra)
    tables = [evaluate(b.fit((spectra[:20], tiles[:20])), (spectra[20:], tiles[20:]))
              for b in default_baselines("spec2im")]
    assert {t.info["kind"] for t in tables} == {"baseline", "oracle"}
    rot = next(t for t in tables if t.name == "rotation oracle")
    best = strongest_baseline(tables)
    assert best.info["kind"] == "baseline"
    assert best["all"].mean == min(t["all"].mean for t in tables if t.info["kind"] == "baseline")
    assert rot["all"].mean < best["all"].mean  # the oracle is better, and still not chosen
    with pytest.raises(ValueError, match="no baseline"):
        strongest_baseline([rot])


def test_baselines_refuse_a_direction_they_do_not_serve_and_predict_before_fit():
    with pytest.raises(ValueError, match="supports direction"):
        IntensityTimesMeanSpectrum("spec2im")
    with pytest.raises(RuntimeError, match="fit"):
        MeanTarget("im2spec").predict(np.zeros((2, 4, 4)))


# ----------------------------------------------------------------------- protocol
def test_protocol_benchmark_smoke_run_writes_json_and_markdown(tmp_path):
    path = Path(__file__).parents[2] / "benchmarks" / "bench_protocol.py"
    spec = importlib.util.spec_from_file_location("bench_protocol", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "protocol.json"
    assert bench.main(["--quick", "--size", "32", "--epochs", "1", "--seeds", "2",
                       "--only", "im2spec_2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["sets"][0] == "test half (scene 0)" and len(result["sets"]) == 5
    agg = result["models"]["im2spec 2"]["scene 4, stronger disorder"]["all/mean"]
    assert len(agg["values"]) == 2 and agg["min"] <= agg["mean"] <= agg["max"]
    assert result["strongest_baseline"]["im2spec"]["scene 2"]["all"]["name"]
    md = out.with_suffix(".md").read_text()
    assert "Held-out scenes" in md and "What holds" in md
