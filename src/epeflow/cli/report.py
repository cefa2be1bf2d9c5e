"""CLI command of the report stage: `report` (one self-contained report.html)."""

from __future__ import annotations

import argparse

from epeflow.cli.common import path_arg


def register(sub: argparse._SubParsersAction) -> None:
    """Add this stage's commands."""
    p = sub.add_parser(
        "report",
        help="one self-contained HTML report of an experiment",
        description="Write an HTML file with images inlined: a red banner when anything was computed with "
        "random weights, the experiment summary, the metrics table (enhanced frames and both baselines) with "
        "provenance, per-class cKVD bars, training curves, matching statistics and histograms, and each "
        "rendered frame with its enhanced version under a before / after slider (inline CSS / JS, no CDN).",
    )
    p.add_argument("experiment", help="experiment name")
    p.add_argument("out", type=path_arg, help="report.html to write")
    p.add_argument("--metrics", type=path_arg, required=True, help="metrics.json from `epeflow evaluate`")
    p.add_argument("--model", type=path_arg, required=True, help="model.pt from `epeflow train`")
    p.add_argument("--enhanced", type=path_arg, required=True, help="enhanced frame folder")
    p.add_argument("--matches", type=path_arg, required=True, help="matches.parquet of the matching stage")
    p.add_argument("--pair-weights", type=path_arg, required=True, help="weights.parquet (sampling weights)")
    p.add_argument("--preview", type=path_arg, required=True, help="preview.png of matched crops")
    p.add_argument("--distances", type=path_arg, required=True, help="distances.png (kNN distance histogram)")
    p.add_argument("--src-crops", type=path_arg, required=True, help="source crops.zarr the matches were made from")
    p.add_argument("--dst-crops", type=path_arg, required=True, help="target crops.zarr the matches were made from")
    p.add_argument("--max-frames", type=int, default=8, help="frames in the source | enhanced grid")
    p.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from epeflow.report.report import ReportInputs, run_report

    inputs = ReportInputs(
        args.metrics,
        args.model,
        args.enhanced,
        args.matches,
        args.pair_weights,
        args.preview,
        args.distances,
        args.src_crops,
        args.dst_crops,
    )
    run_report(args.experiment, args.out, inputs, max_frames=args.max_frames)
    return 0
