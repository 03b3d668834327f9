"""Accuracy and speed of the quasi-static boundary-element solver on finer meshes than the tests use.

Run: ``python benchmarks/bench_quasistatic.py`` (about 1–2 minutes on 2 cores; uses a
throw-away cache directory). ``--quick`` skips the finest meshes.
Prints: sphere eigenvalues vs ε = −(l+1)/l, aloof sphere loss vs the multipole series,
sharp-cube static polarisability vs the published value, rounded-cube dominant modes,
corner/face loss, the dimer gap series, cache timings and a 2×2-cube loss-map timing.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import numpy as np


def _timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - t0


def sphere_eigenvalues(ns) -> None:
    from plasmonwidgets.simulate.quasistatic._blas import single_threaded_blas
    from plasmonwidgets.simulate.quasistatic.mesh import sphere
    from plasmonwidgets.simulate.quasistatic.operator import charge_operator

    print("\nSphere: error of ε_l = −(l+1)/l from the l = 1, 2, 3 eigenvalues (worst of each multiplet)")
    print(f"{'panels':>7}{'l=1 %':>9}{'l=2 %':>9}{'l=3 %':>9}{'assembly s':>12}{'eig s':>8}")
    import scipy.linalg
    for n in ns:
        mesh = sphere(1.0, n=n)
        f, t_asm = _timed(charge_operator, mesh)
        with single_threaded_blas():
            (lam, vec), t_eig = _timed(scipy.linalg.eig, f / (2 * np.pi))
            _, t_inv = _timed(scipy.linalg.inv, vec)
        lam = np.sort(lam.real)[::-1]
        eps = (lam[1:16] + 1) / (lam[1:16] - 1)
        errs = [np.max(np.abs(eps[lo:hi] / (-(l + 1) / l) - 1)) * 100
                for l, (lo, hi) in zip((1, 2, 3), ((0, 3), (3, 8), (8, 15)))]
        cols = "".join(f"{e:>9.3f}" for e in errs)
        print(f"{len(mesh):>7}{cols}{t_asm:>12.2f}{t_eig + t_inv:>8.2f}")


def sphere_loss(ns) -> None:
    from plasmonwidgets.simulate.beam import Beam
    from plasmonwidgets.simulate.dielectric import Drude
    from plasmonwidgets.simulate.quasistatic.loss import eels_modal
    from plasmonwidgets.simulate.quasistatic.modes import sphere_modes
    from plasmonwidgets.simulate.quasistatic.reference import sphere_aloof_loss

    drude = Drude(eps_inf=4.0, omega_p=1.8, damping=0.1)
    energies = np.linspace(0.3, 1.0, 71)
    impacts = (11.0, 12.5, 15.0, 20.0, 30.0)
    print("\nAloof loss of a 10 nm Drude sphere (ε∞ 4, ωp 1.8 eV, γ 0.1 eV) vs the multipole series:")
    print("max |Γ_BEM − Γ_exact| / max Γ_exact over 0.3–1.0 eV, for b = "
          + ", ".join(map(str, impacts)) + " nm")
    for n in ns:
        modes = sphere_modes(n=n, cache=False).transformed(scale=10.0)
        for e0, eps_host in ((60.0, 1.0), (60.0, 2.0), (2.0, 2.0)):
            beam = Beam(e0)
            beams = np.array([[b, 0.0] for b in impacts])
            got, dt = _timed(eels_modal, modes, beams, energies, eps=drude, eps_host=eps_host, beam=beam)
            errs = []
            for row, b in zip(got, impacts):
                ref = sphere_aloof_loss(energies, radius=10.0, impact=b, eps=drude.eps(energies),
                                        beta=beam.beta, eps_host=eps_host)
                errs.append(np.max(np.abs(row - ref)) / ref.max() * 100)
            print(f"  {len(modes.mesh):>5} panels, {e0:>4.0f} keV, ε_m {eps_host:g}: "
                  + " ".join(f"{x:.2f}%" for x in errs)
                  + f"   ({len(impacts)} beams × 71 energies: {dt:.2f} s)")


def _dominant(modes, count=3):
    f = modes.dipole_strengths().mean(axis=1)
    eps = modes.resonance_eps(1.0).real
    groups: list[list[float]] = []
    for k in np.argsort(eps):
        if not np.isfinite(eps[k]):
            continue
        if groups and abs(eps[k] - groups[-1][0]) < 2e-3 * abs(eps[k]):
            groups[-1][1] += f[k]
        else:
            groups.append([eps[k], f[k]])
    groups.sort(key=lambda g: -g[1])
    return groups[:count]


def sharp_cube(ns) -> None:
    from plasmonwidgets.simulate.quasistatic.mesh import rounded_cube
    from plasmonwidgets.simulate.quasistatic.modes import solve_modes

    print("\nSharp cube, perfectly conducting: α/(ε0 V) (published 3.6442, Sihvola et al. 2004)")
    for n in ns:
        modes, dt = _timed(solve_modes, rounded_cube(1.0, rounding=0.0, n_flat=n, n_round=0))
        f = modes.dipole_strengths().mean(axis=1)[1:]
        alpha = float(np.real(np.sum(f * 2 / (1 - modes.eigenvalues[1:]))))
        print(f"  {len(modes.mesh):>5} panels: {alpha:.4f} ({(alpha / 3.6442 - 1) * 100:+.2f} %)  "
              f"dominant ε {_dominant(modes, 1)[0][0]:.3f}  [{dt:.2f} s]")


def rounded_cubes(cases) -> None:
    from plasmonwidgets.simulate.quasistatic.mesh import rounded_cube
    from plasmonwidgets.simulate.quasistatic.modes import solve_modes

    print("\nRounded cubes in vacuum: strongest modes ε (orientation-averaged strength); assembly+eig time")
    for rounding, n_flat, n_round in cases:
        modes, dt = _timed(solve_modes, rounded_cube(1.0, rounding=rounding, n_flat=n_flat, n_round=n_round))
        tops = "  ".join(f"{e:.3f} ({w:.3f})" for e, w in _dominant(modes))
        print(f"  rounding {rounding:<5} {len(modes.mesh):>5} panels: {tops}   [{dt:.2f} s]")


def corner_face(n_flat, n_round) -> None:
    from plasmonwidgets.simulate.dielectric import Drude
    from plasmonwidgets.simulate.quasistatic.loss import eels_modal
    from plasmonwidgets.simulate.quasistatic.modes import cube_modes

    side, rounding = 15.0, 0.1
    cube = cube_modes(rounding=rounding, n_flat=n_flat, n_round=n_round).transformed(scale=side)
    a, r = side / 2, rounding * side
    drude = Drude(eps_inf=4.0, omega_p=1.8, damping=0.1)
    energies = np.linspace(0.3, 1.1, 81)
    print(f"\nLoss of a 15 nm cube (rounding 0.1, {len(cube.mesh)} panels; ε∞ 4, ωp 1.8 eV, γ 0.1 eV, ε_m 2)")
    for d in (1.0, 3.0, 10.0):
        c = (a - r) + (r + d) / np.sqrt(2)
        beams = [[c, c], [a + d, 0.0]]
        (corner, face), dt = _timed(eels_modal, cube, beams, energies, eps=drude, eps_host=2.0)
        k, kf = int(np.argmax(corner)), int(np.argmax(face))
        print(f"  {d:>4g} nm outside: corner peak {energies[k]:.2f} eV, face peak {energies[kf]:.2f} eV; "
              f"corner/face at the corner peak {corner[k] / face[k]:.2f}, peak/peak "
              f"{corner[k] / face[kf]:.2f}  [{dt:.2f} s]")


def dimer(n_flat, n_round) -> None:
    from plasmonwidgets.simulate.quasistatic.coupling import mirror_dimer_modes
    from plasmonwidgets.simulate.quasistatic.modes import cube_modes

    unit = cube_modes(rounding=0.1, n_flat=n_flat, n_round=n_round)
    print(f"\nDimer of 15 nm cubes (rounding 0.1, {len(unit)} panels each): "
          "bonding mode ε (vacuum), strength")
    for gap in (5.0, 4.0, 3.0, 2.0, 1.0):
        (lam, f), dt = _timed(mirror_dimer_modes, unit, side=15.0, gap=gap)
        k = int(np.argmax(f[:, 0]))
        eps = np.real((lam[k] + 1) / (lam[k] - 1))
        print(f"  gap {gap:g} nm: ε {eps:.3f}  f_x {f[k, 0]:.3f}  [{dt:.2f} s]")


def cache_timing() -> None:
    from plasmonwidgets.simulate.quasistatic import modes as qs_modes

    print("\nCube modes (rounding 0.1, 12x12 panels per face incl. rounding, 864 panels): cache")
    kwargs = {"rounding": 0.1, "n_flat": 8, "n_round": 2}
    _, cold = _timed(qs_modes.cube_modes, **kwargs)
    _, memory = _timed(qs_modes.cube_modes, **kwargs)
    qs_modes._MEMORY.clear()
    _, disk = _timed(qs_modes.cube_modes, **kwargs)
    print(f"  first call (assemble + eig + store) {cold:.2f} s, from disk {disk:.3f} s, "
          f"from memory {memory:.6f} s")


def loss_map() -> None:
    try:
        from plasmonwidgets.simulate.quasistatic.maps import quasistatic_loss_map
    except ImportError:
        return
    from plasmonwidgets.simulate.dielectric import Drude
    from plasmonwidgets.simulate.quasistatic.modes import cube_modes

    side, gap = 15.0, 2.0
    unit = cube_modes(rounding=0.1, n_flat=4, n_round=2)
    pitch = side + gap
    particles = [unit.transformed(scale=side, translation=(x, y, 0.0))
                 for x in (-pitch / 2, pitch / 2) for y in (-pitch / 2, pitch / 2)]
    xs = np.linspace(-pitch - 2, pitch + 2, 24)
    grid = np.stack(np.meshgrid(xs, xs, indexing="ij"), axis=-1).reshape(-1, 2)
    energies = np.linspace(0.3, 1.1, 81)
    result, dt = _timed(quasistatic_loss_map, particles, grid, energies, eps=Drude(), eps_host=2.0)
    print(f"\n2x2 cubes (15 nm, gap 2 nm, {len(unit)} panels each, ε_m 2, default Drude): loss map of "
          f"{result.n_beams} beams × {len(energies)} energies in {dt:.2f} s "
          f"({int(np.isnan(result.loss[:, 0]).sum())} beams through cubes skipped; includes assembling "
          "and diagonalising the cluster's panel problem)")
    half, out = pitch / 2, pitch / 2 + side / 2
    sites = {
        "gap crossing (array centre)": (0.0, 0.0),
        "gap middle between two faces": (0.0, half),
        "gap, 0.5 nm from one face": (0.5, half),
        "1 nm outside an outer face": (out + 1.0, half),
        "1 nm outside an outer corner": (out + 0.7, out + 0.7),
        "10 nm outside an outer face": (out + 10.0, half),
    }
    probe = quasistatic_loss_map(particles, list(sites.values()), energies, eps=Drude(), eps_host=2.0)
    for name, row in zip(sites, probe.loss):
        k = int(np.argmax(row))
        print(f"  {name:<32} peak {energies[k]:.2f} eV, Γ {row[k]:.2e} /eV")


def main() -> None:
    quick = "--quick" in sys.argv
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PLASMONWIDGETS_CACHE"] = tmp
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        print(f"CPU cores: {os.cpu_count()}, load average (1 min): {load:.2f}; BLAS single-threaded")
        sphere_eigenvalues((3, 4, 5, 6) if quick else (3, 4, 5, 6, 8, 10))
        sphere_loss((4, 5) if quick else (4, 5, 6, 8))
        sharp_cube((6, 10) if quick else (6, 10, 16))
        cases = [(0.2, 4, 2), (0.2, 6, 3), (0.1, 6, 2), (0.1, 8, 3), (0.05, 6, 1), (0.05, 8, 2)]
        if not quick:
            cases += [(0.2, 8, 4), (0.1, 10, 4), (0.05, 10, 3), (0.025, 10, 2)]
        rounded_cubes(cases)
        cache_timing()
        corner_face(6, 2)
        if not quick:
            corner_face(8, 3)
        dimer(4, 2)
        if not quick:
            dimer(6, 2)
        loss_map()


if __name__ == "__main__":
    main()
