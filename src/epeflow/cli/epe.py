"""`epeflow epe ...`: drop-in replacements of the reference's matching scripts, and conversions between
the reference's files and epeflow's stores."""

from __future__ import annotations

import argparse

from epeflow.cli.common import path_arg


def _add(sub: argparse._SubParsersAction, name: str, summary: str, description: str, func) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=summary, description=description)
    p.set_defaults(func=func)
    return p


def register(sub: argparse._SubParsersAction) -> None:
    """Add `epeflow epe` and its subcommands."""
    epe = sub.add_parser(
        "epe",
        help="reference-compatible matching scripts and import/export of the reference's files",
        description="Drop-in replacements of code/epe/matching/{feature_based/find_knn,filter,compute_weights}.py "
        "(same arguments, files and values) and conversions between the reference's files and epeflow stores.",
    )
    cmds = epe.add_subparsers(dest="epe_command", metavar="COMMAND", required=True)

    p = _add(
        cmds,
        "find-knn",
        "find_knn.py: exact k-NN between two crop feature files",
        "Like find_knn.py: L2-normalise the `crops` arrays of both npz files and write the k nearest target "
        "crops of every source crop (npz `ind`, `dist`: squared L2). Chunked, so large sets fit in memory.",
        _find_knn,
    )
    p.add_argument("file_src", type=path_arg, help="feature npz of the source dataset (key `crops`)")
    p.add_argument("file_dst", type=path_arg, help="feature npz of the target dataset (key `crops`)")
    p.add_argument("out", type=path_arg, help="output npz (`.npz` is appended when missing)")
    p.add_argument("-k", type=int, default=5, help="number of neighbours (default 5, as the reference)")

    p = _add(
        cmds,
        "filter",
        "filter.py: keep k-NN pairs below a distance as a matched-crops csv",
        "Like filter.py: keep pairs with dist < MAX_DIST and write their crops (from the crop csv files) as "
        "src_path,src_r0,src_r1,src_c0,src_c1,dst_path,dst_r0,dst_r1,dst_c0,dst_c1.",
        _filter,
    )
    p.add_argument("knn_path", type=path_arg, help="k-NN npz (`ind`, `dist`)")
    p.add_argument("src_crop_path", type=path_arg, help="crop csv of the source dataset (id,path,r0,r1,c0,c1)")
    p.add_argument("dst_crop_path", type=path_arg, help="crop csv of the target dataset")
    p.add_argument("max_dist", type=float, help="maximum distance (the reference uses 1.0)")
    p.add_argument("matched_crop_path", type=path_arg, help="matched-crops csv to write")

    p = _add(
        cmds,
        "compute-weights",
        "compute_weights.py: sampling weights of matched crops",
        "Like compute_weights.py: density of matched source crops over one HEIGHTxWIDTH map, weight = "
        "max(density) / mean(density over the crop); npz `w` of shape (N, 1).",
        _compute_weights,
    )
    p.add_argument("matched_crop_path", type=path_arg, help="matched-crops csv")
    p.add_argument("height", type=int, help="height of the source images")
    p.add_argument("width", type=int, help="width of the source images")
    p.add_argument("weight_path", type=path_arg, help="output npz (`.npz` is appended when missing)")

    _register_export(cmds)
    _register_import(cmds)


