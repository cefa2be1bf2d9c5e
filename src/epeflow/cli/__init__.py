"""The `epeflow` command: one subcommand per pipeline stage, each a thin wrapper over a package function.

Subcommands live in small modules (one per stage) that each add their parsers; heavy imports (torch,
faiss, zarr) happen inside the command functions so `epeflow --help` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from epeflow import __version__
from epeflow.errors import EXIT_STOPPED, EpeflowError, RunStopped
from epeflow.log import setup_logging

# Order here is the order in `epeflow --help`: the pipeline's stages, then tools.
COMMAND_MODULES = (
    "datasets",
    "labels",
    "gbuffers",
    "crops",
    "matching",
    "train",
    "enhance",
    "evaluate",
    "report",
    "epe",
    "tools",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="epeflow",
        description="Enhancing Photorealism Enhancement as a cached, resumable pipeline. "
        "Each command is one stage; the Snakemake workflow runs them in order.",
    )
    parser.add_argument("--version", action="version", version=f"epeflow {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"epeflow.cli.{name}").register(sub)
    return parser


def quiet_openmp() -> None:
    """Let idle OpenMP threads sleep instead of spinning (unless the user chose otherwise).

    torch is imported lazily by the commands, so this runs before OpenMP starts. Measured on a 2-vCPU VM:
    spinning threads made small-convolution training steps 5x slower than one thread; passive waiting
    made 2 threads as fast as or faster than one.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def main(argv: Sequence[str] | None = None) -> int:
    quiet_openmp()
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        result = args.func(args)
    except EpeflowError as e:
        print(f"epeflow {args.command}: error: {e}", file=sys.stderr)
        return 2
    except RunStopped as e:
        print(f"epeflow {args.command}: {e}", file=sys.stderr)
        return EXIT_STOPPED
    except OSError as e:  # disk full, permission denied, read-only disk: one line, not a traceback
        from epeflow.io import system_error_message

        message = system_error_message(e)
        if message is None:
            raise
        print(f"epeflow {args.command}: error: {message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"epeflow {args.command}: interrupted; rerun to continue", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
