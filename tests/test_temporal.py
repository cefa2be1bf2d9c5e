"""tOF and tLP (TecoGAN's temporal metrics) on generated sequences, and through `run_evaluate`."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from eval_fixtures import write_enhanced, write_label_folder, write_manifest

from epeflow.common.lpips import build_lpips
from epeflow.config import validate_section
from epeflow.io import write_table
from epeflow.metrics.evaluate import run_evaluate
from epeflow.metrics.temporal import farneback, grey, sequence_runs, tecogan_crop, tlp, tof

SIZE = (64, 80)


def texture(seed: int = 0, size: tuple[int, int] = (96, 160)) -> np.ndarray:
    """A smooth random RGB texture (uint8) that optical flow can follow."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((size[0] // 6, size[1] // 6, 3))
    rows = np.linspace(0, coarse.shape[0] - 1, size[0])
    cols = np.linspace(0, coarse.shape[1] - 1, size[1])
    r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
    r1, c1 = np.minimum(r0 + 1, coarse.shape[0] - 1), np.minimum(c0 + 1, coarse.shape[1] - 1)
    fr, fc = (rows - r0)[:, None, None], (cols - c0)[None, :, None]
    image = (coarse[r0][:, c0] * (1 - fr) * (1 - fc) + coarse[r1][:, c0] * fr * (1 - fc)
             + coarse[r0][:, c1] * (1 - fr) * fc + coarse[r1][:, c1] * fr * fc)
    return (image * 255).astype(np.uint8)


def shifting(frames: int = 6, step: int = 2, seed: int = 0) -> list[np.ndarray]:
    """A window panning right over a texture by `step` px a frame."""
    big = texture(seed)
    return [np.ascontiguousarray(big[10 : 10 + SIZE[0], 8 + t * step : 8 + t * step + SIZE[1]]) for t in range(frames)]


def flicker(frames: list[np.ndarray], amount: int = 40) -> list[np.ndarray]:
    """Every other frame brighter and 1 px off: what a temporally unstable enhancer does."""
    return [np.clip(np.roll(f, t % 2, axis=1).astype(int) + (amount if t % 2 else 0), 0, 255).astype(np.uint8)
            for t, f in enumerate(frames)]


@pytest.fixture(scope="module")
def lpips_model():
    model, random = build_lpips({}, allow_random=True)
    assert random
    return model.eval()


def test_farneback_follows_a_shift():
    frames = shifting(2, step=3)
    flow = farneback(grey(frames[0]), grey(frames[1]))  # content moves left by 3 px as the window pans right
    top, left, h, w = tecogan_crop(*SIZE)
    centre = flow[top : top + h, left : left + w]
    assert flow.shape == (*SIZE, 2) and flow.dtype == np.float32
    assert np.median(centre[..., 0]) == pytest.approx(-3.0, abs=0.3)
    assert np.abs(np.median(centre[..., 1])) < 0.3


def test_crop_is_tecogans():
    assert tecogan_crop(64, 80) == (16, 8, 32, 64)
    assert tecogan_crop(1052, 1914) == (14, 13, 1024, 1888)
    assert tecogan_crop(128, 256) == (16, 16, 96, 224)


def test_identical_output_is_zero_and_flicker_is_not(lpips_model):
    frames = shifting()
    assert np.array_equal(tof(frames, frames), np.zeros(5))
    assert np.array_equal(tlp(lpips_model, frames, frames), np.zeros(5))
    flickering = flicker(frames)
    assert (tof(frames, flickering) > 0.5).all()  # the 1 px jitter, back and forth
    assert (tlp(lpips_model, frames, flickering) > 1e-4).all()
    frozen = [frames[0]] * len(frames)  # output stands still while the input pans by 2 px a frame
    assert tof(frames, frozen).mean() == pytest.approx(2.0, abs=0.5)


