"""CLI command of the train stage: `train` (resumable GAN training)."""

from __future__ import annotations

import argparse

from epeflow.cli.common import add_spec, add_weights, path_arg, spec


def register(sub: argparse._SubParsersAction) -> None:
    """Add this stage's commands."""
    p = sub.add_parser(
        "train",
        help="train the generator on weighted matched crops (resumes from checkpoints)",
        description="Train the EPE-style generator against the perceptual discriminator on matched crop pairs "
        "drawn by their sampling weights. Checkpoints go to --checkpoints; a rerun continues from the latest "
        "one of the same run (same settings and inputs) and moves other runs' checkpoints aside; without one it "
        "starts from `train.init_from` when set (see `epeflow epe import run`). Writes the "
        "final model (generator, its config, G-buffer statistics, loss history, provenance) to --out.",
    )
    p.add_argument("--src-manifest", type=path_arg, required=True, help="manifest.parquet of the synthetic dataset")
    p.add_argument("--dst-manifest", type=path_arg, required=True, help="manifest.parquet of the real dataset")
    p.add_argument("--src-labels", type=path_arg, required=True, help="robust label folder of the synthetic dataset")
    p.add_argument("--dst-labels", type=path_arg, required=True, help="robust label folder of the real dataset")
    p.add_argument("--gbuffers", type=path_arg, default=None,
                   help="gbuffers.zarr of the synthetic dataset (leave out for `train.image_only: true`)")
    p.add_argument("--matches", type=path_arg, required=True, help="matches.parquet (matched crop pairs)")
    p.add_argument("--pair-weights", type=path_arg, required=True, help="weights.parquet (sampling weight per pair)")
    p.add_argument("--src-crops", type=path_arg, required=True, help="synthetic crops.zarr the matches were made from")
    p.add_argument("--dst-crops", type=path_arg, required=True, help="real crops.zarr the matches were made from")
    p.add_argument("--checkpoints", type=path_arg, required=True, help="folder of resumable checkpoints")
    p.add_argument("--out", type=path_arg, required=True, help="model.pt to write")
    p.add_argument("--tensorboard", type=path_arg, default=None,
                   help="folder for TensorBoard event files (losses, learning rates, speed, image grids)")
    add_spec(p, "the experiment's `train`")
    add_weights(p)
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    p.set_defaults(func=_train)


def _train(args: argparse.Namespace) -> int:
    import torch

    from epeflow.train import TrainInputs, run_train

    torch.set_num_threads(max(1, args.threads))
    inputs = TrainInputs(
        src_manifest=args.src_manifest, dst_manifest=args.dst_manifest, src_labels=args.src_labels,
        dst_labels=args.dst_labels, gbuffers=args.gbuffers, matches=args.matches, pair_weights=args.pair_weights,
        src_crops=args.src_crops, dst_crops=args.dst_crops,
    )
    run_train(inputs, args.checkpoints, args.out, spec(args), spec(args, "weights"), args.allow_random_weights,
              args.tensorboard)
    return 0
