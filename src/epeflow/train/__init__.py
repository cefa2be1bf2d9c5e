"""Training of the generator against the perceptual discriminator on weighted matched crops.

`run_training` is what `epeflow train` calls; `epeflow.models.load_generator` reads the model.pt it writes.
"""

from epeflow.train.run import run_training
from epeflow.train.settings import TrainSettings

__all__ = ["TrainSettings", "run_training"]
