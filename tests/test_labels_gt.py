"""Robust labels from GT (Cityscapes ids) and from given MSeg-id files."""

from __future__ import annotations

import numpy as np
import pytest
from dataset_fixtures import write_label

from epeflow.errors import EpeflowError
from epeflow.labels.gt import given_universal_label, gt_universal_label


def _frame(tmp_path, h=6, w=8, **paths):
    return {"path": str(tmp_path / "img.png"), "height": h, "width": w, "gt_label_path": None,
            "robust_label_path": None, **{k: str(v) for k, v in paths.items()}}


def test_gt_maps_cityscapes_to_universal(tmp_path):
    gt = write_label(tmp_path / "gt.png", 6, 8, values=(23, 7, 26))
    out = gt_universal_label(_frame(tmp_path, gt_label_path=gt))
    assert out.shape == (6, 8) and out.dtype == np.uint8
    assert out[0, 0] == 142 and out[2, 0] == 98 and out[5, 0] == 176  # sky, road, car


def test_gt_errors_name_the_file(tmp_path):
    gt = write_label(tmp_path / "gt.png", 5, 8)
    with pytest.raises(EpeflowError, match=r"gt.png is 8x5 but its image .*img.png is 8x6"):
        gt_universal_label(_frame(tmp_path, gt_label_path=gt))
    with pytest.raises(EpeflowError, match=r"img.png has no GT label .*gt_label_dir"):
        gt_universal_label(_frame(tmp_path))
    (tmp_path / "bad.png").write_bytes(b"nope")
    with pytest.raises(EpeflowError, match="bad.png"):
        gt_universal_label(_frame(tmp_path, gt_label_path=tmp_path / "bad.png"))


def test_given_labels_are_validated(tmp_path):
    ok = write_label(tmp_path / "ok.png", 6, 8, values=(98, 255))
    assert set(np.unique(given_universal_label(_frame(tmp_path, robust_label_path=ok))).tolist()) == {98, 255}
    bad = write_label(tmp_path / "bad.png", 6, 8, values=(98, 200))
    with pytest.raises(EpeflowError, match=r"bad.png has ids \[200\]"):
        given_universal_label(_frame(tmp_path, robust_label_path=bad))
    with pytest.raises(EpeflowError, match="robust_label_path"):
        given_universal_label(_frame(tmp_path))


def test_gt_ids_outside_cityscapes_are_an_error_naming_file_and_ids(tmp_path):
    from epeflow.common.taxonomy import read_cityscapes_label

    ok = write_label(tmp_path / "ok.png", 6, 8, values=(7, 33, 255))  # 255: the usual ignore marker
    assert set(np.unique(gt_universal_label(_frame(tmp_path, gt_label_path=ok))).tolist()) <= set(range(256))
    bad = write_label(tmp_path / "bad.png", 6, 8, values=(7, 34, 200))
    with pytest.raises(EpeflowError, match=r"GT label .*bad.png has ids 34, 200 that are not Cityscapes label ids"):
        gt_universal_label(_frame(tmp_path, gt_label_path=bad))
    with pytest.raises(EpeflowError, match=r"bad.png has ids 34, 200"):  # the reader of material maps
        read_cityscapes_label(bad)
