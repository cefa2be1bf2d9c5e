"""Issue 4: weighted draws of matched pairs, ours (`WeightedPairSampler`) vs the reference's per-draw scan.

The reference (epe/matching/paired.py, MatchedCrops.__getitem__) keeps `cumsum = np.cumsum(w) / np.sum(w)`
and for every draw takes `p = random.random()` and `np.min(np.nonzero(p < cumsum)[0])`: a full scan of
all N pairs a draw. Ours finds the same index with `np.searchsorted(cdf, u, side="right")` (O(log N)).

Same result: fed the same uniforms, both must return the same indices (checked on REFERENCE_DRAWS
draws); ours' draws must also follow the weights (chi-square over equal-probability bins). The reference
is timed on REFERENCE_DRAWS draws and scaled linearly to 1M (every draw is the same full scan).
Ours is timed two ways: one call for 1M draws, and 1M calls of draw(1) (training draws a batch a step;
batch size 1 is the worst case), the latter timed on 100K calls and scaled.
"""

from __future__ import annotations

import random
import time

import numpy as np
from scipy import stats

from bench.bench_weights import HEIGHT, WIDTH, matched_source_boxes
from bench.harness import best_time, fmt_s, ratio, write_result
from epeflow.matching import coverage_weights
from epeflow.train.data import WeightedPairSampler

DRAWS = 1_000_000
BINS = 100


class ReferenceSampler:
    """MatchedCrops' weighted index choice, as written (`random.random()` unless uniforms are given)."""

    def __init__(self, w: np.ndarray) -> None:
        self._cumsum = np.cumsum(w) / np.sum(w)

    def draw_one(self, p: float | None = None) -> int:
        p = random.random() if p is None else p
        return int(np.min(np.nonzero(p < self._cumsum)[0]))


def chi_square_p(draws: np.ndarray, weights: np.ndarray, bins: int) -> float:
    """p-value of the draws' counts in `bins` consecutive groups of pairs of about equal total weight."""
    cdf = np.cumsum(weights) / weights.sum()
    edges = np.searchsorted(cdf, np.linspace(0, 1, bins + 1)[1:-1])  # first pair of each group
    groups = np.searchsorted(edges, draws, side="right")
    bounds = np.concatenate([[0], edges, [len(weights)]])
    expected_p = np.array([weights[a:b].sum() for a, b in zip(bounds[:-1], bounds[1:], strict=True)]) / weights.sum()
    observed = np.bincount(groups, minlength=bins)
    return float(stats.chisquare(observed, expected_p * len(draws)).pvalue)


def main(quick: bool = False) -> None:
    pairs = 2_000 if quick else 200_000
    reference_draws = 200 if quick else 2_000
    single_calls = 1_000 if quick else 100_000
    boxes = matched_source_boxes(pairs)
    weights = coverage_weights(boxes, np.full(pairs, HEIGHT), np.full(pairs, WIDTH))  # realistic weights

    # Same uniforms -> same indices.
    sampler = WeightedPairSampler(weights, seed=7)
    ours_idx = sampler.draw(reference_draws)
    uniforms = np.random.default_rng(7).random(reference_draws)  # what the sampler drew its indices from
    reference = ReferenceSampler(weights)
    ref_idx = np.array([reference.draw_one(float(u)) for u in uniforms], dtype=np.int64)
    if not np.array_equal(ours_idx, ref_idx):
        bad = int(np.flatnonzero(ours_idx != ref_idx)[0])
        raise AssertionError(f"draw {bad}: ours {ours_idx[bad]}, reference {ref_idx[bad]} for u={uniforms[bad]!r}")
    draws = WeightedPairSampler(weights, seed=11).draw(DRAWS)
    p_value = chi_square_p(draws, weights, BINS)
    if p_value < 1e-4:
        raise AssertionError(f"our draws do not follow the weights: chi-square p = {p_value:.3g}")

    ours_batch_s = best_time(lambda: WeightedPairSampler(weights, seed=1).draw(DRAWS), repeat=5)

    def single_draws() -> None:
        s = WeightedPairSampler(weights, seed=2)
        for _ in range(single_calls):
            s.draw(1)

    ours_single_s = best_time(single_draws, repeat=3) * DRAWS / single_calls

    random.seed(0)
    start = time.perf_counter()
    for _ in range(reference_draws):
        reference.draw_one()
    reference_s = (time.perf_counter() - start) * DRAWS / reference_draws

    write_result(
        "sampler",
        {
            "sizes": {"pairs": pairs, "draws": DRAWS, "reference_timed_draws": reference_draws,
                      "ours_single_draw_timed_calls": single_calls},
            "quick": quick,
            "ours_1M_in_one_call_s": ours_batch_s,
            "ours_1M_calls_of_draw1_s": ours_single_s,
            "reference_1M_s": reference_s,
            "speedup_one_call": ratio(reference_s, ours_batch_s),
            "speedup_draw1_calls": ratio(reference_s, ours_single_s),
            "identical_indices_for_same_uniforms": reference_draws,
            "chi_square": {"bins": BINS, "draws": DRAWS, "p_value": p_value},
            "notes": f"reference timed on {reference_draws} draws and scaled to 1M; ours' draw(1) timed on "
                     f"{single_calls} calls and scaled; sampler construction (cumsum) included in the one-call time",
            "summary": [
                {
                    "what": f"1M weighted draws among {pairs // 1000}K pairs, one call (same indices for same u)",
                    "ours": fmt_s(ours_batch_s),
                    "reference": fmt_s(reference_s) + " (scaled)",
                    "ratio": f"{ratio(reference_s, ours_batch_s)}x",
                },
                {
                    "what": f"same, 1M calls of draw(1) (chi-square p = {p_value:.2f})",
                    "ours": fmt_s(ours_single_s) + " (scaled)",
                    "reference": fmt_s(reference_s) + " (scaled)",
                    "ratio": f"{ratio(reference_s, ours_single_s)}x",
                },
            ],
        },
    )


if __name__ == "__main__":
    main()
