"""Saliency engine: Captum attributions, target policy, post-processing, rendering, metrics.

The study job calls :func:`compute_saliency` → :func:`postprocess` →
:func:`render_heatmap_png` / :func:`save_raw_map` for every arm through the same code path,
so the only thing that differs between arms is the map itself.
"""

from ml.explain.engine import SaliencyResult, auto_chunk_size, compute_saliency, find_gradcam_layer
from ml.explain.methods import DEFAULT_PARAMS, METHODS
from ml.explain.metrics import (
    deletion_auc,
    entropy,
    gini,
    insertion_auc,
    map_metrics,
    mask_energy,
    pointing_game,
    total_variation,
)
from ml.explain.postprocess import POSTPROCESS_MODES, postprocess
from ml.explain.provenance import library_versions, provenance
from ml.explain.render import (
    COLORMAPS,
    colorize,
    load_raw_map,
    overlay_array,
    render_heatmap_png,
    render_heatmaps_png,
    render_overlay_png,
    save_raw_map,
)
from ml.explain.sanity import randomization_check, randomize_model, spearman_rows

__all__ = [
    "COLORMAPS",
    "DEFAULT_PARAMS",
    "METHODS",
    "POSTPROCESS_MODES",
    "SaliencyResult",
    "auto_chunk_size",
    "colorize",
    "compute_saliency",
    "deletion_auc",
    "entropy",
    "find_gradcam_layer",
    "gini",
    "insertion_auc",
    "library_versions",
    "load_raw_map",
    "map_metrics",
    "mask_energy",
    "overlay_array",
    "pointing_game",
    "postprocess",
    "provenance",
    "randomization_check",
    "randomize_model",
    "render_heatmap_png",
    "render_heatmaps_png",
    "render_overlay_png",
    "save_raw_map",
    "spearman_rows",
    "total_variation",
]
