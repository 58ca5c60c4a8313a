"""Adversarial attacks in [0,1] pixel space: PGD (L∞, L2) and FGSM with random start."""

from ml.attacks.losses import classification_loss
from ml.attacks.pgd import AttackConfig, fgsm_attack, pgd_attack, run_attack
from ml.attacks.steps import STEPS, AttackStep, L2Step, LinfStep

__all__ = [
    "STEPS",
    "AttackConfig",
    "AttackStep",
    "L2Step",
    "LinfStep",
    "classification_loss",
    "fgsm_attack",
    "pgd_attack",
    "run_attack",
]
