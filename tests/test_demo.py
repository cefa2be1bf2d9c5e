"""The embedded demo generator: deterministic files, two looks over the same kind of scenes."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from epeflow.config import validate_dataset
from epeflow.demo.generate import frame_name, read_demo_info, render_frames, run_demo, sequence_lengths
from epeflow.demo.looks import GBUFFER_NAMES
from epeflow.errors import EpeflowError

CITYSCAPES_IDS_USED = {1, 7, 8, 11, 17, 19, 20, 21, 22, 23, 24, 26}


def _spec(role: str, seed: int = 0, frames: int = 6, height: int = 32, width: int = 48, sequences: int = 3) -> dict:
    return {"role": role, "demo": {"frames": frames, "height": height, "width": width, "seed": seed,
                                   "sequences": sequences}}


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes_and_another_seed_other_frames(tmp_path):
    for name, seed in (("a", 0), ("b", 0), ("c", 3)):
        run_demo(tmp_path / name, _spec("synthetic", seed))
    a, b, c = (_files(tmp_path / name) for name in "abc")
    assert a == b
    assert a.keys() == c.keys()
    assert a["images/s00_f0000.png"] != c["images/s00_f0000.png"]


def test_layout_names_and_demo_json(tmp_path):
    info = run_demo(tmp_path / "synth", _spec("synthetic", frames=7, sequences=3))
    names = [frame_name(s, i) for s, n in enumerate([3, 2, 2]) for i in range(n)]
    assert info["names"] == names
    assert sorted(p.stem for p in (tmp_path / "synth" / "images").glob("*.png")) == names
    assert sorted(p.stem for p in (tmp_path / "synth" / "gt_labels").glob("*.png")) == names
    assert sorted(p.stem for p in (tmp_path / "synth" / "gbuffers").glob("*.npz")) == names
    assert read_demo_info(tmp_path / "synth")["gbuffers"]["names"] == list(GBUFFER_NAMES)
    assert (tmp_path / "synth" / "preview.png").is_file()
    image = np.asarray(Image.open(tmp_path / "synth" / "images" / "s01_f0001.png"))
    assert image.shape == (32, 48, 3) and image.dtype == np.uint8

    real = run_demo(tmp_path / "real", _spec("real", seed=1))
    assert real["gbuffers"] is None and not (tmp_path / "real" / "gbuffers").exists()


def test_gbuffers_have_the_documented_channels(tmp_path):
    run_demo(tmp_path / "d", _spec("synthetic"))
    with np.load(tmp_path / "d" / "gbuffers" / "s00_f0000.npz") as z:
        data, names = z["data"], z["names"].tolist()
    gt = np.asarray(Image.open(tmp_path / "d" / "gt_labels" / "s00_f0000.png"))
    assert names == list(GBUFFER_NAMES)
    assert data.shape == (32, 48, len(GBUFFER_NAMES)) and data.dtype == np.float16
    g = {n: data[..., i].astype(np.float32) for i, n in enumerate(names)}
    solid = gt != 23
    normal_len = np.sqrt(g["normal_x"] ** 2 + g["normal_y"] ** 2 + g["normal_z"] ** 2)
    assert np.allclose(normal_len[solid], 1, atol=0.01)
    assert (g["depth"][solid] > 0).all() and (g["depth"][~solid] > g["depth"][solid].max()).all()
    for n in ("albedo_r", "albedo_g", "albedo_b", "shading", "sky_light"):
        assert g[n].min() >= 0 and g[n].max() <= 1
    road = gt == 7
    assert np.allclose(g["normal_y"][road], 1)  # the road faces up


def test_gt_ids_are_cityscapes_street_classes():
    ids = set()
    for *_, gt, _ in render_frames(validate_dataset(_spec("synthetic", frames=4, height=64, width=128))):
        ids |= set(np.unique(gt).tolist())
    assert ids <= CITYSCAPES_IDS_USED
    assert {7, 11, 23, 26, 1} <= ids  # road, building, sky, car, ego vehicle are always in view


def _look_and_labels(role: str, seed: int):
    frames = list(render_frames(validate_dataset(_spec(role, seed, frames=6, height=64, width=128, sequences=2))))
    images = np.stack([f[3] for f in frames]).astype(np.float32) / 255  # (N, H, W, 3)
    gts = np.stack([f[4] for f in frames])
    mx, mn = images.max(-1), images.min(-1)
    saturation = ((mx - mn) / np.maximum(mx, 1e-3)).mean()
    road = (gts == 7)[:, :, 1:] & (gts == 7)[:, :, :-1]
    grain = np.abs(np.diff(images, axis=2)).mean(-1)[road].mean()  # texture + noise inside the road
    fractions = np.bincount(gts.ravel(), minlength=256) / gts.size
    return saturation, grain, fractions


def test_domains_differ_in_look_but_not_in_content():
    sat_s, grain_s, frac_s = _look_and_labels("synthetic", 0)
    sat_r, grain_r, frac_r = _look_and_labels("real", 1)
    assert sat_r < 0.6 * sat_s  # real: graded, desaturated
    assert grain_r > 1.5 * grain_s  # real: textured and noisy; synthetic: flat
    assert np.abs(frac_s - frac_r).sum() < 0.4  # similar class statistics
    for cls in (7, 11, 23, 26):
        assert frac_s[cls] > 0.02 and frac_r[cls] > 0.02


def test_sequences_are_coherent_camera_motion():
    frames = render_frames(validate_dataset(_spec("synthetic", frames=6, height=64, width=128, sequences=2)))
    img = {(s, i): image.astype(np.float32) for _, s, i, image, _, _ in frames}
    within = np.abs(img[(0, 0)] - img[(0, 1)]).mean()
    across = np.abs(img[(0, 0)] - img[(1, 0)]).mean()
    assert within < across


def test_sequence_lengths_and_bad_settings(tmp_path):
    assert sequence_lengths(7, 3) == [3, 2, 2]
    with pytest.raises(EpeflowError, match="sequences"):
        sequence_lengths(2, 3)
    with pytest.raises(EpeflowError, match="no `demo:` block"):
        run_demo(tmp_path / "x", {"role": "real", "images": "somewhere"})
    with pytest.raises(EpeflowError, match="demo.frames"):
        run_demo(tmp_path / "x", {"role": "real", "demo": {"frames": 1}})
    assert not (tmp_path / "x").exists()


def test_read_demo_info_rejects_other_folders(tmp_path):
    with pytest.raises(EpeflowError, match="not a generated demo"):
        read_demo_info(tmp_path)


def test_generation_is_fast():
    """48 frames of 128x256 must take well under 10 s on one core: 8 frames get a proportional budget."""
    spec = validate_dataset({"role": "real", "demo": {"frames": 8, "height": 128, "width": 256}})
    start = time.process_time()
    assert len(list(render_frames(spec))) == 8
    assert time.process_time() - start < 8 * 10 / 48