def _register_export(cmds: argparse._SubParsersAction) -> None:
    export = cmds.add_parser(
        "export",
        help="write epeflow stores as the reference's files",
        description="Write epeflow stores in the reference's formats. npz files get an extra key "
        "`epeflow_attrs` (ignored by the reference) so `epeflow epe import` restores the store exactly.",
    )
    sub = export.add_subparsers(dest="what", metavar="WHAT", required=True)
    _register_network_export(sub)
    p = _add(
        sub,
        "crops",
        "crops.zarr -> crop csv + feature npz",
        "Crop list csv (id,path,r0,r1,c0,c1; paths from the manifest) and feature npz (`crops`).",
        _export_crops,
    )
    p.add_argument("crops", type=path_arg, help="crops.zarr")
    p.add_argument("manifest", type=path_arg, help="manifest.parquet of the same dataset")
    p.add_argument("out_csv", type=path_arg, help="crop csv to write")
    p.add_argument("out_npz", type=path_arg, help="feature npz to write")
    p = _add(sub, "knn", "knn.zarr -> k-NN npz", "k-NN npz with `ind` and `dist`.", _export_knn)
    p.add_argument("knn", type=path_arg, help="knn.zarr")
    p.add_argument("out_npz", type=path_arg, help="k-NN npz to write")
    p = _add(
        sub,
        "matches",
        "matches.parquet -> matched-crops csv",
        "Matched-crops csv; boxes from both crop stores, frame paths from both manifests.",
        _export_matches,
    )
    p.add_argument("matches", type=path_arg, help="matches.parquet")
    p.add_argument("src_manifest", type=path_arg, help="source manifest.parquet")
    p.add_argument("dst_manifest", type=path_arg, help="target manifest.parquet")
    p.add_argument("out_csv", type=path_arg, help="matched-crops csv to write")
    p.add_argument("--src-crops", type=path_arg, required=True, help="source crops.zarr the matches were made from")
    p.add_argument("--dst-crops", type=path_arg, required=True, help="target crops.zarr the matches were made from")
    p = _add(sub, "weights", "weights.parquet -> weights npz", "Weights npz with `w` of shape (N, 1).", _export_weights)
    p.add_argument("weights", type=path_arg, help="weights.parquet")
    p.add_argument("out_npz", type=path_arg, help="weights npz to write")
    p = _add(
        sub,
        "filelist",
        "manifest -> EPE file list",
        "One frame a line: image,robust_label,gbuffer,gt_label (synthetic) or image,robust_label (real).",
        _export_filelist,
    )
    p.add_argument("manifest", type=path_arg, help="manifest.parquet")
    p.add_argument("out", type=path_arg, help="file list to write")
    p.add_argument(
        "--columns",
        default=None,
        help="comma-separated columns out of image,robust_label,gbuffer,gt_label (default by role)",
    )
    p.add_argument(
        "--labels-dir",
        type=path_arg,
        default=None,
        help="robust labels as <DIR>/<id>.png (e.g. results/datasets/<ds>/labels)",
    )
    p.add_argument("--split", choices=["train", "val", "test", "all"], default="all", help="frames of one split")


def _register_network_export(sub: argparse._SubParsersAction) -> None:
    p = _add(
        sub, "generator", "model.pt -> reference <name>_gen-network.pth.tar",
        "The generator of an epeflow model.pt as a file the reference code loads (width 1.0, >= 3 stages).",
        _export_generator,
    )
    p.add_argument("model", type=path_arg, help="model.pt written by `epeflow train` or `epe import generator`")
    p.add_argument("out", type=path_arg, help="<name>_gen-network.pth.tar to write")
    p.add_argument("--allow-nonreference", action="store_true", help="write widths the reference cannot build")
    p = _add(
        sub, "discriminator", "training checkpoint -> reference <name>_disc-network.pth.tar",
        "The PPDE discriminator of an epeflow checkpoint (results/<exp>/checkpoints/ckpt-*.pt) as the "
        "reference's discriminator file, so a reference run can continue from it.",
        _export_discriminator,
    )
    p.add_argument("checkpoint", type=path_arg, help="ckpt-*.pt of an epeflow training run")
    p.add_argument("out", type=path_arg, help="<name>_disc-network.pth.tar to write")
    p.add_argument("--allow-nonreference", action="store_true", help="write widths the reference cannot build")


