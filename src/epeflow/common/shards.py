"""Shards of per-frame work: contiguous frame ranges, so merged shards are in frame order by concatenation.

A dataset of N frames runs as `shard_count(N, shard_frames)` jobs; shard i of n takes `shard_range(N, i, n)`.
Every per-frame result depends on the frame alone (never on which shard or batch it lands in), so merged
shards equal one job, whatever the shard count.
"""

from __future__ import annotations


def shard_count(num_frames: int, shard_frames: int | None) -> int:
    """Jobs for `num_frames` frames at `shard_frames` frames a job (None: one job); at least 1."""
    if not shard_frames or num_frames <= 0:
        return 1
    return max(1, -(-int(num_frames) // int(shard_frames)))


def shard_range(num_frames: int, shard: int, num_shards: int) -> range:
    """Frames of one shard: contiguous, balanced ranges (sizes differ by at most one; some may be empty
    when the manifest kept fewer frames than the shard count was planned for)."""
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise ValueError(f"shard {shard} is not in 0..{num_shards - 1}")
    return range(shard * num_frames // num_shards, (shard + 1) * num_frames // num_shards)


def split_frames(total: int, split_settings: dict, split: str, max_frames: int | None) -> int:
    """Frames a `split` ('train' / 'val' / 'test' / 'all') of a dataset of `total` frames is expected to hold
    when planning (the fraction the dataset's `split` settings give it, rounded up; at most `max_frames`)."""
    val, test = float(split_settings.get("val", 0.1)), float(split_settings.get("test", 0.1))
    fraction = {"all": 1.0, "val": val, "test": test}.get(split, max(0.0, 1.0 - val - test))
    frames = -(-int(total * fraction * 1000) // 1000)
    return min(frames, max_frames) if max_frames is not None else frames
