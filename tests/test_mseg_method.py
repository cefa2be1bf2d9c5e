import numpy as np
import pytest
from gbuffers_testdata import write_dataset

from epeflow import io
from epeflow.errors import EpeflowError
from epeflow.labels.methods import run_labels

SPEC = {"role": "real", "images": "unused", "labels": "mseg", "mseg": {"base_size": 24, "crop": 33, "batch_size": 4}}


@pytest.fixture
def manifest(tmp_path, hub_dir):
    path, _ = write_dataset(tmp_path, [(24, 40), (30, 30), (24, 40)], channels=1)
    return path


def test_labels_stage_runs_mseg_and_resumes(manifest, tmp_path):
    partial = io.partial_dir(tmp_path / "labels")
    io.write_png(partial / "f001.png", np.full((30, 30), 7, np.uint8))  # left by a killed run
    info = run_labels(manifest, tmp_path / "labels", SPEC, {}, allow_random=True, threads=2)
    assert info["method"] == "mseg" and info["random_weights"] is True and info["num_frames"] == 3
    np.testing.assert_array_equal(io.read_label(tmp_path / "labels" / "f001.png"), 7)  # not recomputed
    for name in ("f000", "f002"):
        label = io.read_label(tmp_path / "labels" / f"{name}.png")
        assert label.shape == (24, 40) and label.max() <= 193
    assert not partial.exists()


def test_missing_mseg_weights_is_an_error_naming_the_file(manifest, tmp_path):
    with pytest.raises(EpeflowError, match=r"mseg-3m\.pth"):
        run_labels(manifest, tmp_path / "labels", SPEC, {}, allow_random=False)
    assert not (tmp_path / "labels").exists()
