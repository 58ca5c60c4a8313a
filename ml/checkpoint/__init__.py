"""radsal/1 checkpoints: one self-describing, weights-only format, plus the seed's layouts.

See DESIGN.md ("Contract"): a plain dict loadable with ``torch.load(weights_only=True)`` holding
``format``, ``arch``, ``dual_bn``, ``num_classes``, ``class_names``, ``in_channels``,
``image_size``, ``normalize``, ``train`` and ``state_dict`` (optionally ``extra``).
"""

from ml.checkpoint.convert import import_checkpoint
from ml.checkpoint.errors import CheckpointError
from ml.checkpoint.io import (
    FORMAT,
    LoadedCheckpoint,
    load_checkpoint,
    read_checkpoint_dict,
    save_checkpoint,
)

__all__ = [
    "FORMAT",
    "CheckpointError",
    "LoadedCheckpoint",
    "import_checkpoint",
    "load_checkpoint",
    "read_checkpoint_dict",
    "save_checkpoint",
]
