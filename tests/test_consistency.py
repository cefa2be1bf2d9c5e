"""Semantic consistency (mIoU of robust labels before / after enhancement): the maths on hand-made label maps,
the accumulation over frames, and the skip without real MSeg weights."""

from __future__ import annotations

import numpy as np
import pytest
from eval_fixtures import make_experiment

from epeflow.common.taxonomy import UNLABELED, universal_id
from epeflow.config import validate_section
from epeflow.io import write_png
from epeflow.metrics.consistency import confusion, consistency, iou_per_class, mean_iou
from epeflow.metrics.evaluate import run_evaluate


def test_miou_of_hand_made_maps():
    ref = np.array([[0, 0, 1, 1], [0, 0, 1, 1]], dtype=np.uint8)
    lab = np.array([[0, 0, 0, 1], [0, 0, 1, 1]], dtype=np.uint8)
    conf = confusion(ref, lab, num_classes=3)
    assert conf.shape == (3, 4) and conf.sum() == 8
    iou = iou_per_class(conf)
    assert iou[0] == pytest.approx(4 / 5) and iou[1] == pytest.approx(3 / 4) and np.isnan(iou[2])
    assert mean_iou(conf) == pytest.approx((4 / 5 + 3 / 4) / 2)  # class 2 is in neither map: not averaged
    assert mean_iou(confusion(ref, ref, num_classes=3)) == 1.0


def test_unlabeled_reference_is_left_out_and_unlabeled_output_is_wrong():
    ref = np.array([[0, UNLABELED, 1]], dtype=np.uint8)
    lab = np.array([[UNLABELED, 0, 1]], dtype=np.uint8)
    conf = confusion(ref, lab, num_classes=2)
    assert conf.sum() == 2  # the reference's unlabeled pixel does not count
    iou = iou_per_class(conf)
    assert iou[0] == 0.0 and iou[1] == 1.0  # class 0's pixel was labelled nothing: a miss
    with pytest.raises(ValueError, match="differ in size"):
        confusion(ref, lab[:, :2])


def _threshold_labeler(rgb: np.ndarray) -> np.ndarray:
    """A stand-in segmenter: bright pixels are sky, the rest road."""
    return np.where(rgb.mean(axis=-1) > 127, universal_id("sky"), universal_id("road")).astype(np.uint8)


def test_consistency_accumulates_over_frames(tmp_path):
    frames, references = [], []
    for k, horizon in enumerate((10, 20)):
        image = np.zeros((40, 30, 3), dtype=np.uint8)
        image[:horizon] = 255
        path = tmp_path / f"f{k}.png"
        write_png(path, image)
        frames.append(path)
        references.append(_threshold_labeler(image))
    same = consistency(references, frames, _threshold_labeler)
    assert same["miou"] == 1.0 and same["per_frame_mean"] == 1.0 and same["n"] == 2
    assert same["per_class_iou"] == {"sky": 1.0, "road": 1.0}
    shifted = [np.roll(r, 5, axis=0) for r in references]  # the references' horizons 5 rows lower
    moved = consistency(shifted, frames, _threshold_labeler)
    # sky (rows): frame 0 I 5 U 15, frame 1 I 15 U 25 -> 20 / 40; road: I 25 U 35, I 15 U 25 -> 40 / 60
    assert moved["per_class_iou"] == {"sky": pytest.approx(0.5), "road": pytest.approx(2 / 3)}
    assert moved["miou"] == pytest.approx((0.5 + 2 / 3) / 2)
    assert moved["per_frame_mean"] == pytest.approx(((5 / 15 + 25 / 35) / 2 + (15 / 25 + 15 / 25) / 2) / 2)


def test_without_real_mseg_weights_it_is_skipped_with_the_reason(tmp_path, hub_dir):
    exp = make_experiment(tmp_path)
    settings = validate_section("evaluate", {"metrics": ["semantic_consistency"]}, ("test",))
    for allow_random in (True, False):
        doc = run_evaluate(exp.enhanced, exp.src_manifest, exp.dst_manifest, settings, {}, allow_random, "demo",
                           labels=exp.labels)
        reason = doc["metrics"]["semantic_consistency"]["skipped"]
        assert "needs real MSeg weights" in reason and "mseg-3m.pth" in reason