def test_sequence_runs():
    seq = ["a", "a", "a", "a", "b", "b", "", "a", "a", "b"]
    idx = [0, 1, 2, 3, 5, 6, 0, 10, 11, 9]
    assert sequence_runs(seq, idx, trim=0) == [[0, 1, 2, 3], [7, 8], [4, 5]]
    assert sequence_runs(seq, idx, trim=1) == [[1, 2]]
    assert sequence_runs(["a", "a"], [1, 0], trim=0) == [[1, 0]]  # ordered by frame index, not position
    assert sequence_runs(["", ""], [0, 1], trim=0) == []


def _settings(**overrides):
    return validate_section("evaluate", {"metrics": ["tof", "tlp"], "temporal_trim": 1, **overrides}, ("test",))


def _sequence_experiment(root, enhanced_frames, sequence="seq"):
    sources = shifting(6)
    src = write_manifest(root, "synth", sources, ["test"] * 6, "synthetic")
    if sequence != "seq":
        df = pd.read_parquet(src)
        df["sequence"] = sequence
        write_table(src, df, {"dataset": "synth", "role": "synthetic", "kind": "images"})
    dst = write_manifest(root, "real", [texture(s)[:64, :80] for s in range(4)], ["val"] * 4, "real")
    write_label_folder(root / "synth" / "labels", src, 0)
    enhanced = write_enhanced(root / "exp" / "enhanced", src, dict(enumerate(enhanced_frames(sources))), random=True)
    return enhanced, src, dst


def test_evaluate_computes_tof_and_tlp_on_a_sequence(tmp_path, hub_dir):
    enhanced, src, dst = _sequence_experiment(tmp_path / "steady", lambda s: s)
    doc = run_evaluate(enhanced, src, dst, _settings(), {}, True, "seq")
    tof_m, tlp_m = doc["metrics"]["tof"], doc["metrics"]["tlp"]
    assert tof_m["pairs"] == tlp_m["pairs"] == 3 and tof_m["sequence_runs"] == 1  # 6 frames, 1 dropped at each end
    assert tof_m["enhanced"]["mean"] == 0.0 and tlp_m["enhanced"]["mean"] == 0.0
    assert tof_m["identity"] == {"mean": 0.0, "std": 0.0, "n": 3, "mean_x10": 0.0, "computed": False}
    assert tof_m["provenance"]["flow"]["winsize"] == 15 and "opencv" in tof_m["provenance"]
    assert tlp_m["provenance"]["weights"]["lpips"] == "random weights — not a real measurement"

    enhanced, src, dst = _sequence_experiment(tmp_path / "flicker", flicker)
    doc = run_evaluate(enhanced, src, dst, _settings(), {}, True, "seq")
    tof_m, tlp_m = doc["metrics"]["tof"], doc["metrics"]["tlp"]
    assert tof_m["enhanced"]["mean"] > 0.5 and tlp_m["enhanced"]["mean"] > 1e-4
    assert tof_m["enhanced"]["mean_x10"] == pytest.approx(10 * tof_m["enhanced"]["mean"])
    # a per-set colour transfer maps every frame alike: it moves far less than the flickering enhancer
    assert tof_m["colour_transfer"]["mean"] < tof_m["enhanced"]["mean"]


def test_without_sequences_temporal_metrics_are_skipped_with_the_reason(tmp_path, hub_dir):
    enhanced, src, dst = _sequence_experiment(tmp_path, lambda s: s, sequence="")
    doc = run_evaluate(enhanced, src, dst, _settings(), {}, True, "noseq")
    assert "no sequences" in doc["metrics"]["tof"]["skipped"]
    assert "no sequences" in doc["metrics"]["tlp"]["skipped"]
    enhanced, src, dst = _sequence_experiment(tmp_path / "short", lambda s: s)
    doc = run_evaluate(enhanced, src, dst, _settings(temporal_trim=3), {}, True, "short")
    assert "temporal_trim" in doc["metrics"]["tof"]["skipped"]
