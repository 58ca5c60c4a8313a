"""From a decoded image to the model's input square, and back.

``prepare_input`` letterboxes (pads to a square with zeros, then resizes) instead of stretching,
so anatomy keeps its aspect ratio; the returned :class:`Letterbox` maps an S×S saliency map back
onto the original H×W so overlays line up with the display image pixel for pixel.
Augmentations (flip, affine, intensity jitter, as in the paper's training) act on the tensor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms import v2

__all__ = ["AUGMENT_PRESETS", "AugmentConfig", "Letterbox", "build_augment", "prepare_input"]

_LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class Letterbox:
    """Geometry of one letterbox: original size, padded square side and offsets, model size."""

    orig_h: int
    orig_w: int
    side: int
    pad_top: int
    pad_left: int
    image_size: int

    def to_original(self, map_: np.ndarray | torch.Tensor) -> np.ndarray:
        """Map an S×S (or ...×S×S) array onto the original H×W (bilinear, padding cropped)."""
        t = torch.as_tensor(np.asarray(map_) if not isinstance(map_, torch.Tensor) else map_)
        t = t.detach().to(torch.float32).cpu()
        if t.ndim < 2:
            raise ValueError(f"map must have at least 2 dimensions, got shape {tuple(t.shape)}")
        lead = t.shape[:-2]
        t = t.reshape(1, -1, *t.shape[-2:])
        up = F.interpolate(t, size=(self.side, self.side), mode="bilinear", align_corners=False)
        crop = up[
            ...,
            self.pad_top : self.pad_top + self.orig_h,
            self.pad_left : self.pad_left + self.orig_w,
        ]
        return crop.reshape(*lead, self.orig_h, self.orig_w).numpy()


def _to_channels(array: np.ndarray, in_channels: int) -> torch.Tensor:
    a = np.asarray(array, dtype=np.float32)
    if a.ndim == 2:
        t = torch.from_numpy(np.ascontiguousarray(a))[None]
        return t.expand(3, -1, -1).clone() if in_channels == 3 else t
    if a.ndim == 3 and a.shape[2] in (3, 4):
        t = torch.from_numpy(np.ascontiguousarray(a[..., :3])).permute(2, 0, 1)
        if in_channels == 1:
            luma = torch.tensor(_LUMA, dtype=torch.float32).view(3, 1, 1)
            return (t * luma).sum(0, keepdim=True)
        return t.contiguous()
    raise ValueError(f"expected an H×W or H×W×3 image, got shape {a.shape}")


def prepare_input(
    array: np.ndarray, image_size: int, in_channels: int
) -> tuple[torch.Tensor, Letterbox]:
    """Letterbox ``array`` (H×W or H×W×3, [0,1]) into a C×S×S float32 tensor in [0,1]."""
    if in_channels not in (1, 3):
        raise ValueError(f"in_channels must be 1 or 3, got {in_channels}")
    t = _to_channels(array, in_channels)
    _, h, w = t.shape
    side = max(h, w)
    top, left = (side - h) // 2, (side - w) // 2
    if h != w:
        t = F.pad(t, (left, side - w - left, top, side - h - top), value=0.0)
    if side != image_size:
        t = F.interpolate(
            t[None],
            size=(image_size, image_size),
            mode="bilinear",
            align_corners=False,
            antialias=side > image_size,
        )[0]
    box = Letterbox(
        orig_h=h, orig_w=w, side=side, pad_top=top, pad_left=left, image_size=image_size
    )
    return t.clamp_(0.0, 1.0).contiguous(), box


@dataclass(frozen=True)
class AugmentConfig:
    """Training-time augmentation; every field off gives the identity."""

    hflip: bool = False
    degrees: float = 0.0
    translate: float = 0.0
    scale: tuple[float, float] = (1.0, 1.0)
    brightness: float = 0.0
    contrast: float = 0.0


AUGMENT_PRESETS: dict[str, AugmentConfig] = {
    "none": AugmentConfig(),
    # Mild geometry only: safe for small synthetic images and most modalities.
    "light": AugmentConfig(degrees=5.0, translate=0.03, scale=(0.95, 1.05)),
    # Close to the seed code: horizontal flip, small affine, brightness/contrast jitter.
    "paper": AugmentConfig(
        hflip=True, degrees=10.0, translate=0.05, scale=(0.9, 1.1), brightness=0.1, contrast=0.1
    ),
}


def build_augment(config: AugmentConfig | str | None) -> v2.Transform | None:
    """A tensor transform for ``config`` (a preset name or an AugmentConfig), None if identity."""
    if config is None:
        return None
    if isinstance(config, str):
        if config not in AUGMENT_PRESETS:
            raise ValueError(
                f"unknown augmentation {config!r}; choose from {sorted(AUGMENT_PRESETS)}"
            )
        config = AUGMENT_PRESETS[config]
    ops: list[v2.Transform] = []
    if config.hflip:
        ops.append(v2.RandomHorizontalFlip())
    if config.degrees or config.translate or config.scale != (1.0, 1.0):
        ops.append(
            v2.RandomAffine(
                degrees=config.degrees,
                translate=(config.translate, config.translate) if config.translate else None,
                scale=config.scale if config.scale != (1.0, 1.0) else None,
            )
        )
    if config.brightness or config.contrast:
        ops.append(v2.ColorJitter(brightness=config.brightness, contrast=config.contrast))
    if not ops:
        return None
    return v2.Compose([*ops, v2.Lambda(lambda x: x.clamp(0.0, 1.0))])
