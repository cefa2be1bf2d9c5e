"""Logging and progress bars that read well both in a terminal and in a Snakemake log file."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def setup_logging(verbose: bool = False) -> None:
    """Log to stderr (Snakemake redirects it into logs/<rule>/...)."""
    level = logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format=_FORMAT, stream=sys.stderr, force=True)


def progress(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it",
             enabled: bool = True) -> Iterator[T]:
    """A tqdm bar on stderr; in non-interactive logs it updates at most every 10 s to keep logs short.
    `enabled=False` (a process other than the one that reports) shows none."""
    interactive = sys.stderr.isatty()
    disable = os.environ.get("EPEFLOW_NO_PROGRESS") == "1"
    return iter(
        tqdm(
            items,
            desc=desc,
            total=total,
            unit=unit,
            file=sys.stderr,
            mininterval=0.1 if interactive else 10.0,
            dynamic_ncols=interactive,
            disable=disable or not enabled,
        )
    )
