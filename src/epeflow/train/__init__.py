"""Training of the generator against the perceptual discriminator on weighted matched crops.

`run_training` is what `epeflow train` calls; `load_generator` reads the resulting model.pt.
"""

from epeflow.train.model_file import MODEL_FORMAT, load_generator, save_model
from epeflow.train.run import run_training
from epeflow.train.settings import TrainSettings

__all__ = ["MODEL_FORMAT", "TrainSettings", "load_generator", "run_training", "save_model"]
