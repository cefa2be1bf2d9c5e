"""Temporal consistency of enhanced sequences: tOF and tLP as the TecoGAN evaluation defines them.

Chu et al. (TecoGAN, 2020) compare how an output video changes from frame to frame with how its input
changes, on each pair of consecutive frames t-1, t:
- tOF: Farneback optical flow (OpenCV, grey frames, pyr_scale 0.5, 3 levels, window 15, 3 iterations,
  poly_n 5, poly_sigma 1.2) of the input pair and of the output pair; the per-pixel Euclidean norm of their
  difference, averaged over the frame's centre crop (`tecogan_crop`); in pixels.
- tLP: |LPIPS(out_{t-1}, out_t) - LPIPS(in_{t-1}, in_t)| on the same centre crops.
Both are 0 when the output moves and changes exactly as its input does; flicker raises both. Values are
averaged over all pairs of all sequences; TecoGAN's tables print tOF x10 and tLP x100 and drop the first
and last two frames of each sequence (`TRIM`). Here "input" is the rendered frame, "output" its enhanced
version (or a baseline); tLP uses epeflow's LPIPS-VGG where TecoGAN used LPIPS-AlexNet.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from epeflow.common.lpips import LPIPS
from epeflow.log import progress
from epeflow.metrics import records
from epeflow.metrics.baselines import SIDES
from epeflow.metrics.context import EvalContext, MetricUnavailable
from epeflow.metrics.frame_features import autocast
from epeflow.metrics.frames import load_rgb

# cv2.calcOpticalFlowFarneback(prev, next, None, pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, flags)
FARNEBACK = {"pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5, "poly_sigma": 1.2,
             "flags": 0}
TRIM = 2  # frames dropped at each end of a sequence (TecoGAN's `cutfr`)
TABLE_SCALE = {"tof": 10, "tlp": 100}  # how TecoGAN's tables print them


def tecogan_crop(height: int, width: int) -> tuple[int, int, int, int]:
    """(top, left, h, w) of TecoGAN's centre crop: the largest multiple of 32 at least 16 px under each side."""
    h, w = (height // 32) * 32, (width // 32) * 32
    while h > height - 16:
        h -= 32
    while w > width - 16:
        w -= 32
    if h <= 0 or w <= 0:
        raise MetricUnavailable(f"frames of {width}x{height} px are too small for the temporal metrics' centre crop "
                                "(TecoGAN's; needs at least 48 px a side)")
    return (height - h) // 2, (width - w) // 2, h, w


def _crop(x: np.ndarray) -> np.ndarray:
    top, left, h, w = tecogan_crop(*x.shape[:2])
    return x[top : top + h, left : left + w]


def grey(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB -> (H, W) uint8 grey, OpenCV's weights (as TecoGAN)."""
    return cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)


def farneback(prev_grey: np.ndarray, next_grey: np.ndarray) -> np.ndarray:
    """(H, W, 2) float32 flow from `prev_grey` to `next_grey` with TecoGAN's Farneback settings."""
    f = FARNEBACK
    return cv2.calcOpticalFlowFarneback(prev_grey, next_grey, None, f["pyr_scale"], f["levels"], f["winsize"],
                                        f["iterations"], f["poly_n"], f["poly_sigma"], f["flags"])


def flow_difference(input_flow: np.ndarray, output_flow: np.ndarray) -> float:
    """tOF of one pair: mean over the centre crop of |flow_in - flow_out|_2 per pixel (float64)."""
    d = _crop(input_flow).astype(np.float64) - _crop(output_flow).astype(np.float64)
    return float(np.sqrt((d * d).sum(axis=-1)).mean())


def tof(inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> np.ndarray:
    """tOF of each consecutive pair of one sequence: (T-1,) float64; frames (H, W, 3) uint8 RGB, in order."""
    if len(inputs) != len(outputs):
        raise ValueError(f"tof: {len(inputs)} input frames but {len(outputs)} output frames")
    g_in, g_out = [grey(x) for x in inputs], [grey(x) for x in outputs]
    return np.array([flow_difference(farneback(g_in[t - 1], g_in[t]), farneback(g_out[t - 1], g_out[t]))
                     for t in range(1, len(inputs))], dtype=np.float64)


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(_crop(rgb))).permute(2, 0, 1).float().div(255.0)  # (3, h, w)


@torch.no_grad()
def pair_lpips(model: LPIPS, a: np.ndarray, b: np.ndarray) -> float:
    """LPIPS between two (H, W, 3) uint8 frames on their centre crops."""
    device = next(model.parameters()).device
    with autocast(device):
        return float(model(_to_tensor(a)[None].to(device), _to_tensor(b)[None].to(device)).double().item())


def tlp(model: LPIPS, inputs: Sequence[np.ndarray], outputs: Sequence[np.ndarray]) -> np.ndarray:
    """tLP of each consecutive pair of one sequence: (T-1,) float64 (not x100)."""
    if len(inputs) != len(outputs):
        raise ValueError(f"tlp: {len(inputs)} input frames but {len(outputs)} output frames")
    return np.array([abs(pair_lpips(model, outputs[t - 1], outputs[t]) - pair_lpips(model, inputs[t - 1], inputs[t]))
                     for t in range(1, len(inputs))], dtype=np.float64)


def sequence_runs(sequence: Sequence[str], frame_index: Sequence[int], trim: int = TRIM) -> list[list[int]]:
    """Positions of frames forming unbroken runs of consecutive indices in one sequence, `trim` dropped at each
    end of a run, runs of fewer than 2 frames left out; frames in no sequence ("") never pair."""
    by_sequence: dict[str, list[tuple[int, int]]] = {}
    for pos, (seq, k) in enumerate(zip(sequence, frame_index, strict=True)):
        if seq:
            by_sequence.setdefault(seq, []).append((int(k), pos))
    runs: list[list[int]] = []
    for seq in sorted(by_sequence):
        frames = sorted(by_sequence[seq])
        run = [frames[0]]
        for item in frames[1:]:
            if item[0] == run[-1][0] + 1:
                run.append(item)
            else:
                runs.append([p for _, p in run])
                run = [item]
        runs.append([p for _, p in run])
    runs = [r[trim : len(r) - trim] if trim else r for r in runs]
    return [r for r in runs if len(r) >= 2]


@dataclass(frozen=True)
class TemporalValues:
    """Per-pair values of each compared set; `pairs` (positions t-1, t) they belong to."""

    pairs: list[tuple[int, int]]
    runs: int
    tof: dict[str, np.ndarray]
    tlp: dict[str, np.ndarray] | None


def _reader(paths: list[Path], size_of: Callable[[], tuple[int, int] | None]) -> Callable[[int], np.ndarray]:
    """Frame `pos` of `paths` as (H, W, 3) uint8, resized (bilinear, antialiased) to `size_of()` when it differs."""

    def read(pos: int) -> np.ndarray:
        x = load_rgb(paths[pos])  # (3, H, W) in [0, 1]
        size = size_of()
        if size is not None and tuple(x.shape[-2:]) != size:
            x = F.interpolate(x[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
        return (x.clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()

    return read


def temporal_values(ctx: EvalContext, with_lpips: bool) -> TemporalValues:
    """tOF (and tLP) of every compared set over the consecutive enhanced frames; computed once per evaluation."""

    def make() -> TemporalValues:
        frames = ctx.frames
        if frames.sequence is None or frames.frame_index is None or not any(frames.sequence):
            raise MetricUnavailable("the source dataset has no sequences (its manifest's `sequence` column is "
                                    "empty): temporal metrics need consecutive frames of videos")
        trim = int(ctx.settings.get("temporal_trim", TRIM))
        runs = sequence_runs(frames.sequence, frames.frame_index, trim)
        if not runs:
            raise MetricUnavailable(
                f"no two consecutive enhanced frames of one sequence remain after dropping {trim} at each end "
                "(`evaluate.temporal_trim`); enhance whole sequences (config keys `enhance.split`, "
                "`enhance.max_frames`)")
        sides = [s for s in SIDES if s != "identity"]  # identity: its output is its input, 0 by definition
        size = {"value": None}
        enhanced_read = _reader(ctx.paths("enhanced"), lambda: None)
        readers = {s: _reader(ctx.paths(s), lambda: size["value"]) for s in sides if s != "enhanced"}
        source_read = _reader(frames.source, lambda: size["value"])
        model = ctx.lpips() if with_lpips else None
        tof_values: dict[str, list[float]] = {s: [] for s in sides}
        tlp_values: dict[str, list[float]] = {s: [] for s in sides}
        pairs: list[tuple[int, int]] = []
        for run in progress(runs, "temporal metrics", unit="run"):
            prev: tuple[int, dict[str, np.ndarray], dict[str, np.ndarray]] | None = None  # (pos, frames, greys)
            for pos in run:
                out = {"enhanced": enhanced_read(pos)}
                size["value"] = out["enhanced"].shape[:2]  # rendered frames and baselines are compared at its size
                out.update({s: read(pos) for s, read in readers.items()})
                out["source"] = source_read(pos)
                greys = {k: grey(v) for k, v in out.items()}
                if prev is not None:
                    prev_pos, prev_out, prev_grey = prev
                    pairs.append((prev_pos, pos))
                    in_flow = farneback(prev_grey["source"], greys["source"])
                    in_lp = pair_lpips(model, prev_out["source"], out["source"]) if model is not None else 0.0
                    for s in sides:
                        tof_values[s].append(flow_difference(in_flow, farneback(prev_grey[s], greys[s])))
                        if model is not None:
                            tlp_values[s].append(abs(pair_lpips(model, prev_out[s], out[s]) - in_lp))
                prev = (pos, out, greys)
        n = len(pairs)
        tof_arrays = {s: np.asarray(v, dtype=np.float64) for s, v in tof_values.items()}
        tof_arrays["identity"] = np.zeros(n)
        tlp_arrays = None
        if model is not None:
            tlp_arrays = {s: np.asarray(v, dtype=np.float64) for s, v in tlp_values.items()}
            tlp_arrays["identity"] = np.zeros(n)
        return TemporalValues(pairs, len(runs), tof_arrays, tlp_arrays)

    return ctx.cached("temporal", make)


def _summary(values: dict[str, np.ndarray], name: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for side in SIDES:
        v = values[side]
        out[side] = {"mean": float(v.mean()), "std": float(v.std()), "n": len(v),
                     f"mean_x{TABLE_SCALE[name]}": float(v.mean()) * TABLE_SCALE[name]}
        if side == "identity":
            out[side]["computed"] = False
    return out


def tof_metric(ctx: EvalContext) -> dict[str, Any]:
    """tOF of enhanced frames and baselines against their rendered frames (lower is steadier)."""
    values = temporal_values(ctx, "tlp" in ctx.settings["metrics"])
    result: dict[str, Any] = {
        "description": "tOF (TecoGAN): mean per-pixel norm of the difference between the Farneback optical flow "
                       "of consecutive output frames and that of the rendered frames, in pixels (tables: x10)",
        "lower_is_better": True, "needs_weights": False, **_summary(values.tof, "tof"),
        "pairs": len(values.pairs), "sequence_runs": values.runs,
    }
    result["provenance"] = records.temporal_record(ctx, "tof", FARNEBACK)
    return result


def tlp_metric(ctx: EvalContext) -> dict[str, Any]:
    """tLP of enhanced frames and baselines against their rendered frames (lower is steadier)."""
    values = temporal_values(ctx, True)
    assert values.tlp is not None
    result: dict[str, Any] = {
        "description": "tLP (TecoGAN): |LPIPS(output t-1, output t) - LPIPS(rendered t-1, rendered t)| over "
                       "consecutive frames (tables: x100)",
        "lower_is_better": True, **_summary(values.tlp, "tlp"),
        "pairs": len(values.pairs), "sequence_runs": values.runs,
    }
    result["provenance"] = records.temporal_record(ctx, "tlp", FARNEBACK)
    return result
