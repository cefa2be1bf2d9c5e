"""MSeg robust labels: the released universal HRNetV2-W48 model and its sliding-window inference.

`MsegLabeler(settings, weights, allow_random)(rgb) -> (H, W) uint8` universal ids (0..193) is what the
labels stage calls per frame; `build_mseg` / `load_mseg_file` load the official checkpoints strictly.
"""

from epeflow.labels.mseg.checkpoint import build_mseg, load_mseg_file, load_mseg_state, official_state_dict
from epeflow.labels.mseg.hrnet import NUM_CLASSES, HRNetConfig, HRNetV2
from epeflow.labels.mseg.inference import MULTI_SCALE, MsegLabeler, MsegSettings, segment

__all__ = [
    "MULTI_SCALE",
    "NUM_CLASSES",
    "HRNetConfig",
    "HRNetV2",
    "MsegLabeler",
    "MsegSettings",
    "build_mseg",
    "load_mseg_file",
    "load_mseg_state",
    "official_state_dict",
    "segment",
]
