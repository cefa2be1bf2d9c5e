"""`epeflow profile MODEL`: what the networks of a model.pt cost per frame, measured on random inputs.

FLOPs come from torch's flop counter run on a meta-device copy (shapes only: exact counts, no arithmetic),
so they are free even at full size. Peak memory is measured during one real forward pass: CUDA's
max_memory_allocated on a GPU; on the CPU the growth of the process's peak resident set (Linux resets the
peak through /proc/self/clear_refs; elsewhere the lifetime peak of `resource`, which only shows growth
past earlier peaks), in the first timed pass after a warm-up pass. The CPU figure is rough for small
frames: the C allocator keeps small freed blocks, so a second pass needs little new memory. frames/s is
the best of `repeats` timed passes.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from epeflow.common.runtime import Runtime
from epeflow.enhance.memory import forward_peak_bytes, meta_twin
from epeflow.errors import EpeflowError
from epeflow.models.load import load_generator

GIB = 2**30


@dataclass(frozen=True)
class NetworkCost:
    name: str
    parameters: int
    flops_per_frame: float
    peak_bytes: int | None
    frames_per_second: float


@dataclass
class Profile:
    model: Path
    size: tuple[int, int]
    batch: int
    device: str
    precision: str
    memory_method: str
    generator_estimate_bytes: int  # what `enhance.memory_mb` is compared with
    networks: list[NetworkCost] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def parse_size(text: str) -> tuple[int, int]:
    """"540x960" -> (540, 960): height first, as the table prints it."""
    try:
        h, w = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise EpeflowError(f"--size {text!r} is not HEIGHTxWIDTH, e.g. 540x960") from None
    if h < 1 or w < 1:
        raise EpeflowError(f"--size {text!r}: height and width must be positive")
    return h, w


class _PeakMemory:
    """Peak memory growth during a block, the way the device allows measuring it."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.clear_refs = Path("/proc/self/clear_refs")
        if self.cuda:
            self.method = "CUDA max_memory_allocated"
        elif self._can_reset_rss_peak():
            self.method = "growth of the process's peak resident set (VmHWM, reset per pass)"
        else:
            self.method = "growth of the process's lifetime peak resident set (resource.getrusage)"

    def _can_reset_rss_peak(self) -> bool:
        return self.clear_refs.exists() and os.access(self.clear_refs, os.W_OK)

    @staticmethod
    def _status(key: str) -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        return 0

    def measure(self, fn: Callable[[], Any]) -> int:
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            fn()
            torch.cuda.synchronize()
            return torch.cuda.max_memory_allocated() - base
        if self._can_reset_rss_peak():
            self.clear_refs.write_text("5")
            base = self._status("VmRSS")
            fn()
            return max(0, self._status("VmHWM") - base)
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        fn()
        return max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base)


def _cost(name: str, module: nn.Module, run: Callable[[], Any], meta_run: Callable[[], Any], batch: int,
          repeats: int, memory: _PeakMemory, device: torch.device) -> NetworkCost:
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        meta_run()

    def timed() -> float:
        start = time.perf_counter()
        with torch.no_grad():
            run()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    timed()  # warm-up: lazy initialisation, allocator caches, thread pools
    times: list[float] = []
    peak = memory.measure(lambda: times.append(timed()))
    times += [timed() for _ in range(repeats - 1)]
    best = min(times)
    return NetworkCost(name, sum(p.numel() for p in module.parameters()), counter.get_total_flops() / batch, peak,
                       batch / best)


def profile_model(path: str | Path, size: tuple[int, int], batch: int = 1, repeats: int = 3,
                  device: str = "auto") -> Profile:
    """Cost of the generator of `path` and of the discriminator its training settings describe."""
    path = Path(path)
    generator, model = load_generator(path)
    runtime = Runtime.detect(bool(model.get("train", {}).get("amp", True)), device)
    memory = _PeakMemory(runtime.device)
    cfg = generator.config
    h, w = size
    torch.manual_seed(0)
    image = torch.rand(batch, 3, h, w)
    gbuffers = materials = None
    if cfg.gbuffer_mode != "img":
        gbuffers = torch.randn(batch, cfg.gbuffer_channels, h, w)
        materials = nn.functional.one_hot(torch.randint(0, cfg.num_classes, (batch, h, w)), cfg.num_classes)
        materials = materials.permute(0, 3, 1, 2).float()
    twin = meta_twin(generator)
    shapes = [None if t is None else tuple(t.shape) for t in (image, gbuffers, materials)]
    on_meta = [None if t is None else torch.empty(t.shape, device="meta") for t in (image, gbuffers, materials)]
    generator = runtime.prepare(generator)
    inputs = [None if t is None else runtime.tensor(t) for t in (image, gbuffers, materials)]

    def run_generator() -> Any:
        with runtime.autocast():
            return generator(*inputs)

    report = Profile(
        model=path, size=size, batch=batch, device=str(runtime.device),
        precision="bf16 autocast, channels-last" if runtime.amp else "float32",
        memory_method=memory.method, generator_estimate_bytes=forward_peak_bytes(twin, *shapes),
    )
    name = f"generator (IENet {cfg.gbuffer_mode}, {cfg.num_stages} stages, width {cfg.width:g})"
    report.networks.append(_cost(name, generator, run_generator, lambda: twin(*on_meta), batch, repeats, memory,
                                 runtime.device))
    _profile_discriminator(report, model, image, runtime, memory, repeats)
    return report


