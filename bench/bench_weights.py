"""Issue 4: sampling weights of matched pairs, ours (`matching.coverage_weights`) vs the reference's loop.

The reference (epe/matching/compute_weights.py) adds 1 to a density map for every matched source crop,
one numpy slice at a time, then takes the mean of the map over every crop, again one slice at a time;
a pair's weight is max(density) / that mean. Ours builds the map from a difference array and the means
from its integral image. Both are exact integer arithmetic, so the weights must be bit-identical.

Full size: 200K pairs of 196-px crops on PfD-sized frames (1052x1914). When the loop would take longer
than REFERENCE_BUDGET_S it is timed on a subset and extrapolated linearly (its cost is linear in the
number of pairs: two slice operations a pair); equality is then checked on that subset.
"""

from __future__ import annotations

import time

import numpy as np

from bench.harness import best_time, fmt_s, ratio, write_result
from epeflow.matching import coverage_weights
from epeflow.matching.coverage_weights import frame_weights

HEIGHT, WIDTH, CROP = 1052, 1914, 196
REFERENCE_BUDGET_S = 180.0


def matched_source_boxes(pairs: int, seed: int = 0) -> np.ndarray:
    """Source boxes of `pairs` matched pairs, (pairs, 4) int64: about 5 pairs a source crop, rows grouped by
    source crop as filter.py writes them."""
    rng = np.random.default_rng(seed)
    crops = max(1, pairs // 5)
    r0 = rng.integers(0, HEIGHT - CROP + 1, crops)
    c0 = rng.integers(0, WIDTH - CROP + 1, crops)
    boxes = np.stack([r0, r0 + CROP, c0, c0 + CROP], axis=1)
    return boxes[np.sort(rng.integers(0, crops, pairs))]


def reference_weights(src_crops: list[tuple[int, int, int, int, int]], height: int, width: int) -> np.ndarray:
    """compute_weights.py as written (crops as the (path, r0, r1, c0, c1) tuples of load_matching_crops)."""
    d = np.zeros((height, width), dtype=np.int32)
    for s in src_crops:
        d[s[1] : s[2], s[3] : s[4]] += 1
    w = np.zeros((len(src_crops), 1))
    for i, s in enumerate(src_crops):
        w[i, 0] = np.mean(d[s[1] : s[2], s[3] : s[4]])
    n = np.max(d)
    p = n / w
    return p


def as_reference_rows(boxes: np.ndarray) -> list[tuple[int, int, int, int, int]]:
    """What the reference loads from the matched-crops csv: one tuple of Python ints a pair (frame id as path)."""
    return [(0, int(r0), int(r1), int(c0), int(c1)) for r0, r1, c0, c1 in boxes.tolist()]


def main(quick: bool = False) -> None:
    pairs = 2_000 if quick else 200_000
    boxes = matched_source_boxes(pairs)
    heights, widths = np.full(pairs, HEIGHT), np.full(pairs, WIDTH)

    ours_s = best_time(lambda: coverage_weights(boxes, heights, widths), repeat=5)
    ours = coverage_weights(boxes, heights, widths)
    # The per-frame-size core alone: coverage_weights = grouping pairs by frame size + this per group.
    core_s = best_time(lambda: frame_weights(boxes, HEIGHT, WIDTH), repeat=5)

    # Probe the loop on a subset to decide whether the full run fits the budget.
    probe = min(pairs, 10_000)
    start = time.perf_counter()
    reference_weights(as_reference_rows(boxes[:probe]), HEIGHT, WIDTH)
    probe_s = time.perf_counter() - start
    estimate_full_s = probe_s * pairs / probe
    if estimate_full_s <= REFERENCE_BUDGET_S:
        checked = pairs
        notes = "reference loop run on all pairs"
    else:
        checked = max(probe, int(pairs * REFERENCE_BUDGET_S / estimate_full_s / 2))
        notes = (f"reference loop run on the first {checked} pairs and extrapolated linearly to {pairs} "
                 "(two slice operations a pair); equality checked on that subset")
    rows = as_reference_rows(boxes[:checked])
    start = time.perf_counter()
    reference = reference_weights(rows, HEIGHT, WIDTH)[:, 0]
    reference_subset_s = time.perf_counter() - start
    reference_s = reference_subset_s * pairs / checked

    ours_subset = ours if checked == pairs else coverage_weights(boxes[:checked], heights[:checked], widths[:checked])
    if not np.array_equal(ours_subset, reference):
        bad = int(np.flatnonzero(ours_subset != reference)[0])
        raise AssertionError(f"weights differ at pair {bad}: ours {ours_subset[bad]!r}, reference {reference[bad]!r}")

    speedup = ratio(reference_s, ours_s)
    core_speedup = ratio(reference_s, core_s)
    extrapolated = " (extrapolated)" if checked < pairs else ""
    write_result(
        "weights",
        {
            "sizes": {"pairs": pairs, "frame": [HEIGHT, WIDTH], "crop": CROP, "frame_sizes": 1,
                      "source_crops": int(len(np.unique(boxes, axis=0)))},
            "quick": quick,
            "ours_s": ours_s,
            "reference_s": reference_s,
            "reference_measured_s": reference_subset_s,
            "reference_measured_pairs": checked,
            "reference_extrapolated": checked < pairs,
            "speedup": speedup,
            "ours_frame_weights_s": core_s,
            "frame_weights_speedup": core_speedup,
            "goal_speedup": 100,
            "identical": True,
            "identical_checked_pairs": checked,
            "notes": notes + f"; of our {fmt_s(ours_s)}, frame_weights (one frame size) takes {fmt_s(core_s)}, "
                             "the rest is grouping pairs by frame size",
            "summary": [
                {
                    "what": f"weights of {pairs // 1000}K pairs, {HEIGHT}x{WIDTH} frames, bit-identical",
                    "ours": fmt_s(ours_s),
                    "reference": fmt_s(reference_s) + extrapolated,
                    "ratio": f"{speedup}x (goal >= 100x)",
                },
            ],
        },
    )


if __name__ == "__main__":
    main()
