"""Argument helpers shared by the CLI modules."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from epeflow.config import parse_json_arg


def add_spec(parser: argparse.ArgumentParser, what: str) -> None:
    """`--spec JSON`: the config section of this stage, passed whole so Snakemake reruns when it changes."""
    parser.add_argument(
        "--spec", default="{}", metavar="JSON", help=f"{what} settings as a JSON object (config section)"
    )


def add_weights(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--weights", default="{}", metavar="JSON", help="the config's `weights` section as JSON (paths, sha256)"
    )
    parser.add_argument(
        "--allow-random-weights",
        action="store_true",
        help="run without pretrained weights; outputs are marked 'random weights — not a real measurement'",
    )


def spec(args: argparse.Namespace, name: str = "spec") -> dict[str, Any]:
    return parse_json_arg(getattr(args, name), f"--{name.replace('_', '-')}")


def path_arg(text: str) -> Path:
    return Path(text)
