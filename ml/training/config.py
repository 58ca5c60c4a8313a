"""Training configuration: one dataclass mirroring ``radsal train``'s options."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["MODES", "STAGES", "TrainConfig"]

MODES = ("standard", "adversarial", "dual", "fast")
STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")


@dataclass
class TrainConfig:
    """Everything one training run needs. Defaults suit a small CPU run; docs/ml.md gives the
    paper recipes (ResNet-50, 256 px, PGD L∞ ε=0.005, step 0.0025, 10 steps, dual BN).

    ``mode``: ``standard`` (clean loss), ``adversarial`` (Madry: loss on PGD images only),
    ``dual`` (Han et al.: loss(clean via clean BN) + loss(PGD via adversarial BN), attack
    through the adversarial BN), ``fast`` (FGSM with random start, step 1.25·ε).
    """

    data: str
    out: str
    mode: str = "standard"
    arch: str = "resnet18"
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    optimizer: str = "adam"  # adam | adamw | sgd
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: str = "cosine"  # cosine | step | none
    warmup_epochs: float = 0.0
    image_size: int = 224
    in_channels: int = 1
    augment: str = "light"  # none | light | paper
    normalize: dict[str, list[float]] | None = None
    eps: float = 0.005
    step_size: float | None = None  # default 2.5·ε/steps (Madry et al.)
    steps: int = 10
    norm: str = "linf"
    random_start: bool = True
    bn_momentum: float | None = None  # None: 0.01 (paper) for runs of >= 500 steps, else 0.1
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    threads: int | None = None  # torch intra-op CPU threads (None: torch's default)
    amp: bool = True  # bf16 autocast, CUDA only
    channels_last: bool = True  # CUDA only
    select_metric: str = "loss"  # loss (clean val loss, as in the paper) | auroc
    init_from: str | None = None
    init_route: str | None = None  # which BN of a dual-BN init checkpoint feeds a single-BN model
    freeze_through: str | None = None  # stem | layer1..layer4
    resume: bool = False
    uncertainty: str = "zeros"
    label_columns: list[str] | None = None
    val_fraction: float = 0.2
    max_steps_per_epoch: int | None = None
    grad_clip: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose from {MODES}")
        if self.norm not in ("linf", "l2"):
            raise ValueError(f"unknown norm {self.norm!r}; choose linf or l2")
        if self.optimizer not in ("adam", "adamw", "sgd"):
            raise ValueError(f"unknown optimizer {self.optimizer!r}")
        if self.schedule not in ("cosine", "step", "none"):
            raise ValueError(f"unknown schedule {self.schedule!r}")
        if self.select_metric not in ("loss", "auroc"):
            raise ValueError("select_metric must be 'loss' or 'auroc'")
        if self.freeze_through is not None and self.freeze_through not in STAGES:
            raise ValueError(f"freeze_through must be one of {STAGES}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs and batch_size must be >= 1 and lr > 0")
        if self.mode != "standard" and (self.eps <= 0 or self.steps < 1):
            raise ValueError(f"mode {self.mode!r} needs eps > 0 and steps >= 1")

    @property
    def dual_bn(self) -> bool:
        return self.mode == "dual"

    @property
    def attack_step_size(self) -> float:
        if self.step_size is not None:
            return self.step_size
        if self.mode == "fast":
            return 1.25 * self.eps
        return 2.5 * self.eps / max(self.steps, 1)

    def resolved_bn_momentum(self, total_steps: int) -> float:
        """The paper's 0.01 needs hundreds of steps before running statistics forget their
        initialisation; short runs (tests, demo, CPU) use 0.1 unless set explicitly."""
        if self.bn_momentum is not None:
            return self.bn_momentum
        return 0.01 if total_steps >= 500 else 0.1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
