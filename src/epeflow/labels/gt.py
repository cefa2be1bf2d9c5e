"""Robust labels from files: ground truth in Cityscapes ids mapped to MSeg universal ids (`labels: gt`),
or label maps the user already has, listed in an EPE file list (`labels: given`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from epeflow import io
from epeflow.common.taxonomy import NUM_UNIVERSAL_CLASSES, UNLABELED, check_cityscapes_ids, universal_from_cityscapes
from epeflow.errors import EpeflowError


def _read_sized(path: str | None, frame: Mapping[str, Any], column: str, what: str, hint: str) -> np.ndarray:
    if path is None:
        raise EpeflowError(f"frame {frame['path']} has no {what} (manifest column `{column}` is empty); {hint}")
    label = io.read_label(path)
    if label.shape != (frame["height"], frame["width"]):
        raise EpeflowError(f"{what} {path} is {label.shape[1]}x{label.shape[0]} but its image {frame['path']} is "
                           f"{frame['width']}x{frame['height']}")
    return label


def gt_universal_label(frame: Mapping[str, Any]) -> np.ndarray:
    """(H, W) uint8 universal ids from the frame's Cityscapes-id GT label map."""
    gt = _read_sized(frame.get("gt_label_path"), frame, "gt_label_path", "GT label",
                     "set `gt_label_dir` in the dataset config (or a 4th column in its file list), or use "
                     "`labels: mseg`")
    return universal_from_cityscapes(check_cityscapes_ids(gt, frame["gt_label_path"]))


def given_universal_label(frame: Mapping[str, Any]) -> np.ndarray:
    """(H, W) uint8 universal ids read from the robust label file of the frame's file-list line."""
    path = frame.get("robust_label_path")
    label = _read_sized(path, frame, "robust_label_path", "robust label",
                        "give robust label files as the 2nd column of the file list, or use `labels: mseg`")
    bad = (label >= NUM_UNIVERSAL_CLASSES) & (label != UNLABELED)
    if bad.any():
        ids = sorted(set(np.unique(label[bad]).tolist()))[:5]
        raise EpeflowError(f"robust label {path} has ids {ids} that are not MSeg universal ids "
                           f"(0..{NUM_UNIVERSAL_CLASSES - 1}, {UNLABELED} = unlabeled); `labels: given` expects MSeg "
                           "output, use `labels: gt` for Cityscapes-id maps")
    return label
