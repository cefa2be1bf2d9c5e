"""CLI commands of the gbuffers stage."""

from __future__ import annotations

import argparse

from epeflow.cli.common import add_spec, add_weights, path_arg, spec


def register(sub: argparse._SubParsersAction) -> None:
    """Add this stage's commands."""
    p = sub.add_parser(
        "gbuffers",
        help="import real G-buffers or compute fake ones (VGG16 features) into gbuffers.zarr",
        description="Build a dataset's G-buffer store. `gbuffers: real` imports the per-frame files named in "
        "the manifest (.npz / .npy / .png / .exr or a folder of them), checks them against their frames and "
        "keeps the configured channel group; `gbuffers: fake` stores 32 channels of VGG16 relu2_2 features at "
        "feature resolution, as the reference's generate_fake_gbuffers.py. Both record the per-channel mean / "
        "std. A killed run continues where it stopped.",
    )
    p.add_argument("manifest", type=path_arg, help="results/datasets/<ds>/manifest.parquet")
    p.add_argument("out", type=path_arg, help="output store, results/datasets/<ds>/gbuffers.zarr")
    add_spec(p, "the dataset's config entry (gbuffers, gbuffer_key, gbuffer_channels, ...)")
    add_weights(p)
    p.add_argument("--threads", type=int, default=1, help="threads decoding / compressing frames")
    p.add_argument("--shard", type=int, default=None, help="only this shard's frames (0-based), into a shard store")
    p.add_argument("--num-shards", type=int, default=1, help="number of shards the frames are split into")
    p.set_defaults(func=_gbuffers)

    p = sub.add_parser(
        "gbuffers-merge",
        help="one gbuffers.zarr from the stores of `epeflow gbuffers --shard` jobs",
        description="Check that the shard stores were built with one config from the same frames and cover "
        "every frame once, then link their frame files into one store, gather the per-frame moments and "
        "combine them into the dataset mean / std, as one job would.",
    )
    p.add_argument("shards", nargs="+", type=path_arg, help="shard stores, any order")
    p.add_argument("--out", type=path_arg, required=True, help="gbuffers.zarr to write")
    p.set_defaults(func=_merge)


def _gbuffers(args: argparse.Namespace) -> int:
    from epeflow.gbuffers import run_gbuffers

    run_gbuffers(
        args.manifest, args.out, spec(args), spec(args, "weights"), args.allow_random_weights, max(1, args.threads),
        args.shard, args.num_shards,
    )
    return 0


def _merge(args: argparse.Namespace) -> int:
    from epeflow.artifacts.gbuffers import merge_gbuffer_shards

    merge_gbuffer_shards(args.shards, args.out)
    return 0
