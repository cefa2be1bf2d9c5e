"""How much memory a forward pass takes, worked out without running it.

The network runs on the `meta` device (shapes only, no data, no arithmetic) while a dispatch mode adds up
the bytes of every tensor that is alive at once. The peak is what the allocator of a real device would
need for the activations (float32; bf16 autocast on a GPU needs less), without fragmentation or weights.
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Callable
from typing import Any

import torch
import torch.utils._pytree as pytree
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode


class _LiveBytes(TorchDispatchMode):
    """Bytes of the storages made inside the mode that some tensor still uses; and their peak."""

    def __init__(self) -> None:
        super().__init__()
        self.users: dict[int, int] = {}  # storage -> tensors using it
        self.sizes: dict[int, int] = {}
        self.live = self.peak = 0

    def __torch_dispatch__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self._track(t)
        return out

    def _track(self, t: torch.Tensor) -> None:
        storage = t.untyped_storage()
        key = storage._cdata
        if key not in self.users:
            self.users[key], self.sizes[key] = 0, storage.nbytes()
            self.live += self.sizes[key]
            self.peak = max(self.peak, self.live)
        self.users[key] += 1
        weakref.finalize(t, self._release, key)

    def _release(self, key: int) -> None:
        self.users[key] -= 1
        if self.users[key] == 0:
            self.live -= self.sizes.pop(key)
            del self.users[key]


def forward_peak_bytes(module: nn.Module, *shapes: tuple[int, ...] | None) -> int:
    """Peak bytes of tensors alive at once in `module(*inputs)` under no_grad, inputs of these shapes
    included (None passes None). `module` must be on the meta device (see `meta_twin`)."""
    inputs = [None if s is None else torch.empty(s, device="meta") for s in shapes]
    given = sum(x.nbytes for x in inputs if x is not None)
    mode = _LiveBytes()
    with torch.no_grad(), mode:
        out = module(*inputs)
        del out
    return given + mode.peak


def meta_twin(module: nn.Module) -> nn.Module:
    """A copy of `module` on the meta device: every tensor it holds (parameters, buffers, tensors kept as
    attributes such as a spectral norm's weight) has its shape but takes no memory."""
    memo: dict[int, torch.Tensor] = {}
    for m in module.modules():
        attributes = [v for v in vars(m).values() if isinstance(v, torch.Tensor)]
        held = [*m._parameters.values(), *m._buffers.values(), *attributes]
        for t in held:
            if t is not None and id(t) not in memo:
                empty = torch.empty_like(t, device="meta")
                memo[id(t)] = nn.Parameter(empty, t.requires_grad) if isinstance(t, nn.Parameter) else empty
    return copy.deepcopy(module, memo).eval()
