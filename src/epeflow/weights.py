"""Pretrained weights: found in config paths or the torch hub cache, verified, never downloaded.

Missing weights are an error that names the file to download and where to put it, unless the caller
allows random weights; then the result says so and every output it touches is stamped.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from epeflow.errors import EpeflowError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OfficialWeights:
    """Where a weight file comes from and how it is named in the torch hub cache."""

    filename: str
    url: str
    sha256_prefix: str | None = None  # torchvision names embed the first hex digits of the sha256


OFFICIAL: dict[str, OfficialWeights] = {
    "vgg16": OfficialWeights(
        "vgg16-397923af.pth", "https://download.pytorch.org/models/vgg16-397923af.pth", "397923af"
    ),
    "mseg": OfficialWeights(
        "mseg-3m.pth",
        "https://github.com/mseg-dataset/mseg-semantic#how-fast-can-your-models-run (mseg-3m.pth, 1080p model)",
    ),
    "lpips": OfficialWeights(
        "lpips-vgg-v0.1.pth",
        "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/vgg.pth",
    ),
}


def hub_checkpoint_dir() -> Path:
    """torch hub's checkpoint cache ($TORCH_HOME/hub/checkpoints, ~/.cache/torch/... by default)."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def sha256_of(path: Path) -> str:
    """sha256 of a file, hashed once per process for an unchanged file (VGG16 is loaded by several modules)."""
    st = path.stat()
    return _sha256_cached(str(path.resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _sha256_cached(path: str, size: int, mtime_ns: int, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def resolve_weights(name: str, spec: Mapping[str, Any] | None, allow_random: bool) -> Path | None:
    """Path of verified weights for `name`, or None when they are missing and random weights are allowed.

    Random weights stand in only for weights nobody asked for by path: a path given in config that does
    not exist is a mistake (a typo, an unmounted disk) and an error whatever `allow_random` says.
    """
    official = OFFICIAL[name]
    spec = dict(spec or {})
    configured = spec.get("path")
    path = Path(os.path.expanduser(configured)) if configured else hub_checkpoint_dir() / official.filename
    if configured and not path.is_file():
        state = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise EpeflowError(
            f"config key `weights.{name}.path`: {path} {state}. Fix the path (download {official.url}), or "
            "remove the key to look in the torch hub cache; random weights never replace a file given by path."
        )
    if not path.is_file():
        if allow_random:
            log.warning("%s weights not found at %s: using RANDOM weights (results are not real measurements)",
                        name, path)
            return None
        raise EpeflowError(
            f"{name} weights not found at {path}. Download {official.url} and save it as {path} "
            f"(or set config key `weights.{name}.path`). To run without pretrained weights, set "
            "`allow_random_weights: true`; results are then marked as not a real measurement."
        )
    expected = spec.get("sha256")
    if expected or official.sha256_prefix:
        actual = sha256_of(path)
        if expected and actual != expected:
            raise EpeflowError(
                f"{name} weights {path} have sha256 {actual}, but config key `weights.{name}.sha256` says "
                f"{expected}; the download is probably incomplete: download {official.url} again"
            )
        if not expected and path.name == official.filename and not actual.startswith(official.sha256_prefix or ""):
            raise EpeflowError(
                f"{name} weights {path} do not match the official file (sha256 {actual[:8]}..., expected "
                f"{official.sha256_prefix}...); download {official.url} again"
            )
    return path


def weights_sha256(name: str, spec: Mapping[str, Any] | None, allow_random: bool) -> str | None:
    """sha256 of the file `name`'s weights resolve to, None where random weights stand in: what
    fingerprints of resumable work record, so replaced weight files start that work fresh."""
    path = resolve_weights(name, spec, allow_random)
    return None if path is None else sha256_of(path)


def load_state_dict(path: Path, what: str) -> dict[str, torch.Tensor]:
    """Load a checkpoint file safely (weights_only), unwrapping the usual `state_dict` nesting."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds here (pickle, zip, runtime)
        raise EpeflowError(f"{what} weights {path} cannot be read ({e}); download the file again") from e
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise EpeflowError(f"{what} weights {path} do not hold a state dict")
    return state
