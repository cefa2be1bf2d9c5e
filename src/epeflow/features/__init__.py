"""The crops stage: random crops per frame and their VGG16 relu5_3 descriptors, into crops.zarr.

Other stages read the store through `epeflow.artifacts.crops.CropStore`.
"""
