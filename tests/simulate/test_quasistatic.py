"""Checks of the quasi-static boundary-element solver against independent results.

Coarse meshes keep this file fast; finer-mesh numbers are in benchmarks/bench_quasistatic.py
and docs/physics.md.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate, special

from plasmonwidgets.simulate.beam import Beam
from plasmonwidgets.simulate.dielectric import Drude
from plasmonwidgets.simulate.quasistatic import modes as modes_mod
from plasmonwidgets.simulate.quasistatic.coupling import Cluster, mirror_dimer_modes
from plasmonwidgets.simulate.quasistatic.loss import eels_direct, eels_modal
from plasmonwidgets.simulate.quasistatic.mesh import rounded_cube, sphere
from plasmonwidgets.simulate.quasistatic.modes import cube_modes, solve_modes, sphere_modes
from plasmonwidgets.simulate.quasistatic.operator import charge_operator
from plasmonwidgets.simulate.quasistatic.reference import sphere_aloof_loss

DRUDE = Drude(eps_inf=4.0, omega_p=1.8, damping=0.1)


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Every test starts with empty mode caches (memory and disk) of its own."""
    monkeypatch.setenv("PLASMONWIDGETS_CACHE", str(tmp_path))
    monkeypatch.setattr(modes_mod, "_MEMORY", {})


@pytest.fixture(scope="module")
def sphere216():
    return sphere_modes(n=3, cache=False)


@pytest.fixture(scope="module")
def sphere600():
    return sphere_modes(n=5, cache=False)


@pytest.fixture(scope="module")
def cube600():
    """Cube with edges rounded at 0.1 of the side, 600 panels."""
    return cube_modes(rounding=0.1, n_flat=6, n_round=2, cache=False)


# --- mesh and operator ------------------------------------------------------------------


def test_meshes_are_closed_and_exact_in_volume():
    s = sphere(2.0, n=3)
    assert len(s) == 216
    assert s.volume == pytest.approx(4 / 3 * np.pi * 8, rel=1e-9)
    assert s.areas.sum() == pytest.approx(4 * np.pi * 4, rel=1e-9)
    c = rounded_cube(10.0, rounding=0.1, n_flat=4, n_round=2)
    r, a = 1.0, 5.0
    # cube minus what the rounding removes: edges (quarter cylinders) and corners (ball octants)
    volume = 1000 - 12 * (4 - np.pi) * r**2 * (2 * (a - r)) / 4 - 8 * (8 - 4 / 3 * np.pi) * r**3 / 8
    assert c.volume == pytest.approx(volume, rel=1e-9)
    assert np.all(np.einsum("ij,ij->i", c.normals, c.centroids) > 0)  # outward
    assert set(np.unique(c.zones)) == {0, 1, 2}


def test_operator_obeys_gauss_law_between_and_within_surfaces():
    a = sphere(1.0, n=2)
    b = a.transformed(translation=(3.0, 0.0, 0.0))
    f_aa, f_ab = charge_operator(a), charge_operator(a, b)
    assert np.allclose(a.areas @ f_aa, 2 * np.pi * a.areas)
    assert np.allclose(a.areas @ f_ab, 0.0, atol=1e-12)


# --- sphere: eigenvalues and aloof EELS vs analytic results -----------------------------


def test_sphere_eigenvalues_give_the_multipole_resonances(sphere216):
    eps = sphere216.resonance_eps(1.0)
    assert abs(sphere216.eigenvalues[0] - 1) < 1e-9  # net-charge mode
    for l, (lo, hi) in zip((1, 2, 3), ((1, 4), (4, 9), (9, 16))):
        exact = -(l + 1) / l
        assert np.all(np.abs(eps[lo:hi] / exact - 1) < 0.01), (l, eps[lo:hi])
    f = sphere216.dipole_strengths()
    assert np.allclose(f[1:4].sum(axis=0), 1.0, atol=1e-3)  # all dipole strength in l = 1
    assert np.allclose(f.sum(axis=0), 1.0, atol=1e-9)


