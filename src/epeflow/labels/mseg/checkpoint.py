"""Loading MSeg's released checkpoints strictly, and building the model the labels stage runs.

Official files hold `{"state_dict": {"module.<key>": tensor}}` (saved from DataParallel). The prefix
is removed and every key must match our HRNetV2 exactly, with the right shape: a file for another
architecture or class count is an error listing the differences instead of a silently half-loaded net.
Only BatchNorm's `num_batches_tracked` counters may be absent (older torch did not save them; they
do not affect inference).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from epeflow.errors import EpeflowError
from epeflow.labels.mseg.hrnet import HRNetV2, empty_model, init_random
from epeflow.weights import OFFICIAL, load_state_dict, resolve_weights

log = logging.getLogger(__name__)
PREFIX = "module."
_OPTIONAL_SUFFIX = ".num_batches_tracked"


def official_state_dict(model: HRNetV2) -> dict[str, Any]:
    """The model's weights in the official file layout (what mseg-semantic's training saves)."""
    return {"state_dict": {PREFIX + k: v for k, v in model.state_dict().items()}}


def _listing(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return f"{shown}, ... ({len(keys)} in all)" if len(keys) > limit else shown


def load_mseg_state(model: HRNetV2, state: Mapping[str, torch.Tensor], source: str) -> None:
    """Load official-layout weights into `model` strictly; raise listing missing / unexpected / misshapen keys."""
    stripped = {k.removeprefix(PREFIX): v for k, v in state.items()}
    expected = model.state_dict()
    missing = sorted(k for k in expected if k not in stripped and not k.endswith(_OPTIONAL_SUFFIX))
    unexpected = sorted(k for k in stripped if k not in expected)
    wrong = sorted(
        f"{k} {tuple(v.shape)} (expected {tuple(expected[k].shape)})"
        for k, v in stripped.items()
        if k in expected and isinstance(v, torch.Tensor) and v.shape != expected[k].shape
    )
    problems = []
    if missing:
        problems.append(f"missing keys: {_listing(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_listing(unexpected)}")
    if wrong:
        problems.append(f"wrong shapes: {_listing(wrong, 4)}")
    if problems:
        raise EpeflowError(
            f"MSeg weights {source} do not fit the universal HRNetV2-W48 model ({'; '.join(problems)}); "
            f"download {OFFICIAL['mseg'].filename} ({OFFICIAL['mseg'].url})"
        )
    for k in expected:  # counters absent from old files keep the model's value
        if k.endswith(_OPTIONAL_SUFFIX) and k not in stripped:
            stripped[k] = expected[k]
    model.load_state_dict(stripped, strict=True)


def load_mseg_file(path: Path) -> HRNetV2:
    """An HRNetV2 in eval mode with the weights of an official MSeg checkpoint file."""
    model = empty_model()
    load_mseg_state(model, load_state_dict(path, "MSeg"), str(path))
    return model.eval().requires_grad_(False)


def build_mseg(weights: Mapping[str, Any] | None, allow_random: bool, seed: int = 0) -> tuple[HRNetV2, bool]:
    """MSeg model from config path / torch hub cache; seeded random weights only when allowed.

    Returns (model in eval mode, used_random_weights).
    """
    path = resolve_weights("mseg", weights, allow_random)
    if path is None:
        model = empty_model()
        init_random(model, seed)
        return model.eval().requires_grad_(False), True
    log.info("MSeg weights: %s", path)
    return load_mseg_file(path), False
