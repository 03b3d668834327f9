"""Point dipoles against full boundary elements: how strongly do neighbouring cubes couple?

Usage::

    .venv/bin/python benchmarks/bench_quasistatic_coupling.py                  # dimers, 2x2
    .venv/bin/python benchmarks/bench_quasistatic_coupling.py --gaps 1 3 --sizes 2 4 9
    .venv/bin/python benchmarks/bench_quasistatic_coupling.py --n-flat 8 --gaps 1 3 10

For each cluster of the scene's cubes (side 15.3 nm, rounding 0.1, ε_m = 2, mean Drude
material) prints the loss-peak energy of the cluster polarisability from the full
boundary-element solution (:class:`Cluster`, all modes), from point dipoles with the same
polarisability coupled by the plain dipole field, and with the near-field tensor of
:mod:`plasmonwidgets.simulate.quasistatic.nearfield`; for dimers also the factor κ on the
plain coupling that matches the boundary elements. Face-to-face dimers (L: field along the
pair, T: across), corner-to-corner dimers (D-L, D-T) and n×n squares (field along x).
A 3×3 takes ~80 s with the 384-panel mesh. Numbers go into docs/physics.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np
from scipy.optimize import brentq

SIDE, HOST = 15.3, 2.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--gaps", type=float, nargs="*", default=[1.0, 2.0, 3.0, 5.0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[2, 4], help="2: dimers; 4, 9: squares")
    ap.add_argument("--n-flat", type=int, default=4)
    args = ap.parse_args()
    os.environ.setdefault("PLASMONWIDGETS_CACHE", tempfile.mkdtemp(prefix="pw-bench-"))
    from plasmonwidgets.simulate.dielectric import Drude
    from plasmonwidgets.simulate.quasistatic.coupling import Cluster
    from plasmonwidgets.simulate.quasistatic.loss import response_lambda
    from plasmonwidgets.simulate.quasistatic.modes import cube_modes
    from plasmonwidgets.simulate.quasistatic.nearfield import corrected_coupling

    unit = cube_modes(rounding=0.1, n_flat=args.n_flat, n_round=2)
    f = unit.dipole_strengths().mean(axis=1)
    keep = f > 1e-4
    lk, fk = unit.eigenvalues.real[keep], f[keep] / f[keep].sum()
    energy = np.arange(0.2, 1.2, 0.0001)
    lam_e = response_lambda(Drude().eps(energy), HOST)

    def peak(lam, strength):
        return energy[np.argmax(np.imag((strength / (lam_e[:, None] - lam[None, :])).sum(1)))]

    def dipoles(centers, g, e):
        """Peak of point dipoles (centres (y, x)) with coupling g (2N, 2N), field along e = (ey, ex)."""
        n = len(centers)
        w = np.kron(np.eye(n), np.kron(np.sqrt(SIDE**3 * fk / (2 * np.pi))[:, None], np.eye(2)))
        lam, u = np.linalg.eigh(np.diag(np.repeat(np.tile(lk, n), 2)) + w @ g @ w.T)
        p = e @ (w.T @ u).reshape(n, 2, -1).sum(0)
        return peak(lam, p**2 * 2 * np.pi / (n * SIDE**3))

    def plain(centers, kl=1.0, kt=1.0):
        """Dipole tensor with factors κ_L, κ_T on every pair."""
        d = centers[:, None, :] - centers[None, :, :]
        r = np.hypot(d[..., 0], d[..., 1])
        np.fill_diagonal(r, np.inf)
        nn = (d / r[..., None])[..., :, None] * (d / r[..., None])[..., None, :]
        g = (2 * kl * nn - kt * (np.eye(2) - nn)) / r[..., None, None] ** 3
        return g.transpose(0, 2, 1, 3).reshape(2 * len(centers), -1)

    def bem(centers, e):
        cl = Cluster([unit.transformed(scale=SIDE, translation=(c[1], c[0], 0.0)) for c in centers])
        base = np.concatenate([m.eigenvalues[k] for m, k in zip(cl.particles, cl.keep)])
        lam, vec = np.linalg.eig(np.diag(base) + cl.coupling)
        dual = np.linalg.inv(vec)
        e3 = np.array([e[1], e[0], 0.0])
        mom = np.zeros(len(lam), complex)
        drive = np.zeros(len(lam), complex)
        for p, (m, k) in enumerate(zip(cl.particles, cl.keep)):
            mesh = m.mesh
            mom += ((mesh.areas[:, None] * mesh.centroids) @ e3) @ m.right[:, k] @ vec[cl._slice(p)]
            drive += dual[:, cl._slice(p)] @ (m.left[k] @ (mesh.normals @ e3))
        volume = sum(m.mesh.volume for m in cl.particles)
        return peak(lam.real, np.real(mom * drive) / volume)

    single = peak(lk, fk)
    print(f"single cube peak {single:.4f} eV ({len(unit)} panels)")
    x, y = np.array([0.0, 1.0]), np.array([1.0, 0.0])
    diag = np.array([1.0, 1.0]) / np.sqrt(2)
    anti = np.array([1.0, -1.0]) / np.sqrt(2)
    for n in args.sizes:
        for gap in args.gaps:
            pitch = SIDE + gap
            if n == 2:
                cases = {"L": (np.array([[0, -pitch / 2], [0, pitch / 2]]), x, "kl"),
                         "T": (np.array([[0, -pitch / 2], [0, pitch / 2]]), y, "kt"),
                         "D-L": (np.array([[-pitch / 2] * 2, [pitch / 2] * 2]), diag, "kl"),
                         "D-T": (np.array([[-pitch / 2] * 2, [pitch / 2] * 2]), anti, "kt")}
            else:
                k = int(round(np.sqrt(n)))
                ij = np.array([(i, j) for i in range(k) for j in range(k)], float)
                cases = {f"{k}x{k}": ((ij - ij.mean(0)) * pitch, x, None)}
            for name, (c, e, which) in cases.items():
                c = np.asarray(c, float)
                eb, ed = bem(c, e), dipoles(c, plain(c), e)
                ec = dipoles(c, corrected_coupling(c, np.full(len(c), SIDE), np.zeros(len(c)))[0], e)
                line = (f"{name:>4} gap {gap:4.1f} nm: BEM {eb:.4f}  dipoles {ed:.4f}  corrected {ec:.4f}; "
                        f"shift ratio BEM/dipoles {(eb - single) / (ed - single):.3f}")
                if which:
                    def mismatch(kap, c=c, e=e, which=which, eb=eb):
                        return dipoles(c, plain(c, **{which: kap}), e) - eb
                    try:
                        line += f"; κ_{which[1].upper()} {brentq(mismatch, 0.05, 2.5, xtol=1e-4):.3f}"
                    except ValueError:
                        line += "; κ out of range"
                print(line, flush=True)


if __name__ == "__main__":
    main()
