"""Class taxonomies: MSeg's 194 universal classes, Cityscapes ids mapped onto them, and EPE's 12 materials.

Robust labels (what the discriminator is conditioned on) are MSeg universal ids, whichever way they were
made (MSeg inference, mapped GT, given files), so real and synthetic datasets share one label space. The
generator's material channels come from Cityscapes-id GT labels grouped as the EPE reference does.
"""

from __future__ import annotations

import colorsys
import csv
from functools import cache
from importlib import resources

import numpy as np

from epeflow import io
from epeflow.errors import EpeflowError

NUM_UNIVERSAL_CLASSES = 194
UNLABELED = 255
NUM_CITYSCAPES_IDS = 34  # Cityscapes label ids 0..33 (gtFine `*_labelIds.png`)
CITYSCAPES_IGNORE = 255  # the usual "ignore" marker of label maps, read as unlabeled


def _read_tsv(name: str) -> list[dict[str, str]]:
    text = resources.files("epeflow.common").joinpath("data", name).read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return list(csv.DictReader(lines, delimiter="\t"))


@cache
def universal_names() -> tuple[str, ...]:
    """The 194 MSeg universal class names; the position is the class id."""
    rows = _read_tsv("mseg_universal.tsv")
    names = tuple(row["name"] for row in rows)
    assert [int(row["id"]) for row in rows] == list(range(NUM_UNIVERSAL_CLASSES)), "mseg_universal.tsv is damaged"
    return names


def universal_id(name: str) -> int:
    """Id of a universal class by name ('unlabeled' is 255)."""
    if name == "unlabeled":
        return UNLABELED
    try:
        return universal_names().index(name)
    except ValueError:
        raise KeyError(f"{name!r} is not an MSeg universal class") from None


@cache
def cityscapes_to_universal_lut() -> np.ndarray:
    """(256,) uint8 lookup table: Cityscapes label id -> universal id (255 where there is none)."""
    lut = np.full(256, UNLABELED, dtype=np.uint8)
    for row in _read_tsv("cityscapes_to_universal.tsv"):
        lut[int(row["cityscapes_id"])] = universal_id(row["universal_name"])
    lut.flags.writeable = False
    return lut


def check_cityscapes_ids(gt: np.ndarray, path: object) -> np.ndarray:
    """`gt` unchanged when every id is a Cityscapes label id (0..33) or 255 (ignore); otherwise an error
    naming the file and the unknown ids, rather than mapping them silently to `unlabeled`."""
    known = np.zeros(256, dtype=bool)
    known[:NUM_CITYSCAPES_IDS] = known[CITYSCAPES_IGNORE] = True
    unknown = ~known[np.asarray(gt, dtype=np.uint8)]
    if unknown.any():
        ids = np.unique(np.asarray(gt)[unknown]).tolist()
        shown = ", ".join(map(str, ids[:10])) + (f" (+{len(ids) - 10} more)" if len(ids) > 10 else "")
        raise EpeflowError(
            f"GT label {path} has ids {shown} that are not Cityscapes label ids (0..{NUM_CITYSCAPES_IDS - 1}, "
            f"{CITYSCAPES_IGNORE} = ignore) in {int(unknown.sum())} pixels; give `*_labelIds.png` maps (not "
            "train ids or colour maps), or use `labels: mseg`"
        )
    return gt


def read_cityscapes_label(path: io.PathLike) -> np.ndarray:
    """(H, W) uint8 Cityscapes-id GT label map, its ids checked (`check_cityscapes_ids`)."""
    return check_cityscapes_ids(io.read_label(path), path)


def universal_from_cityscapes(gt: np.ndarray) -> np.ndarray:
    """Map a Cityscapes-id label map (H, W) uint8 to MSeg universal ids (H, W) uint8."""
    return cityscapes_to_universal_lut()[np.asarray(gt, dtype=np.uint8)]


