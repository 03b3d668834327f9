"""Tests of the physics simulator (plasmonwidgets.simulate) and pw.datasets.nanocube_array."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from scipy import special

from plasmonwidgets import datasets
from plasmonwidgets.simulate import (
    REGION_NAMES,
    Beam,
    CoupledDipoles,
    CubeModes,
    bulk_loss,
    dipole_loss_direct,
    generate_layout,
    region_map,
    simulate_scene,
    single_particle_loss,
    summary,
)
from plasmonwidgets.simulate.geometry import HOLE, OCCUPIED, VACANCY, projected_thickness

BEAM = Beam()
MODES = CubeModes()
SIDE = 15.0
R0 = SIDE / 2
ENERGY = np.linspace(0.2, 1.2, 41)


def _region(name):
    return REGION_NAMES.index(name)


@pytest.fixture(scope="module")
def scene64():
    """A noise-free 64x64 scene on the default energy axis (~2-4 s)."""
    return simulate_scene(seed=0, size=64, noise=False)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PLASMONWIDGETS_CACHE", str(tmp_path))
    datasets.clear_cache()
    yield tmp_path
    datasets.clear_cache()


# --- single particle: analytic limit -------------------------------------------------

def test_single_particle_matches_analytic_formula():
    impact = np.array([0.0, 2.0, 5.0, 7.5, 9.0, 12.0, 20.0, 40.0, 80.0, 150.0])
    solver = CoupledDipoles(BEAM, MODES, np.zeros((1, 2)), [SIDE**3], [R0])
    beams = np.column_stack([np.zeros_like(impact), impact])
    got = solver.loss(beams, ENERGY)
    want = single_particle_loss(BEAM, MODES, SIDE**3, impact, ENERGY, r0=R0)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # outside the particle the regularisation is negligible: the bare docs/physics.md formula
    far = impact >= 4 * R0
    bare = single_particle_loss(BEAM, MODES, SIDE**3, impact[far], ENERGY)
    np.testing.assert_allclose(got[far], bare, rtol=0.01)


def test_analytic_formula_written_out():
    """Γ = 4 α_f q² / (π β² γ² ħc) [K1² + K0²/γ²] Im α, with 60 keV constants."""
    assert BEAM.beta == pytest.approx(0.446, abs=0.001)
    e, b = 0.5, 30.0
    q = e / (197.327 * BEAM.beta)
    x = q * b / BEAM.gamma
    alpha = (SIDE**3 / (4 * np.pi)) * sum(
        w / (L + MODES.eps_host / (MODES.material.eps(e) - MODES.eps_host))
        for L, w in zip(MODES.depolarisation, MODES.weights)
    )
    want = (4 / 137.036 * q**2 / (np.pi * BEAM.beta**2 * BEAM.gamma**2 * 197.327)
            * (special.k1(x) ** 2 + special.k0(x) ** 2 / BEAM.gamma**2) * alpha.imag)
    got = single_particle_loss(BEAM, MODES, SIDE**3, [b], [e])[0, 0]
    assert got == pytest.approx(want, rel=1e-12)


def test_isolated_particle_loss_falls_with_impact_parameter_as_bessel_law():
    impact = np.array([30.0, 40.0, 60.0, 90.0, 130.0, 200.0, 300.0])  # outside, >= 4 r0
    solver = CoupledDipoles(BEAM, MODES, np.zeros((1, 2)), [SIDE**3], [R0])
    loss = solver.loss(np.column_stack([impact, np.zeros_like(impact)]), ENERGY)
    assert np.all(np.diff(loss, axis=0) < 0)  # monotonic decay at every energy
    near = solver.loss(np.array([[0.0, b] for b in (8.0, 10.0, 15.0, 20.0, 30.0)]), ENERGY)
    assert np.all(np.diff(near, axis=0) < 0)
    x = BEAM.q(ENERGY)[None, :] * impact[:, None] / BEAM.gamma
    law = special.k1(x) ** 2 + special.k0(x) ** 2 / BEAM.gamma**2
    ratio = loss / loss[-1]
    np.testing.assert_allclose(ratio, law / law[-1], rtol=0.01)
    # at small q b/γ the decay is ~1/b² (K1 ≈ γ/(qb)); it steepens at large b
    assert loss[0, 10] / loss[2, 10] == pytest.approx(4.0, rel=0.15)
    assert loss[4, 10] / loss[6, 10] > (300 / 130) ** 2


def test_fast_solver_matches_per_energy_lu_solve():
    rng = np.random.default_rng(4)
    grid = np.stack(np.meshgrid(np.arange(4), np.arange(4), indexing="ij"), -1).reshape(-1, 2)
    centers = grid * 17.5 + rng.normal(0, 0.4, (16, 2))
    sides = rng.uniform(12, 18, 16)
    beams = rng.uniform(-20, 80, (60, 2))
    energy = np.linspace(0.1, 1.3, 61)
    fast = CoupledDipoles(BEAM, MODES, centers, sides**3, sides / 2).loss(beams, energy)
    direct = dipole_loss_direct(BEAM, MODES, centers, sides**3, sides / 2, beams, energy)
    np.testing.assert_allclose(fast, direct, rtol=1e-6)
    assert np.all(direct > 0)


def test_coupling_redshifts_the_array_mode():
    """A close-packed chain along the field shifts the in-plane dipole mode to lower energy."""
    energy = np.linspace(0.3, 0.9, 301)
    single = CoupledDipoles(BEAM, MODES, np.zeros((1, 2)), [SIDE**3], [R0])
    chain = CoupledDipoles(BEAM, MODES, np.array([[0.0, x] for x in (0, 17, 34, 51)]),
                           [SIDE**3] * 4, [R0] * 4)
    beam = np.array([[0.0, -20.0]])  # on the chain axis: drives the longitudinal mode
    e_single = energy[np.argmax(single.loss(beam, energy))]
    e_chain = energy[np.argmax(chain.loss(beam, energy))]
    assert e_chain < e_single - 0.01


def test_bulk_loss_is_weak_and_peaks_near_bulk_plasmon():
    energy = np.linspace(0.2, 1.2, 201)
    bulk = bulk_loss(BEAM, MODES.material, np.array([0.0, 15.0]), energy)
    assert np.all(bulk[0] == 0)
    peak = energy[np.argmax(bulk[1])]
    assert abs(peak - MODES.material.bulk_plasmon_energy) < 0.06
    dipolar = single_particle_loss(BEAM, MODES, SIDE**3, [R0 + 2.0], energy, r0=R0)
    assert bulk[1].max() < 0.5 * dipolar.max()


# --- the scene ----------------------------------------------------------------------

def test_scene_spectra_non_negative_and_shapes(scene64):
    s = scene64
    assert s.spectra.shape == s.clean.shape == (64, 64, 100)
    assert s.haadf.shape == (64, 64)
    assert s.spectra.dtype == np.float32
    assert np.all(s.clean >= 0) and np.all(s.spectra >= 0)
    np.testing.assert_array_equal(s.spectra, s.clean)  # noise=False, no tail
    assert np.all(s.tail == 0)


def test_interior_dominant_peak_between_0p4_and_0p6_ev(scene64):
    s = scene64
    interior = s.clean[s.regions == _region("interior")].mean(axis=0)
    peak = s.energy[np.argmax(interior)]
    assert 0.4 <= peak <= 0.6
    # a sub-peak near 0.75 eV: a local maximum of the mean interior spectrum in 0.65-0.85 eV
    band = (s.energy > 0.65) & (s.energy < 0.85)
    d = np.diff(interior)
    local_max = np.flatnonzero((d[:-1] > 0) & (d[1:] <= 0)) + 1
    assert np.any(band[local_max])


def test_bulk_feature_stronger_on_particles_than_in_gaps(scene64):
    s = scene64
    k09 = np.argmin(np.abs(s.energy - 0.9))
    k05 = np.argmax(s.clean[s.regions == _region("interior")].mean(axis=0))
    interior = s.clean[s.regions == _region("interior")].mean(axis=0)
    gap = s.clean[s.regions == _region("gap")].mean(axis=0)
    assert interior[k09] > 1.5 * gap[k09]
    # ...but it stays weak next to the dipolar response
    assert interior[k09] < 0.3 * interior[k05]
    # cubes sit on the support: beyond the film edge only the probe tail touches one
    vac = s.thickness[s.regions == _region("vacuum")]
    assert np.median(vac) < 0.01 and vac.mean() < 0.5
    assert np.all(s.thickness[s.regions == _region("interior")] > 1.0)


def test_hole_and_edge_regions_differ_from_interior(scene64):
    s = scene64
    mean = {n: s.clean[s.regions == _region(n)].mean(axis=0) for n in REGION_NAMES}
    ref = mean["interior"]
    for name in ("hole", "edge", "vacuum"):
        rel = np.linalg.norm(mean[name] - ref) / np.linalg.norm(ref)
        assert rel > 0.1, (name, rel)
    # no particle, no bulk feature: the hole and vacuum lose far less at 0.9 eV
    k09 = np.argmin(np.abs(s.energy - 0.9))
    assert mean["hole"][k09] < 0.5 * ref[k09]
    assert mean["vacuum"][k09] < 0.5 * ref[k09]


def test_haadf_follows_projected_thickness(scene64):
    s = scene64
    lab = s.regions
    hd = s.haadf
    assert hd[lab == _region("interior")].mean() > 3 * hd[lab == _region("hole")].mean()
    assert hd[lab == _region("hole")].mean() > 2 * hd[lab == _region("vacuum")].mean()
    r = np.corrcoef(hd.ravel(), s.thickness.ravel())[0, 1]
    assert r > 0.95


def test_reproducible_from_seed_and_seeds_differ():
    a = simulate_scene(seed=3, size=24, n_energy=12)
    b = simulate_scene(seed=3, size=24, n_energy=12)
    c = simulate_scene(seed=4, size=24, n_energy=12)
    np.testing.assert_array_equal(a.spectra, b.spectra)
    np.testing.assert_array_equal(a.haadf, b.haadf)
    np.testing.assert_array_equal(a.particles["centers"], b.particles["centers"])
    assert not np.array_equal(a.haadf, c.haadf)
    assert not np.array_equal(a.spectra, c.spectra)


def test_noise_is_poisson_around_clean():
    s = simulate_scene(seed=1, size=32, n_energy=30, dose=5e6)
    assert np.all(s.spectra == np.round(s.spectra))  # counts
    z = (s.spectra - s.clean) / np.sqrt(np.maximum(s.clean, 1.0))
    assert abs(z.mean()) < 0.05 and 0.9 < z.std() < 1.1
    # the same seed without noise keeps the same geometry and clean spectra
    q = simulate_scene(seed=1, size=32, n_energy=30, dose=5e6, noise=False)
    np.testing.assert_array_equal(q.clean, s.clean)


@pytest.mark.parametrize("size", [64, 96])
@pytest.mark.parametrize("seed", range(6))
def test_every_region_type_in_every_half_and_quadrant(size, seed):
    pixel = 2.0
    layout = generate_layout(np.random.default_rng(seed), (size * pixel, size * pixel))
    labels = region_map(layout, (size, size), pixel)
    h = size // 2
    parts = {
        "left": labels[:, :h], "right": labels[:, h:], "top": labels[:h], "bottom": labels[h:],
        "q00": labels[:h, :h], "q01": labels[:h, h:], "q10": labels[h:, :h], "q11": labels[h:, h:],
    }
    for part, block in parts.items():
        present = set(np.unique(block).tolist())
        missing = [REGION_NAMES[k] for k in range(len(REGION_NAMES)) if k not in present]
        assert not missing, f"{part} of a {size}px scan (seed {seed}) lacks {missing}"


def test_scene_regions_match_ground_truth_in_metadata(cache_dir):
    si = datasets.nanocube_array(seed=2, size=64, n_energy=20, physics="toy")
    md = si.metadata
    assert md["region_names"] == list(REGION_NAMES)
    assert md["regions"].shape == (64, 64) and md["regions"].dtype == np.int8
    p = md["particles"]
    n = len(p["sides"])
    assert p["centers"].shape == (n, 2) and p["rotations"].shape == (n,)
    assert n == md["simulation"]["n_particles"]
    # interior pixels lie on a cube of the ground truth, gap pixels do not
    layout = generate_layout(np.random.default_rng(0), (128.0, 128.0))
    truth = dataclasses.replace(layout, centers=p["centers"], sides=p["sides"],
                                rotations=p["rotations"])
    thick = projected_thickness(truth, (64, 64), 2.0)
    assert np.all(thick[md["regions"] == _region("interior")] > 0)
    assert np.all(thick[md["regions"] == _region("gap")] == 0)
    json.dumps(md["simulation"])
    assert all(isinstance(v, (int, float, str, bool)) for v in md["simulation"].values())


def test_geometry_statistics():
    layout = generate_layout(np.random.default_rng(5), (192.0, 192.0))
    p = layout.params
    assert np.all((layout.sides >= 10) & (layout.sides <= 20))
    assert abs(np.median(layout.sides) - p.side_mean) < 1.0
    rel_rot = layout.rotations - layout.lattice_angle
    assert np.abs(rel_rot).max() < 0.25
    on_support = layout.site_kind != HOLE
    vac = np.sum(layout.site_kind == VACANCY) / np.sum(on_support)
    assert 0.03 <= vac <= 0.12
    assert np.sum(layout.site_kind == OCCUPIED) == layout.n_particles
    # nearest-neighbour face gaps within ~1-3 nm (centre distance minus half sides)
    from scipy.spatial import cKDTree

    dist, idx = cKDTree(layout.centers).query(layout.centers, k=2)
    gaps = dist[:, 1] - 0.5 * (layout.sides + layout.sides[idx[:, 1]])
    assert np.all(gaps > 0.5) and 1.0 <= np.median(gaps) <= 3.0
    # a 16-pixel tile at the default 2 nm pixel spans about one cube plus neighbours
    assert 1.5 <= 16 * 2.0 / p.pitch <= 2.5


def test_haadf_oversampling_shape_and_consistency():
    coarse = simulate_scene(seed=0, size=20, n_energy=8, scale=1, noise=False)
    fine = simulate_scene(seed=0, size=20, n_energy=8, scale=3, noise=False)
    assert fine.haadf.shape == (60, 60)
    np.testing.assert_array_equal(fine.clean, coarse.clean)
    binned = fine.haadf.reshape(20, 3, 20, 3).mean(axis=(1, 3))
    assert np.corrcoef(binned.ravel(), coarse.haadf.ravel())[0, 1] > 0.98
    si = datasets.nanocube_array(seed=0, size=20, n_energy=8, scale=3, cache=False, physics="toy")
    assert si.haadf.shape == (60, 60) and si.scale == 3


def test_zlp_tail_ground_truth():
    s = simulate_scene(seed=0, size=20, n_energy=50, e_min=0.05, zlp_tail=True, noise=False)
    step = s.energy[1] - s.energy[0]
    want = s.simulation["dose"] * step * s.zlp_a[..., None] * s.energy ** (-s.zlp_r[..., None])
    np.testing.assert_allclose(s.tail, want, rtol=1e-5)
    np.testing.assert_allclose(s.spectra, s.clean + s.tail, rtol=1e-5)
    assert np.ptp(s.zlp_r) > 0.1 and np.ptp(s.zlp_a) > 0  # per-pixel parameters
    # the tail dominates below the plasmon peaks, so ZLP removal has real work to do
    assert np.all(s.tail[..., 0] > 10 * s.clean[..., 0])
    si = datasets.nanocube_array(seed=0, size=20, n_energy=50, zlp_tail=True, cache=False, physics="toy")
    assert si.energy[0] == pytest.approx(0.05)
    assert si.metadata["zlp_tail"]["a"].shape == (20, 20)


def test_zlp_tail_removal_recovers_clean_spectra():
    preprocess = pytest.importorskip("plasmonwidgets.preprocess")
    s = simulate_scene(seed=0, size=16, n_energy=116, e_min=0.05, zlp_tail=True, noise=False)
    out = preprocess.remove_zlp(s.to_spectrum_image(), window=(0.05, 0.15), model="power")
    keep = s.energy >= 0.3
    err = np.abs(out.spectra[..., keep] - s.clean[..., keep]).max()
    assert err < 0.05 * s.clean.max()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"size": 8}, "size"),
        ({"size": 20.5}, "size"),
        ({"n_energy": 1}, "n_energy"),
        ({"e_min": 1.2, "e_max": 0.5}, "e_min"),
        ({"e_min": 0.5, "e_max": 0.5}, "e_min"),
        ({"e_min": -0.1}, "e_min"),
        ({"dose": -5.0}, "dose"),
        ({"dose": 0}, "dose"),
        ({"scale": 0}, "scale"),
        ({"pixel_size": 0.0}, "pixel_size"),
        ({"seed": -1}, "seed"),
        ({"e_max": float("nan")}, "e_max"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    with pytest.raises(ValueError, match=match):
        datasets.nanocube_array(**{"size": 16, "n_energy": 4, "cache": False, **kwargs})
    with pytest.raises(ValueError, match=match):
        simulate_scene(**{"size": 16, "n_energy": 4, **kwargs})


# --- public dataset entry and its caches --------------------------------------------

def test_default_dataset(builtin_dataset_cached):
    # the built-in scan, from the shared cache: simulating it again here would cost a minute
    si = datasets.nanocube_array()
    assert si.metadata["simulation"]["physics"] == "quasistatic"
    assert si.metadata["region_names"][-1] == "support"  # bare support beyond the film edge
    assert si.scan_shape == (96, 96) and si.n_energy >= 96
    assert si.energy[0] == pytest.approx(0.2) and si.energy[-1] == pytest.approx(1.2)
    assert si.haadf.shape == (96, 96) and si.pixel_unit == "nm"
    counts = np.bincount(si.metadata["regions"].ravel(), minlength=len(REGION_NAMES))
    assert np.all(counts > 0)
    text = summary(si)
    assert "96 x 96" in text and "interior" in text and "peaks at" in text
    peak = float(text.split("peaks at ")[1].split(" eV")[0])
    assert 0.4 <= peak <= 0.6


def test_is_cached_follows_both_caches(cache_dir):
    kwargs = {"seed": 11, "size": 16, "n_energy": 6, "physics": "toy"}
    assert not datasets.is_cached(**kwargs)
    datasets.nanocube_array(**kwargs)
    assert datasets.is_cached(**kwargs)  # memory
    datasets.clear_cache()
    assert datasets.is_cached(**kwargs)  # disk
    assert not datasets.is_cached(**{**kwargs, "dose": 1e6})  # every argument is in the key
    with pytest.raises(TypeError, match="is_cached\\(\\) takes nanocube_array's"):
        datasets.is_cached(bogus=1)


def test_cache_memory_disk_and_isolation(cache_dir, monkeypatch):
    kwargs = {"seed": 7, "size": 16, "n_energy": 10, "physics": "toy"}
    first = datasets.nanocube_array(**kwargs)
    files = list(cache_dir.glob("nanocube_array-*.npz"))
    assert len(files) == 1
    # editing a returned object never reaches the cache
    first.spectra[...] = -1
    first.metadata["regions"][...] = 0
    first.metadata["simulation"]["seed"] = 999
    second = datasets.nanocube_array(**kwargs)
    assert np.all(second.spectra >= 0) and second.metadata["simulation"]["seed"] == 7
    assert second.metadata["regions"].max() > 0
    # a fresh process (empty memory cache) reads the disk file instead of simulating
    datasets.clear_cache()

    def no_simulation(**_):
        raise AssertionError("simulated again despite a valid cache file")

    monkeypatch.setattr(datasets, "simulate_scene", no_simulation)
    third = datasets.nanocube_array(**kwargs)
    np.testing.assert_array_equal(third.spectra, second.spectra)
    np.testing.assert_array_equal(third.haadf, second.haadf)
    np.testing.assert_array_equal(third.metadata["particles"]["centers"],
                                  second.metadata["particles"]["centers"])
    assert third.metadata == third.metadata and third.metadata["region_names"] == list(
        REGION_NAMES)
    # every argument is part of the key
    with pytest.raises(AssertionError, match="simulated again"):
        datasets.nanocube_array(**kwargs, dose=1e6)


def test_corrupted_cache_file_is_regenerated(cache_dir):
    kwargs = {"seed": 8, "size": 16, "n_energy": 10, "physics": "toy"}
    good = datasets.nanocube_array(**kwargs)
    (path,) = cache_dir.glob("nanocube_array-*.npz")
    path.write_bytes(b"this is not an npz file")
    datasets.clear_cache()
    with pytest.warns(RuntimeWarning, match="damaged simulation cache"):
        again = datasets.nanocube_array(**kwargs)
    np.testing.assert_array_equal(again.spectra, good.spectra)
    datasets.clear_cache()
    np.testing.assert_array_equal(datasets.nanocube_array(**kwargs).spectra, good.spectra)


def test_cache_false_bypasses_caches(cache_dir):
    si = datasets.nanocube_array(seed=9, size=16, n_energy=6, cache=False, physics="toy")
    assert not list(cache_dir.glob("*.npz"))
    assert si.scan_shape == (16, 16)
