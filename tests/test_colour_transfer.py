from __future__ import annotations

import numpy as np

from epeflow.metrics.colour import srgb_to_lab
from epeflow.metrics.colour_transfer import apply_reinhard, fit_reinhard
from epeflow.metrics.swd import swd_lab


def _images(seed: int, tint: tuple[float, float, float], spread: float, n: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(np.asarray(tint) + spread * rng.normal(size=(n, 24, 32, 3)), 0.0, 1.0)


def test_reinhard_matches_the_targets_lab_mean_and_std():
    source, target = _images(0, (0.4, 0.45, 0.5), 0.08), _images(1, (0.55, 0.5, 0.4), 0.05)
    source_stats, target_stats = fit_reinhard(source), fit_reinhard(target)
    out = np.stack([apply_reinhard(im, source_stats, target_stats) for im in source])
    lab = srgb_to_lab(out).reshape(-1, 3)
    np.testing.assert_allclose(lab.mean(axis=0), target_stats.mean, atol=0.05)
    np.testing.assert_allclose(lab.std(axis=0), target_stats.std, rtol=0.01)


def test_reinhard_with_equal_stats_is_the_identity_and_moves_colours_towards_the_target():
    source, target = _images(0, (0.4, 0.45, 0.5), 0.08), _images(1, (0.55, 0.5, 0.4), 0.05)
    stats = fit_reinhard(source)
    np.testing.assert_allclose(apply_reinhard(source[0], stats, stats), source[0], atol=1e-9)
    moved = [apply_reinhard(im, fit_reinhard(im), fit_reinhard(target)) for im in source]  # per-image source stats
    assert swd_lab(moved, target) < 0.2 * swd_lab(source, target)


def test_fit_reinhard_takes_uint8_and_a_single_image():
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    image[:2] = 255
    stats = fit_reinhard(image)
    np.testing.assert_allclose(stats.mean, [50.0, 0.0, 0.0], atol=0.01)
    np.testing.assert_allclose(stats.std[0], 50.0, atol=0.01)


def test_baseline_frames_are_8bit_and_take_the_targets_statistics(tmp_path):
    from epeflow.io import read_image, write_png
    from epeflow.metrics.baselines import colour_transfer_frame, write_colour_transfer

    source = (_images(0, (0.4, 0.45, 0.5), 0.08) * 255).round().astype(np.uint8)
    target = fit_reinhard(_images(1, (0.55, 0.5, 0.4), 0.05))
    own = colour_transfer_frame(source[0], None, target)  # Reinhard's original: the frame's own statistics
    assert own.dtype == np.uint8 and own.shape == source[0].shape
    np.testing.assert_allclose(srgb_to_lab(own / 255.0).reshape(-1, 3).mean(axis=0), target.mean, atol=0.5)
    paths = []
    for i, image in enumerate(source):
        paths.append(tmp_path / "src" / f"f{i}.png")
        write_png(paths[-1], image)
    out = write_colour_transfer(paths, ["a", "b", "c"], tmp_path / "ct", fit_reinhard(source), target, threads=2)
    assert [p.name for p in out] == ["a.png", "b.png", "c.png"]
    np.testing.assert_array_equal(read_image(out[1]), colour_transfer_frame(source[1], fit_reinhard(source), target))
