"""Saliency engine: Captum attributions, target policy, post-processing, rendering, metrics.

:func:`explain_batch` (``ml.explain.pipeline``) is the one pipeline — compute → post-process
→ render → metrics → provenance — that both a study's generation job and ``radsal saliency``
run for every arm, so the only thing that differs between arms is the map itself, and the
same checkpoint, images and settings give the same bytes wherever they are computed.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ml.explain.choices import COLORMAPS, METHODS, POSTPROCESS_MODES
    from ml.explain.engine import (
        SaliencyResult,
        auto_chunk_size,
        compute_saliency,
        find_gradcam_layer,
    )
    from ml.explain.methods import DEFAULT_PARAMS
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
    from ml.explain.pipeline import (
        ExplainedBatch,
        ExplainedMap,
        MapSettings,
        ModelBatch,
        explain_batch,
        prepare_batch,
        stored_input,
    )
    from ml.explain.postprocess import postprocess
    from ml.explain.provenance import library_versions, provenance
    from ml.explain.render import (
        colorize,
        float16_npy,
        load_raw_map,
        overlay_array,
        raw_map_bytes,
        render_heatmap_png,
        render_heatmaps_png,
        render_overlay_png,
        save_raw_map,
    )
    from ml.explain.sanity import randomization_check, randomize_model, spearman_rows

# Where each public name lives. The package imports its submodules on first use (PEP 562), so
# ``from ml.explain.choices import COLORMAPS`` — what the web app needs to validate a form —
# does not pull in torch and Captum; ``from ml.explain import compute_saliency`` works as ever.
_SOURCES: dict[str, tuple[str, ...]] = {
    "ml.explain.choices": (
        "COLORMAPS",
        "METHODS",
        "POSTPROCESS_MODES",
    ),
    "ml.explain.engine": (
        "SaliencyResult",
        "auto_chunk_size",
        "compute_saliency",
        "find_gradcam_layer",
    ),
    "ml.explain.methods": ("DEFAULT_PARAMS",),
    "ml.explain.metrics": (
        "deletion_auc",
        "entropy",
        "gini",
        "insertion_auc",
        "map_metrics",
        "mask_energy",
        "pointing_game",
        "total_variation",
    ),
    "ml.explain.pipeline": (
        "ExplainedBatch",
        "ExplainedMap",
        "MapSettings",
        "ModelBatch",
        "explain_batch",
        "prepare_batch",
        "stored_input",
    ),
    "ml.explain.postprocess": ("postprocess",),
    "ml.explain.provenance": (
        "library_versions",
        "provenance",
    ),
    "ml.explain.render": (
        "colorize",
        "float16_npy",
        "load_raw_map",
        "overlay_array",
        "raw_map_bytes",
        "render_heatmap_png",
        "render_heatmaps_png",
        "render_overlay_png",
        "save_raw_map",
    ),
    "ml.explain.sanity": (
        "randomization_check",
        "randomize_model",
        "spearman_rows",
    ),
}
_WHERE = {name: module for module, names in _SOURCES.items() for name in names}


class _Package(types.ModuleType):
    """Keeps a public function when the import system binds a same-named submodule.

    ``postprocess`` and ``provenance`` are both functions exported here and submodules; when
    a submodule is first imported Python sets it as an attribute of this package, which would
    shadow the function (the eager ``from ... import`` this package used to run rebound it).
    """

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and name in _WHERE:
            self.__dict__.pop(name, None)  # resolved (to the function) by __getattr__ on use
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__all__ = [
    "COLORMAPS",
    "DEFAULT_PARAMS",
    "METHODS",
    "POSTPROCESS_MODES",
    "ExplainedBatch",
    "ExplainedMap",
    "MapSettings",
    "ModelBatch",
    "SaliencyResult",
    "auto_chunk_size",
    "colorize",
    "compute_saliency",
    "deletion_auc",
    "entropy",
    "explain_batch",
    "find_gradcam_layer",
    "float16_npy",
    "gini",
    "insertion_auc",
    "library_versions",
    "load_raw_map",
    "map_metrics",
    "mask_energy",
    "overlay_array",
    "pointing_game",
    "postprocess",
    "prepare_batch",
    "provenance",
    "randomization_check",
    "randomize_model",
    "raw_map_bytes",
    "render_heatmap_png",
    "render_heatmaps_png",
    "render_overlay_png",
    "save_raw_map",
    "spearman_rows",
    "stored_input",
    "total_variation",
]
