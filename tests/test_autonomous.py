"""The autonomous-experiment loop on a 24x24 simulated scan with tiny ensembles."""

import numpy as np
import pytest

import plasmonwidgets as pw
from plasmonwidgets import autonomous
from plasmonwidgets.autonomous import (
    cover_greedy,
    grid_positions,
    raster_order,
    scan_tiles,
    spread_out,
    tile_neighbours,
)

SIZE, N_ENERGY = 24, 16


def tiny(seed):
    return pw.Im2Spec(window=8, n_energy=N_ENERGY, latent_dim=2, n_filters_enc=4, n_filters_dec=4,
                      dilations=(1,), seed=seed, device="cpu")


def scope():
    return pw.SimulatedMicroscope(seed=1, size=SIZE, n_energy=N_ENERGY)


def peak_energy(spectrum):
    return float(np.argmax(spectrum))


FAST = dict(n_members=2, epochs=1, epochs_first=2, updates=4, batch_size=32)


def run(strategy, **kw):
    options = dict(budget=17, batch=4, n_seed=5, strategy=strategy, seed=0, **FAST)
    if strategy == "scalarizer":
        options["scalarizer"] = peak_energy
    options.update(kw)
    return autonomous.run(scope(), tiny, **options)


@pytest.fixture(scope="module")
def results():
    return {s: run(s) for s in autonomous.STRATEGIES}


@pytest.mark.parametrize("strategy", autonomous.STRATEGIES)
def test_budget_respected_and_no_position_twice(results, strategy):
    res = results[strategy]
    assert res.finished and res.strategy == strategy and res.budget == 17
    assert res.positions.shape == (17, 2) and res.spectra.shape == (17, N_ENERGY)
    assert len({tuple(p) for p in res.positions.tolist()}) == 17
    assert res.positions.min() >= 0 and res.positions.max() < SIZE
    # steps: 5 seed spectra, then batches of 4, the last one cut to the budget
    assert [len(s.positions) for s in res.steps] == [5, 4, 4, 4]
    assert res.n_measured.tolist() == [5, 9, 13, 17]
    np.testing.assert_array_equal(np.concatenate([s.positions for s in res.steps]), res.positions)
    assert res.mean.shape == res.std.shape == (SIZE, SIZE, N_ENERGY)
    last = res.steps[-1]
    assert last.uncertainty_map.shape == (SIZE, SIZE) and last.mean_spectrum.shape == (N_ENERGY,)
    assert last.mean_uncertainty == pytest.approx(float(res.std.sum(-1).mean()), rel=1e-4)
    assert (res.wall_times > 0).all() and res.wall_times.shape == (4,)
    # the measured spectra are the scene's
    full = scope().si.spectra
    np.testing.assert_array_equal(res.spectra, full[res.positions[:, 0], res.positions[:, 1]])


def test_strategies_choose_differently(results):
    picked = {s: {tuple(p) for p in r.positions[5:].tolist()} for s, r in results.items()}
    names = list(picked)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert picked[a] != picked[b], (a, b)
    # the model-driven strategies start on an even grid, raster on its coarsest grid
    seeds = {s: r.positions[:5].tolist() for s, r in results.items()}
    assert seeds["uncertainty"] == seeds["scalarizer"] == grid_positions((SIZE, SIZE), 5).tolist()
    assert seeds["raster"] == raster_order((SIZE, SIZE))[:5].tolist()
    assert seeds["random"] != seeds["uncertainty"]
    shared = run("uncertainty", seed_design="random").positions[:5].tolist()
    assert shared == seeds["random"]


def test_distance_aware_batches(results):
    distance = run("uncertainty", batch_selection="distance")
    for res in (results["scalarizer"], distance):
        for step in res.steps[1:]:
            p = step.positions.astype(float)
            d = np.sqrt(((p[:, None] - p[None]) ** 2).sum(-1))
            assert d[np.triu_indices(len(p), 1)].min() >= 3.0