def _register_import(cmds: argparse._SubParsersAction) -> None:
    imp = cmds.add_parser(
        "import",
        help="turn the reference's files into epeflow stores",
        description="Read the reference's files into epeflow stores, so later stages can continue from them. "
        "Image paths are matched to manifest frames by path, absolute path, then unique file stem.",
    )
    sub = imp.add_subparsers(dest="what", metavar="WHAT", required=True)
    p = _add(
        sub, "crops", "crop csv + feature npz -> crops.zarr", "crops.zarr from collect_crops.py's files.", _import_crops
    )
    p.add_argument("crop_csv", type=path_arg, help="crop csv (id,path,r0,r1,c0,c1)")
    p.add_argument("features_npz", type=path_arg, help="feature npz (`crops`)")
    p.add_argument("manifest", type=path_arg, help="manifest.parquet of the dataset the crops come from")
    p.add_argument("out", type=path_arg, help="crops.zarr to write")
    p.add_argument("--chunk-size", type=int, default=4096, help="crops per zarr chunk")
    p = _add(sub, "knn", "k-NN npz -> knn.zarr", "knn.zarr from find_knn.py's npz.", _import_knn)
    p.add_argument("knn_npz", type=path_arg, help="k-NN npz (`ind`, `dist`)")
    p.add_argument("out", type=path_arg, help="knn.zarr to write")
    p.add_argument("--chunk-size", type=int, default=65536, help="rows per zarr chunk")
    p = _add(
        sub,
        "matches",
        "matched-crops csv -> matches.parquet",
        "matches.parquet from filter.py's csv; crop ids from the crop stores, rank and distance from "
        "knn.zarr (import those first).",
        _import_matches,
    )
    p.add_argument("matched_csv", type=path_arg, help="matched-crops csv")
    p.add_argument("knn", type=path_arg, help="knn.zarr the matches were filtered from")
    p.add_argument("src_crops", type=path_arg, help="source crops.zarr")
    p.add_argument("src_manifest", type=path_arg, help="source manifest.parquet")
    p.add_argument("dst_crops", type=path_arg, help="target crops.zarr")
    p.add_argument("dst_manifest", type=path_arg, help="target manifest.parquet")
    p.add_argument("out", type=path_arg, help="matches.parquet to write")
    p.add_argument("--max-dist", type=float, default=None, help="threshold the csv was made with (recorded)")
    p = _add(
        sub,
        "weights",
        "weights npz -> weights.parquet",
        "weights.parquet from compute_weights.py's npz.",
        _import_weights,
    )
    p.add_argument("weights_npz", type=path_arg, help="weights npz (`w`)")
    p.add_argument("out", type=path_arg, help="weights.parquet to write")
    p = _add(
        sub,
        "generator",
        "reference <name>_gen-network.pth.tar -> model.pt",
        "model.pt from a generator trained with the reference code. Stages, G-buffer layers, channels, classes "
        "and mode are read from the file's keys and shapes; --gbuffers gives the G-buffer channel names and "
        "statistics that `epeflow enhance` normalises with (not needed for img-mode generators).",
        _import_generator,
    )
    p.add_argument("reference_file", type=path_arg, help="<name>_gen-network.pth.tar written by the reference")
    p.add_argument("--out", type=path_arg, required=True, help="model.pt to write")
    p.add_argument("--gbuffers", type=path_arg, default=None, help="gbuffers.zarr of the dataset to enhance")
    p.add_argument("--gbuffer-mode", choices=["fake", "all", "no_light", "geometry", "img"], default=None,
                   help="G-buffer mode when the channel count does not say it")
    p.add_argument("--num-stages", type=int, default=None, help="HRNet stages, when not inferable")
    _register_run_import(sub)


def _register_run_import(sub: argparse._SubParsersAction) -> None:
    p = _add(
        sub, "run", "reference training run -> init.pt to continue it with `epeflow train`",
        "init.pt (generator, discriminator, Adam moments, iteration) from one save of a reference training run. "
        "The <name>_{gen,disc}-optimizer and -scheduler files next to the network files are read when present "
        "(else the run continues with fresh Adam, as logged). Set `train.init_from: <OUT>` in the experiment: "
        "`epeflow train` then starts from it instead of random weights (its content is part of the run's "
        "fingerprint), checks that it fits the experiment's networks and labels, and resumes its own checkpoints "
        "as usual. Iteration: --iteration, else the generator scheduler's last_epoch, else the Adam step count, "
        "else <i> // 2 from <name>-<i>_gen-network.pth.tar (the reference counts both networks' updates).",
        _import_run,
    )
    p.add_argument("--generator", type=path_arg, required=True, help="<name>_gen-network.pth.tar")
    p.add_argument("--discriminator", type=path_arg, required=True, help="<name>_disc-network.pth.tar")
    p.add_argument("--out", type=path_arg, required=True, help="init.pt to write (e.g. results/<exp>/init.pt)")
    p.add_argument("--iteration", type=int, default=None,
                   help="generator updates done (default: from the scheduler / optimizer files or the file name)")
    p.add_argument("--fresh-optimizers", action="store_true",
                   help="ignore the reference's optimizer files: the continued run starts fresh Adam")
    p.add_argument("--gbuffer-mode", choices=["fake", "all", "no_light", "geometry", "img"], default=None,
                   help="G-buffer mode when the channel count does not say it (the experiment's G-buffers)")
    p.add_argument("--num-stages", type=int, default=None, help="HRNet stages, when not inferable")
    p.add_argument("--width", type=float, default=None,
                   help="generator channel multiplier, when not inferable (narrow generators of few stages)")


