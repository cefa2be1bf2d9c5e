"""The reference's networks: the IENet generator, the PPDE / PatchGAN discriminators, their losses;
`load_model` / `load_generator` read a trained model.pt."""

from epeflow.models.gan_losses import GAN_LOSSES
from epeflow.models.ienet import IENet, IENetConfig
from epeflow.models.load import load_generator, load_model
from epeflow.models.losses import r1_penalty
from epeflow.models.patchgan import PatchGAN, PatchGANConfig
from epeflow.models.ppde import PPDE, PPDEConfig

__all__ = [
    "GAN_LOSSES",
    "IENet",
    "IENetConfig",
    "PPDE",
    "PPDEConfig",
    "PatchGAN",
    "PatchGANConfig",
    "load_generator",
    "load_model",
    "r1_penalty",
]
