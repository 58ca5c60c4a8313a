"""torchrun / DDP plumbing: a no-op on a single process.

``torchrun --nproc-per-node N -m app.cli.main train ...`` (or ``radsal train`` under torchrun)
sets RANK/WORLD_SIZE/LOCAL_RANK; we then use NCCL on CUDA (gloo on CPU), one device per local
rank, a DistributedSampler for training, and only rank 0 writes files and shows progress.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ml.device import resolve_device

__all__ = ["DistContext", "cleanup_distributed", "setup_distributed"]


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def setup_distributed(device_pref: str = "auto") -> DistContext:
    """Initialise the process group when launched by torchrun; else a single-process context."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(0, 1, 0, resolve_device(device_pref))
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", "0"))
    base = resolve_device(device_pref)
    if base.type == "cuda":
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
        backend = "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistContext(rank, world, local, device)


def cleanup_distributed(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