def _profile_discriminator(report: Profile, model: dict[str, Any], image: torch.Tensor, runtime: Runtime,
                           memory: _PeakMemory, repeats: int) -> None:
    """The discriminator its `train` settings describe (model.pt keeps only the generator), random weights."""
    from epeflow.common.taxonomy import NUM_UNIVERSAL_CLASSES
    from epeflow.common.vgg16 import VGG16
    from epeflow.models.disc_inputs import IMAGE, discriminator_inputs
    from epeflow.train.loop import DISCRIMINATORS, discriminator_config
    from epeflow.train.settings import TrainSettings

    if not model.get("train"):
        report.notes.append("discriminator: none; model.pt stores only the generator, and this one has no training "
                            "settings to build one from (an imported reference generator)")
        return
    settings = TrainSettings.from_spec(dict(model["train"]))
    config = discriminator_config(settings, NUM_UNIVERSAL_CLASSES)
    torch.manual_seed(0)
    disc = DISCRIMINATORS[settings.discriminator](config).eval()
    b, _, h, w = image.shape
    labels = torch.randint(0, NUM_UNIVERSAL_CLASSES, (b, h, w))
    report.notes.append(
        f"discriminator: not stored in model.pt (training checkpoints hold it); built from its training settings "
        f"({settings.discriminator}, width {settings.discriminator_width:g}) with random weights, which cost the "
        f"same; labels: {NUM_UNIVERSAL_CLASSES} MSeg classes"
    )
    names = disc.input_names
    vgg = VGG16("replicate").eval() if any(n != IMAGE for n in names) else None
    x, y = runtime.tensor(image), runtime.tensor(labels)
    if vgg is not None:
        vgg_twin, vgg = meta_twin(vgg), runtime.prepare(vgg)
        layers = [n for n in names if n != IMAGE]
        on_meta = torch.empty(image.shape, device="meta")

        def run_vgg() -> Any:
            with runtime.autocast():
                return vgg(x, layers)

        report.networks.append(_cost("VGG16 features (discriminator input)", vgg, run_vgg,
                                     lambda: vgg_twin(on_meta, layers), b, repeats, memory, runtime.device))
    with torch.no_grad(), runtime.autocast():
        features = discriminator_inputs(vgg, x, names)
    meta_features = {k: torch.empty(v.shape, device="meta") for k, v in features.items()}
    disc_twin, disc = meta_twin(disc), runtime.prepare(disc)
    meta_labels = torch.empty(labels.shape, dtype=labels.dtype, device="meta")

    def run_disc() -> Any:
        with runtime.autocast():
            return disc(features, y)

    report.networks.append(_cost(f"discriminator ({settings.discriminator})", disc, run_disc,
                                 lambda: disc_twin(meta_features, meta_labels), b, repeats, memory, runtime.device))


def _bytes(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / GIB:.2f} GiB" if n >= GIB / 4 else f"{n / 2**20:.1f} MiB"


def format_profile(report: Profile) -> str:
    """A table for people: one row per network, then how things were measured."""
    h, w = report.size
    head = ("network", "parameters", "GFLOP/frame", "peak memory", "frames/s")
    rows = [head] + [
        (n.name, f"{n.parameters / 1e6:.2f} M", f"{n.flops_per_frame / 1e9:,.1f}", _bytes(n.peak_bytes),
         f"{n.frames_per_second:.3g}")
        for n in report.networks
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [f"{report.model}: {h}x{w} frames, batch {report.batch}, {report.device} ({report.precision})", ""]
    for k, r in enumerate(rows):
        cells = [r[0].ljust(widths[0])] + [c.rjust(wd) for c, wd in zip(r[1:], widths[1:], strict=True)]
        lines.append("  ".join(cells))
        if k == 0:
            lines.append("  ".join("-" * wd for wd in widths))
    lines += ["", f"peak memory: {report.memory_method}, during one forward pass (no gradients)",
              f"generator memory estimate (float32, what enhance.memory_mb is compared with): "
              f"{_bytes(report.generator_estimate_bytes)}"]
    lines += report.notes
    return "\n".join(lines)