@pytest.mark.parametrize("score", ["relative", "absolute"])
def test_uncertainty_picks_the_largest_expected_error(score):
    loop = autonomous.Loop(scope(), tiny, budget=12, batch=3, n_seed=5, strategy="uncertainty",
                           min_distance=0, score=score, batch_selection="distance", **FAST)
    loop.step()
    std, mean = loop.std.astype(np.float64), loop.mean.astype(np.float64)
    # relative: the expected per-spectrum NMSE; absolute: the spread in counts
    expected = ((std**2).sum(-1) / (mean**2).sum(-1) if score == "relative" else std.sum(-1))
    measured = np.isin(np.arange(SIZE * SIZE), loop.positions @ [SIZE, 1]).reshape(SIZE, SIZE)
    best = np.argsort(-np.where(measured, -np.inf, expected).ravel())[:3]
    record = loop.step()
    assert sorted((record.positions @ [SIZE, 1]).tolist()) == sorted(best.tolist())


def test_coverage_batches_follow_the_expected_error_of_alike_tiles():
    loop = autonomous.Loop(scope(), tiny, budget=12, batch=4, n_seed=5, strategy="uncertainty",
                           neighbours=8, **FAST)
    loop.step()
    nbr = tile_neighbours(loop._tiles, 8)
    score, free = loop._uncertainty_score(), ~loop.measured
    expected = cover_greedy(score, nbr, free, 4)
    # the first pick: the largest expected error summed over its 8 look-alikes
    gain = np.where(free, score, 0.0).ravel()[nbr].sum(axis=1)
    gain[~free.ravel()] = -np.inf
    assert expected[0] @ [SIZE, 1] == np.argmax(gain)
    record = loop.step()
    np.testing.assert_array_equal(record.positions, expected)


def test_tile_neighbours_and_cover_greedy():
    rng = np.random.default_rng(0)
    tiles = rng.normal(size=(30, 4, 4))
    tiles[10:] += 50.0                       # two kinds of structure: 10 and 20 tiles
    nbr = tile_neighbours(tiles, 5)
    assert nbr.shape == (30, 5) and (nbr[:, 0] == np.arange(30)).all()   # itself first
    assert (nbr[:10] < 10).all() and (nbr[10:] >= 10).all()              # alike with alike
    # equal error everywhere: after a pick its look-alikes are covered, the next goes elsewhere
    picks = cover_greedy(np.ones((5, 6)), nbr, np.ones((5, 6), bool), 3) @ [6, 1]
    for i, p in enumerate(picks):
        assert not set(picks[i + 1:].tolist()) & set(nbr[p].tolist())
    # an error only on the small kind sends the batch there
    score = np.zeros((5, 6))
    score.flat[:10] = 1.0
    assert (cover_greedy(score, nbr, np.ones((5, 6), bool), 2) @ [6, 1] < 10).all()
    # measured pixels are never picked, and no more than the free ones
    avail = np.zeros((5, 6), bool)
    avail.flat[[3, 17]] = True
    assert sorted((cover_greedy(score, nbr, avail, 5) @ [6, 1]).tolist()) == [3, 17]
    with pytest.raises(ValueError, match="between 1 and the 30 tiles"):
        tile_neighbours(tiles, 31)


def test_updates_set_a_floor_on_training():
    # 5 seed spectra in batches of 32: one update per epoch, so `updates` decides the epochs
    loop = autonomous.Loop(scope(), tiny, budget=9, batch=4, n_seed=5, strategy="random",
                           n_members=2, epochs=1, updates=3, batch_size=32)
    assert loop.step().epochs == 6          # the first step: 2 x updates
    assert loop.step().epochs == 3
    few = autonomous.Loop(scope(), tiny, budget=9, batch=4, n_seed=5, strategy="random",
                          n_members=2, epochs=2, updates=0, batch_size=2)
    assert [few.step().epochs, few.step().epochs] == [4, 2]   # epochs alone when updates=0


def test_grid_positions():
    for shape, k in [((24, 24), 5), ((96, 96), 92), ((10, 3), 7), ((1, 50), 5), ((3, 3), 9)]:
        pos = grid_positions(shape, k)
        assert pos.shape == (k, 2) and len({tuple(p) for p in pos.tolist()}) == k
        assert (pos >= 0).all() and (pos < shape).all()
    # 16 points on a 32x32 scan: the 4x4 grid of cell centres, 8 px apart
    pos = grid_positions((32, 32), 16)
    assert sorted(set(pos[:, 0].tolist())) == sorted(set(pos[:, 1].tolist())) == [4, 12, 20, 28]
    with pytest.raises(ValueError, match="between 1 and the 9 pixels"):
        grid_positions((3, 3), 10)


