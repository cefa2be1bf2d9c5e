"""Weighted draws of matched pairs for training (the reference's MatchedCrops sampling, resumable).

The reference draws u ~ U[0, 1) and takes the first pair whose normalised cumulative weight exceeds u;
we do the same with `np.searchsorted` (O(log N) a draw instead of a scan), from a seeded generator
whose state is plain Python values, so a checkpoint saved with `weights_only=True` resumes the same
sequence of draws.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from epeflow.errors import EpeflowError

STATE_FORMAT = "epeflow-weighted-pair-sampler/1"


class WeightedPairSampler:
    """Draw pair indices with probability proportional to `weights` (float, >= 0, finite, not all 0)."""

    def __init__(self, weights: np.ndarray, seed: int) -> None:
        w = np.asarray(weights, dtype=np.float64).reshape(-1)
        if w.size == 0:
            raise EpeflowError("sampling weights are empty: no matched pairs to train on; rerun the matching stages")
        bad = ~np.isfinite(w) | (w < 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise EpeflowError(
                f"sampling weight {i} is {w[i]!r}; weights must be finite and >= 0: rerun `epeflow weights`"
            )
        total = w.sum()
        if total <= 0:
            raise EpeflowError("sampling weights are all zero; rerun `epeflow weights`")
        self.cdf = np.cumsum(w) / total  # (N,) normalised cumulative weights, last = 1 up to rounding
        self.seed = int(seed)
        self.rng = np.random.default_rng(self.seed)
        self.drawn = 0

    def __len__(self) -> int:
        return len(self.cdf)

    def draw(self, n: int) -> np.ndarray:
        """`n` pair indices, int64 (n,)."""
        u = self.rng.random(n)
        idx = np.searchsorted(self.cdf, u, side="right")  # first i with u < cdf[i], as the reference
        self.drawn += n
        return np.minimum(idx, len(self.cdf) - 1).astype(np.int64)

    def state_dict(self) -> dict[str, Any]:
        """Plain types only (ints, strs, dicts), for checkpoints loaded with `weights_only=True`."""
        state = self.rng.bit_generator.state
        return {
            "format": STATE_FORMAT,
            "num_weights": len(self.cdf),
            "seed": self.seed,
            "drawn": self.drawn,
            "bit_generator": str(state["bit_generator"]),
            "state": {"state": int(state["state"]["state"]), "inc": int(state["state"]["inc"])},
            "has_uint32": int(state["has_uint32"]),
            "uinteger": int(state["uinteger"]),
        }

    def load_state_dict(self, d: dict[str, Any]) -> None:
        """Continue the sequence of a saved sampler; the weights must be the same pairs."""
        if d.get("format") != STATE_FORMAT:
            raise EpeflowError(f"sampler state has format {d.get('format')!r}, expected {STATE_FORMAT!r}")
        if int(d["num_weights"]) != len(self.cdf):
            raise EpeflowError(
                f"the checkpoint's sampler was built on {d['num_weights']} matched pairs, the weights now have "
                f"{len(self.cdf)}; the matches changed since the checkpoint: start training afresh"
            )
        self.rng.bit_generator.state = {
            "bit_generator": d["bit_generator"],
            "state": {"state": int(d["state"]["state"]), "inc": int(d["state"]["inc"])},
            "has_uint32": int(d["has_uint32"]),
            "uinteger": int(d["uinteger"]),
        }
        self.seed = int(d["seed"])
        self.drawn = int(d["drawn"])
