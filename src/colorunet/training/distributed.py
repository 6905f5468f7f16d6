"""Data-parallel training across processes, GPUs and nodes, with PyTorch's own machinery.

``torchrun`` starts the processes and sets RANK, WORLD_SIZE, LOCAL_RANK and the
rendezvous; we only join the process group (NCCL on CUDA, gloo on CPU) and wrap
the network in DistributedDataParallel. Nothing here manages a cluster.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class World:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_environment() -> World:
    """The process's place in a ``torchrun`` launch (a single process when not launched by it)."""
    return World(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)), int(os.environ.get("LOCAL_RANK", 0)))


def init(world: World, device: torch.device) -> torch.device:
    """Join the process group; returns the device of this process (its own GPU on CUDA)."""
    if not world.distributed:
        return device
    import torch.distributed as dist

    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def barrier(world: World) -> None:
    if world.distributed:
        torch.distributed.barrier()


def mean(world: World, value: torch.Tensor) -> torch.Tensor:
    """Mean of a scalar over the ranks (every rank gets it, so all stop together on a NaN)."""
    if not world.distributed:
        return value
    v = value.detach().float().clone()
    torch.distributed.all_reduce(v)
    return v / world.world_size


def broadcast(world: World, obj):
    """Rank 0's ``obj`` on every rank (any picklable object)."""
    if not world.distributed:
        return obj
    box = [obj]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def rank0_value(world: World, value: float) -> float:
    """Rank 0's ``value`` on every rank (e.g. how much of a time budget is spent: the learning
    rate depends on it, so all ranks must use the same number, and rank 0's clock is the one
    its log shows)."""
    return float(broadcast(world, float(value)))


def gather_strings(world: World, text: str) -> list[str]:
    if not world.distributed:
        return [text]
    out: list[str | None] = [None] * world.world_size
    torch.distributed.all_gather_object(out, text)
    return [str(t) for t in out]


def shutdown(world: World) -> None:
    """Leave the process group once every rank is done with it.

    The barrier makes sure no collective is still in flight, and collecting
    garbage first frees the DistributedDataParallel reducer (which holds the
    group) while the interpreter is fully alive: left to the interpreter's
    exit, gloo's threads could abort the process after the run had finished.
    """
    if world.distributed and torch.distributed.is_initialized():
        import gc

        torch.distributed.barrier()
        gc.collect()
        torch.distributed.destroy_process_group()