def test_stop_and_resume_continue_identically():
    straight = autonomous.Loop(scope(), tiny, budget=17, batch=4, n_seed=5, strategy="uncertainty",
                               **FAST).run()
    loop = autonomous.Loop(scope(), tiny, budget=17, batch=4, n_seed=5, strategy="uncertainty",
                           on_step=lambda lp, rec: rec.step < 1, **FAST)
    first = loop.run()  # stops after step 1
    assert not first.finished and first.positions.shape == (9, 2)
    resumed = loop.run(on_step=lambda lp, rec: None)
    assert resumed.finished and loop.step() is None
    np.testing.assert_array_equal(resumed.positions, straight.positions)
    np.testing.assert_array_equal(resumed.mean, straight.mean)
    np.testing.assert_array_equal(resumed.std, straight.std)


def test_same_seed_same_run_and_cold_start(results):
    again = run("random")
    np.testing.assert_array_equal(again.positions, results["random"].positions)
    np.testing.assert_array_equal(again.mean, results["random"].mean)
    cold = run("random", warm_start=False, budget=9)
    np.testing.assert_array_equal(cold.positions, results["random"].positions[:9])
    assert not np.array_equal(cold.mean, results["random"].mean)


def test_ucb_acquisition_and_vectorized_scalarizer():
    res = run("scalarizer", acquisition="ucb", budget=9,
              scalarizer=lambda s: np.argmax(s, axis=-1).astype(float), scalarizer_vectorized=True)
    assert res.positions.shape == (9, 2)
    assert len({tuple(p) for p in res.positions.tolist()}) == 9


def test_helpers():
    order = raster_order((6, 5))
    assert order.shape == (30, 2) and len({tuple(p) for p in order.tolist()}) == 30
    assert order[:4].tolist() == [[0, 0], [0, 2], [0, 4], [2, 0]]
    score = np.arange(16.0).reshape(4, 4)
    avail = np.ones((4, 4), bool)
    avail[3, 3] = False
    assert spread_out(score, avail, 2, 0).tolist() == [[3, 2], [3, 1]]
    # at distance 10 only one pixel fits: the rest by score
    assert spread_out(score, avail, 3, 10).tolist() == [[3, 2], [3, 1], [3, 0]]
    assert spread_out(score, np.zeros((4, 4), bool), 3, 1).shape == (0, 2)
    haadf = np.random.default_rng(0).uniform(size=(SIZE, SIZE))
    si = pw.SpectrumImage(np.ones((SIZE, SIZE, 4)), np.linspace(1, 2, 4), haadf)
    pairs = pw.make_tiles(si, window=8, pad="reflect")
    np.testing.assert_array_equal(scan_tiles(haadf, (SIZE, SIZE), 8).reshape(-1, 8, 8), pairs.images)


def test_bad_arguments():
    with pytest.raises(ValueError, match="strategy must be one of"):
        autonomous.Loop(scope(), tiny, budget=10, strategy="greedy")
    with pytest.raises(ValueError, match="needs scalarizer="):
        autonomous.Loop(scope(), tiny, budget=10, strategy="scalarizer")
    with pytest.raises(ValueError, match="exceeds the 576 pixels"):
        autonomous.Loop(scope(), tiny, budget=1000)
    with pytest.raises(ValueError, match="n_seed"):
        autonomous.Loop(scope(), tiny, budget=4, n_seed=5)
    with pytest.raises(ValueError, match="n_energy=16"):
        autonomous.Loop(scope(), lambda s: pw.Im2Spec(window=8, n_energy=8, seed=s, device="cpu"),
                        budget=10)
    with pytest.raises(TypeError, match=r"plasmonwidgets\.Microscope"):
        autonomous.Loop(object(), tiny, budget=10)
    with pytest.raises(ValueError, match="acquisition must be"):
        autonomous.Loop(scope(), tiny, budget=10, acquisition="pi")
    with pytest.raises(ValueError, match="score must be one of"):
        autonomous.Loop(scope(), tiny, budget=10, score="variance")
    with pytest.raises(ValueError, match="seed_design must be one of"):
        autonomous.Loop(scope(), tiny, budget=10, seed_design="sobol")
    with pytest.raises(ValueError, match="updates must be an integer >= 0"):
        autonomous.Loop(scope(), tiny, budget=10, updates=-1)
