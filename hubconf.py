"""torch.hub entry points of epeflow: a trained model.pt as a ready generator.

    generator = torch.hub.load("<epeflow checkout>", "epe", path="results/pfd2cs/model.pt", source="local")
    enhanced = generator(image, gbuffers, materials)  # (B, 3, H, W) in [0, 1]; see `epeflow.load_model`

The G-buffers must be normalised with the mean / std stored in model.pt (`epeflow.models.load_generator`
returns them); `epeflow enhance --model ... --images ...` does all of that for a folder of frames.
"""

import sys
from pathlib import Path

dependencies = ["torch", "numpy"]

_SRC = Path(__file__).resolve().parent / "src"
if _SRC.is_dir() and str(_SRC) not in sys.path:
    sys.path.insert(0, str(_SRC))  # a plain checkout works without `pip install`


def epe(path: str, device: str = "cpu"):  # noqa: ANN201 (torch.hub reads the docstring as help)
    """The generator of an epeflow model.pt, in eval mode on `device`.

    Args:
        path: model.pt written by `epeflow train` (or imported with `epeflow epe import generator`).
        device: where to put it ("cpu", "cuda", "cuda:1", ...).
    """
    from epeflow import load_model

    return load_model(path).to(device).eval()
