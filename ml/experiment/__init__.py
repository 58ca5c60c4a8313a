"""``radsal experiment``: standard vs dual-BN trained, evaluated and explained in one command."""

from ml.experiment.run import ExperimentConfig, run_experiment

__all__ = ["ExperimentConfig", "run_experiment"]
