"""Training of the generator against the perceptual discriminator on weighted matched crops.

`run_train` is what `epeflow train` calls; `epeflow.models.load_generator` reads the model.pt it writes.
"""

from epeflow.train.run import TrainInputs, run_train
from epeflow.train.settings import TrainSettings

__all__ = ["TrainInputs", "TrainSettings", "run_train"]
