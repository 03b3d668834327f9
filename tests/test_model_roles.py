"""Each model and baseline says what it reads and predicts; callers never test the direction.

A tiny scan's TilePairs (tiles (N, 8, 8), spectra (N, 16)) is enough: the tests check
which arrays each predictor takes and returns, not how well it predicts.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import plasmonwidgets as pw
from plasmonwidgets.analysis import _inputs
from plasmonwidgets.analysis.baselines import KNN, MeanTarget, default_baselines
from plasmonwidgets.analysis.evaluation import evaluate
from plasmonwidgets.roles import IM2SPEC, SPEC2IM, role_of

WINDOW, N_ENERGY = 8, 16
PACKAGE = Path(pw.__file__).resolve().parent

#: modules converted to ask the model; none is left, and the package-wide check below keeps it so
CONVERTED = ("models.py", "training.py", "roles.py", "analysis/_inputs.py",
             "analysis/evaluation.py", "analysis/baselines.py", "analysis/sweep.py",
             "analysis/prediction.py", "analysis/latent.py", "app/cli.py",
             "widgets/training_progress.py", "app/dashboard/tabs/train.py",
             "analysis/design.py", "app/dashboard/metrics.py", "app/dashboard/tabs/design.py",
             "app/dashboard/tabs/latent.py", "widgets/latent_explorer.py", "widgets/linking.py")


@pytest.fixture(scope="module")
def pairs():
    rng = np.random.default_rng(0)
    si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, N_ENERGY)).astype(np.float32),
                          np.linspace(0.5, 2.0, N_ENERGY), rng.uniform(50, 100, (12, 12)))
    return pw.make_tiles(si, window=WINDOW, pad="reflect")


def models():
    return (pw.Im2Spec(window=WINDOW, n_energy=N_ENERGY, latent_dim=2, device="cpu"),
            pw.Spec2Im(n_energy=N_ENERGY, window=WINDOW, latent_dim=2, pool=4, device="cpu"))


def test_models_name_their_inputs_and_targets(pairs):
    im2spec, spec2im = models()
    assert (im2spec.input_kind, im2spec.target_kind) == ("image", "spectrum")
    assert (spec2im.input_kind, spec2im.target_kind) == ("spectrum", "image")
    assert im2spec.inputs_of(pairs) is pairs.images and im2spec.targets_of(pairs) is pairs.spectra
    assert spec2im.inputs_of(pairs) is pairs.spectra and spec2im.targets_of(pairs) is pairs.images
    for model in (im2spec, spec2im):  # what it reads is what predict takes, and returns targets
        x, y = model.inputs_of(pairs), model.targets_of(pairs)
        assert model.predict(x[:3]).shape == y[:3].shape
        assert _inputs.input_shape(model) == x.shape[1:]
        assert _inputs.target_shape(model) == y.shape[1:]


def test_direction_is_a_read_only_label():
    im2spec, spec2im = models()
    assert (im2spec.direction, spec2im.direction) == ("im2spec", "spec2im")
    assert pw.Im2Spec.direction == "im2spec" and pw.Spec2Im.target_kind == "image"
    with pytest.raises(AttributeError, match="fixed by the model class"):
        im2spec.direction = "spec2im"
    with pytest.raises(AttributeError):
        spec2im.input_kind = "image"
    assert im2spec.direction == "im2spec"  # unchanged after the refused assignment


def test_checkpoints_keep_the_direction(tmp_path):
    _, spec2im = models()
    loaded = pw.load_model(spec2im.save(tmp_path / "s.pt"), device="cpu")
    assert type(loaded) is pw.Spec2Im and loaded.role is SPEC2IM


def test_inverse_design_carries_the_model_role(pairs):
    target = pairs.spectra.mean(axis=0)
    for model in models():
        res = pw.analysis.inverse_design(model, target, pairs, k=2, n_starts=1, max_iter=2,
                                         min_separation=0)
        assert res.role is model.role and res.direction == model.direction
        assert (res.input_kind, res.target_kind) == (model.input_kind, model.target_kind)
        assert res.decoded.shape == model.targets_of(pairs).shape[1:]  # a spectrum or a tile
    with pytest.raises(AttributeError):
        res.direction = "im2spec"


def test_baselines_say_the_same_as_models(pairs):
    train, test = pairs.split("halves")
    for model, role in zip(models(), (IM2SPEC, SPEC2IM)):
        baseline = MeanTarget(model.direction).fit(train)
        assert baseline.role is role and baseline.input_kind == model.input_kind
        assert baseline.inputs_of(test) is model.inputs_of(test)
        assert baseline.predict(baseline.inputs_of(test)).shape == model.targets_of(test).shape
        assert evaluate(baseline, test).direction == model.direction
    with pytest.raises(AttributeError):
        baseline.direction = "im2spec"
    with pytest.raises(ValueError, match="spec2im only"):
        KNN("im2spec", symmetric=True)


def test_default_baselines_are_unchanged():
    assert [type(b).__name__ for b in default_baselines("im2spec")] == [
        "MeanTarget", "IntensityTimesMeanSpectrum", "PCARidge", "PCARidge", "KNN", "IntensityOracle"]
    spec2im = default_baselines("spec2im")
    assert [type(b).__name__ for b in spec2im] == [
        "MeanTarget", "PCARidge", "PCARidge", "KNN", "KNN", "IntensityOracle", "RotationOracle"]
    assert [b.symmetric for b in spec2im if isinstance(b, KNN)] == [False, True]
    assert len(default_baselines("spec2im", oracles=False)) == 5


def test_unknown_direction_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="'im2spec' or 'spec2im', got 'img2spec'"):
        role_of("img2spec")
    with pytest.raises(ValueError, match="got 'img2spec'"):
        pw.analysis.latent_sweep(None, None, "img2spec")
    with pytest.raises(ValueError, match="im2spec"):
        MeanTarget("sideways")


def _direction_branches(path: Path) -> list[int]:
    """Lines comparing something to a direction label ("im2spec"/"spec2im") with ==, !=, in."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(isinstance(o, ast.Constant) and o.value in ("im2spec", "spec2im") for o in operands):
                lines.append(node.lineno)
    return lines


@pytest.mark.parametrize("module", CONVERTED)
def test_converted_modules_do_not_branch_on_the_direction(module):
    assert _direction_branches(PACKAGE / module) == [], f"{module} compares against a direction label"


def test_no_module_of_the_package_branches_on_the_direction():
    found = {str(p.relative_to(PACKAGE)): lines for p in sorted(PACKAGE.rglob("*.py"))
             if (lines := _direction_branches(p))}
    assert found == {}, f"ask the model (input_kind, target_kind, inputs_of) instead: {found}"