def _find_knn(args: argparse.Namespace) -> int:
    from epeflow.epe.formats import find_knn_files

    find_knn_files(args.file_src, args.file_dst, args.out, args.k)
    return 0


def _filter(args: argparse.Namespace) -> int:
    from epeflow.epe.formats import filter_files

    filter_files(args.knn_path, args.src_crop_path, args.dst_crop_path, args.max_dist, args.matched_crop_path)
    return 0


def _compute_weights(args: argparse.Namespace) -> int:
    from epeflow.epe.formats import compute_weights_file

    compute_weights_file(args.matched_crop_path, args.height, args.width, args.weight_path)
    return 0


def _export_crops(args: argparse.Namespace) -> int:
    from epeflow.epe.formats import export_crops

    export_crops(args.crops, args.manifest, args.out_csv, args.out_npz)
    return 0


def _export_knn(args: argparse.Namespace) -> int:
    from epeflow.epe.formats import export_knn

    export_knn(args.knn, args.out_npz)
    return 0


def _export_matches(args: argparse.Namespace) -> int:
    from epeflow.epe.formats import export_matches

    export_matches(args.matches, args.src_crops, args.src_manifest, args.dst_crops, args.dst_manifest, args.out_csv)
    return 0


def _export_weights(args: argparse.Namespace) -> int:
    from epeflow.epe.formats import export_weights

    export_weights(args.weights, args.out_npz)
    return 0


def _export_filelist(args: argparse.Namespace) -> int:
    from epeflow.epe.formats import export_filelist

    columns = [c.strip() for c in args.columns.split(",") if c.strip()] if args.columns else None
    export_filelist(args.manifest, args.out, columns, args.labels_dir, args.split)
    return 0


def _import_crops(args: argparse.Namespace) -> int:
    from epeflow.epe.formats import import_crops

    import_crops(args.crop_csv, args.features_npz, args.manifest, args.out, args.chunk_size)
    return 0


def _import_knn(args: argparse.Namespace) -> int:
    from epeflow.epe.formats import import_knn

    import_knn(args.knn_npz, args.out, args.chunk_size)
    return 0


def _import_matches(args: argparse.Namespace) -> int:
    from epeflow.epe.formats import import_matches

    import_matches(
        args.matched_csv,
        args.knn,
        args.src_crops,
        args.src_manifest,
        args.dst_crops,
        args.dst_manifest,
        args.out,
        args.max_dist,
    )
    return 0


def _import_weights(args: argparse.Namespace) -> int:
    from epeflow.epe.formats import import_weights

    import_weights(args.weights_npz, args.out)
    return 0


def _import_generator(args: argparse.Namespace) -> int:
    from epeflow.epe.networks import import_generator_model

    overrides = {"num_stages": args.num_stages} if args.num_stages else {}
    import_generator_model(args.reference_file, args.out, args.gbuffers, args.gbuffer_mode, **overrides)
    return 0


def _export_generator(args: argparse.Namespace) -> int:
    from epeflow.epe.networks import export_generator_model

    export_generator_model(args.model, args.out, args.allow_nonreference)
    return 0


def _export_discriminator(args: argparse.Namespace) -> int:
    from epeflow.epe.networks import export_discriminator_checkpoint

    export_discriminator_checkpoint(args.checkpoint, args.out, reference_shapes=not args.allow_nonreference)
    return 0


def _import_run(args: argparse.Namespace) -> int:
    from epeflow.epe.run_checkpoint import ReferenceRun, import_run

    run = ReferenceRun.beside(args.generator, args.discriminator, optimizers=not args.fresh_optimizers)
    overrides = {k: v for k, v in (("num_stages", args.num_stages), ("width", args.width)) if v is not None}
    import_run(run, args.out, args.iteration, args.gbuffer_mode, **overrides)
    return 0
