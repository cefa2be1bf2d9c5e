"""CLI commands of the crops stage: RGB statistics, crop features per shard, merge of shards."""

from __future__ import annotations

import argparse

from epeflow.cli.common import add_spec, add_weights, path_arg, spec


def register(sub: argparse._SubParsersAction) -> None:
    """Add this stage's commands."""
    p = sub.add_parser(
        "crop-stats",
        help="per-dataset RGB mean/std used to normalise VGG16 for crop features",
        description="Average per-frame RGB mean and std (images in [0, 1]) over up to `stats_frames` frames "
        "drawn with `seed` (the reference's normalisation of crop features); writes crop_stats.json.",
    )
    p.add_argument("manifest", type=path_arg, help="the dataset's manifest.parquet")
    p.add_argument("out", type=path_arg, help="crop_stats.json to write")
    add_spec(p, "crops")
    p.add_argument("--threads", type=int, default=1, help="threads decoding frames")
    p.set_defaults(func=_crop_stats)

    p = sub.add_parser(
        "crops",
        help="random crops per frame and their VGG16 relu5_3 features (one shard)",
        description="Sample `per_image` seeded crops of side `size` per frame and store their VGG16 relu5_3 "
        "features (float16) in a crops.zarr shard. Shard I of N holds the contiguous frames "
        "[I*F/N, (I+1)*F/N); crop positions depend only on (seed, frame), so any sharding gives the same crops.",
    )
    p.add_argument("manifest", type=path_arg, help="the dataset's manifest.parquet")
    p.add_argument("stats", type=path_arg, help="crop_stats.json from `epeflow crop-stats`")
    p.add_argument("out", type=path_arg, help="crops.zarr (shard) to write")
    p.add_argument("--shard", type=int, default=0, help="index of this shard (0-based)")
    p.add_argument("--num-shards", type=int, default=1, help="number of shards")
    add_spec(p, "crops")
    add_weights(p)
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    p.set_defaults(func=_crops)

    p = sub.add_parser(
        "crops-merge",
        help="concatenate crops.zarr shards in frame order",
        description="Check that the shards share their settings and together cover every frame once, then "
        "copy them chunk by chunk into one crops.zarr.",
    )
    p.add_argument("shards", nargs="+", type=path_arg, help="shard stores (any order)")
    p.add_argument("--out", type=path_arg, required=True, help="merged crops.zarr to write")
    p.set_defaults(func=_crops_merge)


def _crop_stats(args: argparse.Namespace) -> int:
    from epeflow.features.crop_stats import run_crop_stats

    run_crop_stats(args.manifest, args.out, spec(args), args.threads)
    return 0


def _crops(args: argparse.Namespace) -> int:
    from epeflow.features.crops import run_crops

    run_crops(
        args.manifest,
        args.stats,
        args.out,
        args.shard,
        args.num_shards,
        spec(args),
        spec(args, "weights"),
        args.allow_random_weights,
        args.threads,
    )
    return 0


def _crops_merge(args: argparse.Namespace) -> int:
    from epeflow.artifacts.crops import merge_crop_stores

    merge_crop_stores(args.shards, args.out)
    return 0
