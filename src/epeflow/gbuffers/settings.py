"""G-buffer settings from a dataset's config entry (the rule passes the part the gbuffers stage reads)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from epeflow.config import property_defaults
from epeflow.errors import EpeflowError
from epeflow.gbuffers.channels import GROUPS

_DATASET = property_defaults("dataset")
_FAKE = property_defaults("dataset", "fake_gbuffers")


@dataclass(frozen=True)
class GBufferSettings:
    """Defaults are the schema's, so a hand-written spec with few keys behaves as the pipeline does."""

    kind: str  # real | fake
    key: str = _DATASET["gbuffer_key"]  # array name inside .npz files
    channels: str = _DATASET["gbuffer_channels"]  # channel group of real G-buffers
    names: tuple[str, ...] | None = None  # channel names for files that carry none
    stats_frames: int = _FAKE["stats_frames"]  # fake: frames for the input RGB mean / std (reference 1000)
    batch_size: int = _FAKE["batch_size"]  # fake: frames of equal size per VGG16 forward pass
    num_workers: int = _FAKE["num_workers"]  # fake: DataLoader workers decoding frames

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], dataset: str = "<dataset>") -> GBufferSettings:
        kind = spec.get("gbuffers", "none")
        if kind not in ("real", "fake"):
            raise EpeflowError(
                f"config key `datasets.{dataset}.gbuffers` is {kind!r}: set `real` (files from the game) or "
                "`fake` (VGG16 features) to build G-buffers for this dataset"
            )
        channels = spec.get("gbuffer_channels", cls.channels)
        if channels not in GROUPS:
            raise EpeflowError(
                f"config key `datasets.{dataset}.gbuffer_channels`: {channels!r} is not one of {', '.join(GROUPS)}"
            )
        if kind == "fake" and channels != "all":
            raise EpeflowError(
                f"config key `datasets.{dataset}.gbuffer_channels: {channels}` applies to real G-buffers only; "
                "fake G-buffers are 32 VGG16 feature channels (remove the key or set it to `all`)"
            )
        names = spec.get("gbuffer_names")
        fake = dict(spec.get("fake_gbuffers") or {})
        return cls(
            kind=kind,
            key=str(spec.get("gbuffer_key", cls.key)),
            channels=channels,
            names=tuple(str(n) for n in names) if names else None,
            stats_frames=int(fake.get("stats_frames", cls.stats_frames)),
            batch_size=int(fake.get("batch_size", cls.batch_size)),
            num_workers=int(fake.get("num_workers", cls.num_workers)),
        )
