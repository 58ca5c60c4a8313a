"""Architecture registry and the classifier wrapper every radsal model is built from.

``create_model`` always returns a :class:`RadsalClassifier`: input normalisation lives inside
the model (``normalize``), so attacks, ε and saliency all work in [0, 1] pixel space, and the
classifier itself is an unmodified torchvision network under ``backbone``. Builders never
download weights: pretrained initialisation comes from checkpoints (``--init-from``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torchvision import models as tvm

from ml.models.dual_bn import convert_to_dual_bn, is_dual_bn
from ml.models.tiny import TinyResNet

__all__ = [
    "InputNormalize",
    "RadsalClassifier",
    "create_model",
    "gradcam_layer",
    "list_archs",
    "unwrap",
]


class InputNormalize(nn.Module):
    """``(x - mean) / std`` per channel, with mean/std saved as buffers in the state dict."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std):
            raise ValueError("normalize mean and std must have the same length")
        if any(s <= 0 for s in std):
            raise ValueError("normalize std must be positive")
        self.register_buffer("mean", torch.tensor(list(mean), dtype=torch.float32).view(-1, 1, 1))
        self.register_buffer("std", torch.tensor(list(std), dtype=torch.float32).view(-1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class RadsalClassifier(nn.Module):
    """``backbone(normalize(x))``: N×C×H×W in [0,1] → N×num_classes logits."""

    def __init__(
        self,
        backbone: nn.Module,
        *,
        arch: str,
        num_classes: int,
        in_channels: int,
        normalize: dict[str, list[float]] | None,
    ) -> None:
        super().__init__()
        self.normalize: nn.Module = (
            InputNormalize(normalize["mean"], normalize["std"]) if normalize else nn.Identity()
        )
        self.backbone = backbone
        self.arch = arch
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.normalize_spec = normalize

    @property
    def dual_bn(self) -> bool:
        return is_dual_bn(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(self.normalize(x))


@dataclass(frozen=True)
class _Arch:
    build: Callable[[int, int], nn.Module]
    cam_layer: Callable[[nn.Module], nn.Module]


def _resnet(fn: Callable[..., tvm.ResNet]) -> Callable[[int, int], nn.Module]:
    def build(num_classes: int, in_channels: int) -> nn.Module:
        net = fn(weights=None, num_classes=num_classes)
        if in_channels != 3:
            net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
            nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
        return net

    return build


def _densenet121(num_classes: int, in_channels: int) -> nn.Module:
    net = tvm.densenet121(weights=None, num_classes=num_classes)
    if in_channels != 3:
        net.features.conv0 = nn.Conv2d(
            in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False
        )
    return net


def _layer4(backbone: nn.Module) -> nn.Module:
    layer = backbone.layer4
    assert isinstance(layer, nn.Module)
    return layer


def _features(backbone: nn.Module) -> nn.Module:
    layer = backbone.features
    assert isinstance(layer, nn.Module)
    return layer


_REGISTRY: dict[str, _Arch] = {
    "resnet_tiny": _Arch(lambda n, c: TinyResNet(n, c), _layer4),
    "resnet18": _Arch(_resnet(tvm.resnet18), _layer4),
    "resnet34": _Arch(_resnet(tvm.resnet34), _layer4),
    "resnet50": _Arch(_resnet(tvm.resnet50), _layer4),
    "resnet101": _Arch(_resnet(tvm.resnet101), _layer4),
    "densenet121": _Arch(_densenet121, _features),
}


def list_archs() -> list[str]:
    """Architecture names accepted by :func:`create_model`."""
    return sorted(_REGISTRY)


def create_model(
    arch: str,
    num_classes: int,
    in_channels: int = 1,
    dual_bn: bool = False,
    normalize: dict[str, list[float]] | None = None,
    bn_momentum: float = 0.01,
) -> nn.Module:
    """Build a randomly initialised classifier taking [0,1] images.

    ``normalize`` (``{"mean": [...], "std": [...]}``, one entry per channel) is applied inside
    the model; None feeds [0,1] unchanged, as the paper does. With ``dual_bn`` every BN becomes
    a :class:`~ml.models.dual_bn.DualBatchNorm2d` with momentum ``bn_momentum`` (0.01 as in
    the paper); standard models keep torchvision's defaults.
    """
    if arch not in _REGISTRY:
        raise ValueError(f"unknown architecture {arch!r}; available: {', '.join(list_archs())}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    if in_channels not in (1, 3):
        raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
    if normalize is not None:
        for key in ("mean", "std"):
            if len(normalize.get(key, [])) != in_channels:
                raise ValueError(
                    f"normalize[{key!r}] must have {in_channels} value(s) (one per channel)"
                )
        normalize = {
            "mean": list(map(float, normalize["mean"])),
            "std": list(map(float, normalize["std"])),
        }
    backbone = _REGISTRY[arch].build(num_classes, in_channels)
    if dual_bn:
        convert_to_dual_bn(backbone, momentum=bn_momentum)
    return RadsalClassifier(
        backbone, arch=arch, num_classes=num_classes, in_channels=in_channels, normalize=normalize
    )


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside DDP / DataParallel / torch.compile wrappers."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def gradcam_layer(model: nn.Module) -> nn.Module:
    """The last convolutional stage (``layer4`` for ResNets), the usual Grad-CAM target."""
    inner = unwrap(model)
    if not isinstance(inner, RadsalClassifier):
        raise TypeError("gradcam_layer expects a model built by ml.models.create_model")
    return _REGISTRY[inner.arch].cam_layer(inner.backbone)
