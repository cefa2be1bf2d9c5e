import json

import numpy as np
import pytest
from crop_fixtures import make_dataset

from epeflow.artifacts.crops import CropStore
from epeflow.cli import main


@pytest.mark.parametrize("command", ["crop-stats", "crops", "crops-merge"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    assert "usage: epeflow " + command in capsys.readouterr().out


def test_stats_shards_and_merge_as_the_rules_call_them(tmp_path, capsys):
    manifest = make_dataset(tmp_path, "d", [(40, 48)] * 5, seed=0)
    spec = json.dumps(
        {
            "per_image": 2,
            "size": 32,
            "padding": "zero",
            "seed": 0,
            "batch_size": 3,
            "num_workers": 0,
            "stats_frames": 4,
            "shards": 2,
            "chunk_size": 3,
        }
    )
    weights = json.dumps({"vgg16": {}})  # not in the (empty) hub cache
    stats = tmp_path / "crop_stats.json"
    assert main(["crop-stats", str(manifest), str(stats), "--spec", spec, "--threads", "2"]) == 0
    assert json.loads(stats.read_text())["frames"] == 4
    shards = [tmp_path / f"crops_shards/{i}-of-2.zarr" for i in range(2)]
    for i, shard in enumerate(shards):
        argv = [
            "crops",
            str(manifest),
            str(stats),
            str(shard),
            "--shard",
            str(i),
            "--num-shards",
            "2",
            "--spec",
            spec,
            "--weights",
            weights,
            "--allow-random-weights",
            "--threads",
            "1",
        ]
        assert main(argv) == 0
    out = tmp_path / "crops.zarr"
    assert main(["crops-merge", *map(str, shards), "--out", str(out)]) == 0
    store = CropStore(out)
    np.testing.assert_array_equal(store.frame, np.repeat(np.arange(5), 2))
    assert store.random_weights


def test_missing_weights_without_permission_is_a_clean_error(tmp_path, capsys):
    manifest = make_dataset(tmp_path, "d", [(40, 48)], seed=0)
    stats = tmp_path / "s.json"
    stats.write_text(json.dumps({"mean": [0.5] * 3, "std": [0.2] * 3, "frames": 1}))
    weights = json.dumps({"vgg16": {}})  # not in the (empty) hub cache
    code = main(
        [
            "crops",
            str(manifest),
            str(stats),
            str(tmp_path / "c.zarr"),
            "--weights",
            weights,
            "--spec",
            json.dumps({"size": 32, "padding": "zero", "num_workers": 0}),
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "epeflow crops: error: vgg16 weights not found" in err and "Traceback" not in err


def test_json_spec_arguments_with_a_wrong_type_name_the_field(tmp_path, capsys):
    manifest = make_dataset(tmp_path, "d", [(40, 48)], seed=0)
    stats = tmp_path / "s.json"
    assert main(["crop-stats", str(manifest), str(stats), "--spec", '{"stats_frames": "x"}']) == 2
    assert "config key `datasets.<dataset>.crops.stats_frames`: 'x' is not of type 'integer'" in capsys.readouterr().err
    stats.write_text(json.dumps({"mean": [0.5] * 3, "std": [0.2] * 3, "frames": 1}))
    argv = ["crops", str(manifest), str(stats), str(tmp_path / "c.zarr"), "--allow-random-weights"]
    assert main([*argv, "--spec", '{"size": "32"}']) == 2
    assert "config key `crops.size`: '32' is not of type 'integer'" in capsys.readouterr().err
    assert main([*argv, "--spec", '{"size": 32, "padding": "zero"}', "--weights", '{"vgg16": "vgg.pth"}']) == 2
    assert "config key `weights.vgg16`: 'vgg.pth' is not of type 'object'" in capsys.readouterr().err
