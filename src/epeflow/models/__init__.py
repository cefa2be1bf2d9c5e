"""Generator, discriminator and losses of the EPE-style translation network; `load_generator` reads model.pt."""

from epeflow.models.discriminator import DiscriminatorConfig, PerceptualDiscriminator, realism_maps
from epeflow.models.generator import Generator, GeneratorConfig
from epeflow.models.load import load_generator
from epeflow.models.losses import LSGANLoss, r1_penalty

__all__ = [
    "DiscriminatorConfig",
    "Generator",
    "GeneratorConfig",
    "LSGANLoss",
    "PerceptualDiscriminator",
    "load_generator",
    "r1_penalty",
    "realism_maps",
]
