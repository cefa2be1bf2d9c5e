"""Generator, discriminator and losses of the EPE-style translation network."""

from epeflow.models.discriminator import DiscriminatorConfig, PerceptualDiscriminator, realism_maps
from epeflow.models.generator import Generator, GeneratorConfig
from epeflow.models.losses import LSGANLoss, r1_penalty

__all__ = [
    "DiscriminatorConfig",
    "Generator",
    "GeneratorConfig",
    "LSGANLoss",
    "PerceptualDiscriminator",
    "r1_penalty",
    "realism_maps",
]
