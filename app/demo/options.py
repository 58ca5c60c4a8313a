"""What the demo builds (`DemoOptions`) and the errors it stops with.

Kept free of torch and the database: ``radsal`` imports it at start-up to take the demo
options' defaults from here, so they are written once.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


class DemoError(RuntimeError):
    """A demo step cannot proceed; the message tells the user what to do."""


class DataError(ValueError):
    """The user's data cannot be used; the message says what is wrong and what is expected."""


MODALITIES = ("xray", "ct", "mr")  # synthetic data: radiographs, or DICOM CT / MR


@dataclass(frozen=True)
class DemoOptions:
    """What to build. The defaults target a few minutes on a 2-core CPU.

    The training fields are the ones a user may change from the command line; everything else
    about training is ml's default or a deliberate choice of ``app.demo.models``.
    """

    data: Path | None = None  # a folder or CSV of the user's images; None: synthetic lesions
    # Synthetic data only: "xray" (8-bit PNG radiographs), or "ct" / "mr" (DICOM, HU for CT).
    modality: str = "xray"
    epochs: int = 8
    image_size: int = 64
    n_train: int = 300  # synthetic training images (validation and test sets scale with it)
    n_images: int = 48  # cases in the study
    raters: int = 6
    arch: str = "resnet_tiny"
    batch_size: int = 16
    seed: int = 0
    # Torch CPU threads. One by default: these tiny models gain little from a second thread,
    # and two threads spin-waiting on a busy machine run ~10x slower (docs/benchmarks.md#demo).
    threads: int = 1
    # L-inf PGD budget of the dual-BN model's training and of both models' evaluation.
    attack_eps: float = 2 / 255
    attack_steps: int = 2
    progress: bool = True

    def __post_init__(self) -> None:
        for name in (
            "epochs",
            "image_size",
            "n_train",
            "n_images",
            "raters",
            "batch_size",
            "threads",
        ):
            if getattr(self, name) < 1:
                raise DemoError(f"--{name.replace('_', '-')} must be at least 1.")
        if self.image_size < 16:
            raise DemoError("--image-size must be at least 16 pixels.")
        if self.modality not in MODALITIES:
            raise DemoError(f"--modality must be one of {', '.join(MODALITIES)}.")
        if self.data is not None and self.modality != "xray":
            raise DemoError("--modality chooses the synthetic data; it cannot be used with --data.")

    @property
    def attack(self) -> str:
        """The attack in words, for step titles."""
        return f"PGD L-inf eps {self.attack_eps * 255:.0f}/255, {self.attack_steps} steps"
