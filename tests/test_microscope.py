"""Microscopes for the autonomous loop: replay, simulation, refusals."""

import numpy as np
import pytest

import plasmonwidgets as pw
from plasmonwidgets.datasets import nanocube_array
from plasmonwidgets.microscope import AcquisitionError


@pytest.fixture(scope="module")
def si():
    return nanocube_array(seed=3, size=24, n_energy=16, physics="toy")


def test_recorded_replays_exactly_and_records_order(si):
    scope = pw.RecordedMicroscope(si)
    assert isinstance(scope, pw.Microscope)
    assert scope.scan_shape == (24, 24) and scope.scale == 1
    np.testing.assert_array_equal(scope.energy, si.energy)
    np.testing.assert_array_equal(scope.haadf(), si.haadf)
    assert scope.acquired.shape == (0, 2)
    first = scope.acquire([[0, 0], [23, 23], [5, 17]])
    second = scope.acquire(np.array([[17, 5]], dtype=np.int32))
    np.testing.assert_array_equal(first, si.spectra[[0, 23, 5], [0, 23, 17]])
    np.testing.assert_array_equal(second[0], si.spectra[17, 5])
    assert first.dtype == np.float32 and first.shape == (3, 16)
    assert scope.acquired.tolist() == [[0, 0], [23, 23], [5, 17], [17, 5]]
    assert scope.acquire([3, 4]).shape == (1, 16)  # one (row, col) pair


def test_refuses_repeats_and_out_of_range_without_acquiring(si):
    scope = pw.RecordedMicroscope(si)
    scope.acquire([[2, 2]])
    with pytest.raises(AcquisitionError, match=r"position \(2, 2\) was already acquired"):
        scope.acquire([[4, 4], [2, 2]])
    with pytest.raises(AcquisitionError, match="appears twice in one request"):
        scope.acquire([[6, 6], [6, 6]])
    with pytest.raises(AcquisitionError, match=r"outside the 24x24 scan; rows must be 0..23"):
        scope.acquire([[7, 7], [24, 0]])
    with pytest.raises(AcquisitionError, match="outside"):
        scope.acquire([[-1, 3]])
    with pytest.raises(AcquisitionError, match=r"\(K, 2\)"):
        scope.acquire([[1, 2, 3]])
    with pytest.raises(AcquisitionError, match="whole SI pixel"):
        scope.acquire([[1.5, 2]])
    # a refused request acquires nothing, so its valid positions remain available
    assert scope.acquired.tolist() == [[2, 2]]
    assert scope.acquire([[4, 4], [6, 6], [7, 7]]).shape == (3, 16)
    assert isinstance(AcquisitionError("x"), ValueError)


def test_simulated_equals_the_full_simulation():
    # the default (quasi-static) physics, small: the microscope replays the full scene
    scope = pw.SimulatedMicroscope(seed=3, size=16, n_energy=16)
    full = nanocube_array(seed=3, size=16, n_energy=16, cache=False)  # simulated afresh
    pos = np.array([[0, 0], [11, 12], [15, 1], [8, 14]])
    np.testing.assert_array_equal(scope.acquire(pos), full.spectra[pos[:, 0], pos[:, 1]])
    np.testing.assert_array_equal(scope.haadf(), full.haadf)
    np.testing.assert_array_equal(scope.energy, full.energy)
    assert isinstance(scope, pw.Microscope) and scope.simulation["size"] == 16
    with pytest.raises(AcquisitionError, match="already acquired"):
        scope.acquire([[11, 12]])


def test_recorded_needs_a_spectrum_image():
    with pytest.raises(TypeError, match="needs a SpectrumImage"):
        pw.RecordedMicroscope(np.zeros((4, 4, 8)))
