"""One metric table for any predictor: a trained model, a baseline, a callable or predictions.

Every accuracy number the project reports (benchmarks, tutorials, the dashboard's error
panel) comes from :func:`evaluate`, so they are computed the same way:

- per-sample NMSE (%) = 100·Σ(pred−true)²/Σtrue² in physical units
  (:func:`plasmonwidgets.metrics.nmse_percent`), summarised by its mean, median, p95, p99
  and max (the paper quotes maxima of its error maps);
- pooled NMSE (%) = 100·Σ over all samples of (pred−true)² / Σ of true²: weighs each
  sample by its signal, so dim samples (vacuum) do not dominate as they can in the mean;
- the same summaries by region (the simulated scene's ``metadata["regions"]`` labels,
  carried by :class:`~plasmonwidgets.tiles.TilePairs`);
- for spec2im also: without vacuum tiles, and the rotation-averaged (about the probe pixel)
  prediction against the rotation-averaged truth. A spectrum cannot tell a configuration
  from its rotations about the probe, so the symmetrised comparison measures what a
  spectrum can determine.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..metrics import nmse_percent
from ..roles import DIRECTIONS, Role, role_of

__all__ = ["DIRECTIONS", "EvaluationTable", "MetricSummary", "compare_regions", "compare_tables", "evaluate",
           "summarise"]

#: columns of a summary, in table order
COLUMNS = ("n", "mean", "median", "p95", "p99", "max", "pooled")

#: the regions with no particle in them (vacuum beyond a tear, bare support beyond a film
#: edge), whose tiles the "non-vacuum" rows leave out
EMPTY_REGIONS = ("vacuum", "support")


@dataclass(frozen=True)
class MetricSummary:
    """Summary of per-sample NMSE values (%) over one subset of samples.

    ``pooled`` is 100·Σ squared error / Σ squared truth over the subset (not a mean of
    ratios). Empty subsets have ``n == 0`` and NaN statistics.

    Examples
    --------
    >>> s = summarise([1.0, 2.0, 3.0], sq_err=[1, 2, 3], sq_true=[100, 100, 100])
    >>> s.max, s.pooled, s.as_dict()["n"]                         # NMSE values in %
    (3.0, 2.0, 3)
    """

    n: int
    mean: float
    median: float
    p95: float
    p99: float
    max: float
    pooled: float

    def as_dict(self) -> dict[str, float | int]:
        return {name: getattr(self, name) for name in COLUMNS}


def summarise(values: Any, sq_err: Any = None, sq_true: Any = None) -> MetricSummary:
    """:class:`MetricSummary` of per-sample NMSE ``values`` (N,) in %.

    ``sq_err`` and ``sq_true`` (N,) are each sample's Σ(pred−true)² and Σtrue²; without
    them the pooled NMSE is NaN.

    Examples
    --------
    >>> summarise([1.0, 2.0, 3.0]).median
    2.0
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        nan = float("nan")
        return MetricSummary(0, nan, nan, nan, nan, nan, nan)
    pooled = float("nan")
    if sq_err is not None and sq_true is not None:
        den = float(np.sum(sq_true))
        pooled = 100.0 * float(np.sum(sq_err)) / den if den > 0 else float("inf")
    p95, p99 = np.percentile(v, [95, 99])
    return MetricSummary(int(v.size), float(np.mean(v)), float(np.median(v)), float(p95),
                         float(p99), float(np.max(v)), pooled)