def test_line_integral_behind_the_analytic_sphere_formula():
    """|∫ e^{iqz} P_l^m(z/r) r^{-l-1} dz| = 2 q^l K_m(qb)/(l − m)!, the step used in reference.py."""
    q, b = 0.05, 12.0
    for l in (1, 2, 3):
        for m in range(l + 1):
            def f(z, l=l, m=m):
                r = np.hypot(b, z)
                return special.lpmv(m, l, z / r) / r ** (l + 1)
            even = (l - m) % 2 == 0  # P_l^m(z/r) has the parity of l − m in z
            val, _ = integrate.quad(f, 0, np.inf, weight="cos" if even else "sin", wvar=q)
            closed = 2 * q**l * special.kv(m, q * b) / special.factorial(l - m)
            assert 2 * abs(val) == pytest.approx(closed, rel=1e-5), (l, m)


@pytest.mark.parametrize("e0_kev", [60.0, 2.0])
@pytest.mark.parametrize("eps_host", [1.0, 2.0])
def test_sphere_aloof_loss_matches_the_multipole_series(sphere600, e0_kev, eps_host):
    """60 keV: dipole-dominated; 2 keV (qa ≈ 0.4 at the peak): l = 2, 3 terms matter too."""
    radius = 10.0
    modes = sphere600.transformed(scale=radius)
    energies = np.linspace(0.3, 1.0, 29)
    impacts = np.array([12.5, 15.0, 20.0])
    beams = np.stack([impacts * np.cos([0.3, 1.1, 2.0]), impacts * np.sin([0.3, 1.1, 2.0])], axis=1)
    beam = Beam(e0_kev)
    got = eels_modal(modes, beams, energies, eps=DRUDE, eps_host=eps_host, beam=beam)
    for row, b in zip(got, impacts):
        ref = sphere_aloof_loss(energies, radius=radius, impact=b, eps=DRUDE.eps(energies),
                                beta=beam.beta, eps_host=eps_host)
        assert np.max(np.abs(row - ref)) < 0.02 * ref.max(), b
        main = ref > 0.2 * ref.max()
        assert np.all(np.abs(row[main] / ref[main] - 1) < 0.02), b


def test_modal_sum_equals_a_direct_solve(cube600):
    cube = cube600.transformed(scale=15.0)
    beams = np.array([[9.0, 9.0], [8.5, 0.0], [0.0, 12.0]])
    energies = np.array([0.45, 0.55, 0.7, 0.9])
    modal = eels_modal(cube, beams, energies, eps=DRUDE, eps_host=2.0)
    direct = eels_direct(cube.mesh, charge_operator(cube.mesh), beams, energies, eps=DRUDE, eps_host=2.0)
    assert np.allclose(modal, direct, rtol=1e-8)
    assert np.all(modal > 0)


def test_beam_through_a_particle_is_refused(sphere216):
    with pytest.raises(ValueError, match="crosses the particle"):
        eels_modal(sphere216.transformed(scale=10.0), [[3.0, 2.0]], [0.5], eps=DRUDE)


# --- cube: published values, rounding, locality, cache ----------------------------------


def _pec_polarizability(modes):
    """α/(ε0 V) of a perfectly conducting particle, Σ_k f_k / L_k with L_k = (1 − Λ_k)/2."""
    f = modes.dipole_strengths().mean(axis=1)[1:]
    return float(np.real(np.sum(f * 2 / (1 - modes.eigenvalues[1:]))))


def test_sharp_cube_static_polarizability_approaches_the_published_value():
    """Sihvola et al. (2004): a perfectly conducting cube has α/(ε0 V) = 3.6442.

    Positive (here infinite) permittivity lies outside the continuous spectrum of a sharp
    cube, so this converges, slowly (edge singularities), from below.
    """
    coarse = _pec_polarizability(solve_modes(rounded_cube(1.0, rounding=0.0, n_flat=6, n_round=0)))
    fine = _pec_polarizability(solve_modes(rounded_cube(1.0, rounding=0.0, n_flat=10, n_round=0)))
    assert coarse < fine < 3.6442
    assert fine == pytest.approx(3.6442, rel=0.03)
    assert 3.6442 - fine < 0.6 * (3.6442 - coarse)