# Colours of the Cityscapes benchmark for the street classes (familiar to readers of the report); every
# other universal class gets a distinct colour from a golden-ratio walk around the hue circle.
_STREET_COLOURS = {
    "road": (128, 64, 128), "sidewalk_pavement": (244, 35, 232), "building": (70, 70, 70),
    "wall": (102, 102, 156), "fence": (190, 153, 153), "pole": (153, 153, 153),
    "traffic_light": (250, 170, 30), "traffic_sign": (220, 220, 0), "vegetation": (107, 142, 35),
    "terrain": (152, 251, 152), "sky": (70, 130, 180), "person": (220, 20, 60), "bicyclist": (255, 0, 0),
    "motorcyclist": (255, 40, 0), "rider_other": (255, 80, 0), "car": (0, 0, 142), "truck": (0, 0, 70),
    "bus": (0, 60, 100), "train": (0, 80, 100), "motorcycle": (0, 0, 230), "bicycle": (119, 11, 32),
    "guard_rail": (180, 165, 180), "bridge": (150, 100, 100), "tunnel": (150, 120, 90),
    "railroad": (230, 150, 140), "trailer": (0, 0, 110),
}


@cache
def universal_palette() -> np.ndarray:
    """(256, 3) uint8 RGB colour per universal id; 255 (unlabeled) and unused ids are black."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for i, name in enumerate(universal_names()):
        if name in _STREET_COLOURS:
            palette[i] = _STREET_COLOURS[name]
        else:
            hue = (i * 0.618033988749895) % 1.0
            sat, val = (0.55, 0.9) if i % 2 else (0.8, 0.7)
            palette[i] = [round(255 * c) for c in colorsys.hsv_to_rgb(hue, sat, val)]
    palette.flags.writeable = False
    return palette


def colorize(labels: np.ndarray) -> np.ndarray:
    """Universal-id label map (H, W) uint8 -> RGB (H, W, 3) uint8 for previews and reports."""
    return universal_palette()[np.asarray(labels, dtype=np.uint8)]


# The EPE reference's material groups of Cityscapes ids (epe/dataset/pfd.py, material_from_gt_label).
MATERIAL_GROUPS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("sky", (23,)),
    ("road", (6, 7, 8, 9, 10)),  # road / sidewalk / static ground
    ("vehicle", (26, 27, 28, 29, 30, 31, 32, 33)),
    ("terrain", (22,)),
    ("vegetation", (21,)),
    ("person", (24, 25)),
    ("infrastructure", (17, 18)),
    ("traffic_light", (19,)),
    ("traffic_sign", (20,)),
    ("ego_vehicle", (1,)),
    ("building", (4, 11, 12, 13, 14, 15, 16)),
    ("unlabeled", (0, 5)),
)
MATERIAL_NAMES: tuple[str, ...] = tuple(name for name, _ in MATERIAL_GROUPS)
NUM_MATERIALS = len(MATERIAL_GROUPS)


@cache
def material_lut() -> np.ndarray:
    """(256,) uint8: Cityscapes id -> material index. Ids in no reference group (2, 3, 34..255) count as
    `unlabeled`, so every pixel has exactly one material (the reference leaves them all-zero)."""
    lut = np.full(256, MATERIAL_NAMES.index("unlabeled"), dtype=np.uint8)
    for index, (_, ids) in enumerate(MATERIAL_GROUPS):
        lut[list(ids)] = index
    lut.flags.writeable = False
    return lut


def materials_from_cityscapes(gt: np.ndarray) -> np.ndarray:
    """Cityscapes-id GT label map (H, W) uint8 -> one-hot materials (12, H, W) float32."""
    index = material_lut()[np.asarray(gt, dtype=np.uint8)]  # (H, W) material index
    return (index[None] == np.arange(NUM_MATERIALS, dtype=np.uint8)[:, None, None]).astype(np.float32)


@cache
def universal_material_lut() -> np.ndarray:
    """(256,) uint8: MSeg universal id -> material index, for frames without GT labels (materials from their
    robust labels). A universal class takes the material of the Cityscapes classes MSeg maps onto it (road,
    car, sky, ...); classes no Cityscapes class maps to, and 255, count as `unlabeled`."""
    lut = np.full(256, MATERIAL_NAMES.index("unlabeled"), dtype=np.uint8)
    city_to_universal, city_material = cityscapes_to_universal_lut(), material_lut()
    for city_id in range(256):
        universal = int(city_to_universal[city_id])
        if universal != UNLABELED:
            lut[universal] = city_material[city_id]
    lut.flags.writeable = False
    return lut


def materials_from_universal(labels: np.ndarray) -> np.ndarray:
    """Robust label map of MSeg universal ids (H, W) uint8 -> one-hot materials (12, H, W) float32."""
    index = universal_material_lut()[np.asarray(labels, dtype=np.uint8)]  # (H, W) material index
    return (index[None] == np.arange(NUM_MATERIALS, dtype=np.uint8)[:, None, None]).astype(np.float32)
