"""CLI commands of the matching stage: k-NN, distance filter, sampling weights, preview pictures."""

from __future__ import annotations

import argparse

from epeflow.cli.common import add_spec, path_arg, spec


def register(sub: argparse._SubParsersAction) -> None:
    """Add this stage's commands."""
    p = sub.add_parser(
        "knn",
        help="k nearest target crops of every source crop (faiss)",
        description="L2-normalise crop features and find for every source crop its k nearest target crops by "
        "squared L2 distance (exact `flat`, or approximate `ivf` / `ivfpq`), reading both stores in chunks; "
        "writes knn.zarr (`index` [Ms, k] int64, `dist` [Ms, k] float32).",
    )
    p.add_argument("src", type=path_arg, help="source (synthetic) crops.zarr")
    p.add_argument("dst", type=path_arg, help="target (real) crops.zarr")
    p.add_argument("out", type=path_arg, help="knn.zarr to write")
    add_spec(p, "knn")
    p.add_argument("--threads", type=int, default=1, help="faiss CPU threads")
    p.set_defaults(func=_knn)

    p = sub.add_parser(
        "filter",
        help="keep k-NN pairs closer than max_dist",
        description="Keep the k-NN pairs whose distance is below --max-dist, in the reference's order (source "
        "crop, then neighbour rank): source and target crop ids, distance and rank; writes matches.parquet "
        "(frames and boxes stay in the crop stores).",
    )
    p.add_argument("knn", type=path_arg, help="knn.zarr")
    p.add_argument("src", type=path_arg, help="source crops.zarr")
    p.add_argument("dst", type=path_arg, help="target crops.zarr")
    p.add_argument("out", type=path_arg, help="matches.parquet to write")
    p.add_argument("--max-dist", type=float, required=True, help="keep pairs with distance below this")
    p.set_defaults(func=_filter)

    p = sub.add_parser(
        "weights",
        help="sampling weights that cover source frames evenly",
        description="Per matched pair: max(density) / mean(density over its source crop), where density counts "
        "the matched source crops covering each pixel (one map per frame size); writes weights.parquet.",
    )
    p.add_argument("matches", type=path_arg, help="matches.parquet")
    p.add_argument("src_crops", type=path_arg, help="source crops.zarr the matches were made from (boxes)")
    p.add_argument("manifest", type=path_arg, help="the source dataset's manifest.parquet (frame sizes)")
    p.add_argument("out", type=path_arg, help="weights.parquet to write")
    p.set_defaults(func=_weights)

    p = sub.add_parser(
        "preview",
        help="picture of random matched pairs and the k-NN distance histogram",
        description="Draw a grid of random matched pairs (source crop | target crop | distance) and a histogram "
        "of all k-NN distances with the max_dist threshold marked.",
    )
    p.add_argument("matches", type=path_arg, help="matches.parquet")
    p.add_argument("knn", type=path_arg, help="knn.zarr")
    p.add_argument("src_manifest", type=path_arg, help="source manifest.parquet")
    p.add_argument("dst_manifest", type=path_arg, help="target manifest.parquet")
    p.add_argument("--src-crops", type=path_arg, required=True, help="source crops.zarr the matches were made from")
    p.add_argument("--dst-crops", type=path_arg, required=True, help="target crops.zarr the matches were made from")
    p.add_argument("--grid", type=path_arg, required=True, help="PNG of matched pairs to write")
    p.add_argument("--hist", type=path_arg, required=True, help="PNG of the distance histogram to write")
    p.add_argument("--max-dist", type=float, required=True, help="threshold to mark in the histogram")
    p.add_argument("--pairs", type=int, default=12, help="number of pairs in the grid")
    p.add_argument("--seed", type=int, default=0, help="seed of the pair choice")
    p.set_defaults(func=_preview)


def _knn(args: argparse.Namespace) -> int:
    from epeflow.matching.knn import run_knn

    run_knn(args.src, args.dst, args.out, spec(args), args.threads)
    return 0


def _filter(args: argparse.Namespace) -> int:
    from epeflow.matching.filter import run_filter

    run_filter(args.knn, args.src, args.dst, args.out, args.max_dist)
    return 0


def _weights(args: argparse.Namespace) -> int:
    from epeflow.matching.coverage_weights import run_weights

    run_weights(args.matches, args.src_crops, args.manifest, args.out)
    return 0


def _preview(args: argparse.Namespace) -> int:
    from epeflow.matching.preview import run_preview

    run_preview(
        args.matches,
        args.knn,
        args.src_manifest,
        args.dst_manifest,
        args.src_crops,
        args.dst_crops,
        args.grid,
        args.hist,
        args.max_dist,
        args.pairs,
        args.seed,
    )
    return 0
