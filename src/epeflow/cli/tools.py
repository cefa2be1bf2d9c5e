"""Tools around the pipeline: config validation, weight checks, local GPU pinning."""

from __future__ import annotations

import argparse
import json
import sys

from epeflow.cli.common import path_arg


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "config",
        help="validate config files and print the merged config with defaults",
        description="Validate config YAML files (later files overlay earlier ones, as Snakemake's "
        "--configfile) and print the result with every default filled in.",
    )
    p.add_argument("files", nargs="*", type=path_arg, help="config YAML files")
    p.add_argument("--docs", action="store_true", help="print the configuration reference (config/README.md)")
    p.set_defaults(func=_config)

    p = sub.add_parser(
        "check-weights",
        help="check that a downloaded weight file loads as the pipeline will load it",
        description="Load a weight file exactly as the pipeline will (strict keys and shapes, checksum where "
        "known) and say whether it is usable. Exit status 0 when it is, non-zero with the reason when not.",
    )
    p.add_argument("kind", choices=("mseg", "vgg16", "lpips"), help="which weights the file should hold")
    p.add_argument("path", type=path_arg, help="the downloaded file")
    p.add_argument("--sha256", default=None, help="expected sha256 of the file (optional)")
    p.set_defaults(func=_check_weights)

    p = sub.add_parser(
        "on-gpus",
        help="run a command on its own free GPU(s) of this machine (what GPU rules start through)",
        description="Take the N lowest free GPU slots of this machine (file locks shared by all jobs), set "
        "CUDA_VISIBLE_DEVICES to them and replace this process by the command, which holds the slots until "
        "it ends; waits while none are free. N=0 hides every GPU; under SLURM the allocation is left as it "
        "is. Devices: EPEFLOW_GPU_DEVICES, else CUDA_VISIBLE_DEVICES, else `nvidia-smi -L`.",
    )
    p.add_argument("gpus", type=int, help="number of GPUs the command needs")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- then the command and its arguments")
    p.set_defaults(func=_on_gpus)


def _config(args: argparse.Namespace) -> int:
    from epeflow.config import load_config

    if args.docs:
        from epeflow.config_docs import render_config_docs

        sys.stdout.write(render_config_docs())
        return 0
    if not args.files:
        from epeflow.errors import EpeflowError

        raise EpeflowError("name at least one config file, e.g. `epeflow config config/config.yaml`")
    cfg = load_config(args.files)
    json.dump(cfg, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _check_weights(args: argparse.Namespace) -> int:
    from epeflow.check_weights import check_weights

    print(check_weights(args.kind, args.path, args.sha256))
    return 0


def _on_gpus(args: argparse.Namespace) -> int:
    from epeflow.gpu_slots import exec_on_gpus

    cmd = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
    exec_on_gpus(args.gpus, cmd)
    return 0  # not reached: the command replaced this process
