"""Check a downloaded weight file before a long run: load it exactly as the pipeline will, strictly.

`epeflow check-weights mseg|vgg16|lpips PATH` calls `check_weights`; a file that would fail later (wrong
architecture, truncated download, checksum mismatch) fails here with the same message.
"""

from __future__ import annotations

from pathlib import Path

from epeflow.errors import EpeflowError
from epeflow.weights import OFFICIAL, resolve_weights, sha256_of

KINDS = ("mseg", "vgg16", "lpips")


def check_weights(kind: str, path: Path, sha256: str | None = None) -> str:
    """Load `path` as weights of `kind`; return a one-line summary, or raise EpeflowError saying why not."""
    if kind not in KINDS:
        raise EpeflowError(f"unknown weights kind {kind!r}; choose one of {', '.join(KINDS)}")
    path = Path(path)
    if not path.is_file():
        raise EpeflowError(f"{path} does not exist; download {OFFICIAL[kind].url}")
    resolved = resolve_weights(kind, {"path": str(path), "sha256": sha256}, allow_random=False)
    assert resolved is not None
    if kind == "mseg":
        from epeflow.labels.mseg import load_mseg_file

        model = load_mseg_file(resolved)
        what = f"HRNetV2-W48, {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters, 194 classes"
    elif kind == "vgg16":
        from epeflow.common.vgg16 import VGG16, load_vgg16_state
        from epeflow.weights import load_state_dict

        model = VGG16()
        load_vgg16_state(model, load_state_dict(resolved, "VGG16"), str(resolved))
        what = f"VGG16 trunk, {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M parameters"
    else:
        from epeflow.common.lpips import load_lin_weights

        lins = load_lin_weights(resolved)
        what = f"LPIPS v0.1 vgg, {len(lins)} linear layers"
    return f"{kind} weights {resolved} are usable ({what}; sha256 {sha256_of(resolved)})"
