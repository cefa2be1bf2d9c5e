"""Robust labels (MSeg universal ids) per frame, and the class taxonomies the pipeline uses."""

from epeflow.artifacts.labels import per_frame, write_labels
from epeflow.common.taxonomy import (
    MATERIAL_NAMES,
    NUM_MATERIALS,
    NUM_UNIVERSAL_CLASSES,
    UNLABELED,
    colorize,
    materials_from_cityscapes,
    universal_from_cityscapes,
    universal_names,
    universal_palette,
)
from epeflow.labels.methods import METHODS, run_labels

__all__ = [
    "MATERIAL_NAMES",
    "METHODS",
    "NUM_MATERIALS",
    "NUM_UNIVERSAL_CLASSES",
    "UNLABELED",
    "colorize",
    "run_labels",
    "materials_from_cityscapes",
    "per_frame",
    "universal_from_cityscapes",
    "universal_names",
    "universal_palette",
    "write_labels",
]
