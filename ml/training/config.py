"""Training configuration: one dataclass, the single source of every training default.

``radsal train`` takes its option defaults from here (``config_defaults``) and maps its parsed
options back by field name; the demo starts from these defaults and changes only what it
means to. A default changed here therefore changes everywhere at once.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ml.data.splits import MASK_SPLITS

__all__ = [
    "MASK_SPLITS",
    "MODES",
    "NORMS",
    "OPTIMIZERS",
    "SCHEDULES",
    "SELECT_METRICS",
    "STAGES",
    "TrainConfig",
    "config_defaults",
]

MODES = ("standard", "adversarial", "dual", "fast")
STAGES = ("stem", "layer1", "layer2", "layer3", "layer4")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("cosine", "step", "none")
NORMS = ("linf", "l2")
SELECT_METRICS = ("auroc", "loss")


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
    # auroc: clean macro validation AUROC (a loss can fall while the ranking collapses);
    # loss: clean validation loss, as in the paper.
    select_metric: str = "auroc"
    init_from: str | None = None
    init_route: str | None = None  # which BN of a dual-BN init checkpoint feeds a single-BN model
    freeze_through: str | None = None  # stem | layer1..layer4
    resume: bool = False
    uncertainty: str = "zeros"
    label_columns: list[str] | None = None
    val_fraction: float = 0.2
    test_fraction: float = 0.0  # CSV without split column: held-out test share (by patient)
    mask_split: str = "auto"  # where images with masks go: auto | val | test | none
    label: str | None = None  # the model's name in reports and comparisons (None: out's name)
    max_steps_per_epoch: int | None = None
    grad_clip: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; choose from {MODES}")
        if self.norm not in NORMS:
            raise ValueError(f"unknown norm {self.norm!r}; choose linf or l2")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}")
        if self.select_metric not in SELECT_METRICS:
            raise ValueError("select_metric must be 'loss' or 'auroc'")
        if self.mask_split not in MASK_SPLITS:
            raise ValueError(f"mask_split must be one of {MASK_SPLITS}")
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

    @property
    def run_label(self) -> str:
        """The model's name: ``label``, else the output folder's name (never "best")."""
        return self.label or Path(self.out).name or "model"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def config_defaults() -> dict[str, Any]:
    """Every field's default (fresh copies of mutable ones), keyed by field name; the fields
    without one (``data``, ``out``) are absent. What the CLI's options default to."""
    out: dict[str, Any] = {}
    for f in fields(TrainConfig):
        if f.default is not MISSING:
            out[f.name] = f.default
        elif f.default_factory is not MISSING:
            out[f.name] = f.default_factory()
    return out
