"""sKVD and cKVD: KID-style distances between crops that show the same kind of scene layout.

KID over whole frames also measures how differently the two datasets are laid out (more sky in one, more
cars in the other), which no enhancement can or should change. EPE's semantically aligned Kernel VGG
Distance (sKVD) compares crops only with real crops of matching layout: one random square crop of 1/8 of
the frame area per frame, cut alike from the frame and its label map; each label crop reduced to 16x16 by
nearest sampling; each enhanced crop paired with the real crop whose 16x16 labels agree in the most cells,
the pair kept only when more than half the cells agree; then the unbiased MMD² with KID's polynomial
kernel (degree 3, gamma 1/dim, coef 1) between the VGG16 features of the kept enhanced crops and of their
partners, x1000. A real crop partnering several enhanced crops enters the real sample once: repeating it
would put its self-similarity k(y, y) into the estimator's within-set mean, which the unbiased MMD² leaves
out on purpose (with repeats, even two identical sets are far apart). Cells unlabeled (255) in the
enhanced or the real crop never agree, so two crops of unlabeled pixels are not a match.

cKVD splits the kept pairs by class: a pair belongs to the class most frequent among the labelled cells
of its enhanced crop (ties: the lower id); each class with at least `min_pairs` pairs gets its own KVD,
and cKVD is their unweighted mean, so rare classes count as much as road and sky.

Pure functions on arrays: label grids (N, 16, 16) uint8, crop features (N, D) (flattened relu5_3 in the
evaluate stage); frames and crops are handled in `epeflow.metrics.frame_crops` and `.semantic`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from epeflow.common.taxonomy import UNLABELED
from epeflow.metrics.kid import mmd2_unbiased

GRID = 16  # label crops are compared on a GRID x GRID raster
MIN_AGREEMENT = 0.5  # a pair is kept when MORE than this fraction of the cells agree
KVD_SCALE = 1000.0  # EPE reports sKVD x1000


def label_grid(labels: np.ndarray, cells: int = GRID) -> np.ndarray:
    """(H, W) label crop -> (cells, cells) by nearest sampling at the cell centres."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"expected an (H, W) label map, got shape {labels.shape}")
    h, w = labels.shape
    rows = ((np.arange(cells) + 0.5) * h / cells).astype(np.int64)
    cols = ((np.arange(cells) + 0.5) * w / cells).astype(np.int64)
    return labels[rows[:, None], cols[None, :]]


def agreement(grids_x: np.ndarray, grids_y: np.ndarray) -> np.ndarray:
    """Cells with the same (labelled) class, for every pair: (N, g, g), (M, g, g) -> (N, M) int."""
    x, y = np.asarray(grids_x).reshape(len(grids_x), -1), np.asarray(grids_y).reshape(len(grids_y), -1)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"label grids differ in size: {grids_x.shape[1:]} vs {grids_y.shape[1:]}")
    labelled_y = y != UNLABELED  # (M, cells)
    out = np.empty((len(x), len(y)), dtype=np.int64)
    for i, row in enumerate(x):  # one (M, cells) comparison per crop keeps memory at M x cells
        out[i] = ((y == row) & labelled_y).sum(axis=1)
    return out


@dataclass(frozen=True)
class CropPairs:
    """For each crop of x: its best-agreeing crop of y, how many cells agree, and whether the pair is kept."""

    partner: np.ndarray  # (N,) int index into y
    agreeing_cells: np.ndarray  # (N,) int
    kept: np.ndarray  # (N,) bool: agreeing_cells > MIN_AGREEMENT * cells
    cells: int

    @property
    def kept_partners(self) -> np.ndarray:
        return self.partner[self.kept]


def match_crops(grids_x: np.ndarray, grids_y: np.ndarray, min_agreement: float = MIN_AGREEMENT) -> CropPairs:
    """Pair each crop of x with the crop of y whose label grid agrees in the most cells (first on ties)."""
    counts = agreement(grids_x, grids_y)  # (N, M)
    partner = counts.argmax(axis=1)
    agreeing = counts[np.arange(len(counts)), partner]
    cells = int(np.prod(np.asarray(grids_x).shape[1:]))
    return CropPairs(partner, agreeing, agreeing > min_agreement * cells, cells)


def dominant_class(grids: np.ndarray) -> np.ndarray:
    """(N, g, g) label grids -> (N,) the most frequent labelled class of each (lower id on ties; 255 if none)."""
    flat = np.asarray(grids).reshape(len(grids), -1).astype(np.int64)
    counts = np.zeros((len(flat), 256), dtype=np.int64)
    np.add.at(counts, (np.repeat(np.arange(len(flat)), flat.shape[1]), flat.ravel()), 1)
    counts[:, UNLABELED] = 0
    return np.where(counts.max(axis=1) > 0, counts.argmax(axis=1), UNLABELED)


