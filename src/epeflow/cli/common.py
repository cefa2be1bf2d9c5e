"""Argument helpers shared by the CLI modules."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from epeflow.config import parse_json_arg, validate_section


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
    """A JSON-object argument; `--weights` is checked against the config schema here (a wrong type is an
    error naming the key, not a TypeError deep in a stage), other specs by the stage that reads them."""
    value = parse_json_arg(getattr(args, name), f"--{name.replace('_', '-')}")
    if name == "weights":
        validate_section("weights", value, ("weights",))  # checks a copy; the value is passed on as given
    return value


def path_arg(text: str) -> Path:
    return Path(text)
