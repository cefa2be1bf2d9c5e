"""The REFERENCE generator, built at run time from the reference code in $EPEFLOW_REFERENCE_CODE.

Used by the parity test and, run as a script, to write tests/data/ienet_reference_keys_<mode>.txt (the
reference's state-dict keys and shapes per G-buffer mode), which the key tests compare ours against without
needing the reference. No reference code lives here: only its config values, which are facts.

    EPEFLOW_REFERENCE_CODE=/tmp/epe_ref python tests/epe_reference.py tests/data
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

ENV = "EPEFLOW_REFERENCE_CODE"
DATA = Path(__file__).parent / "data"
MODES = ("fake", "all", "no_light", "geometry", "img")
# code/config/train_pfd2cs.yaml, generator.config
PFD2CS = {
    "encoder_type": "ENCODER",
    "stem_norm": "group",
    "num_stages": 4,
    "other_norm": "group",
    "gbuffer_norm": "RAD",
    "gbuffer_encoder_norm": "residual",
    "num_gbuffer_layers": 3,
}
# PfDDataset.num_gbuffer_channels per mode
CHANNELS = {"fake": 32, "all": 26, "no_light": 17, "geometry": 8, "img": 0}


def reference_code_dir() -> Path | None:
    """The directory holding the reference's `epe` package ($ENV may name it or the folder above `code/`)."""
    root = os.environ.get(ENV)
    if not root:
        return None
    for candidate in (Path(root), Path(root) / "code"):
        if (candidate / "epe" / "network" / "ienet.py").is_file():
            return candidate
    raise FileNotFoundError(f"${ENV}={root} holds no epe/network/ienet.py (nor code/epe/network/ienet.py)")


@contextlib.contextmanager
def reference_network_modules(code_dir: Path) -> Iterator[types.SimpleNamespace]:
    """Import epe.network.ienet and .generator without running the packages' __init__ (which needs kornia,
    lpips and torchvision); sys.modules is restored afterwards."""
    names = ("epe", "epe.network")
    saved = {k: v for k, v in sys.modules.items() if k == "epe" or k.startswith("epe.")}
    for k in saved:
        del sys.modules[k]
    try:
        for name in names:
            package = types.ModuleType(name)
            package.__path__ = [str(code_dir / name.replace(".", "/"))]
            sys.modules[name] = package
        yield types.SimpleNamespace(
            ienet=importlib.import_module("epe.network.ienet"),
            generator=importlib.import_module("epe.network.generator"),
        )
    finally:
        for k in [k for k in sys.modules if k == "epe" or k.startswith("epe.")]:
            del sys.modules[k]
        sys.modules.update(saved)


def reference_config(mode: str) -> dict[str, Any]:
    """The generator config EPEExperiment passes to make_ienet for pfd2cs with this G-buffer mode.

    img: no G-buffer encoder and the reference's `Default` (BatchNorm) norm, the only setting its network
    runs without G-buffers. no_light / geometry: 12 material classes (its PfDDataset says 0, with which the
    G-buffer encoder cannot run).
    """
    if mode == "img":
        return {**PFD2CS, "encoder_type": "NONE", "gbuffer_norm": "Default", "num_classes": 0,
                "num_gbuffer_channels": 0, "cls2gbuf": {}}  # fmt: skip
    cls2gbuf = {0: lambda g: g[:, 15:21, :, :]} if mode == "all" else {}  # PfDDataset.cls2gbuf
    return {**PFD2CS, "num_classes": 12, "num_gbuffer_channels": CHANNELS[mode], "cls2gbuf": cls2gbuf}


def build_reference_generator(modules: types.SimpleNamespace, mode: str) -> torch.nn.Module:
    """ResidualGenerator(make_ienet(cfg)): the module whose state_dict is <name>_gen-network.pth.tar."""
    return modules.generator.ResidualGenerator(modules.ienet.make_ienet(reference_config(mode)))


def key_file(mode: str) -> Path:
    return DATA / f"ienet_reference_keys_{mode}.txt"


def read_key_file(path: Path) -> dict[str, tuple[int, ...]]:
    """`name [shape]` per line; `#` lines are comments."""
    keys = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, shape = line.split(" ", 1)
            keys[name] = tuple(json.loads(shape))
    return keys


def write_key_files(out_dir: Path) -> None:
    code_dir = reference_code_dir()
    if code_dir is None:
        raise SystemExit(f"set ${ENV} to the reference code")
    with reference_network_modules(code_dir) as modules:
        for mode in MODES:
            net = build_reference_generator(modules, mode)
            config = {k: v for k, v in reference_config(mode).items() if k != "cls2gbuf"}
            lines = [
                "# Reference generator state dict (ResidualGenerator(make_ienet(cfg)).state_dict(), as saved in",
                "# <name>_gen-network.pth.tar); written by tests/epe_reference.py from the reference code.",
                f"# gbuffer mode {mode}: cfg {json.dumps(config)}"
                + (", cls2gbuf {0: g[:, 15:21]}" if mode == "all" else ""),
                f"# parameters: {sum(p.numel() for p in net.parameters())}",
            ]
            lines += [f"{k} {json.dumps(list(v.shape))}" for k, v in net.state_dict().items()]
            (out_dir / key_file(mode).name).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    write_key_files(Path(sys.argv[1]) if len(sys.argv) > 1 else DATA)
