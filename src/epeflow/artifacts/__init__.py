"""One module per file that a stage hands on: its reader, its writer, its columns / attributes / version.

Nothing outside this package opens these files directly (a test checks it). The modules:
manifest (manifest.parquet, skipped.tsv), labels (labels dir), gbuffers (gbuffers.zarr), crops (crops.zarr),
knn (knn.zarr), matches (matches.parquet), weights (weights.parquet), model (model.pt), checkpoints
(checkpoints/), enhanced (enhanced/index.parquet), metrics (metrics.json); zarr_rows holds what the zarr
stores share.
"""
