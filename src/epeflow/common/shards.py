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