def test_rounded_cube_dominant_mode_moves_toward_the_sharp_cube_value(cube600):
    """Fuchs (1975), sharp cube: the strongest mode at ε ≈ −3.68; rounding blue-shifts it.

    The dominant (largest orientation-averaged strength) mode moves monotonically to more
    negative ε as the rounding shrinks, passing the sharp-cube table value between
    rounding 0.1 and 0.05 (a sharp cube itself does not converge).
    """
    def dominant(m):
        f = m.dipole_strengths().mean(axis=1)
        eps = m.resonance_eps(1.0).real
        k = int(np.argmax(f))
        return eps[k], f[np.abs(eps - eps[k]) < 1e-3 * abs(eps[k])].sum()

    e20, f20 = dominant(cube_modes(rounding=0.2, n_flat=4, n_round=2, cache=False))
    e10, f10 = dominant(cube600)
    e05, f05 = dominant(cube_modes(rounding=0.05, n_flat=6, n_round=1, cache=False))
    assert e20 > e10 > -3.68 > e05
    assert -3.45 < e10 < -3.30  # converged value at rounding 0.1: −3.37 (docs/physics.md)
    assert f10 > 0.5 and f20 > f10 > f05  # weight spreads over more modes as edges sharpen


def test_corner_loss_exceeds_face_loss_at_the_corner_mode(cube600):
    side, r = 15.0, 1.5
    cube = cube600.transformed(scale=side)
    a = side / 2
    c = (a - r) + (r + 1.0) / np.sqrt(2)  # 1 nm outside the rounded vertical edge
    beams = np.array([[c, c], [a + 1.0, 0.0]])
    energies = np.linspace(0.4, 0.8, 41)
    corner, face = eels_modal(cube, beams, energies, eps=DRUDE, eps_host=2.0)
    k = int(np.argmax(corner))
    assert 0.5 < energies[k] < 0.6  # the dominant corner mode in ε_m = 2
    assert corner[k] / face[k] > 2.0  # measured 2.55
    assert corner.max() / face.max() > 1.5  # peak to peak (face peaks higher): measured 1.71
    assert energies[np.argmax(face)] > energies[k]


def test_cube_modes_are_cached_on_disk_and_reused(tmp_path):
    first = cube_modes(rounding=0.2, n_flat=2, n_round=1)
    files = list((tmp_path / "quasistatic").glob("rounded_cube-*.npz"))
    assert len(files) == 1
    modes_mod._MEMORY.clear()  # as in a new process
    again = cube_modes(rounding=0.2, n_flat=2, n_round=1)
    assert again is not first
    assert np.array_equal(again.eigenvalues, first.eigenvalues)
    assert np.array_equal(again.left, first.left)
    assert cube_modes(rounding=0.2, n_flat=2, n_round=1) is again  # memory
    files[0].write_bytes(b"garbage")
    modes_mod._MEMORY.clear()
    with pytest.warns(UserWarning, match="damaged mode cache"):
        fixed = cube_modes(rounding=0.2, n_flat=2, n_round=1)
    assert np.allclose(fixed.eigenvalues, first.eigenvalues)


# --- coupled particles ------------------------------------------------------------------


def test_dimer_bonding_mode_red_shifts_as_the_gap_narrows():
    unit = cube_modes(rounding=0.1, n_flat=4, n_round=2, cache=False)
    bonding = []
    for gap in (5.0, 4.0, 3.0, 2.0, 1.0):
        lam, strength = mirror_dimer_modes(unit, side=15.0, gap=gap)
        k = int(np.argmax(strength[:, 0]))
        bonding.append(float(np.real((lam[k] + 1) / (lam[k] - 1))))
    assert np.all(np.diff(bonding) < 0), bonding  # more negative ε: lower energy
    single = unit.resonance_eps(1.0)[np.argmax(unit.dipole_strengths()[:, 0])].real
    assert bonding[0] < single


