import json

import numpy as np
import pytest
import torch
from crop_fixtures import make_dataset

from epeflow.errors import EpeflowError
from epeflow.features.crop_stats import choose_stats_frames, compute_crop_stats, image_mean_std, run_crop_stats
from epeflow.io import read_image, read_table, write_table


def test_image_stats_match_the_reference_torch_computation():
    image = np.random.default_rng(0).integers(0, 256, (9, 13, 3), dtype=np.uint8)
    mean, std = image_mean_std(image)
    t = torch.from_numpy(image.astype(np.float32) / 255.0).permute(2, 0, 1)[None]  # reference: (1, 3, H, W)
    np.testing.assert_allclose(mean, t.mean(dim=(2, 3))[0].numpy(), rtol=1e-6)
    np.testing.assert_allclose(std, t.std(dim=(2, 3))[0].numpy(), rtol=1e-5)  # unbiased, as torch.std


def test_frame_choice_is_seeded_distinct_and_capped():
    a = choose_stats_frames(100, 10, seed=3)
    np.testing.assert_array_equal(a, choose_stats_frames(100, 10, seed=3))
    assert len(set(a.tolist())) == 10 and (np.diff(a) > 0).all()
    assert not np.array_equal(a, choose_stats_frames(100, 10, seed=4))
    np.testing.assert_array_equal(choose_stats_frames(5, 1000, seed=0), np.arange(5))


def test_dataset_stats_average_per_frame_stats(tmp_path):
    manifest = make_dataset(tmp_path, "d", [(20, 30), (24, 20), (16, 16), (20, 30)])
    paths = read_table(manifest)[0]["path"].tolist()
    chosen = choose_stats_frames(4, 3, seed=1)
    per_frame = [image_mean_std(read_image(paths[i])) for i in chosen]
    stats = compute_crop_stats(paths, stats_frames=3, seed=1, threads=2)
    assert stats["frames"] == 3
    np.testing.assert_allclose(stats["mean"], np.mean([m for m, _ in per_frame], axis=0))
    np.testing.assert_allclose(stats["std"], np.mean([s for _, s in per_frame], axis=0))


def test_run_writes_crop_stats_json(tmp_path):
    manifest = make_dataset(tmp_path, "d", [(20, 30), (24, 20)])
    out = tmp_path / "crop_stats.json"
    run_crop_stats(manifest, out, {"stats_frames": 10, "seed": 0}, threads=1)
    data = json.loads(out.read_text())
    assert set(data) == {"mean", "std", "frames"} and data["frames"] == 2
    assert len(data["mean"]) == 3 and all(0 < v < 1 for v in data["std"])


def test_empty_manifest_is_an_error(tmp_path):
    manifest = make_dataset(tmp_path, "d", [(20, 30)])
    df, meta = read_table(manifest)
    write_table(manifest, df.iloc[:0], meta)
    with pytest.raises(EpeflowError, match="no frames"):
        run_crop_stats(manifest, tmp_path / "s.json", {}, threads=1)


def test_a_frame_smaller_than_the_crop_is_reported_by_crop_stats_before_any_crop(tmp_path):
    manifest = make_dataset(tmp_path, "d", [(40, 48), (24, 64)])
    out = tmp_path / "s.json"
    with pytest.raises(EpeflowError, match=r"dataset 'd': 1 frame\(s\) are smaller than the crop size 32: "
                                           r".*frame_001 \(.*frame_001\.png, 24x64\).*`datasets\.d\.crops\.size`"):
        run_crop_stats(manifest, out, {"stats_frames": 10, "seed": 0, "size": 32}, threads=1)
    assert not out.exists()
    run_crop_stats(manifest, out, {"stats_frames": 10, "seed": 0, "size": 24}, threads=1)
