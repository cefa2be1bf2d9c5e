"""CLI command of the evaluate stage: `evaluate` (metrics.json)."""

from __future__ import annotations

import argparse
from pathlib import Path

from epeflow.cli.common import add_spec, add_weights, path_arg, spec
from epeflow.errors import EpeflowError


def register(sub: argparse._SubParsersAction) -> None:
    """Add this stage's commands."""
    p = sub.add_parser(
        "evaluate",
        help="KID / FID / sKVD / cKVD / SWD / LPIPS of enhanced frames and two baselines -> metrics.json",
        description="Compare enhanced frames with real ones: KID (and a Fréchet distance) on VGG16 relu5_3 "
        "frame features, sKVD / cKVD on crops paired by label layout (with --src-labels / --dst-labels), "
        "sliced Wasserstein distances, and LPIPS from each rendered frame, each for the enhanced frames and two "
        "baselines: the rendered frames as they are and their Reinhard colour transfer towards the real frames. "
        "Writes metrics.json with provenance; results computed with random weights carry the warning "
        "'random weights — not a real measurement'.",
    )
    p.add_argument("enhanced", type=path_arg, help="enhanced frame folder (<id>.png + index.parquet)")
    p.add_argument("src_manifest", type=path_arg, help="manifest.parquet of the source (synthetic) dataset")
    p.add_argument("dst_manifest", type=path_arg, help="manifest.parquet of the target (real) dataset")
    p.add_argument("out", type=path_arg, help="metrics.json to write")
    p.add_argument("--src-labels", type=path_arg, default=None,
                   help="labels folder of the source dataset (sKVD / cKVD; skipped without it)")
    p.add_argument("--dst-labels", type=path_arg, default=None,
                   help="labels folder of the target dataset (sKVD / cKVD; skipped without it)")
    add_spec(p, "the experiment's `evaluate`")
    add_weights(p)
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch and frame decoding")
    p.add_argument("--experiment", default=None, help="experiment name (default: the folder of OUT)")
    p.set_defaults(func=_evaluate)


def _labels(args: argparse.Namespace) -> tuple[Path, Path] | None:
    if (args.src_labels is None) != (args.dst_labels is None):
        raise EpeflowError("pass both --src-labels and --dst-labels (sKVD / cKVD pair crops by both), or neither")
    return None if args.src_labels is None else (args.src_labels, args.dst_labels)


def _scratch(args: argparse.Namespace) -> Path:
    """The colour-transfer baseline frames go next to metrics.json meanwhile (no small /tmp is filled)."""
    folder = args.out.resolve().parent
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _evaluate(args: argparse.Namespace) -> int:
    import torch

    from epeflow.artifacts.feature_cache import FeatureCache
    from epeflow.artifacts.metrics import write_metrics
    from epeflow.config import validate_section
    from epeflow.metrics.evaluate import run_evaluate

    torch.set_num_threads(max(1, args.threads))
    experiment = args.experiment or args.out.resolve().parent.name
    settings = validate_section("evaluate", spec(args), ("experiments", experiment, "evaluate"))
    cache = args.out.with_name(args.out.name + ".partial")  # per-set features, kept across a kill
    doc = run_evaluate(
        args.enhanced, args.src_manifest, args.dst_manifest, settings, spec(args, "weights"),
        args.allow_random_weights, experiment, threads=args.threads, labels=_labels(args), scratch=_scratch(args),
        feature_cache=cache,
    )
    write_metrics(args.out, doc)
    FeatureCache(cache).remove()
    return 0
