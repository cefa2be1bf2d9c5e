"""CLI command of the enhance stage: `enhance` (held-out frames with a trained model)."""

from __future__ import annotations

import argparse

from epeflow.cli.common import add_spec, path_arg, spec


def register(sub: argparse._SubParsersAction) -> None:
    """Add this stage's commands."""
    p = sub.add_parser(
        "enhance",
        help="enhance held-out synthetic frames with a trained model",
        description="Run the trained generator on whole frames of the configured split of the synthetic "
        "dataset and write <id>.png per frame plus index.parquet into OUT_DIR. Finished frames of the same "
        "model are kept when a killed job is rerun.",
    )
    p.add_argument("model", type=path_arg, help="model.pt written by `epeflow train`")
    p.add_argument("manifest", type=path_arg, help="manifest.parquet of the synthetic dataset")
    p.add_argument("gbuffers", type=path_arg, help="gbuffers.zarr of the synthetic dataset")
    p.add_argument("out_dir", type=path_arg, help="folder to write (created atomically)")
    add_spec(p, "the experiment's `enhance`")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    p.set_defaults(func=_enhance)


def _enhance(args: argparse.Namespace) -> int:
    import torch

    from epeflow.enhance import run_enhance

    torch.set_num_threads(max(1, args.threads))
    run_enhance(args.model, args.manifest, args.gbuffers, args.out_dir, spec(args))
    return 0
