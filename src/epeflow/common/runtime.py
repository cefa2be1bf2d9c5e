"""Where training runs: device, mixed precision, and (the one place for it) distributed wrapping and sharding.

One process, or one of several started by torchrun (one per GPU; gloo processes on CPU for tests): `detect`
reads torchrun's environment, `process_group` joins the others, `wrap` puts a module in
DistributedDataParallel, `shard` gives each rank its slice of a global batch, `average` and `any_rank` agree
on values across ranks. The training loop calls these and nothing else about distribution.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn

from epeflow.common.device import select_device

T = TypeVar("T")


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    amp: bool  # bf16 autocast (GPU only)
    rank: int = 0
    world_size: int = 1

    @classmethod
    def detect(cls, amp: bool = True, device: str = "auto") -> Runtime:
        """GPU when present, else CPU; rank and world size from torchrun's environment when it set them."""
        rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
        dev = select_device(device)
        if dev.type == "cuda" and world > 1:
            dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", rank)))
        return cls(device=dev, amp=amp and dev.type == "cuda", rank=rank, world_size=world)

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def is_main(self) -> bool:
        """The process that writes checkpoints, logs and the final model."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized()

    def autocast(self) -> contextlib.AbstractContextManager:
        """bf16 autocast when `amp` (`detect` allows it on CUDA only; tests build a CPU one directly)."""
        if self.amp:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def prepare(self, module: nn.Module) -> nn.Module:
        """Move a module to the device (channels_last on GPU, where convolutions are faster that way)."""
        module = module.to(self.device)
        return module.to(memory_format=torch.channels_last) if self.is_cuda else module

    def tensor(self, t: torch.Tensor) -> torch.Tensor:
        t = t.to(self.device, non_blocking=True)
        return t.contiguous(memory_format=torch.channels_last) if self.is_cuda and t.dim() == 4 else t

    def wrap(self, module: nn.Module) -> nn.Module:
        """The module the loop calls: itself, or its DistributedDataParallel wrapper with several ranks."""
        if self.distributed:
            ids = [self.device.index] if self.is_cuda else None
            return nn.parallel.DistributedDataParallel(module, device_ids=ids)
        return module

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's part of a global batch (every rank draws the same global batch from the same seed)."""
        return list(items[self.rank :: self.world_size])

    def average(self, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Scalars averaged over the ranks (one all-reduce, no host synchronisation); as they are with one."""
        if not self.distributed:
            return values
        stacked = torch.stack([v.detach().float() for v in values.values()])
        torch.distributed.all_reduce(stacked)
        return dict(zip(values, stacked / self.world_size, strict=True))

    def any_rank(self, flag: bool) -> bool:
        """True on every rank when it is true on one (so all ranks stop at the same step)."""
        if not self.distributed:
            return flag
        t = torch.tensor([float(flag)], device=self.device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
        return bool(t.item())

    def barrier(self) -> None:
        if self.distributed:
            torch.distributed.barrier(device_ids=[self.device.index] if self.is_cuda else None)


@contextlib.contextmanager
def process_group(runtime: Runtime) -> Iterator[None]:
    """Join the other ranks (nccl on CUDA, gloo on CPU) for the block when torchrun started several."""
    if runtime.world_size == 1 or torch.distributed.is_initialized():
        yield
        return
    if runtime.is_cuda:
        torch.cuda.set_device(runtime.device)
    torch.distributed.init_process_group("nccl" if runtime.is_cuda else "gloo", rank=runtime.rank,
                                         world_size=runtime.world_size)
    try:
        yield
    finally:
        torch.distributed.destroy_process_group()


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module inside a DistributedDataParallel wrapper (what checkpoints store)."""
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


@contextlib.contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """No parameter gradients for `module` inside the block (the discriminator during the generator step)."""
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags, strict=True):
            p.requires_grad_(flag)
