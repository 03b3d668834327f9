"""The simulator-backed microscope: spectra computed only at the requested positions."""

import numpy as np
import pytest

import plasmonwidgets as pw
from plasmonwidgets.microscope import AcquisitionError
from plasmonwidgets.simulate.quasistatic.scene import (
    QuasistaticSceneConfig,
    quasistatic_scene,
    simulate_quasistatic_scene,
)

SCENE = {"seed": 5, "size": 16, "n_energy": 16}
# the mean material in the lattice: float64 throughout and ~10x cheaper to set up than the default
MEAN = QuasistaticSceneConfig(lattice_materials=False)


@pytest.fixture(scope="module")
def full():
    return simulate_quasistatic_scene(**SCENE)  # the default physics, with noise


@pytest.fixture(scope="module")
def scope():
    return pw.SimulatedMicroscope(**SCENE, on_demand=True)


def _pixels(rng, n, size=16):
    return np.column_stack(np.divmod(rng.choice(size * size, n, replace=False), size))


def test_clean_spectra_equal_the_full_simulation(scope, full):
    rng = np.random.default_rng(0)
    # a lone pixel, the scan's corners, an interior pair and a random batch: the batch's
    # extent must not change the film's far field
    for batch in ([[7, 9]], [[0, 0], [15, 15]], [[0, 15], [15, 0], [8, 8]], _pixels(rng, 20)):
        pos = np.asarray(batch)
        got = scope.scene.expected_counts(pos).astype(np.float32)
        want = full.clean[pos[:, 0], pos[:, 1]]
        assert got.shape == want.shape == (len(pos), 16)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * float(want.max()))


def test_noise_free_microscope_gives_the_clean_spectra():
    scope = pw.SimulatedMicroscope(**SCENE, on_demand=True, noise=False, config=MEAN)
    want = simulate_quasistatic_scene(**SCENE, noise=False, config=MEAN)
    pos = np.array([[3, 4], [15, 0], [9, 12]])
    got = scope.acquire(pos)
    assert got.dtype == np.float32 and got.shape == (3, 16)
    np.testing.assert_allclose(got, want.clean[pos[:, 0], pos[:, 1]], rtol=1e-6)
    np.testing.assert_array_equal(scope.haadf(), want.haadf)  # noiseless HAADF too


def test_haadf_energy_and_refusals_as_the_replayed_microscope(scope, full):
    assert isinstance(scope, pw.Microscope) and scope.on_demand and scope.si is None
    assert scope.scan_shape == (16, 16) and scope.scale == 1
    np.testing.assert_array_equal(scope.haadf(), full.haadf)
    np.testing.assert_array_equal(scope.energy, full.energy)
    spectra = scope.acquire([[2, 3], [11, 5]])
    assert spectra.dtype == np.float32 and spectra.shape == (2, 16)
    assert (spectra >= 0).all() and (spectra == np.round(spectra)).all()  # counts
    with pytest.raises(AcquisitionError, match=r"position \(2, 3\) was already acquired"):
        scope.acquire([[4, 4], [2, 3]])
    with pytest.raises(AcquisitionError, match="appears twice"):
        scope.acquire([[6, 6], [6, 6]])
    with pytest.raises(AcquisitionError, match="outside the 16x16 scan"):
        scope.acquire([[16, 0]])
    assert scope.acquired.tolist() == [[2, 3], [11, 5]]


def test_a_position_s_spectrum_does_not_depend_on_order_or_batch():
    pos = _pixels(np.random.default_rng(1), 12)
    at_once = pw.SimulatedMicroscope(**SCENE, on_demand=True, config=MEAN)
    piecemeal = pw.SimulatedMicroscope(**SCENE, on_demand=True, config=MEAN)
    a = at_once.acquire(pos)
    rev = pos[::-1]
    b = np.concatenate([piecemeal.acquire(rev[:1]), piecemeal.acquire(rev[1:6]),
                        *(piecemeal.acquire(p) for p in rev[6:])])[::-1]
    np.testing.assert_array_equal(a, b)
    # and what it would have measured everywhere agrees at the measured pixels
    np.testing.assert_array_equal(at_once.truth()[pos[:, 0], pos[:, 1]], a)
    assert at_once.acquired.shape == (12, 2)  # truth() acquires nothing
    # another scene seed draws other noise
    other = pw.SimulatedMicroscope(**{**SCENE, "seed": 6}, on_demand=True, config=MEAN)
    assert not np.array_equal(other.acquire(pos), a)


def test_noise_is_poisson_about_the_clean_spectra():
    scope = pw.SimulatedMicroscope(**SCENE, on_demand=True, config=MEAN)
    noisy = scope.truth().reshape(-1, 16).astype(np.float64)
    clean = scope.scene.expected_counts(scope.scene.all_pixels())
    z = (noisy - clean) / np.sqrt(clean)  # 4096 standardised shot-noise draws
    assert abs(z.mean()) < 0.1  # mean = clean
    assert abs(z.var() - 1.0) < 0.1  # variance = clean (Poisson)
    assert abs(noisy.sum() / clean.sum() - 1.0) < 1e-3
    # a pixel's draws are independent of its neighbours'
    assert abs(np.corrcoef(z[:-1].ravel(), z[1:].ravel())[0, 1]) < 0.1


def test_on_demand_refuses_what_needs_the_whole_scene():
    with pytest.raises(ValueError, match="physics='quasistatic'"):
        pw.SimulatedMicroscope(**SCENE, on_demand=True, physics="toy")
    with pytest.raises(ValueError, match="zlp_tail"):
        pw.SimulatedMicroscope(**SCENE, on_demand=True, zlp_tail=True)
    with pytest.raises(TypeError, match="unexpected options"):
        pw.SimulatedMicroscope(**SCENE, on_demand=True, colour="red")


def test_scene_checks_its_pixels():
    scene = quasistatic_scene(**SCENE, config=MEAN)
    assert scene.expected_counts(np.zeros((0, 2), int)).shape == (0, 16)
    with pytest.raises(ValueError, match=r"0\.\.15"):
        scene.expected_counts([[0, 16]])
    with pytest.raises(ValueError, match="integer"):
        scene.expected_counts([[0.5, 1]])
