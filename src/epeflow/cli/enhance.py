"""CLI commands of the enhance stage: `enhance` (held-out frames of the pipeline, or any folder of frames)
and `profile` (what a model.pt costs per frame)."""

from __future__ import annotations

import argparse

from epeflow.cli.common import add_spec, path_arg, spec
from epeflow.errors import EpeflowError

NO_GBUFFERS = "-"  # GBUFFERS argument of an image-only model

ENHANCE_USAGE = """\
  pipeline:  epeflow enhance MODEL MANIFEST GBUFFERS OUT_DIR [--robust-labels DIR] [--spec JSON] [--threads N]
             (GBUFFERS `-` for an image-only model)
  folder:    epeflow enhance --model MODEL --images DIR --out DIR [--gbuffers DIR] [--labels DIR | --material NAME]
                             [--png-bits {8,16}] [--memory-mb MB] [--device DEV] [--spec JSON] [--threads N]"""

FOLDER_HELP = """\
Folder mode, for a model used outside the pipeline:
  --images DIR    frames (.png / .jpg, found recursively), enhanced to OUT/<relative path, / as __>.png
  --gbuffers DIR  one G-buffer file per frame under the same relative path: <rel>.npz (array `data`,
                  H x W x C, optionally `names`) or <rel>.npy (H x W x C), at the frame's size. With names,
                  the channels the model was trained on are picked by name; without, the file must hold
                  exactly those, in order (`epeflow profile MODEL` and model.pt's `gbuffers` entry list them).
                  Not needed for an image-only model. Models trained on `fake` G-buffers need the pipeline.
  --labels DIR    <rel>.png label maps of Cityscapes ids (PfD's and Cityscapes' labelIds files; a game's
                  semantic stencil mapped to those ids); they give the generator its material maps.
  --material NAME instead of --labels: one material for the whole frame (rougher results).
Frames larger than --memory-mb are enhanced in blended tiles (config keys enhance.*, also via --spec)."""


