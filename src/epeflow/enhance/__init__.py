"""Stage 9, enhancement: the trained generator on whole frames of any size (batched, or in blended tiles
when a frame exceeds the memory budget), for the pipeline's held-out frames (`run_enhance`) or any folder
of frames (`enhance_folder`); `profile_model` measures a model.pt's cost."""

from epeflow.enhance.engine import Enhancer, EnhanceSettings, FrameInputs, to_png_array
from epeflow.enhance.run import (
    MODEL_MARKER,
    check_gbuffers,
    enhance_frame,
    merge_enhanced_shards,
    run_enhance,
    select_frames,
)

__all__ = [
    "MODEL_MARKER",
    "EnhanceSettings",
    "Enhancer",
    "FrameInputs",
    "check_gbuffers",
    "enhance_frame",
    "merge_enhanced_shards",
    "run_enhance",
    "select_frames",
    "to_png_array",
]