@dataclass
class EvaluationTable:
    """The metric table of one predictor on one set of samples.

    Attributes
    ----------
    name : str
        The predictor's name (shown in tables).
    direction : "im2spec" or "spec2im".
    rows : dict of str -> MetricSummary
        ``"all"`` first, then ``"region: <name>"`` per region present, and for spec2im
        ``"non-vacuum"``, ``"symmetrised"`` and ``"symmetrised, non-vacuum"`` where they apply.
    per_sample : (N,) float64
        Per-sample NMSE (%), in the order of the evaluated samples.
    regions : (N,) str array or None
        Region name of each sample when known.

    Examples
    --------
    >>> import numpy as np
    >>> truth = np.ones((4, 3))                                   # 4 spectra, E = 3
    >>> table = evaluate(np.full((4, 3), 1.1), (np.ones((4, 2)), truth), direction="im2spec")
    >>> round(table["all"].mean, 6), table["all"].n                 # NMSE in %
    (1.0, 4)
    """

    name: str
    direction: str
    rows: dict[str, MetricSummary]
    per_sample: np.ndarray
    regions: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __getitem__(self, row: str) -> MetricSummary:
        try:
            return self.rows[row]
        except KeyError:
            raise KeyError(f"no row {row!r} in this table; rows are {list(self.rows)}") from None

    @property
    def overall(self) -> MetricSummary:
        """The ``"all"`` row."""
        return self.rows["all"]

    def as_dict(self) -> dict[str, Any]:
        """JSON-serialisable form: name, direction, and every row's statistics."""
        return {"name": self.name, "direction": self.direction,
                "rows": {k: v.as_dict() for k, v in self.rows.items()}, **self.info}

    def to_markdown(self, digits: int = 3) -> str:
        """The table in Markdown: one line per row, columns n, mean, median, p95, p99, max,
        pooled (NMSE in %).

        Examples
        --------
        >>> import numpy as np
        >>> table = evaluate(np.full((2, 3), 1.1), (np.ones((2, 2)), np.ones((2, 3))), direction="im2spec",
        ...                  name="guess")
        >>> print(table.to_markdown(digits=2))
        | guess (im2spec), NMSE % | n | mean | median | p95 | p99 | max | pooled |
        |---|---|---|---|---|---|---|---|
        | all | 2 | 1 | 1 | 1 | 1 | 1 | 1 |
        """
        lines = [f"| {self.name} ({self.direction}), NMSE % | " + " | ".join(COLUMNS) + " |",
                 "|---|" + "---|" * len(COLUMNS)]
        for row, s in self.rows.items():
            cells = [str(s.n)] + [_fmt(getattr(s, c), digits) for c in COLUMNS[1:]]
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:  # rendered by Jupyter
        return self.to_markdown()

    def __repr__(self) -> str:
        s = self.overall
        return (f"<EvaluationTable {self.name!r} ({self.direction}), {s.n} samples: NMSE % mean "
                f"{s.mean:.3g}, median {s.median:.3g}, max {s.max:.3g}, pooled {s.pooled:.3g}>")


def _fmt(value: float, digits: int) -> str:
    return "–" if not np.isfinite(value) else f"{value:.{digits}g}"


