"""What the latent explorer shows besides the decoded output: the measured curve's label,
the captioned nearest-tile strip, tile outlines on the HAADF, a stable layout and the
out-of-distribution warning."""

from __future__ import annotations

import base64
import re
import struct

import numpy as np
import pytest
import torch

import plasmonwidgets as pw
from plasmonwidgets.widgets.haadf_viewer import HAADFViewer
from plasmonwidgets.widgets.latent_explorer import LatentExplorer, ood_threshold

WINDOW = 8


@pytest.fixture(scope="module")
def data():
    si = pw.datasets.nanocube_array(size=32, n_energy=32, cache=False, physics="toy")
    pairs = pw.make_tiles(si, window=WINDOW)
    torch.manual_seed(0)
    model = pw.Im2Spec(window=WINDOW, n_energy=32, latent_dim=2, n_filters_enc=8,
                       n_filters_dec=8, seed=0)
    model.fit_normalization(pairs.images, pairs.spectra)
    return si, pairs, model


@pytest.fixture
def explorer(data):
    si, pairs, model = data
    viewer = HAADFViewer(si, window=WINDOW)
    ex = LatentExplorer(model, pairs, viewer=viewer, k=4, mode="sync", browser_decode=False)
    yield ex
    ex.close()


def _text(html_value: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html_value))


def test_ood_threshold_is_a_percentile_of_nearest_neighbour_distances():
    z = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [3.0, 0.5]])
    # nearest-neighbour distances: 1, 1, 0.5, 0.5
    assert ood_threshold(z, 50) == pytest.approx(0.75)
    assert ood_threshold(z, 100) == pytest.approx(1.0)


def test_ood_warning_toggles_when_the_point_leaves_the_cloud(explorer):
    ex = explorer
    assert not ex.out_of_distribution and ex.ood_box.value == ""  # starts at the median
    far = ex.index.upper + 10 * (ex.index.upper - ex.index.lower)
    ex.set_latent(far)
    ex.wait()
    assert ex.out_of_distribution
    assert "Outside the data" in _text(ex.ood_box.value)
    assert ex.last_ood_distance > ex._ood_limit
    ex.set_latent(ex.index.z[3])  # an encoded tile: inside the cloud
    ex.wait()
    assert not ex.out_of_distribution and ex.ood_box.value == ""


def test_strip_captions_and_outlines_name_the_nearest_tiles(explorer, data):
    _, pairs, _ = data
    ex = explorer
    ex.set_latent(ex.index.z[10])
    ex.wait()
    bp = ex.last_neighbours
    strip = ex.neighbour_strip.value
    assert strip.count("<img") == 4 and strip.count("pw-strip-caption") == 4
    captions = re.findall(r"#(\d) d=([\d.e+-]+) \((\d+), (\d+)\)", _text(strip))
    assert [int(c[0]) for c in captions] == [1, 2, 3, 4]
    assert [[int(c[2]), int(c[3])] for c in captions] == ex.nearest_positions
    np.testing.assert_allclose([float(c[1]) for c in captions], bp.distances, rtol=0.05, atol=1e-12)
    # each tile is a real PNG of the tile's size
    uri = re.search(r"src='data:image/png;base64,([^']+)'", strip).group(1)
    png = base64.b64decode(uri)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == (WINDOW, WINDOW)
    # outlines on the HAADF at the tile's true size, numbered as in the strip
    boxes = ex.viewer.overlays["nearest"]
    assert [b["label"] for b in boxes] == ["1", "2", "3", "4"]
    assert all(b["x1"] - b["x0"] == WINDOW and b["y1"] - b["y0"] == WINDOW for b in boxes)
    assert ex.viewer.highlight == []  # outlines replace the circles
    # the measured curve is the nearest tile's, and the page says so
    np.testing.assert_allclose(ex.spectrum_view.lines["measured"].y, pairs.spectra[bp.indices[0]])
    assert ex.spectrum_view.lines["measured"].labels == ["measured, nearest tile"]
    r, c = ex.nearest_positions[0]
    assert f"measured : the nearest observed tile's (#1, SI ({r}, {c})" in _text(
        ex.measured_caption.value)


def test_layout_does_not_depend_on_the_point(explorer):
    ex = explorer
    # every line whose text changes while dragging has a fixed height
    for widget in (ex.title, ex.ood_box, ex.measured_caption, ex.neighbour_caption):
        assert widget.layout.height and widget.layout.height.endswith("px")

    def skeleton() -> str:  # the strip without its pictures and numbers
        return re.sub(r"data:image/png;base64,[^']+|#\d d=[^<]+|\(\d+, \d+\)", "",
                      ex.neighbour_strip.value)

    ex.set_latent(ex.index.z[0])
    ex.wait()
    first = skeleton()
    ex.set_latent(ex.index.z[len(ex.index) - 1])
    ex.wait()
    assert skeleton() == first
