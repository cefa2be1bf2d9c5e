"""What a change reruns, planned with `snakemake -n` over placeholder outputs (workflow_fixtures.Planner):
each stage gets only its own settings, so Snakemake reruns the stages that read a changed key and what
follows from their outputs, nothing else; a changed, added or removed frame (or label) reruns the manifest
and what follows, an untouched dataset nothing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from dataset_fixtures import write_label, write_rgb
from workflow_fixtures import REPO, TINY, Planner, copy_config

from epeflow.config import DATASET_STAGE_KEYS, dataset_stage_settings, load_config, load_schema

pytestmark = pytest.mark.slow  # each plan is a Snakemake run (about 3 s)

AFTER_LABELS = {"train", "enhance_shard", "enhance", "evaluate", "report_html"}  # what follows either side's label maps
AFTER_CROPS = {"crops", "knn", "filter_matches", "sampling_weights", "match_preview"} | AFTER_LABELS
EVERY_RULE = {"demo_data", "manifest", "labels_shard", "labels", "gbuffers_shard", "gbuffers", "crop_stats",
              "crops_shard"} | AFTER_CROPS


def _config() -> dict:
    """The tiny demo with MSeg labels and fake G-buffers on the synthetic side, so every method's settings
    are in play."""
    config = copy_config(TINY)
    config["datasets"]["demo_synth"].update(
        labels="mseg", gbuffers="fake", mseg={"base_size": 32, "crop": 32, "scales": [1.0], "batch_size": 2},
        fake_gbuffers={"stats_frames": 4, "batch_size": 4, "num_workers": 0},
    )
    return config


@pytest.fixture(scope="module")
def planner(tmp_path_factory) -> Planner:
    return Planner(tmp_path_factory.mktemp("reruns"), _config())


def _changed(path: str, value) -> dict:
    """The test config with one key (dotted path) set to `value`."""
    config = _config()
    *parents, last = path.split(".")
    node = config
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return config


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("datasets.demo_synth.crops.batch_size", 8, {"crops_shard"} | AFTER_CROPS),
    ("datasets.demo_synth.crops.num_workers", 1, {"crops_shard"} | AFTER_CROPS),
    ("datasets.demo_synth.crops.stats_frames", 6, {"crop_stats", "crops_shard"} | AFTER_CROPS),
    ("datasets.demo_synth.mseg.base_size", 48, {"labels_shard", "labels"} | AFTER_LABELS),
    ("datasets.demo_synth.fake_gbuffers.batch_size", 2, {"gbuffers_shard", "gbuffers"} | AFTER_LABELS),
    ("datasets.demo_real.gt_label_ids", "cityscapes", set()),  # the default, written out: no change
    ("datasets.demo_real.split.val", 0.2, EVERY_RULE - {"demo_data", "gbuffers_shard", "gbuffers"}),
    ("datasets.demo_synth.demo.seed", 5, EVERY_RULE),
    ("weights.mseg.path", "elsewhere/mseg-3m.pth", {"labels_shard", "labels"} | AFTER_LABELS),
    ("weights.lpips.path", "elsewhere/vgg.pth", AFTER_LABELS),
    ("experiments.demo.knn.k", 2, AFTER_CROPS - {"crops"}),
])
def test_a_setting_reruns_the_stages_that_read_it_and_what_follows(planner, key, value, expected):
    assert planner.plan(_changed(key, value)) == expected


def test_labels_from_gt_do_not_rerun_for_mseg_settings_or_weights(planner):
    """demo_real labels by GT: MSeg settings, MSeg weights and random-weight permission do not concern it."""
    config = _changed("datasets.demo_real.mseg", {"base_size": 64})
    config["datasets"]["demo_real"]["allow_random_weights"] = False
    config["experiments"]["demo"]["allow_random_weights"] = True
    assert planner.plan(config) == {"crops_shard"} | AFTER_CROPS  # crops load VGG16: they do rerun


def test_every_dataset_key_reaches_a_stage():
    """A dataset key no stage receives would change nothing when edited: each belongs to some stage (or is
    the random-weights permission, passed as a flag)."""
    keys = set(load_schema()["definitions"]["dataset"]["properties"])
    staged = {k for keys_of_stage in DATASET_STAGE_KEYS.values() for k in keys_of_stage}
    assert keys - staged == {"allow_random_weights", "shard_frames"}  # shard_frames: job count, not results


def test_stage_settings_leave_out_other_methods_keys(tmp_path):
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(_config()))
    config = load_config([REPO / "config" / "config.yaml", tmp_path / "test.yaml"])
    synth, real = config["datasets"]["demo_synth"], config["datasets"]["demo_real"]
    assert set(dataset_stage_settings(synth, "labels")) == {"labels", "mseg"}
    assert set(dataset_stage_settings(real, "labels")) == {"labels", "gt_label_ids"}
    assert set(dataset_stage_settings(synth, "gbuffers")) == {"gbuffers", "gbuffer_channels", "fake_gbuffers"}
    assert dataset_stage_settings(synth, "crop_stats") == {"stats_frames": 12, "seed": 0, "size": 32}
    assert "crops" not in dataset_stage_settings(synth, "manifest")


PHOTO_TARGETS = ("results/datasets/photos/labels", "results/datasets/photos/crops.zarr")
AFTER_MANIFEST = {"manifest", "labels_shard", "labels", "crop_stats", "crops_shard", "crops"}


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> tuple[Planner, dict]:
    """A folder of frames with GT labels, read in place; outputs current."""
    data = tmp_path_factory.mktemp("photos")
    for i in range(3):
        write_rgb(data / "img" / f"f{i}.png", seed=i)
        write_label(data / "gt" / f"f{i}.png")
    config = copy_config(TINY)
    config["datasets"]["photos"] = {"role": "real", "images": str(data / "img"), "gt_label_dir": str(data / "gt"),
                                    "labels": "gt", "crops": {"size": 16, "padding": "zero"}}
    return Planner(tmp_path_factory.mktemp("reruns_photos"), config, *PHOTO_TARGETS), config


def _edit(path) -> None:
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**10))


@pytest.mark.parametrize("change", ["replace a frame", "edit a label", "add a frame", "remove a frame"])
def test_a_data_change_reruns_the_manifest_and_what_follows(photos, change):
    planner, config = photos
    img, gt = [Path(config["datasets"]["photos"][k]) for k in ("images", "gt_label_dir")]
    assert planner.plan(config) == set()  # untouched: nothing
    if change == "replace a frame":
        write_rgb(img / "f1.png", seed=11)
    elif change == "edit a label":
        _edit(gt / "f2.png")
    elif change == "add a frame":
        write_rgb(img / "f9.png", seed=9)
        write_label(gt / "f9.png")
    else:
        (img / "f0.png").unlink()
    assert planner.plan(config) == AFTER_MANIFEST
    planner.accept(config)
