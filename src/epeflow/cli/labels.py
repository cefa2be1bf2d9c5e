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
    p.set_defaults(func=_labels)


def _labels(args: argparse.Namespace) -> int:
    from epeflow.labels.methods import run_labels

    run_labels(args.manifest, args.out_dir, spec(args), spec(args, "weights"), args.allow_random_weights,
                args.threads)
    return 0
