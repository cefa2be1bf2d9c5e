"""Random crop positions, one seeded generator per frame.

A frame's boxes depend only on (seed, frame id, frame size, crop size, count), never on which shard or
batch the frame lands in, so sharded and single runs give the same crops.
"""

from __future__ import annotations

import numpy as np


def frame_rng(seed: int, frame: int) -> np.random.Generator:
    """The generator of one frame's crop positions."""
    return np.random.default_rng([int(seed), int(frame)])


def sample_boxes(frame: int, height: int, width: int, size: int, count: int, seed: int) -> np.ndarray:
    """`count` boxes (r0, r1, c0, c1) of side `size` uniformly inside a (height, width) frame; (count, 4) int32.

    As the reference, the top-left corner is uniform over all positions where the crop fits (both ends
    inclusive), so r1 = r0 + size <= height.
    """
    if size > height or size > width:
        raise ValueError(f"crop size {size} does not fit in a {height}x{width} frame")
    rng = frame_rng(seed, frame)
    r0 = rng.integers(0, height - size + 1, size=count)
    c0 = rng.integers(0, width - size + 1, size=count)
    return np.stack([r0, r0 + size, c0, c0 + size], axis=1).astype(np.int32)  # (count, 4)
