"""Which labelling method a dataset uses (`labels:` in its config), and running it through the writer.

Each method is built by a factory `(spec, weights, allow_random, threads) -> LabelSetup`: the method, whether
it runs on random weights, and the settings that decide its maps. The writer (`writer.py`) does the rest,
the same way for all of them; those settings go into its resume fingerprint and into `labels.json`, so a
restart with other settings starts over instead of mixing maps.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from epeflow.artifacts.labels import LabelMethod, per_frame, write_labels
from epeflow.common.shards import shard_range
from epeflow.config import validate_dataset
from epeflow.errors import EpeflowError
from epeflow.labels.gt import given_universal_label, gt_universal_label


class LabelSetup(NamedTuple):
    """A ready labelling method and what it is recorded as."""

    method: LabelMethod
    random_weights: bool
    settings: dict[str, Any]  # only what changes the maps (not e.g. batch sizes); JSON types


MethodFactory = Callable[[Mapping[str, Any], Mapping[str, Any], bool, int], LabelSetup]


def _gt(spec: Mapping[str, Any], weights: Mapping[str, Any], allow_random: bool, threads: int) -> LabelSetup:
    if spec["gt_label_ids"] != "cityscapes":
        raise EpeflowError(f"config key `gt_label_ids`: {spec['gt_label_ids']!r} GT labels cannot be mapped yet")
    return LabelSetup(per_frame(gt_universal_label, threads), False, {"gt_label_ids": spec["gt_label_ids"]})


def _given(spec: Mapping[str, Any], weights: Mapping[str, Any], allow_random: bool, threads: int) -> LabelSetup:
    return LabelSetup(per_frame(given_universal_label, threads), False, {})


def _mseg(spec: Mapping[str, Any], weights: Mapping[str, Any], allow_random: bool, threads: int) -> LabelSetup:
    from epeflow.labels.mseg.method import mseg_method

    return LabelSetup(*mseg_method(spec, weights, allow_random, threads))


METHODS: dict[str, MethodFactory] = {"gt": _gt, "given": _given, "mseg": _mseg}


def run_labels(manifest_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], spec: Mapping[str, Any],
                weights: Mapping[str, Any] | None = None, allow_random: bool = False,
                threads: int = 1, shard: int | None = None, num_shards: int = 1) -> dict[str, Any]:
    """Robust label maps for every frame of a manifest, by the dataset's `labels` method; with `shard`, only
    that shard's frames (`common.shards.shard_range`), into a shard folder for `merge_label_shards`."""
    from epeflow.artifacts.manifest import load_manifest

    spec = validate_dataset(spec, stage="labels")
    name = spec["labels"]
    frames, _ = load_manifest(manifest_path)
    shard_info = None
    if shard is not None:
        try:
            frames_of = shard_range(len(frames), shard, num_shards)
        except ValueError as e:
            raise EpeflowError(f"--shard/--num-shards: {e}") from None
        shard_info = {"frames": [frames_of.start, frames_of.stop], "shard": shard, "num_shards": num_shards,
                      "dataset_frames": len(frames)}
        frames = frames.iloc[frames_of.start:frames_of.stop].reset_index(drop=True)
    setup = METHODS[name](spec, weights or {}, allow_random, threads)
    return write_labels(frames, out_dir, setup.method, name, random_weights=setup.random_weights,
                        settings=setup.settings, shard=shard_info)
