"""The gbuffers stage: one dataset's manifest in, its `gbuffers.zarr` out (real files or fake features)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from epeflow.artifacts.manifest import read_manifest_table
from epeflow.common.moments import Moments
from epeflow.common.shards import shard_range
from epeflow.config import validate_dataset
from epeflow.errors import EpeflowError
from epeflow.gbuffers.settings import GBufferSettings


def run_gbuffers(
    manifest_path: Path,
    out: Path,
    spec: Mapping[str, Any],
    weights: Mapping[str, Any] | None = None,
    allow_random: bool = False,
    threads: int = 1,
    shard: int | None = None,
    num_shards: int = 1,
) -> Moments | None:
    """Write `out` for the frames of `manifest_path` as the dataset config entry `spec` asks; with `shard`,
    a shard store of that shard's frames (`common.shards.shard_range`) for `merge_gbuffer_shards`."""
    manifest, meta = read_manifest_table(manifest_path)
    dataset = str(meta.get("dataset") or Path(manifest_path).parent.name)
    settings = GBufferSettings.from_spec(validate_dataset(spec, dataset, stage="gbuffers"), dataset)
    if manifest.empty:
        raise EpeflowError(f"{manifest_path} lists no frames; check the dataset's `images` / `filelist`")
    attrs = {"dataset": dataset}
    frames = None
    if shard is not None:
        try:
            frames = shard_range(len(manifest), shard, num_shards)
        except ValueError as e:
            raise EpeflowError(f"--shard/--num-shards: {e}") from None
    if settings.kind == "real":
        from epeflow.gbuffers.real import import_real_gbuffers

        return import_real_gbuffers(manifest, Path(out), settings, threads, Path(manifest_path), attrs=attrs,
                                    frames=frames)
    from epeflow.gbuffers.fake import compute_fake_gbuffers

    weights_spec = dict(weights or {}).get("vgg16")
    return compute_fake_gbuffers(manifest, Path(out), settings, weights_spec, allow_random, threads, attrs=attrs,
                                 frames=frames)
