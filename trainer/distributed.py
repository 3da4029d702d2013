"""Data-parallel training across processes started by ``torchrun`` (DistributedDataParallel).

``torchrun --nproc_per_node=N -m trainer ...`` sets ``RANK``, ``LOCAL_RANK`` and ``WORLD_SIZE``;
without them the trainer is one process and nothing here talks to other processes. Backend: NCCL
on CUDA, gloo on the CPU. Every rank holds the training tensors and takes its slice of each
epoch's shared permutation; gradients are all-reduced by DDP; rank 0 alone logs, checkpoints and
writes the result."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
from torch import nn

from trainer.interrupts import Interrupts

log = logging.getLogger(__name__)

# Processes agree on pending interrupts every this many steps: one tiny all-reduce (and host
# sync) per this many steps instead of one per step.
INTERRUPT_SYNC_STEPS = 32


@dataclass(frozen=True)
class ProcessGroup:
    """This process's place among the training processes (rank 0 of 1 when alone)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def wrap(self, net: nn.Module, device: torch.device) -> nn.Module:
        """The module the training steps call: DDP around ``net`` when distributed."""
        if not self.distributed:
            return net
        from torch.nn.parallel import DistributedDataParallel

        ids = [device.index] if device.type == "cuda" else None
        return DistributedDataParallel(net, device_ids=ids)

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` summed over every process (in place; itself when alone)."""
        if self.distributed:
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
        return tensor

    def shard_rows(self, rows: int) -> int:
        """Rows each process trains on per epoch: equal on every rank (so every rank runs the
        same number of steps), the last ``rows % world_size`` of each permutation left out."""
        return rows // self.world_size

    def interrupts(self, device: torch.device) -> Interrupts:
        return SharedInterrupts(self, device) if self.distributed else Interrupts()


SINGLE_PROCESS = ProcessGroup()


class SharedInterrupts(Interrupts):
    """Interrupts every process acts on at the same step: the flags of all ranks are combined
    (any rank's SIGTERM or timer counts) every ``INTERRUPT_SYNC_STEPS`` steps and at each epoch
    end, so no rank stops or checkpoints alone (which would hang the others' all-reduce)."""

    def __init__(self, group: ProcessGroup, device: torch.device) -> None:
        super().__init__()
        self.group = group
        self.device = device
        # This process's own requests (signal handler, timer thread). The inherited flags hold
        # only what every process agreed on at the last settle: a request that lands while the
        # flags are being combined is kept for the next settle, never overwritten by the result.
        self.local_stop = False
        self.local_checkpoint = False

    def request_stop(self) -> None:
        self.local_stop = True

    def request_checkpoint(self) -> None:
        self.local_checkpoint = True

    def poll(self, step: int) -> bool:
        if step % INTERRUPT_SYNC_STEPS:
            return False
        return self.settle()

    def settle(self) -> bool:
        asked_checkpoint = self.local_checkpoint
        flags = torch.tensor([float(self.local_stop), float(asked_checkpoint)], device=self.device)
        torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX)
        stop, due = (bool(v) for v in flags.tolist())
        if asked_checkpoint:  # taken into this decision; a newer request waits for the next
            self.local_checkpoint = False
        self.stop_requested, self.checkpoint_due = stop, due
        return stop or due


def from_environment() -> ProcessGroup:
    """The process group torchrun describes in the environment (alone when it does not)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return SINGLE_PROCESS
    return ProcessGroup(
        rank=int(os.environ["RANK"]),
        world_size=world_size,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
    )


def start(group: ProcessGroup, device: torch.device) -> None:
    """Join the other processes (NCCL on CUDA, gloo on the CPU)."""
    if not group.distributed or torch.distributed.is_initialized():
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.distributed.init_process_group(
        backend,
        rank=group.rank,
        world_size=group.world_size,
        device_id=device if device.type == "cuda" else None,
    )
    log.info("rank %d of %d joined (%s)", group.rank, group.world_size, backend)


def stop(group: ProcessGroup) -> None:
    if group.distributed and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
