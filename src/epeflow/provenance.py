"""Marks results that were computed with random instead of pretrained weights.

Every artifact carries a `random_weights` flag; a stage sets it when it used random weights itself or
when any of its inputs carries it, so the flag reaches metrics and the report.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Mapping
from typing import Any

from epeflow import __version__

RANDOM_WEIGHTS_WARNING = "random weights — not a real measurement"


def stamp(random_weights: bool, **extra: Any) -> dict[str, Any]:
    """Provenance attributes stored with an artifact."""
    info: dict[str, Any] = {
        "epeflow_version": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "random_weights": bool(random_weights),
    }
    if random_weights:
        info["warning"] = RANDOM_WEIGHTS_WARNING
    info.update(extra)
    return info


def any_random(*flags: bool | None) -> bool:
    """True when any upstream artifact was computed with random weights."""
    return any(bool(f) for f in flags)


def marked_random(meta: Mapping[str, Any]) -> bool:
    """Whether an artifact's metadata says random weights were used (top level or in its `provenance` stamp)."""
    nested = meta.get("provenance")
    return bool(meta.get("random_weights")) or (isinstance(nested, Mapping) and bool(nested.get("random_weights")))
