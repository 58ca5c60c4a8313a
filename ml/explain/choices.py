"""The names a saliency setting may take: methods, colormaps, post-processing modes.

Plain tuples in a module that imports nothing, so a caller that only needs the lists (the
web app validating a study form, an argparse ``choices=``) does not load torch and Captum.
The modules that implement them (``methods``, ``render``, ``postprocess``) re-export these.
"""

from __future__ import annotations

__all__ = ["COLORMAPS", "METHODS", "POSTPROCESS_MODES"]

METHODS: tuple[str, ...] = (
    "gradient",
    "smoothgrad",
    "integrated_gradients",
    "gradcam",
    "guided_backprop",
    "occlusion",
)

COLORMAPS: tuple[str, ...] = ("jet", "inferno", "viridis", "hot", "gray")

# clip_std: the paper's rule (mean ± k·std, then min-max); percentile: robust to hot pixels.
POSTPROCESS_MODES: tuple[str, ...] = ("clip_std", "percentile")
