"""Standard, adversarial (PGD / fast FGSM) and dual-BN training with resumable checkpoints."""

from ml.training.config import MODES, STAGES, TrainConfig
from ml.training.loop import evaluate, train_one_epoch, training_step
from ml.training.trainer import TrainResult, train

__all__ = [
    "MODES",
    "STAGES",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "train",
    "train_one_epoch",
    "training_step",
]