def test_mirror_reduction_equals_the_full_cluster():
    unit = cube_modes(rounding=0.1, n_flat=2, n_round=1, cache=False)
    side, gap = 15.0, 2.0
    d = (side + gap) / 2
    pair = Cluster([unit.transformed(scale=side, translation=(-d, 0, 0)),
                    unit.transformed(scale=side, translation=(d, 0, 0))])
    full, _ = pair.eigenmodes()
    odd, _ = mirror_dimer_modes(unit, side=side, gap=gap, parity=-1)
    even, _ = mirror_dimer_modes(unit, side=side, gap=gap, parity=1)
    # The mirror halves also hold the two net-charge combinations the cluster drops.
    both = np.concatenate([odd, even])
    both = both[np.abs(both - 1) > 1e-6]
    assert len(both) == len(full)
    assert np.allclose(np.sort(both.real), np.sort(full.real), atol=1e-8)
    assert np.allclose(np.sort(np.abs(both.imag)), np.sort(np.abs(full.imag)), atol=1e-8)


def test_far_apart_particles_lose_like_single_ones(cube600):
    unit = cube600
    a = unit.transformed(scale=15.0)
    b = unit.transformed(scale=15.0, translation=(400.0, 0.0, 0.0))
    energies = np.array([0.5, 0.55, 0.6])
    beams = np.array([[9.0, 9.0]])
    pair = Cluster([a, b]).loss(beams, energies, eps=DRUDE, eps_host=2.0)
    alone = eels_modal(a, beams, energies, eps=DRUDE, eps_host=2.0)
    assert np.allclose(pair, alone, rtol=0.01)


def test_loss_map_of_four_cubes_matches_the_cluster_solve_and_shows_gap_locality():
    from plasmonwidgets.simulate.quasistatic.maps import quasistatic_loss_map

    unit = cube_modes(rounding=0.1, n_flat=2, n_round=1, cache=False)
    side, gap = 15.0, 2.0
    p = side + gap
    centres = [(x, y, 0.0) for x in (-p / 2, p / 2) for y in (-p / 2, p / 2)]
    cubes = [unit.transformed(scale=side, translation=c) for c in centres]
    # array centre (gap crossing), middle of a gap, 1 nm outside an outer face, far away, on a cube
    beams = np.array([[0.0, 0.0], [0.0, p / 2], [p / 2 + side / 2 + 1, p / 2], [40.0, 40.0], [p / 2, p / 2]])
    energies = np.linspace(0.3, 1.1, 17)
    drudes = [DRUDE, Drude(eps_inf=4.0, omega_p=1.7, damping=0.1), DRUDE, DRUDE]
    for eps in (DRUDE, drudes):
        got = quasistatic_loss_map(cubes, beams, energies, eps=eps, eps_host=2.0).loss
        assert np.all(np.isnan(got[4])) and not np.isnan(got[:4]).any()
        ref = Cluster(cubes).loss(beams[:4], energies, eps=eps, eps_host=2.0)
        assert np.allclose(got[:4], ref, rtol=1e-5, atol=1e-6 * ref.max())
    gap_mid, outside, far = got[1], got[2], got[3]
    # On the gap's mirror plane the beam drives only gap-symmetric modes: its spectrum peaks
    # elsewhere than 1 nm outside an outer face (measured 0.65 vs 0.55 eV); farther out, weaker.
    assert abs(energies[np.argmax(gap_mid)] - energies[np.argmax(outside)]) >= 0.05
    assert min(gap_mid.max(), outside.max()) > 5 * far.max()  # (40, 40) nm: ~21 nm from a corner
