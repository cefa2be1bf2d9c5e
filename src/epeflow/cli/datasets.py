"""CLI commands of the datasets stage: `epeflow demo` and `epeflow manifest`."""

from __future__ import annotations

import argparse

from epeflow.cli.common import add_spec, path_arg, spec


def register(sub: argparse._SubParsersAction) -> None:
    """Add this stage's commands."""
    p = sub.add_parser(
        "demo",
        help="generate an embedded demo dataset (procedural street scenes)",
        description="Generate a demo dataset from a dataset config entry with a `demo:` block: images, "
        "Cityscapes-id GT labels and (role synthetic) G-buffers of procedural street sequences. The role picks "
        "the look: `synthetic` is rendered (flat, clean), `real` is photographed (textured, graded, noisy).",
    )
    p.add_argument("out_dir", type=path_arg, help="folder to write (replaced atomically)")
    add_spec(p, "dataset")
    p.set_defaults(func=_demo)

    p = sub.add_parser(
        "manifest",
        help="list and check a dataset's frames into manifest.parquet",
        description="List a dataset (image folder, EPE file list, video sequences or generated demo), decode "
        "and check every frame and its labels / G-buffers, assign deterministic splits and write the manifest "
        "(one row per frame) plus skipped.tsv.",
    )
    p.add_argument("name", help="dataset name (config key under `datasets`)")
    p.add_argument("out", type=path_arg, help="manifest.parquet to write")
    p.add_argument("--skipped", type=path_arg, default=None, metavar="TSV",
                   help="where to list skipped frames (default: skipped.tsv beside the manifest)")
    add_spec(p, "dataset")
    p.add_argument("--demo-dir", type=path_arg, default=None, metavar="DIR",
                   help="folder written by `epeflow demo` (demo datasets only)")
    p.add_argument("--threads", type=int, default=1, help="frames checked in parallel")
    p.set_defaults(func=_manifest)


def _demo(args: argparse.Namespace) -> int:
    from epeflow.demo.generate import run_demo

    run_demo(args.out_dir, spec(args))
    return 0


def _manifest(args: argparse.Namespace) -> int:
    from epeflow.datasets.manifest import run_manifest

    skipped = args.skipped if args.skipped is not None else args.out.with_name("skipped.tsv")
    run_manifest(args.name, spec(args), args.out, skipped, demo_dir=args.demo_dir, threads=args.threads)
    return 0
