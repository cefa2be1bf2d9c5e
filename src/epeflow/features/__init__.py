"""Crop features: random crops per frame, their VGG16 relu5_3 descriptors and the crops.zarr store.

`CropStore` (no torch needed) is what other stages read; extraction lives in `features.crops`.
"""

from epeflow.features.crop_store import FEATURE_DIM, CropStore, merge_crop_stores

__all__ = ["FEATURE_DIM", "CropStore", "merge_crop_stores"]