def kvd(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD² (KID's polynomial kernel) between crop features x (N, D) and y (M, D), x1000."""
    return KVD_SCALE * mmd2_unbiased(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64))


def _paired_kvd(x: np.ndarray, y: np.ndarray, partners: np.ndarray) -> tuple[float | None, int]:
    """KVD of kept crops x (P, D) vs the distinct real crops among their partners: (value or None, distinct)."""
    if len(x) != len(y) or len(x) != len(partners):
        raise ValueError(f"pairs differ in count: {len(x)} crops, {len(y)} partner features, {len(partners)} partners")
    _, first = np.unique(partners, return_index=True)
    value = kvd(x, y[first]) if len(x) >= 2 and len(first) >= 2 else None
    return value, len(first)


@dataclass(frozen=True)
class SkvdResult:
    """sKVD (x1000; None with fewer than 2 kept pairs or distinct partners) and the counts behind it."""

    value: float | None
    pairs: int  # kept pairs
    crops_x: int  # crops offered on each side
    crops_y: int
    real_crops_used: int  # distinct crops of y among the kept partners: the real sample

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def paired_skvd(x: np.ndarray, y: np.ndarray, crops_x: int, crops_y: int, partners: np.ndarray) -> SkvdResult:
    """sKVD of kept pairs: x (P, D) crop features, y (P, D) their partners' (row i pairs with row i), and
    partners (P,) the partners' indices among the real crops (to enter each real crop once)."""
    value, distinct = _paired_kvd(x, y, partners)
    return SkvdResult(value, len(x), crops_x, crops_y, distinct)


def skvd(features_x: np.ndarray, grids_x: np.ndarray, features_y: np.ndarray, grids_y: np.ndarray) -> SkvdResult:
    """sKVD between crops x (features (N, D), label grids (N, g, g)) and real crops y ((M, D), (M, g, g))."""
    pairs = match_crops(grids_x, grids_y)
    return paired_skvd(np.asarray(features_x)[pairs.kept], np.asarray(features_y)[pairs.kept_partners],
                       len(grids_x), len(grids_y), pairs.kept_partners)


@dataclass(frozen=True)
class CkvdResult:
    """Mean of the per-class KVDs (None when no class has enough pairs) and each class's value and pairs."""

    mean: float | None
    per_class: dict[int, dict[str, float | int | None]]  # class id -> {"value", "pairs"}
    classes_measured: int
    min_pairs: int

    def as_dict(self) -> dict[str, object]:
        return {"mean": self.mean, "per_class": {str(k): v for k, v in self.per_class.items()},
                "classes_measured": self.classes_measured, "min_pairs": self.min_pairs}


def paired_ckvd(x: np.ndarray, y: np.ndarray, partners: np.ndarray, classes: np.ndarray,
                min_pairs: int = 2) -> CkvdResult:
    """cKVD of kept pairs (as `paired_skvd`) with each pair's class (P,) (see the module doc)."""
    if min_pairs < 2:
        raise ValueError(f"the unbiased MMD² needs at least 2 pairs per class, got min_pairs={min_pairs}")
    classes, partners = np.asarray(classes), np.asarray(partners)
    per_class: dict[int, dict[str, float | int | None]] = {}
    for c in np.unique(classes):
        members = classes == c
        n = int(members.sum())
        value, distinct = _paired_kvd(x[members], y[members], partners[members])
        per_class[int(c)] = {"value": value if n >= min_pairs else None, "pairs": n, "real_crops_used": distinct}
    values = [v["value"] for v in per_class.values() if v["value"] is not None]
    mean = float(np.mean(values)) if values else None
    return CkvdResult(mean, per_class, len(values), min_pairs)


def ckvd(features_x: np.ndarray, grids_x: np.ndarray, features_y: np.ndarray, grids_y: np.ndarray,
         min_pairs: int = 2) -> CkvdResult:
    """cKVD between crops x and real crops y (the inputs of `skvd`)."""
    pairs = match_crops(grids_x, grids_y)
    classes = dominant_class(np.asarray(grids_x)[pairs.kept])
    return paired_ckvd(np.asarray(features_x)[pairs.kept], np.asarray(features_y)[pairs.kept_partners],
                       pairs.kept_partners, classes, min_pairs)
