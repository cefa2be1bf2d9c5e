"""Channel names of real G-buffers and the reference's channel groups (`all`, `no_light`, `geometry`).

The reference trains with all G-buffers, with those that do not depend on lighting, or with geometry
only. Game exports name their buffers differently, so groups are defined on channel names: a channel
belongs to a kind when its lower-case name starts with one of the kind's prefixes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from epeflow.errors import EpeflowError

GROUPS = ("all", "no_light", "geometry")
# Depth, surface normals and positions describe the scene's shape only.
GEOMETRY_PREFIXES = ("depth", "normal", "position")
# Buffers whose values change with the lighting (lit or emitted radiance, shadows, sky, atmosphere).
LIGHT_PREFIXES = (
    "emission",
    "emissive",
    "irradiance",
    "shadow",
    "shading",
    "light",
    "sky",
    "atmosphere",
    "atmospheric",
    "scattering",
    "reflection",
)


def default_names(count: int) -> list[str]:
    """Names for files that carry none: c00, c01, ..."""
    return [f"c{i:02d}" for i in range(count)]


def is_geometry(name: str) -> bool:
    return name.lower().startswith(GEOMETRY_PREFIXES)


def is_light_dependent(name: str) -> bool:
    return name.lower().startswith(LIGHT_PREFIXES)


def select_channels(names: Sequence[str], group: str, named: bool = True) -> np.ndarray:
    """Indices of the channels of `group`, in file order.

    `named` is False when the names were made up (the files carry none); only `all` works then.
    """
    if group not in GROUPS:
        raise EpeflowError(f"config key `gbuffer_channels`: {group!r} is not one of {', '.join(GROUPS)}")
    if group == "all":
        return np.arange(len(names))
    if not named:
        raise EpeflowError(
            f"config key `gbuffer_channels: {group}` needs channel names, but the G-buffer files carry none; "
            "store a `names` array in each .npz or set config key `gbuffer_names`"
        )
    keep = is_geometry if group == "geometry" else (lambda n: not is_light_dependent(n))
    index = np.array([i for i, n in enumerate(names) if keep(n)], dtype=np.int64)
    if index.size == 0:
        wanted = GEOMETRY_PREFIXES if group == "geometry" else ("anything not " + "/".join(LIGHT_PREFIXES),)
        raise EpeflowError(
            f"config key `gbuffer_channels: {group}` selects no channel of {list(names)}; names must start with "
            f"{', '.join(wanted)}"
        )
    return index


_X_DIRECTION = re.compile(r"normal.*(^|[_.\-\s])x$|normal_?x$", re.IGNORECASE)


def x_direction_channels(names: Sequence[str]) -> np.ndarray:
    """Indices of channels holding the x component of a direction (normal_x, normals.x, ...): a horizontal
    mirror of the image negates them."""
    return np.array([i for i, n in enumerate(names) if _X_DIRECTION.search(str(n))], dtype=np.int64)
