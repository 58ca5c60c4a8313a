"""Classifiers for radsal: torchvision ResNets (and friends) with optional dual batch norm.

Public API: :func:`create_model`, :func:`list_archs`, :func:`bn_route`, :func:`is_dual_bn`,
:func:`gradcam_layer`. Inputs are N×C×H×W in [0,1]; outputs are logits.
"""

from ml.models.dual_bn import (
    ROUTES,
    DualBatchNorm2d,
    bn_route,
    convert_to_dual_bn,
    is_dual_bn,
    split_route,
)
from ml.models.registry import (
    InputNormalize,
    RadsalClassifier,
    create_model,
    gradcam_layer,
    list_archs,
    unwrap,
)

__all__ = [
    "ROUTES",
    "DualBatchNorm2d",
    "InputNormalize",
    "RadsalClassifier",
    "bn_route",
    "convert_to_dual_bn",
    "create_model",
    "gradcam_layer",
    "is_dual_bn",
    "list_archs",
    "split_route",
    "unwrap",
]
