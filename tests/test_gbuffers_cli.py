import json

import numpy as np
from gbuffers_testdata import write_dataset

from epeflow.artifacts.gbuffers import GBufferStore
from epeflow.cli import main


def test_gbuffers_command_as_the_rule_calls_it(tmp_path, hub_dir):
    manifest, arrays = write_dataset(tmp_path, [(12, 20), (9, 14)])
    spec = json.dumps({"role": "synthetic", "gbuffers": "real", "gbuffer_channels": "geometry"})
    rc = main(["gbuffers", str(manifest), str(tmp_path / "g.zarr"), "--spec", spec, "--weights", "{}",
               "--threads", "2"])
    assert rc == 0
    store = GBufferStore(tmp_path / "g.zarr")
    assert store.names == ["depth", "normal_x", "normal_y", "normal_z"]
    np.testing.assert_array_equal(store.read(1, normalize=False)[0], arrays[1][:, :, 3].astype(np.float16))


def test_fake_with_random_weights_flag(tmp_path, hub_dir):
    manifest, _ = write_dataset(tmp_path, [(20, 24)], channels=1)
    spec = json.dumps({"role": "synthetic", "gbuffers": "fake", "fake_gbuffers": {"num_workers": 0}})
    assert main(["gbuffers", str(manifest), str(tmp_path / "g.zarr"), "--spec", spec, "--allow-random-weights",
                 "--threads", "1"]) == 0
    assert GBufferStore(tmp_path / "g.zarr").random_weights


def test_errors_are_printed_without_traceback(tmp_path, hub_dir, capsys):
    manifest, _ = write_dataset(tmp_path, [(20, 24)], channels=1)
    spec = json.dumps({"role": "synthetic", "gbuffers": "fake"})
    assert main(["gbuffers", str(manifest), str(tmp_path / "g.zarr"), "--spec", spec, "--threads", "1"]) == 2
    err = capsys.readouterr().err
    assert "epeflow gbuffers: error: vgg16 weights not found" in err and "Traceback" not in err
    assert main(["gbuffers", str(tmp_path / "none.parquet"), str(tmp_path / "g.zarr"), "--spec", spec]) == 2
    assert "none.parquet does not exist" in capsys.readouterr().err
