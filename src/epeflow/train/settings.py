"""The `train` config section as a typed object, validated against the schema with defaults filled in."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from epeflow.config import settings_from_spec

# Settings that change how long or how visibly a run goes, not what it computes: a checkpoint written under
# other values of these is still the same run. `init_from` is a path: the run's fingerprint holds the file's
# content digest instead (an input), so moving the file is no change and rewriting it is.
NOT_FINGERPRINTED = ("iterations", "checkpoint_every", "keep_checkpoints", "log_every", "num_workers", "device",
                     "init_from", "image_every", "gpus", "compile")


@dataclass(frozen=True)
class TrainSettings:
    iterations: int
    batch_size: int
    crop_size: int | None
    lr_generator: float
    lr_discriminator: float
    betas: tuple[float, float]
    clip_grad_norm: float
    lr_step: int
    lr_gamma: float
    perceptual_weight: float
    gan_weight: float
    reg_weight: float
    generator_width: float
    generator_stages: int
    gbuffer_layers: int
    image_only: bool
    discriminator: str
    discriminator_width: float
    discriminator_max_dim: int
    discriminator_num_layers: int
    gan_loss: str
    checkpoint_every: int
    keep_checkpoints: int
    log_every: int
    seed: int
    num_workers: int
    amp: bool
    lr_step_discriminator: int
    flip: bool
    ema_decay: float
    device: str
    init_from: str | None
    image_every: int
    gpus: int
    compile: bool

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> TrainSettings:
        """From the experiment's `train` section (as `--spec` passes it); errors name the config key."""
        return settings_from_spec(cls, "train", spec, ("experiments", "<exp>", "train"))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (stored in model.pt and checkpoints)."""
        d = asdict(self)
        d["betas"] = list(d["betas"])
        return d

    def fingerprinted(self) -> dict[str, Any]:
        return {k: v for k, v in self.to_dict().items() if k not in NOT_FINGERPRINTED}
