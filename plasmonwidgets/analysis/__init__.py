"""Headless analysis of trained im2spec / spec2im models (workflow steps 3, 6 and 7).

- errors: :func:`error_map` (per-pixel NMSE %), :func:`error_haadf_correlation`
- latent space: :func:`embed`, :func:`latent_grid`, :class:`LatentIndex`,
  :func:`back_project`, :func:`cluster_latent`
- decomposition: :func:`nmf`
- beyond the paper: :func:`predict_spectrum_image`, :func:`inverse_design`,
  :func:`latent_sweep`
- evaluation: :func:`evaluate` (the metric table every accuracy number comes from),
  :mod:`~plasmonwidgets.analysis.baselines` (predictors a network has to beat)

Everything takes and returns numpy arrays in physical units; nothing here
imports a widget library.
"""

from . import baselines
from .backprojection import BackProjection, LatentIndex, back_project, neighbourhood_preservation
from .clustering import Clusters, cluster_latent
from .decomposition import NMFResult, nmf
from .design import InverseDesign, inverse_design
from .errors import (
    error_haadf_correlation,
    error_haadf_pairs,
    error_map,
    low_signal_map,
    scan_map,
    tile_errors,
)
from .evaluation import EvaluationTable, evaluate
from .latent import LatentGrid, embed, latent_grid
from .predict_file import predict_to_file
from .prediction import predict_spectrum_image
from .sweep import latent_sweep

__all__ = [
    "BackProjection",
    "Clusters",
    "EvaluationTable",
    "InverseDesign",
    "LatentGrid",
    "LatentIndex",
    "NMFResult",
    "back_project",
    "baselines",
    "cluster_latent",
    "embed",
    "error_haadf_correlation",
    "error_haadf_pairs",
    "error_map",
    "evaluate",
    "inverse_design",
    "latent_grid",
    "latent_sweep",
    "low_signal_map",
    "neighbourhood_preservation",
    "nmf",
    "predict_spectrum_image",
    "predict_to_file",
    "scan_map",
    "tile_errors",
]
