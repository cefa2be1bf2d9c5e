"""CLI commands of the labels stage: `epeflow labels`."""

from __future__ import annotations

import argparse

from epeflow.cli.common import add_spec, add_weights, path_arg, spec


def register(sub: argparse._SubParsersAction) -> None:
    """Add this stage's commands."""
    p = sub.add_parser(
        "labels",
        help="robust label maps (MSeg universal ids) for every frame of a manifest",
        description="Write one uint8 PNG of MSeg universal class ids per manifest frame, by the dataset's "
        "`labels` method (`gt`: map Cityscapes-id GT labels, `given`: the file list's robust labels, `mseg`: "
        "run MSeg). Resumable: a rerun after a kill keeps the maps already written.",
    )
    p.add_argument("manifest", type=path_arg, help="manifest.parquet of the dataset")
    p.add_argument("out_dir", type=path_arg, help="labels folder to write (<id>.png + labels.json)")
    add_spec(p, "dataset")
    add_weights(p)
    p.add_argument("--threads", type=int, default=1, help="frames read / written in parallel")
    p.add_argument("--shard", type=int, default=None, help="only this shard's frames (0-based), into a shard folder")
    p.add_argument("--num-shards", type=int, default=1, help="number of shards the frames are split into")
    p.set_defaults(func=_labels)

    p = sub.add_parser(
        "labels-merge",
        help="one labels folder from the folders of `epeflow labels --shard` jobs",
        description="Check that the shard folders share method and settings and cover every frame once, then "
        "link (or copy) their maps into one folder with the labels.json one job would write.",
    )
    p.add_argument("shards", nargs="+", type=path_arg, help="shard folders, any order")
    p.add_argument("--out", type=path_arg, required=True, help="labels folder to write")
    p.set_defaults(func=_merge)


def _labels(args: argparse.Namespace) -> int:
    from epeflow.labels.methods import run_labels

    run_labels(args.manifest, args.out_dir, spec(args), spec(args, "weights"), args.allow_random_weights,
                args.threads, args.shard, args.num_shards)
    return 0


def _merge(args: argparse.Namespace) -> int:
    from epeflow.artifacts.labels import merge_label_shards

    merge_label_shards(args.shards, args.out)
    return 0