def compare_tables(tables: Iterable[EvaluationTable], *, row: str = "all",
                   columns: tuple[str, ...] = ("mean", "median", "p95", "max", "pooled"),
                   digits: int = 3) -> str:
    """Markdown table with one line per predictor: the statistics of one ``row`` of each.

    Tables lacking the row show "–".

    Examples
    --------
    >>> import numpy as np
    >>> data = (np.ones((4, 2)), np.ones((4, 3)))                  # (inputs, targets)
    >>> tables = [evaluate(np.full((4, 3), v), data, direction="im2spec", name=f"x{v}")
    ...           for v in (1.1, 1.2)]
    >>> print(compare_tables(tables, columns=("mean", "max")))
    | predictor (all) | mean | max |
    |---|---|---|
    | x1.1 | 1 | 1 |
    | x1.2 | 4 | 4 |
    """
    lines = [f"| predictor ({row}) | " + " | ".join(columns) + " |",
             "|---|" + "---|" * len(columns)]
    for t in tables:
        s = t.rows.get(row)
        cells = ["–" if s is None else _fmt(getattr(s, c), digits) for c in columns]
        lines.append(f"| {t.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ evaluate
def compare_regions(tables: Iterable[EvaluationTable], *, stat: str = "mean", digits: int = 3) -> str:
    """Markdown table with one line per predictor and one column per region: ``stat`` of each
    ``"region: <name>"`` row (regions in the order of the first table that has them).

    Examples
    --------
    >>> import numpy as np
    >>> data = (np.ones((4, 2)), np.ones((4, 3)))                  # (inputs, targets)
    >>> regions = np.array(["gap", "gap", "hole", "hole"])
    >>> t = evaluate(np.full((4, 3), 1.1), data, direction="im2spec", name="x", regions=regions)
    >>> print(compare_regions([t]))
    | predictor (mean by region) | gap | hole |
    |---|---|---|
    | x | 1 | 1 |
    """
    tables = list(tables)
    names = list(dict.fromkeys(r for t in tables for r in t.rows if r.startswith("region: ")))
    lines = [f"| predictor ({stat} by region) | " + " | ".join(n[len("region: "):] for n in names) + " |",
             "|---|" + "---|" * len(names)]
    for t in tables:
        cells = ["–" if n not in t.rows else _fmt(getattr(t.rows[n], stat), digits) for n in names]
        lines.append(f"| {t.name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _role_of(predictor: Any, direction: str | None) -> Role:
    """The predictor's :class:`~plasmonwidgets.roles.Role`: its own (``role`` or
    ``direction``), or the ``direction`` given for a callable or an array."""
    own = getattr(predictor, "role", None)
    own = own.direction if isinstance(own, Role) else getattr(predictor, "direction", None)
    if direction is None:
        direction = own
    if direction is None:
        raise ValueError("cannot tell the direction of this predictor; pass "
                         "direction='im2spec' or direction='spec2im'")
    role = role_of(direction)
    if own is not None and own != role.direction:
        raise ValueError(f"the predictor is a {own} predictor but direction={direction!r} was "
                         "given; drop the direction argument or pass the matching pairs")
    return role


def _inputs_targets(pairs: Any, role: Role) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(pairs, tuple) and len(pairs) == 2:
        x, y = (np.asarray(a) for a in pairs)
    else:
        x, y = role.inputs_of(pairs), role.targets_of(pairs)
    if len(x) != len(y):
        raise ValueError(f"{len(x)} inputs but {len(y)} targets")
    if len(y) == 0:
        raise ValueError("nothing to evaluate: the set holds no samples")
    return x, y


def _predict(predictor: Any, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Predictions for inputs x; oracles (``needs_truth``) also get the targets y."""
    if isinstance(predictor, np.ndarray):
        return predictor
    if getattr(predictor, "needs_truth", False):
        return np.asarray(predictor.predict(x, truth=y))
    if hasattr(predictor, "predict"):
        return np.asarray(predictor.predict(x))
    if callable(predictor):
        return np.asarray(predictor(x))
    raise TypeError(f"cannot evaluate a {type(predictor).__name__}: pass a model or baseline "
                    "with .predict(inputs), a callable inputs -> predictions, or an array of "
                    "predictions")


def _region_names(pairs: Any, regions: Any, region_names: Any) -> np.ndarray | None:
    """(N,) str region name of each sample, or None when unknown."""
    labels = getattr(pairs, "regions", None) if regions is None else regions
    if labels is None:
        return None
    labels = np.asarray(labels)
    if labels.dtype.kind in "US":
        return labels.astype(str)
    names = region_names if region_names is not None else getattr(pairs, "region_names", None)
    if names is None:
        return np.array([f"region {int(k)}" for k in labels.ravel()])
    names = list(names)
    if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
        raise ValueError(f"region labels span {labels.min()}..{labels.max()} but only "
                         f"{len(names)} region names were given")
    return np.asarray(names)[labels.astype(np.int64).ravel()]


def _rotation_average(tiles: np.ndarray) -> np.ndarray:
    import torch

    from ..nn.symmetry import rotation_average

    return rotation_average(torch.from_numpy(np.ascontiguousarray(tiles, np.float64))).numpy()


def evaluate(predictor: Any, pairs: Any, *, direction: str | None = None, name: str | None = None,
             regions: Any = None, region_names: Any = None) -> EvaluationTable:
    """The metric table (per-sample NMSE summaries, pooled, by region) of a predictor.

    Parameters
    ----------
    predictor : Im2Spec / Spec2Im, a baseline (:mod:`plasmonwidgets.analysis.baselines`),
        any object with ``.predict(inputs)``, a callable ``inputs -> predictions``, or an
        array of predictions already made for ``pairs`` (same shape as the targets).
        Oracle baselines (attribute ``needs_truth``) also receive the targets.
    pairs : TilePairs, or a tuple ``(inputs, targets)`` of arrays in physical units:
        im2spec: tiles (N, w, w) and spectra (N, E); spec2im: spectra (N, E) and tiles
        (N, w, w).
    direction : "im2spec" or "spec2im"; taken from ``predictor.direction`` when omitted.
    name : shown in tables; default the predictor's ``name`` attribute or class name.
    regions : (N,) region labels (ints indexing ``region_names``, or strings); default
        ``pairs.regions`` / ``pairs.region_names`` (set for simulated scenes).
    region_names : names of integer region labels.

    Returns
    -------
    EvaluationTable
        Rows ``"all"``, ``"region: <name>"`` (regions present, in label order), and for
        spec2im ``"non-vacuum"`` (when region labels are known: every tile but those of
        :data:`EMPTY_REGIONS`, vacuum and bare support), ``"symmetrised"`` and
        ``"symmetrised, non-vacuum"``: prediction and truth both averaged over the 4
        rotations about the probe pixel.

    Examples
    --------
    >>> import numpy as np, plasmonwidgets as pw
    >>> rng = np.random.default_rng(0)
    >>> si = pw.SpectrumImage(rng.uniform(1, 2, (12, 12, 32)), np.linspace(0.5, 2.0, 32),
    ...                       rng.uniform(50, 100, (12, 12)))        # 12x12 scan, E = 32
    >>> pairs = pw.make_tiles(si, window=8, pad="reflect")          # 144 tiles (8, 8)
    >>> train, test = pairs.split("halves")
    >>> model = pw.Im2Spec(window=8, n_energy=32, latent_dim=2, device="cpu")
    >>> table = evaluate(model, test)                 # untrained: a large error
    >>> list(table.rows), table["all"].n == len(test)
    (['all'], True)
    >>> print(table.to_markdown().splitlines()[0])
    | Im2Spec (im2spec), NMSE % | n | mean | median | p95 | p99 | max | pooled |
    """
    role = _role_of(predictor, direction)
    x, y = _inputs_targets(pairs, role)
    pred = _predict(predictor, x, y)
    if pred.shape != y.shape:
        raise ValueError(f"predictions have shape {pred.shape} but the targets {y.shape}; a "
                         f"{role.direction} predictor must return one target per input")
    n = len(y)
    p = pred.reshape(n, -1).astype(np.float64)
    t = y.reshape(n, -1).astype(np.float64)
    sq_err = np.sum((p - t) ** 2, axis=1)
    sq_true = np.sum(t ** 2, axis=1)
    values = np.asarray(nmse_percent(p, t, axis=-1))

    names = _region_names(pairs, regions, region_names)
    if names is not None and names.shape != (n,):
        raise ValueError(f"{names.size} region labels for {n} samples")
    rows = {"all": summarise(values, sq_err, sq_true)}
    if names is not None:
        order = list(dict.fromkeys(_label_order(pairs, region_names, names)))
        for region in order:
            m = names == region
            if m.any():
                rows[f"region: {region}"] = summarise(values[m], sq_err[m], sq_true[m])

    if role.target_kind == "image":  # tiles: vacuum and rotation-symmetric rows
        keep = None if names is None else ~np.isin(names, EMPTY_REGIONS)
        if keep is not None:
            rows["non-vacuum"] = summarise(values[keep], sq_err[keep], sq_true[keep])
        ps, ts = _rotation_average(pred), _rotation_average(y)
        ps, ts = ps.reshape(n, -1), ts.reshape(n, -1)
        s_err, s_true = np.sum((ps - ts) ** 2, axis=1), np.sum(ts ** 2, axis=1)
        s_val = np.asarray(nmse_percent(ps, ts, axis=-1))
        rows["symmetrised"] = summarise(s_val, s_err, s_true)
        if keep is not None:
            rows["symmetrised, non-vacuum"] = summarise(s_val[keep], s_err[keep], s_true[keep])

    if name is None:
        name = getattr(predictor, "name", None) or type(predictor).__name__
    # "model" (a network), "baseline", "oracle" (sees the targets) or "predictor" (other)
    kind = getattr(predictor, "kind", None) or \
        ("model" if hasattr(predictor, "latent_dim") else "predictor")
    return EvaluationTable(str(name), role.direction, rows, values, names, info={"kind": kind})


def _label_order(pairs: Any, region_names: Any, names: np.ndarray) -> list[str]:
    """Regions in label order when the names are known, else in order of appearance."""
    known = region_names if region_names is not None else getattr(pairs, "region_names", None)
    return list(known) + list(dict.fromkeys(names.tolist())) if known is not None else \
        list(dict.fromkeys(names.tolist()))

