"""`epeflow evaluate --real DIR --fake DIR`: two image folders compared outside the workflow."""

from __future__ import annotations

import json

import pytest
from eval_fixtures import scene

from epeflow.cli import main
from epeflow.io import write_png
from epeflow.metrics import ckvd, fid, kid, skvd  # noqa: F401  (the library surface the issue names)


@pytest.fixture
def folders(tmp_path):
    real, near, far = (tmp_path / name for name in ("real", "near", "far"))
    for i in range(5):
        write_png(real / f"r{i}.png", scene(100 + i, "real"))
        write_png(near / f"n{i}.jpg".replace(".jpg", ".png"), scene(200 + i, "real"))  # new content, the real look
        write_png(far / f"f{i}.png", scene(200 + i, "synthetic"))  # the same content, the rendered look
    (real / "notes.txt").write_text("not an image")
    return real, near, far


SPEC = json.dumps({"kid_subsets": 5, "kid_subset_size": 4,
                   "metrics": ["kid_inception", "kid_vgg", "fid_vgg", "swd_lab", "lpips", "skvd"]})


def _run(real, fake, out, *extra):
    return main(["evaluate", "--real", str(real), "--fake", str(fake), "--out", str(out), "--spec", SPEC,
                 "--allow-random-weights", "--threads", "1", *extra])


def test_two_folders_give_the_fake_sets_metrics_and_say_what_was_skipped(folders, tmp_path, hub_dir):
    real, near, far = folders
    assert _run(real, near, tmp_path / "near" / "metrics.json") == 0
    assert _run(real, far, tmp_path / "far.json") == 0
    near_doc, far_doc = (json.loads(p.read_text()) for p in (tmp_path / "near" / "metrics.json", tmp_path / "far.json"))
    m = near_doc["metrics"]
    assert list(m) == ["kid_inception", "kid_vgg", "fid_vgg", "swd_lab", "lpips", "skvd"]
    assert near_doc["frames"] == {"enhanced": 5, "real": 5} and list(near_doc["compared"]) == ["enhanced"]
    assert set(m["kid_vgg"]) >= {"enhanced", "provenance"} and "identity" not in m["kid_vgg"]
    assert m["kid_vgg"]["enhanced"]["subset_size"] == 4 and m["kid_vgg"]["provenance"]["samples"] == {
        "enhanced": 5, "real": 5}
    assert m["kid_inception"]["enhanced"] == {"skipped": "weights missing"}
    assert "rendered source" in m["lpips"]["skipped"] and "--labels FAKE REAL" in m["skvd"]["skipped"]
    # the real look is closer than the rendered look, whatever the content
    assert m["kid_vgg"]["enhanced"]["mean"] < far_doc["metrics"]["kid_vgg"]["enhanced"]["mean"]
    assert m["swd_lab"]["enhanced"] < far_doc["metrics"]["swd_lab"]["enhanced"]
    assert near_doc["provenance"]["real"] == str(real) and near_doc["warning"]


def test_too_few_images_for_the_subset_size_is_an_error_saying_how_many(folders, tmp_path, capsys):
    real, near, _ = folders
    rc = main(["evaluate", "--real", str(real), "--fake", str(near), "--spec", '{"metrics": ["kid_vgg"]}',
               "--allow-random-weights"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "needs at least 1000 feature vectors in each set, got 5 and 5" in err and "evaluate.kid_subset_size" in err


def test_folder_and_workflow_arguments_do_not_mix(folders, tmp_path, capsys):
    real, near, _ = folders
    assert main(["evaluate", "--real", str(real)]) == 2
    assert "both --real DIR and --fake DIR" in capsys.readouterr().err
    assert main(["evaluate", "--real", str(real), "--fake", str(near), "--src-labels", str(real)]) == 2
    assert "--labels FAKE_LABELS REAL_LABELS" in capsys.readouterr().err
    assert main(["evaluate", "--real", str(real), "--fake", str(tmp_path / "absent")]) == 2
    assert "--fake folder" in capsys.readouterr().err