def register(sub: argparse._SubParsersAction) -> None:
    """Add this stage's commands."""
    from epeflow.common.taxonomy import MATERIAL_NAMES

    p = sub.add_parser(
        "enhance",
        help="enhance held-out synthetic frames, or a folder of frames, with a trained model",
        usage=ENHANCE_USAGE,
        description="Pipeline mode (positional arguments, as rules/enhance.smk calls it): run the trained "
        "generator on the configured split of the synthetic dataset and write <id>.png per frame plus "
        "index.parquet into OUT_DIR. Finished frames of the same model are kept when a killed job is rerun. "
        "Folder mode (--model/--images/--out): see below.",
        epilog=FOLDER_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", type=path_arg, nargs="?", help="model.pt written by `epeflow train`")
    p.add_argument("manifest", type=path_arg, nargs="?", help="manifest.parquet of the synthetic dataset")
    p.add_argument("gbuffers", type=path_arg, nargs="?",
                   help=f"gbuffers.zarr of the synthetic dataset ({NO_GBUFFERS!r} for an image-only model)")
    p.add_argument("--robust-labels", type=path_arg, default=None,
                   help="pipeline mode: robust label folder of the synthetic dataset; materials of frames without "
                        "a GT label come from it")
    p.add_argument("out_dir", type=path_arg, nargs="?", help="folder to write (created atomically)")
    folder = p.add_argument_group("folder mode")
    folder.add_argument("--model", dest="model_file", type=path_arg, help="model.pt to use")
    folder.add_argument("--images", type=path_arg, help="folder of frames to enhance")
    folder.add_argument("--gbuffers", dest="gbuffer_dir", type=path_arg, help="folder of per-frame .npz / .npy")
    folder.add_argument("--labels", type=path_arg, help="folder of Cityscapes-id label PNGs")
    folder.add_argument("--material", choices=MATERIAL_NAMES, help="one material for every pixel (no --labels)")
    folder.add_argument("--out", type=path_arg, help="folder to write the enhanced PNGs into")
    folder.add_argument("--png-bits", type=int, choices=(8, 16), help="bits per channel (config enhance.png_bits)")
    folder.add_argument("--memory-mb", type=float, help="memory budget of one forward pass (enhance.memory_mb)")
    folder.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where to run (enhance.device)")
    add_spec(p, "the experiment's `enhance`")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    p.add_argument("--shard", type=int, default=None, help="pipeline mode: only this shard of the frames (0-based)")
    p.add_argument("--num-shards", type=int, default=1, help="pipeline mode: number of shards")
    p.set_defaults(func=_enhance)

    p = sub.add_parser(
        "enhance-merge",
        help="one enhanced folder from the folders of `epeflow enhance --shard` jobs",
        description="Check that the shard folders come from one model and config and cover the selected frames "
        "once, then link (or copy) their PNGs into one folder with the index.parquet one job would write.",
    )
    p.add_argument("shards", nargs="+", type=path_arg, help="shard folders, any order")
    p.add_argument("--out", type=path_arg, required=True, help="enhanced folder to write")
    p.set_defaults(func=_merge)

    p = sub.add_parser(
        "profile",
        help="parameters, FLOPs, peak memory and frames/s of a model.pt's networks",
        description="Measure the generator of MODEL (and the discriminator its training settings describe: "
        "model.pt stores no discriminator, so it is built from those settings with random weights, which "
        "does not change its cost) on random inputs of one frame size, and print a table: parameters, FLOPs "
        "per frame (torch.utils.flop_counter), peak memory (CUDA max_memory_allocated on a GPU; on the CPU "
        "the growth of the process's peak resident memory, rough for small frames), frames/s (best of "
        "--repeats forward passes after one warm-up) and the estimate `enhance.memory_mb` is compared with. "
        "bf16 autocast and channels-last on a GPU, as enhancement runs.",
    )
    p.add_argument("model", type=path_arg, help="model.pt to profile")
    p.add_argument("--size", default="540x960", help="frame size HEIGHTxWIDTH (default 540x960)")
    p.add_argument("--batch", type=int, default=1, help="frames per forward pass")
    p.add_argument("--repeats", type=int, default=3, help="timed forward passes per network (at least 1)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where to run")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch")
    p.set_defaults(func=_profile)


def _merge(args: argparse.Namespace) -> int:
    from epeflow.enhance import merge_enhanced_shards

    merge_enhanced_shards(args.shards, args.out)
    return 0


def _enhance(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(max(1, args.threads))
    pipeline = [args.model, args.manifest, args.gbuffers, args.out_dir]
    folder = {"--model": args.model_file, "--images": args.images, "--out": args.out}
    if any(pipeline):
        if not all(pipeline) or any(folder.values()) or args.gbuffer_dir or args.labels or args.material:
            raise EpeflowError("give either MODEL MANIFEST GBUFFERS OUT_DIR (pipeline) or --model, --images and "
                               f"--out (folder), not a mix; usage:\n{ENHANCE_USAGE}")
        from epeflow.enhance import run_enhance

        gbuffers = None if str(args.gbuffers) == NO_GBUFFERS else args.gbuffers
        run_enhance(args.model, args.manifest, gbuffers, args.out_dir, spec(args), labels=args.robust_labels,
                    shard=args.shard, num_shards=args.num_shards)
        return 0
    if args.robust_labels is not None:
        raise EpeflowError("--robust-labels belongs to the pipeline mode; in folder mode give --labels (Cityscapes "
                           f"ids) or --material; usage:\n{ENHANCE_USAGE}")
    missing = [flag for flag, value in folder.items() if value is None]
    if missing:
        raise EpeflowError(f"folder mode needs {', '.join(missing)}; usage:\n{ENHANCE_USAGE}")
    overrides = {"png_bits": args.png_bits, "memory_mb": args.memory_mb, "device": args.device}
    settings = {**spec(args), **{k: v for k, v in overrides.items() if v is not None}}
    from epeflow.enhance.folder import enhance_folder

    written = enhance_folder(args.model_file, args.images, args.out, args.gbuffer_dir, args.labels, args.material,
                             settings)
    print(f"wrote {len(written)} enhanced frames to {args.out}")
    return 0


def _profile(args: argparse.Namespace) -> int:
    import torch

    from epeflow.enhance.profile import format_profile, parse_size, profile_model

    torch.set_num_threads(max(1, args.threads))
    report = profile_model(args.model, parse_size(args.size), args.batch, args.repeats, args.device)
    print(format_profile(report))
    return 0
