"""G-buffers: real ones imported from game exports, or fake ones from VGG16 features; one store per dataset.

Other stages read them through `epeflow.artifacts.gbuffers.GBufferStore` (per-frame (C, H, W) float32,
normalised with the dataset's channel mean / std, upsampled to frame size when stored at feature resolution).
"""

from epeflow.gbuffers.build import run_gbuffers
from epeflow.gbuffers.channels import GROUPS, select_channels
from epeflow.gbuffers.settings import GBufferSettings

__all__ = ["GROUPS", "GBufferSettings", "run_gbuffers", "select_channels"]
